#include "common/apps.h"

#include <doctest/doctest.h>

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
  CHECK(BuiltinAppNames() == std::vector<std::string>{"grep", "invertedindex", "wordcount"});
}

TEST_CASE("an unknown app is refused with the list of known apps") {
  std::string error;
  CHECK(MakeApp("sort", {}, &error) == nullptr);
  CHECK(error == "unknown app 'sort' (known: grep, invertedindex, wordcount)");
  error.clear();
  CHECK_FALSE(ValidateApp("sort", {}, &error));
  CHECK(error == "unknown app 'sort' (known: grep, invertedindex, wordcount)");
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
