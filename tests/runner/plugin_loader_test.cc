#include "runner/plugin_loader.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "apps/registry.h"
#include "include/zmr/api.h"
#include "tests/support/temp_dir.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

// An in-tree plugin built by apps/CMakeLists.txt.
std::string PluginPath(const std::string& output_name) {
  return std::string(ZMR_BINARY_DIR) + "/apps/lib" + output_name + ".so";
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

class PairCollector : public Emitter {
 public:
  void Emit(std::string_view key, std::string_view value) override {
    pairs.emplace_back(std::string(key), std::string(value));
  }
  Pairs pairs;
};

class ListStream : public ValueStream {
 public:
  explicit ListStream(std::vector<std::string> values) : values_(std::move(values)) {}
  bool Next(std::string_view* value) override {
    if (next_ >= values_.size()) return false;
    *value = values_[next_++];
    return true;
  }
  std::size_t read() const { return next_; }

 private:
  std::vector<std::string> values_;
  std::size_t next_ = 0;
};

std::unique_ptr<App> MustLoad(const std::string& output_name, const std::string& app,
                              const Params& params = {}) {
  std::string error;
  auto loaded = LoadPluginApp(PluginPath(output_name), app, params, &error);
  REQUIRE_MESSAGE(loaded != nullptr, error);
  return loaded;
}

std::string LoadError(const std::string& path, const std::string& app, const Params& params = {}) {
  std::string error;
  auto loaded = LoadPluginApp(path, app, params, &error);
  CHECK(loaded == nullptr);
  CHECK(error.find('\n') == std::string::npos);
  return error;
}

AttemptInfo MapAttempt(const std::string& input_file = "/data/a.txt") {
  AttemptInfo info;
  info.job_id = "job-1";
  info.task_id = "m-00002";
  info.attempt = 1;
  info.is_map = true;
  info.partition = 2;
  info.num_reduces = 3;
  info.input_file = input_file;
  return info;
}

AttemptInfo ReduceAttempt() {
  AttemptInfo info;
  info.job_id = "job-1";
  info.task_id = "r-00000";
  info.attempt = 2;
  info.is_map = false;
  info.partition = 0;
  info.num_reduces = 1;
  return info;
}

struct InputLine {
  std::string path;
  std::string line;
};

// Runs a map attempt over `lines` (with Start and Finish) and returns the pairs in emit order.
Pairs RunMap(App& app, const std::vector<InputLine>& lines) {
  std::string error;
  REQUIRE_MESSAGE(app.Start(MapAttempt(lines.empty() ? "" : lines[0].path), &error), error);
  PairCollector out;
  for (const InputLine& in : lines) {
    std::string_view path = in.path;
    std::string_view name = path.substr(path.rfind('/') + 1);
    app.Map(in.line, MapContext{path, name}, out);
  }
  REQUIRE_MESSAGE(app.Finish(out, &error), error);
  CHECK(app.Failure().empty());
  return out.pairs;
}

// Groups map output by key (sorted), combines each group, then reduces each group, like a
// one-partition job: returns the reduce output.
Pairs RunCombineAndReduce(App& combine_app, App& reduce_app, const Pairs& map_output) {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& [key, value] : map_output) groups[key].push_back(value);
  if (combine_app.HasCombiner()) {
    for (auto& [key, values] : groups) {
      PairCollector combined;
      ListStream in(values);
      combine_app.Combine(key, in, combined);
      values.clear();
      for (auto& [k, v] : combined.pairs) {
        CHECK(k == key);
        values.push_back(v);
      }
    }
  }
  std::string error;
  REQUIRE_MESSAGE(reduce_app.Start(ReduceAttempt(), &error), error);
  PairCollector out;
  for (auto& [key, values] : groups) {
    ListStream in(values);
    reduce_app.Reduce(key, in, out);
  }
  REQUIRE_MESSAGE(reduce_app.Finish(out, &error), error);
  return out.pairs;
}

const std::vector<InputLine> kText = {
    {"/data/a.txt", "The quick brown fox, the lazy dog."},
    {"/data/a.txt", "dfs.replication and dfs.name.dir: THE end"},
    {"/data/b.txt", "A fox! a FOX? 42 foxes"},
    {"/data/b.txt", ""},
};

