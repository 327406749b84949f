// The registry of built-in apps (apps/registry.h).
#include "apps/registry.h"

#include <string>
#include <utility>
#include <vector>

#include "apps/builtin.h"
#include "apps/sort_keys.h"
#include "apps/sort_sampler.h"
#include "common/api_adapter.h"
#include "include/zmr/api.h"

namespace zmr {

namespace {

constexpr const char* kWordCount = "wordcount";
constexpr const char* kGrep = "grep";
constexpr const char* kInvertedIndex = "invertedindex";
constexpr const char* kSort = apps::sort::kAppName;

std::string KnownAppsText() {
  std::string text;
  for (const std::string& name : BuiltinAppNames()) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

// A built-in app: its registration, and what its combiner computes. kInt64Sum is declared here by
// hand for exactly the apps that register apps::SumReducer as their combiner (apps/wordcount.cc,
// apps/grep.cc); tests/runner/spill_test.cc checks that those apps give the same runs with and
// without the declaration.
struct Builtin {
  const api::PluginInfo* info;
  CombinerKind combiner;
};

// The built-in app of that name, or {nullptr} for an unknown name.
Builtin FindBuiltin(const std::string& name) {
  if (name == kWordCount) return {&apps::WordCountPluginInfo(), CombinerKind::kInt64Sum};
  if (name == kGrep) return {&apps::GrepPluginInfo(), CombinerKind::kInt64Sum};
  if (name == kInvertedIndex) return {&apps::InvertedIndexPluginInfo(), CombinerKind::kOpaque};
  if (name == kSort) return {&apps::SortPluginInfo(), CombinerKind::kOpaque};
  return {nullptr, CombinerKind::kOpaque};
}

const std::string* FindParam(const Params& params, const std::string& name) {
  auto it = params.find(name);
  return it == params.end() ? nullptr : &it->second;
}

// Checks a built-in app's params before anything runs, so a bad submission is refused up front
// (the app's Setup checks again in every attempt). reduces: as for ValidateApp.
bool CheckBuiltinParams(const std::string& name, const Params& params, int64_t reduces,
                        std::string* error) {
  std::string problem;
  if (name == kGrep) {
    problem = apps::GrepPatternError(FindParam(params, "pattern"));
  } else if (name == kSort) {
    problem = apps::sort::CheckParams(FindParam(params, apps::sort::kKeyBytesParam),
                                      FindParam(params, apps::sort::kSplitPointsParam), reduces);
  }
  if (problem.empty()) return true;
  *error = std::move(problem);
  return false;
}

}  // namespace

std::vector<std::string> BuiltinAppNames() { return {kGrep, kInvertedIndex, kSort, kWordCount}; }

bool ValidateApp(const std::string& name, const Params& params, std::string* error,
                 int64_t reduces) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  return MakeApp(name, params, error) != nullptr &&
         CheckBuiltinParams(name, params, reduces, error);
}

bool PlanAppParams(const std::string& name, const std::vector<InputFile>& files, int64_t reduces,
                   Params* params, std::string* error) {
  if (name != kSort || reduces <= 1 || params->count(apps::sort::kSplitPointsParam) != 0) {
    return true;
  }
  std::size_t key_bytes = 0;
  std::string problem =
      apps::sort::ParseKeyBytes(FindParam(*params, apps::sort::kKeyBytesParam), &key_bytes);
  if (!problem.empty()) {
    *error = std::move(problem);
    return false;
  }
  std::vector<std::string> samples;
  if (!SampleKeys(files, key_bytes, SampleOptions{}, &samples, error)) return false;
  (*params)[apps::sort::kSplitPointsParam] =
      apps::sort::EncodeSplitPoints(ChooseSplitPoints(std::move(samples), reduces));
  return true;
}

std::unique_ptr<App> MakeApp(const std::string& name, const Params& params, std::string* error) {
  const Builtin builtin = FindBuiltin(name);
  if (builtin.info == nullptr) {
    *error = "unknown app '" + name + "' (known: " + KnownAppsText() + ")";
    return nullptr;
  }
  if (!CheckBuiltinParams(name, params, /*reduces=*/-1, error)) return nullptr;
  return MakeApiApp(*builtin.info, params, "app '" + name + "'", /*keep_alive=*/nullptr,
                    builtin.combiner);
}

}  // namespace zmr
