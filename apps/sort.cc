// sort: outputs the input lines sorted bytewise by their key (the first key_bytes bytes, default
// 10), stable for equal keys, with part-00000..part-(R-1) together in one total order (TeraSort's
// scheme). The map splits a line into (key, rest of the line); the range partitioner sends keys
// to partitions by the split points `zmr submit` sampled from the input (apps/sort_keys.h); the
// engine sorts each partition by key, keeping equal keys in input order; the reducer writes each
// record back as the line it came from (key and rest with an empty value, so the part file line is
// exactly the input line). No combiner.
#include <zmr/api.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "apps/builtin.h"
#include "apps/sort_keys.h"

namespace zmr::apps {
namespace {

// Reads a param that may be absent, for the sort_keys.h checks.
class OptionalParam {
 public:
  OptionalParam(const api::Context& ctx, const char* name)
      : present_(ctx.HasParam(name)), value_(ctx.Param(name)) {}
  const std::string* get() const { return present_ ? &value_ : nullptr; }

 private:
  bool present_;
  std::string value_;
};

class SortMapper final : public api::Mapper {
 public:
  void Setup(api::Context& ctx) override {
    OptionalParam key_bytes(ctx, sort::kKeyBytesParam);
    std::string error = sort::ParseKeyBytes(key_bytes.get(), &key_bytes_);
    if (!error.empty()) throw std::invalid_argument(error);
  }

  void Map(std::string_view line, api::Context& ctx) override {
    const std::string_view key = sort::KeyOf(line, key_bytes_);
    ctx.Emit(key, line.substr(key.size()));
  }

 private:
  std::size_t key_bytes_ = sort::kDefaultKeyBytes;
};

// Writes every record as its original line: key and rest joined, with an empty value (a part file
// line is then the key alone, no TAB). Values come in input order for equal keys.
class SortReducer final : public api::Reducer {
 public:
  void Reduce(std::string_view key, api::Values& values, api::Context& ctx) override {
    line_.assign(key.data(), key.size());
    std::string_view rest;
    while (values.Next(&rest)) {
      line_.resize(key.size());
      line_.append(rest.data(), rest.size());
      ctx.Emit(line_, {});
    }
  }

 private:
  std::string line_;  // reused for every record
};

// Partition i holds the keys from split point i-1 (inclusive) to split point i (exclusive).
class RangePartitioner final : public api::Partitioner {
 public:
  void Setup(const api::Context& ctx) override {
    OptionalParam points(ctx, sort::kSplitPointsParam);
    std::string error = sort::CheckParams(nullptr, points.get(), ctx.NumReduces());
    if (error.empty() && points.get() != nullptr) {
      error = sort::ParseSplitPoints(*points.get(), &points_);
    }
    if (!error.empty()) throw std::invalid_argument(error);
  }

  uint64_t Partition(std::string_view key, uint64_t /*num_partitions*/) override {
    return sort::PartitionOfKey(points_, key);
  }

 private:
  std::vector<std::string> points_;
};

}  // namespace

const api::PluginInfo& SortPluginInfo() {
  static constexpr api::PluginInfo kInfo =
      api::MakePluginInfo<SortMapper, SortReducer, void, RangePartitioner>(sort::kAppName);
  return kInfo;
}

}  // namespace zmr::apps

#ifdef ZMR_PLUGIN_BUILD
ZMR_PLUGIN_WITH_PARTITIONER("sort", zmr::apps::SortMapper, zmr::apps::SortReducer, void,
                            zmr::apps::RangePartitioner);
#endif