// Runs `app_name` as a built-in and as the in-tree plugin over kText; both must agree.
void CheckPluginMatchesBuiltin(const std::string& app_name, const Params& params) {
  std::string error;
  auto builtin_map = MakeApp(app_name, params, &error);
  REQUIRE_MESSAGE(builtin_map != nullptr, error);
  auto builtin_reduce = MakeApp(app_name, params, &error);
  auto plugin_map = MustLoad("zmr_" + app_name, app_name, params);
  auto plugin_reduce = MustLoad("zmr_" + app_name, app_name, params);
  CHECK(plugin_map->HasCombiner() == builtin_map->HasCombiner());

  Pairs builtin_mapped = RunMap(*builtin_map, kText);
  Pairs plugin_mapped = RunMap(*plugin_map, kText);
  CHECK(!plugin_mapped.empty());
  CHECK(plugin_mapped == builtin_mapped);
  Pairs builtin_reduced = RunCombineAndReduce(*builtin_map, *builtin_reduce, builtin_mapped);
  Pairs plugin_reduced = RunCombineAndReduce(*plugin_map, *plugin_reduce, plugin_mapped);
  CHECK(plugin_reduced == builtin_reduced);
  CHECK(plugin_map->Failure().empty());
  CHECK(plugin_reduce->Failure().empty());
}

TEST_CASE("the in-tree wordcount plugin maps, combines and reduces exactly like the built-in") {
  CheckPluginMatchesBuiltin("wordcount", {});
  auto plugin_map = MustLoad("zmr_wordcount", "wordcount");
  auto plugin_reduce = MustLoad("zmr_wordcount", "wordcount");
  Pairs reduced = RunCombineAndReduce(*plugin_map, *plugin_reduce, RunMap(*plugin_map, kText));
  std::map<std::string, std::string> counts(reduced.begin(), reduced.end());
  CHECK(counts["the"] == "3");
  CHECK(counts["fox"] == "3");
  CHECK(counts["a"] == "2");
  CHECK(counts.count("foxes") == 1);
}

TEST_CASE("the in-tree grep and invertedindex plugins agree with the built-ins") {
  CheckPluginMatchesBuiltin("grep", {{"pattern", "dfs[a-z.]+|fox"}});
  CheckPluginMatchesBuiltin("invertedindex", {});
  auto index = MustLoad("zmr_invertedindex", "invertedindex");
  auto reduce = MustLoad("zmr_invertedindex", "invertedindex");
  Pairs reduced = RunCombineAndReduce(*index, *reduce, RunMap(*index, kText));
  std::map<std::string, std::string> files(reduced.begin(), reduced.end());
  CHECK(files["fox"] == "a.txt,b.txt");
  CHECK(files["lazy"] == "a.txt");
}

TEST_CASE("the in-tree sort plugin maps, partitions and reduces like the built-in") {
  const Params params = {{"key_bytes", "3"}, {"split_points", "6d,74"}};  // "m", "t"
  CheckPluginMatchesBuiltin("sort", params);
  auto plugin = MustLoad("zmr_sort", "sort", params);
  std::string error;
  auto builtin = MakeApp("sort", params, &error);
  REQUIRE(builtin != nullptr);
  std::string start_error;
  REQUIRE(plugin->Start(MapAttempt("/data/a.txt"), &start_error));
  REQUIRE(builtin->Start(MapAttempt("/data/a.txt"), &start_error));
  for (const char* key : {"", "a", "m", "mzz", "s", "t", "zzz"}) {
    INFO(key);
    CHECK(plugin->Partition(key, 3) == builtin->Partition(key, 3));
  }
  CHECK(plugin->Partition("lzz", 3) == 0);
  CHECK(plugin->Partition("m", 3) == 1);
  CHECK(plugin->Partition("zzz", 3) == 2);
}

TEST_CASE("the grep plugin without a pattern fails its attempt at start with grep's message") {
  auto grep = MustLoad("zmr_grep", "grep");
  std::string error;
  CHECK_FALSE(grep->Start(MapAttempt(), &error));
  CHECK(error == "plugin app 'grep' threw in Setup: app 'grep' requires the parameter 'pattern'");
  CHECK(grep->Failure() == error);
}

TEST_CASE("a missing plugin file is refused with the loader's reason") {
  TempDir dir;
  std::string error = LoadError((dir.path() / "libnope.so").string(), "nope");
  CHECK(error.rfind("cannot load plugin libnope.so: ", 0) == 0);
  CHECK(error.find("No such file") != std::string::npos);
}

