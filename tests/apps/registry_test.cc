#include "apps/registry.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace zmr {
namespace {

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

 private:
  std::vector<std::string> values_;
  std::size_t next_ = 0;
};

std::unique_ptr<App> MustMake(const std::string& name, const Params& params = {}) {
  std::string error;
  auto app = MakeApp(name, params, &error);
  REQUIRE_MESSAGE(app != nullptr, error);
  return app;
}

Pairs MapLine(App& app, std::string_view line, std::string_view name = "input.txt") {
  PairCollector out;
  MapContext ctx{std::string("/data/") + std::string(name), name};
  app.Map(line, ctx, out);
  return out.pairs;
}

Pairs ReduceValues(App& app, std::string_view key, std::vector<std::string> values) {
  PairCollector out;
  ListStream in(std::move(values));
  app.Reduce(key, in, out);
  return out.pairs;
}

Pairs CombineValues(App& app, std::string_view key, std::vector<std::string> values) {
  PairCollector out;
  ListStream in(std::move(values));
  app.Combine(key, in, out);
  return out.pairs;
}

TEST_CASE("the built-in app names are listed sorted") {
  CHECK(BuiltinAppNames() ==
        std::vector<std::string>{"grep", "invertedindex", "sort", "wordcount"});
}

TEST_CASE("an unknown app is refused with the list of known apps") {
  std::string error;
  CHECK(MakeApp("terasort", {}, &error) == nullptr);
  CHECK(error == "unknown app 'terasort' (known: grep, invertedindex, sort, wordcount)");
  error.clear();
  CHECK_FALSE(ValidateApp("terasort", {}, &error));
  CHECK(error == "unknown app 'terasort' (known: grep, invertedindex, sort, wordcount)");
}

TEST_CASE("wordcount maps maximal runs of ASCII letters, lower-cased, to one") {
  auto app = MustMake("wordcount");
  CHECK(app->HasCombiner());
  CHECK(MapLine(*app, "Hello, hello WORLD! it's 42x_y\tZ\xC3\xA9t\xC3\xA9") ==
        Pairs{{"hello", "1"}, {"hello", "1"}, {"world", "1"}, {"it", "1"}, {"s", "1"},
              {"x", "1"}, {"y", "1"}, {"z", "1"}, {"t", "1"}});
  CHECK(MapLine(*app, "").empty());
  CHECK(MapLine(*app, "  123 ... ").empty());
  CHECK(MapLine(*app, "AbCdEfGhIjKlMnOpQrStUvWxYz") ==
        Pairs{{"abcdefghijklmnopqrstuvwxyz", "1"}});
}

TEST_CASE("wordcount's combiner and reducer sum decimal counts") {
  auto app = MustMake("wordcount");
  CHECK(CombineValues(*app, "the", {"1", "1", "1"}) == Pairs{{"the", "3"}});
  CHECK(ReduceValues(*app, "the", {"3", "1", "10", "9999999999"}) ==
        Pairs{{"the", "10000000013"}});
  CHECK(ReduceValues(*app, "a", {"1"}) == Pairs{{"a", "1"}});
}

