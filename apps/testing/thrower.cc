// Test plugin "thrower": exercises the failure paths of the loader and the api adapter.
//   Map: counts lines in "thrower/LINES"; a line containing "boom" throws std::runtime_error, the
//        line "int" throws an int; any other line is emitted as (line, input file name).
//   Setup: throws when the parameter `fail_setup` is given; emits when `emit_in_setup` is given.
//   Finish: emits ("_finish", task id).
//   Partitioner: key length modulo the partitions; out of range when `bad_partition` is given.
//   No combiner, no reducer (identity).
#include <zmr/api.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

class ThrowingMapper : public zmr::api::Mapper {
 public:
  void Setup(zmr::api::Context& ctx) override {
    if (ctx.HasParam("fail_setup")) {
      throw std::runtime_error("setup refused: " + std::string(ctx.Param("fail_setup")));
    }
    if (ctx.HasParam("emit_in_setup")) ctx.Emit("setup", "x");
  }
  void Map(std::string_view line, zmr::api::Context& ctx) override {
    ctx.IncrementCounter("thrower", "LINES", 1);
    if (line.find("boom") != std::string_view::npos) {
      throw std::runtime_error("boom at '" + std::string(line) + "'");
    }
    if (line == "int") throw 42;
    ctx.Emit(line, ctx.InputName());
  }
  void Finish(zmr::api::Context& ctx) override { ctx.Emit("_finish", ctx.TaskId()); }
};

class LengthPartitioner : public zmr::api::Partitioner {
 public:
  void Setup(const zmr::api::Context& ctx) override { bad_ = ctx.HasParam("bad_partition"); }
  uint64_t Partition(std::string_view key, uint64_t num_partitions) override {
    return bad_ ? num_partitions : key.size() % num_partitions;
  }

 private:
  bool bad_ = false;
};

}  // namespace

ZMR_PLUGIN_WITH_PARTITIONER("thrower", ThrowingMapper, void, void, LengthPartitioner);