TEST_CASE("a file that is not a shared library is refused") {
  TempDir dir;
  fs::path fake = dir.path() / "libfake.so";
  std::ofstream(fake) << "this is not an ELF file\n";
  std::string error = LoadError(fake.string(), "fake");
  CHECK(error.rfind("cannot load plugin libfake.so: ", 0) == 0);
  CHECK(error.size() > std::string("cannot load plugin libfake.so: ").size());
}

TEST_CASE("a shared library without zmr_plugin_info is not a zmr plugin") {
  CHECK(LoadError(PluginPath("zmr_test_not_a_plugin"), "anything") ==
        "plugin libzmr_test_not_a_plugin.so has no zmr_plugin_info (not a zmr plugin)");
}

TEST_CASE("a plugin built for another API version is refused naming both versions") {
  CHECK(LoadError(PluginPath("zmr_test_bad_version"), "badversion") ==
        "plugin libzmr_test_bad_version.so was built for zmr plugin API 999, this worker "
        "supports API " +
            std::to_string(api::kApiVersion));
}

TEST_CASE("a plugin asked for an app it does not provide is refused naming both apps") {
  CHECK(LoadError(PluginPath("zmr_wordcount"), "grep") ==
        "plugin libzmr_wordcount.so provides app 'wordcount', not 'grep'");
}

TEST_CASE("a plugin whose Map throws fails the attempt with the exception text") {
  auto app = MustLoad("zmr_test_thrower", "thrower");
  std::string error;
  REQUIRE(app->Start(MapAttempt(), &error));
  PairCollector out;
  MapContext ctx{"/data/a.txt", "a.txt"};
  app->Map("fine", ctx, out);
  CHECK(app->Failure().empty());
  app->Map("a boom line", ctx, out);
  CHECK(app->Failure() == "plugin app 'thrower' threw in Map: boom at 'a boom line'");
  app->Map("never mapped", ctx, out);  // failed code is not called again
  CHECK(out.pairs == Pairs{{"fine", "a.txt"}});
  CHECK_FALSE(app->Finish(out, &error));
  CHECK(error == app->Failure());
  CHECK(out.pairs == Pairs{{"fine", "a.txt"}});  // Finish of failed code did not run
  Counters counters;
  app->TakeCounters(&counters);
  CHECK(counters == Counters{{"thrower/LINES", 2}});
}

TEST_CASE("a plugin throwing something that is not a std::exception still fails cleanly") {
  auto app = MustLoad("zmr_test_thrower", "thrower");
  PairCollector out;
  app->Map("int", MapContext{"/data/a.txt", "a.txt"}, out);
  CHECK(app->Failure() == "plugin app 'thrower' threw a non-standard exception in Map");
}

TEST_CASE("a plugin whose Setup throws or emits fails Start") {
  std::string error;
  auto refused = MustLoad("zmr_test_thrower", "thrower", {{"fail_setup", "not today"}});
  CHECK_FALSE(refused->Start(MapAttempt(), &error));
  CHECK(error == "plugin app 'thrower' threw in Setup: setup refused: not today");

  auto emitting = MustLoad("zmr_test_thrower", "thrower", {{"emit_in_setup", ""}});
  error.clear();
  CHECK_FALSE(emitting->Start(MapAttempt(), &error));
  CHECK(error.rfind("plugin app 'thrower' threw in Setup: Context::Emit called outside", 0) == 0);
}

TEST_CASE("a plugin sees the attempt, the current input file and its params") {
  auto app = MustLoad("zmr_test_thrower", "thrower");
  Pairs pairs = RunMap(*app, {{"/data/x/one.txt", "l1"}, {"/data/y/two.txt", "l2"}});
  CHECK(pairs == Pairs{{"l1", "one.txt"}, {"l2", "two.txt"}, {"_finish", "m-00002"}});
  Counters counters{{"thrower/LINES", 10}};
  app->TakeCounters(&counters);
  CHECK(counters == Counters{{"thrower/LINES", 12}});
  app->TakeCounters(&counters);  // taken: nothing new to add
  CHECK(counters == Counters{{"thrower/LINES", 12}});
}

TEST_CASE("a plugin's partitioner is used and an out-of-range partition fails the attempt") {
  auto app = MustLoad("zmr_test_thrower", "thrower");
  CHECK(app->Partition("abcde", 3) == 2);
  CHECK(app->Partition("", 3) == 0);
  CHECK(app->Failure().empty());

  auto bad = MustLoad("zmr_test_thrower", "thrower", {{"bad_partition", "1"}});
  CHECK(bad->Partition("abc", 4) == 0);
  CHECK(bad->Failure() ==
        "plugin app 'thrower': partitioner returned partition 4 for 4 partitions");
}

