// Test plugin "firstvalue": a Reducer and a Combiner (a real api::Combiner, not a wrapped Reducer)
// that each read only the first value of a key and emit it; the mapper emits (line, line).
#include <zmr/api.h>

#include <string_view>

namespace {

class EchoMapper : public zmr::api::Mapper {
 public:
  void Map(std::string_view line, zmr::api::Context& ctx) override { ctx.Emit(line, line); }
};

class FirstReducer : public zmr::api::Reducer {
 public:
  void Reduce(std::string_view key, zmr::api::Values& values, zmr::api::Context& ctx) override {
    std::string_view first;
    if (values.Next(&first)) ctx.Emit(key, first);
  }
};

class FirstCombiner : public zmr::api::Combiner {
 public:
  void Combine(std::string_view key, zmr::api::Values& values, zmr::api::Context& ctx) override {
    std::string_view first;
    if (values.Next(&first)) ctx.Emit(key, first);
    ctx.IncrementCounter("firstvalue", "COMBINED");
  }
};

}  // namespace

ZMR_PLUGIN("firstvalue", EchoMapper, FirstReducer, FirstCombiner);
