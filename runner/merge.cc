// SpillDir, merge planning and merging (see merge.h).
#include "runner/merge.h"

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/layout.h"
#include "runner/buffer_internal.h"
#include "runner/merge_reader.h"

namespace zmr {

namespace {

namespace fs = std::filesystem;

// The values of one key group during a merge: the group's first record (copied by the caller),
// then either the second (a view into the merge) and the merge's records for as long as the key
// matches, or nothing (a group of one, whose following record the caller has already seen). The
// first record of the next group is left as the lookahead.
class MergeGroup final : public ValueStream {
 public:
  MergeGroup(MergeReader* merge, std::string_view key, std::string_view first)
      : merge_(merge), key_(key), first_(first) {}

  // The group goes on with this record (same key).
  void SetSecond(std::string_view second) {
    second_ = second;
    has_second_ = true;
  }
  // The group has one record; this is the next group's first.
  void SetLookahead(std::string_view key, std::string_view value) {
    look_key_ = key;
    look_value_ = value;
    has_lookahead_ = true;
  }

  bool Next(std::string_view* value) override {
    switch (state_) {
      case State::kFirst:
        state_ = has_second_ ? State::kSecond : State::kDone;
        *value = first_;
        ++count_;
        return true;
      case State::kSecond:
        state_ = State::kMore;
        *value = second_;
        ++count_;
        return true;
      case State::kMore: {
        std::string_view key;
        if (!merge_->Next(&key, value)) {
          state_ = State::kDone;
          return false;
        }
        if (key != key_) {
          look_key_ = key;
          look_value_ = *value;
          has_lookahead_ = true;
          state_ = State::kDone;
          return false;
        }
        ++count_;
        return true;
      }
      case State::kDone:
        return false;
    }
    return false;
  }

  // Skips the values the combiner did not read.
  void Drain() {
    std::string_view ignored;
    while (Next(&ignored)) {
    }
  }
  int64_t count() const { return count_; }
  bool has_lookahead() const { return has_lookahead_; }
  std::string_view look_key() const { return look_key_; }
  std::string_view look_value() const { return look_value_; }

 private:
  enum class State { kFirst, kSecond, kMore, kDone };
  MergeReader* merge_;
  std::string_view key_;
  std::string_view first_;
  std::string_view second_;
  bool has_second_ = false;
  State state_ = State::kFirst;
  int64_t count_ = 0;
  bool has_lookahead_ = false;
  std::string_view look_key_;
  std::string_view look_value_;
};

}  // namespace

SpillDir::SpillDir(std::string path) : path_(std::move(path)) {}

SpillDir::~SpillDir() {
  if (!created_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string SpillDir::NewRunPath(const char* prefix, int64_t partition, std::string* error) {
  if (!created_) {
    std::error_code ec;
    fs::create_directories(path_, ec);
    if (ec) {
      *error = "cannot create spill directory " + path_ + ": " + ec.message();
      return {};
    }
    created_ = true;
  }
  return layout::SpillRunPath(path_, prefix, next_++, partition);
}

void SpillDir::RemoveRun(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

std::vector<std::pair<std::size_t, std::size_t>> PlanMergePass(std::size_t runs, int fan_in) {
  const std::size_t f = static_cast<std::size_t>(std::max(fan_in, 2));
  std::vector<std::pair<std::size_t, std::size_t>> plan;
  if (runs <= f) return plan;
  if ((runs + f - 1) / f <= f) {
    // This pass can bring the count down to f: merge only as many runs as that takes (a group
    // of g runs removes g - 1).
    std::size_t excess = runs - f;
    std::size_t begin = 0;
    while (excess > 0) {
      std::size_t size = std::min(f, excess + 1);
      plan.emplace_back(begin, begin + size);
      begin += size;
      excess -= size - 1;
    }
    return plan;
  }
  for (std::size_t begin = 0; begin < runs; begin += f) {
    std::size_t end = std::min(runs, begin + f);
    if (end - begin >= 2) plan.emplace_back(begin, end);
  }
  return plan;
}

bool MergeRunsInto(std::vector<std::unique_ptr<RunReader>> runs, RunWriter* out, App* combiner,
                   CombineGroups groups, const MergeControl& control, MergeStats* stats,
                   MergeFailure* failure, std::string* error) {
  MergeReader merge(std::move(runs));
  RunCollector collector;
  collector.Reset(out);
  int64_t steps = 0;
  auto stop_requested = [&]() {
    if (++steps % kCheckEveryRecords != 0) return false;
    if (IsCancelled(control.cancelled)) {
      *error = kCancelledError;
      return true;
    }
    if (control.progress) control.progress(merge.bytes_read());
    return false;
  };
  auto read_failed = [&]() {
    stats->bytes_read = merge.bytes_read();
    if (merge.error().empty()) return false;
    *error = merge.error();
    failure->run = merge.failed_run();
    failure->fault = merge.fault();
    return true;
  };
  // A record the writer refused: if a run is corrupt (records out of order), reading on until its
  // checksum fails names it; otherwise the write error stands.
  auto write_failed = [&]() {
    std::string_view k, v;
    while (merge.Next(&k, &v)) {
      if (stop_requested()) return false;
    }
    read_failed();
    return false;
  };

  std::string key;    // the current group's key and first value (copied: the merge moves on)
  std::string first;
  std::string_view k, v;
  bool combined = false;
  bool have = merge.Next(&k, &v);
  while (have) {
    if (stop_requested()) return false;
    if (combiner == nullptr) {
      ++stats->records_read;
      if (!out->Add(k, v, error)) return write_failed();
      have = merge.Next(&k, &v);
      continue;
    }
    key.assign(k.data(), k.size());
    first.assign(v.data(), v.size());
    have = merge.Next(&k, &v);
    const bool single = !have || k != std::string_view(key);
    if (single && groups == CombineGroups::kMultiple) {
      ++stats->records_read;
      if (!out->Add(key, first, error)) return write_failed();
      continue;
    }
    MergeGroup group(&merge, key, first);
    if (!single) {
      group.SetSecond(v);
    } else if (have) {
      group.SetLookahead(k, v);
    }
    combiner->Combine(key, group, collector);
    combined = true;
    group.Drain();
    stats->records_read += group.count();
    stats->combine_input_records += group.count();
    if (!collector.failure().empty()) {
      *error = collector.failure();
      return false;
    }
    have = group.has_lookahead();
    if (have) {
      k = group.look_key();
      v = group.look_value();
    }
  }
  if (read_failed()) return false;
  if (combined) {
    std::string flush_error;
    if (!combiner->FlushCombine(collector, &flush_error)) {
      *error = flush_error.empty() ? "combiner failed" : flush_error;
      return false;
    }
    if (!collector.failure().empty()) {
      *error = collector.failure();
      return false;
    }
    std::string app_failure = combiner->Failure();
    if (!app_failure.empty()) {
      *error = app_failure;
      return false;
    }
  }
  stats->combine_output_records += collector.records();
  return true;
}

}  // namespace zmr