TEST_CASE("grep requires a valid ECMAScript pattern") {
  std::string error;
  CHECK_FALSE(ValidateApp("grep", {}, &error));
  CHECK(error.find("pattern") != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);

  error.clear();
  CHECK_FALSE(ValidateApp("grep", {{"pattern", "(ab"}}, &error));
  CHECK(error.find("(ab") != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
  CHECK(MakeApp("grep", {{"pattern", "[z-a]"}}, &error) == nullptr);

  error.clear();
  CHECK(ValidateApp("grep", {{"pattern", "dfs[a-z.]+"}}, &error));
  CHECK(error.empty());
  CHECK(ValidateApp("wordcount", {}, &error));
  CHECK(ValidateApp("invertedindex", {}, &error));
}

TEST_CASE("grep emits every match of a line and counts them") {
  auto app = MustMake("grep", {{"pattern", "fo+"}});
  CHECK(MapLine(*app, "foo fooo bar fo f") == Pairs{{"foo", "1"}, {"fooo", "1"}, {"fo", "1"}});
  CHECK(MapLine(*app, "nothing here").empty());
  CHECK(CombineValues(*app, "foo", {"1", "1"}) == Pairs{{"foo", "2"}});
  CHECK(ReduceValues(*app, "foo", {"2", "5"}) == Pairs{{"foo", "7"}});

  auto hadoop = MustMake("grep", {{"pattern", "dfs[a-z.]+"}});
  CHECK(MapLine(*hadoop, "<name>dfs.replication</name> dfs.name.dir x") ==
        Pairs{{"dfs.replication", "1"}, {"dfs.name.dir", "1"}});
}

TEST_CASE("grep with a pattern that matches the empty string terminates and skips empty matches") {
  auto app = MustMake("grep", {{"pattern", "a*"}});
  CHECK(MapLine(*app, "baaabca") == Pairs{{"aaa", "1"}, {"a", "1"}});
  CHECK(MapLine(*app, "").empty());
  auto anchors = MustMake("grep", {{"pattern", "^|$|\\b"}});
  CHECK(MapLine(*anchors, "two words").empty());
}

TEST_CASE("invertedindex maps each distinct word of a line to the file's base name") {
  auto app = MustMake("invertedindex");
  CHECK(app->HasCombiner());
  CHECK(MapLine(*app, "b a B a, c", "f1.txt") ==
        Pairs{{"a", "f1.txt"}, {"b", "f1.txt"}, {"c", "f1.txt"}});
  CHECK(MapLine(*app, "...", "f1.txt").empty());
}

TEST_CASE("invertedindex's combiner and reducer merge sorted unique file lists") {
  auto app = MustMake("invertedindex");
  CHECK(CombineValues(*app, "a", {"y.txt", "x.txt", "y.txt"}) == Pairs{{"a", "x.txt,y.txt"}});
  CHECK(ReduceValues(*app, "a", {"y.txt,z.txt", "x.txt", "z.txt", "a.md,x.txt"}) ==
        Pairs{{"a", "a.md,x.txt,y.txt,z.txt"}});
  CHECK(ReduceValues(*app, "b", {"only"}) == Pairs{{"b", "only"}});
}

// A sort app started as a map attempt of a job with `reduces` reduces (which creates its
// partitioner).
std::unique_ptr<App> StartSortMap(const Params& params, int64_t reduces) {
  auto app = MustMake("sort", params);
  AttemptInfo info;
  info.is_map = true;
  info.num_reduces = reduces;
  std::string error;
  REQUIRE_MESSAGE(app->Start(info, &error), error);
  return app;
}

TEST_CASE("sort maps a line to its first key_bytes bytes and the rest; the reduce rejoins them") {
  auto app = MustMake("sort");
  CHECK_FALSE(app->HasCombiner());
  CHECK(MapLine(*app, "ABCDEFGHIJ  rest\tof it") == Pairs{{"ABCDEFGHIJ", "  rest\tof it"}});
  CHECK(MapLine(*app, "short") == Pairs{{"short", ""}});
  CHECK(MapLine(*app, "") == Pairs{{"", ""}});
  auto three = MustMake("sort", {{"key_bytes", "3"}});
  CHECK(MapLine(*three, "abcdef") == Pairs{{"abc", "def"}});
  // Each value is one input line: key + value, written with an empty value (no TAB in the part
  // file), in the order the values come.
  CHECK(ReduceValues(*app, "key", {" b", " a", ""}) ==
        Pairs{{"key b", ""}, {"key a", ""}, {"key", ""}});
}

TEST_CASE("sort's range partitioner is monotone, with split points starting the upper partition") {
  auto app = StartSortMap({{"split_points", "62,64,66"}}, 4);  // "b", "d", "f"
  CHECK(app->Partition("", 4) == 0);
  CHECK(app->Partition("a", 4) == 0);
  CHECK(app->Partition("azzz", 4) == 0);
  CHECK(app->Partition("b", 4) == 1);
  CHECK(app->Partition("ba", 4) == 1);
  CHECK(app->Partition("d", 4) == 2);
  CHECK(app->Partition("e", 4) == 2);
  CHECK(app->Partition("f", 4) == 3);
  CHECK(app->Partition("\xff", 4) == 3);
  CHECK(app->Failure().empty());

  // Over every key of up to two bytes from a small alphabet, in order: partitions never go down,
  // and each partition in 0..3 is used.
  std::vector<std::string> keys = {""};
  for (char a : std::string("abcdefg")) {
    keys.push_back(std::string(1, a));
    for (char b : std::string("abcdefg")) keys.push_back(std::string{a, b});
  }
  std::sort(keys.begin(), keys.end());
  int64_t last = 0;
  std::vector<int> used(4, 0);
  for (const std::string& key : keys) {
    const int64_t p = app->Partition(key, 4);
    CHECK(p >= last);
    last = p;
    ++used[static_cast<std::size_t>(p)];
  }
  CHECK(std::count(used.begin(), used.end(), 0) == 0);

  // Fewer split points than R-1 (few distinct keys): the upper partitions stay empty.
  auto sparse = StartSortMap({{"split_points", "6d"}}, 8);
  CHECK(sparse->Partition("a", 8) == 0);
  CHECK(sparse->Partition("z", 8) == 1);
  // R=1 needs no split points.
  auto single = StartSortMap({}, 1);
  CHECK(single->Failure().empty());
}

TEST_CASE("sort's params are checked at submission with one-line errors") {
  std::string error;
  for (const char* bad : {"0", "", "abc", "-1", "4097", "99999999"}) {
    error.clear();
    CHECK_FALSE(ValidateApp("sort", {{"key_bytes", bad}}, &error));
    CHECK(error.find("key_bytes must be an integer from 1 to 4096") != std::string::npos);
  }
  CHECK_FALSE(ValidateApp("sort", {{"split_points", "zz"}}, &error));
  CHECK(error.find("hex") != std::string::npos);
  CHECK_FALSE(ValidateApp("sort", {}, &error, /*reduces=*/0));
  CHECK(error == "app 'sort' needs at least one reduce (its output is sorted by the reduces)");
  CHECK_FALSE(ValidateApp("sort", {}, &error, /*reduces=*/3));
  CHECK(error.find("split_points") != std::string::npos);
  CHECK_FALSE(ValidateApp("sort", {{"split_points", "61,62,63"}}, &error, /*reduces=*/3));
  CHECK(error == "app 'sort': 3 split points for 3 reduces (at most 2)");

  CHECK(ValidateApp("sort", {}, &error));
  CHECK(ValidateApp("sort", {}, &error, /*reduces=*/1));
  CHECK(ValidateApp("sort", {{"key_bytes", "4096"}, {"split_points", ""}}, &error, 5));
  CHECK(ValidateApp("sort", {{"split_points", "61,62"}}, &error, /*reduces=*/3));
  // Other apps do not care about the reduce count.
  CHECK(ValidateApp("wordcount", {}, &error, /*reduces=*/0));
}

TEST_CASE("submission planning samples a sort job's input into split points, once") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("zmr_apps_test_sort_" + std::to_string(::getpid()) + ".txt"))
                               .string();
  std::string text;
  for (int i = 999; i >= 0; --i) {  // keys 999 .. 000, 8 bytes a line
    char line[16];
    std::snprintf(line, sizeof line, "%03d tail\n", i);
    text += line;
  }
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const std::vector<InputFile> files = {{path, static_cast<int64_t>(text.size())}};
  std::string error;

  Params params = {{"key_bytes", "3"}};
  REQUIRE(PlanAppParams("sort", files, 4, &params, &error));
  CHECK(params["split_points"] == "323530,353030,373530");  // "250", "500", "750"
  CHECK(ValidateApp("sort", params, &error, 4));

  Params given = {{"split_points", "61"}};  // the user's own points are kept
  REQUIRE(PlanAppParams("sort", files, 4, &given, &error));
  CHECK(given["split_points"] == "61");
  Params one;
  REQUIRE(PlanAppParams("sort", files, 1, &one, &error));
  CHECK(one.empty());
  Params other;
  REQUIRE(PlanAppParams("wordcount", files, 4, &other, &error));
  CHECK(other.empty());
  Params bad = {{"key_bytes", "x"}};
  CHECK_FALSE(PlanAppParams("sort", files, 4, &bad, &error));
  CHECK(error.find("key_bytes") != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("an app without its own combiner passes values through unchanged") {
  class Identity : public App {
   public:
    void Map(std::string_view, const MapContext&, Emitter&) override {}
    void Reduce(std::string_view, ValueStream&, Emitter&) override {}
  };
  Identity app;
  CHECK_FALSE(app.HasCombiner());
  CHECK(CombineValues(app, "k", {"2", "1"}) == Pairs{{"k", "2"}, {"k", "1"}});
}

}  // namespace
}  // namespace zmr
