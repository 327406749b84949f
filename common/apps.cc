// App's default behaviour and the registry of built-in apps. The apps themselves live in apps/,
// written against the public plugin API like any plugin, and run through the shared api adapter.
#include "common/apps.h"

#include <string>
#include <utility>
#include <vector>

#include "apps/builtin.h"
#include "common/api_adapter.h"
#include "common/partition.h"
#include "common/zmr/api.h"

namespace zmr {

bool App::Start(const AttemptInfo&, std::string*) { return true; }
bool App::Finish(Emitter&, std::string*) { return true; }
std::string App::Failure() const { return {}; }
int64_t App::Partition(std::string_view key, int64_t num_partitions) {
  return PartitionOf(key, num_partitions);
}
bool App::FlushCombine(Emitter&, std::string*) { return true; }
void App::TakeCounters(Counters*) {}

void App::Combine(std::string_view key, ValueStream& values, Emitter& out) {
  // Identity: a combiner that combines nothing is always correct.
  std::string_view value;
  while (values.Next(&value)) out.Emit(key, value);
}

namespace {

constexpr const char* kWordCount = "wordcount";
constexpr const char* kGrep = "grep";
constexpr const char* kInvertedIndex = "invertedindex";

std::string KnownAppsText() {
  std::string text;
  for (const std::string& name : BuiltinAppNames()) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

// The registration of a built-in app, or nullptr for an unknown name.
const api::PluginInfo* BuiltinInfo(const std::string& name) {
  if (name == kWordCount) return &apps::WordCountPluginInfo();
  if (name == kGrep) return &apps::GrepPluginInfo();
  if (name == kInvertedIndex) return &apps::InvertedIndexPluginInfo();
  return nullptr;
}

// Checks a built-in app's params before anything runs, so a bad submission is refused up front
// (the app's Setup checks again in every attempt).
bool CheckBuiltinParams(const std::string& name, const Params& params, std::string* error) {
  if (name != kGrep) return true;
  auto it = params.find("pattern");
  std::string problem = apps::GrepPatternError(it == params.end() ? nullptr : &it->second);
  if (problem.empty()) return true;
  *error = std::move(problem);
  return false;
}

}  // namespace

std::vector<std::string> BuiltinAppNames() { return {kGrep, kInvertedIndex, kWordCount}; }

bool ValidateApp(const std::string& name, const Params& params, std::string* error) {
  std::string ignored;
  return MakeApp(name, params, error ? error : &ignored) != nullptr;
}

std::unique_ptr<App> MakeApp(const std::string& name, const Params& params, std::string* error) {
  const api::PluginInfo* info = BuiltinInfo(name);
  if (info == nullptr) {
    *error = "unknown app '" + name + "' (known: " + KnownAppsText() + ")";
    return nullptr;
  }
  if (!CheckBuiltinParams(name, params, error)) return nullptr;
  return MakeApiApp(*info, params, "app '" + name + "'", /*keep_alive=*/nullptr);
}

}  // namespace zmr