TEST_CASE("a plugin without a reducer or combiner passes values through unchanged") {
  auto app = MustLoad("zmr_test_thrower", "thrower");
  CHECK_FALSE(app->HasCombiner());
  std::string error;
  REQUIRE(app->Start(ReduceAttempt(), &error));
  PairCollector out;
  ListStream values({"x", "y"});
  app->Reduce("k", values, out);
  CHECK(out.pairs == Pairs{{"k", "x"}, {"k", "y"}});
}

TEST_CASE("a reducer or combiner that reads only some values leaves the stream at the key's end") {
  auto app = MustLoad("zmr_test_first_value", "firstvalue");
  CHECK(app->HasCombiner());
  PairCollector combined;
  ListStream combine_values({"1", "2", "3"});
  app->Combine("k", combine_values, combined);
  CHECK(combine_values.read() == 3);
  CHECK(combined.pairs == Pairs{{"k", "1"}});
  Counters counters;
  app->TakeCounters(&counters);
  CHECK(counters == Counters{{"firstvalue/COMBINED", 1}});

  PairCollector reduced;
  ListStream reduce_values({"a", "b"});
  app->Reduce("k", reduce_values, reduced);
  CHECK(reduce_values.read() == 2);
  CHECK(reduced.pairs == Pairs{{"k", "a"}});
}

TEST_CASE("an error raised by zmr's emitter under plugin code reaches the caller unchanged") {
  class FullDisk : public Emitter {
   public:
    void Emit(std::string_view, std::string_view) override {
      throw std::runtime_error("disk full");
    }
  };
  auto app = MustLoad("zmr_wordcount", "wordcount");
  FullDisk out;
  CHECK_THROWS_WITH(app->Map("some words", MapContext{"/a", "a"}, out), "disk full");
  CHECK(app->Failure().empty());  // not the plugin's fault
}

TEST_CASE("apps loaded from one library stay usable after another is destroyed") {
  auto first = MustLoad("zmr_wordcount", "wordcount");
  auto second = MustLoad("zmr_wordcount", "wordcount");
  CHECK(RunMap(*first, {{"/a", "x y"}}) == Pairs{{"x", "1"}, {"y", "1"}});
  first.reset();
  CHECK(RunMap(*second, {{"/a", "y z"}}) == Pairs{{"y", "1"}, {"z", "1"}});
}

// The example's README promises that this one command builds a working plugin; run it exactly.
TEST_CASE("the example plugin builds with the README's g++ command and runs") {
  TempDir dir;
  const std::string source = std::string(ZMR_SOURCE_DIR) + "/examples/plugin/stopwords.cc";
  const std::string library = (dir.path() / "libstopwords.so").string();
  const std::string command = "g++ -std=c++17 -O2 -shared -fPIC -I" + std::string(ZMR_SOURCE_DIR) +
                              "/include " + source + " -o " + library + " 2>&1";
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);

  for (const std::string& path : {library, PluginPath("stopwords")}) {
    INFO(path);
    std::string error;
    auto map = LoadPluginApp(path, "stopwords", {{"stopwords", "the,and"}}, &error);
    REQUIRE_MESSAGE(map != nullptr, error);
    auto reduce = LoadPluginApp(path, "stopwords", {}, &error);
    REQUIRE_MESSAGE(reduce != nullptr, error);
    Pairs mapped = RunMap(*map, {{"/d/a.txt", "The cat and the hat."}, {"/d/a.txt", "A cat!"}});
    CHECK(mapped == Pairs{{"cat", "1"}, {"hat", "1"}, {"a", "1"}, {"cat", "1"}});
    Counters counters;
    map->TakeCounters(&counters);
    CHECK(counters == Counters{{"stopwords/SKIPPED", 3}});
    CHECK(RunCombineAndReduce(*map, *reduce, mapped) ==
          Pairs{{"a", "1"}, {"cat", "2"}, {"hat", "1"}});

    auto strict = LoadPluginApp(path, "stopwords", {{"min_length", "zero"}}, &error);
    REQUIRE(strict != nullptr);
    CHECK_FALSE(strict->Start(MapAttempt(), &error));
    CHECK(error == "plugin app 'stopwords' threw in Setup: min_length must be a positive "
                   "integer, got 'zero'");
  }
}

}  // namespace
}  // namespace zmr
