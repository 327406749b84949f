// MapOutputBuffer: what every buffer shares (spills, the final write and the merges) and Create,
// which picks the buffer (see map_output_buffer.h for the design).
//
// Failure handling: the first failure is recorded (Fail) and everything after it is a no-op; the
// run being written is removed by RunWriter's destructor, spill files by SpillDir's, and final runs
// already reported in *outputs by the caller.
#include "runner/map_output_buffer.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <string_view>
#include <utility>

#include "runner/buffer_internal.h"
#include "runner/combining_buffer.h"
#include "runner/sorting_buffer.h"
#include "runner/summing_buffer.h"

namespace zmr {

// A key for an error message: at most 64 bytes, control bytes escaped.
std::string Printable(std::string_view key) {
  std::string out;
  for (std::size_t i = 0; i < key.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

namespace {

// The smallest budget honoured: the hash table's minimum size must leave room for some records.
constexpr int64_t kMinBufferBytes = 1 << 10;
// Read buffer bounds of one spill being merged (the budget is shared by merge_fan_in runs).
constexpr std::size_t kMinSpillReadBuffer = 16 << 10;

MapOutputOptions Normalized(MapOutputOptions options) {
  options.num_partitions = std::max<int64_t>(options.num_partitions, 1);
  options.buffer_bytes = std::max(options.buffer_bytes, kMinBufferBytes);
  options.merge_fan_in = std::max(options.merge_fan_in, 2);
  if (!options.combine) options.combine_eagerly = false;
  return options;
}

}  // namespace

MapOutputBuffer::MapOutputBuffer(App* app, MapOutputOptions options)
    : app_(app),
      options_(Normalized(std::move(options))),
      spill_dir_(options_.spill_dir),
      combine_out_(std::make_unique<RunEmitter>()),
      spill_runs_(static_cast<std::size_t>(options_.num_partitions)) {}

MapOutputBuffer::~MapOutputBuffer() {
  writer_.reset();  // removes a half-written run before the directory goes
}

bool MapOutputBuffer::Fail(std::string error) {
  if (failure_.empty()) failure_ = error.empty() ? "map output failed" : std::move(error);
  return false;
}

int64_t MapOutputBuffer::PartitionOf(std::string_view key) {
  if (options_.num_partitions == 1) return 0;
  int64_t p = app_->Partition(key, options_.num_partitions);
  if (p < 0 || p >= options_.num_partitions) {
    Fail("partitioner returned " + std::to_string(p) + " for key '" + Printable(key) + "' (" +
         std::to_string(options_.num_partitions) + " partitions)");
    return -1;
  }
  return p;
}

bool MapOutputBuffer::Spill() {
  if (failed()) return false;
  sink_ = Sink::kSpill;
  if (!WriteSorted()) return Fail("");
  ++counters_.spills;
  return true;
}

bool MapOutputBuffer::SpillSingle(int64_t partition, std::string_view key,
                                  std::string_view value) {
  if (failed()) return false;
  sink_ = Sink::kSpill;
  if (!BeginPartition(partition) || !WriteRecord(key, value) || !EndPartition()) return false;
  ++counters_.spills;
  return true;
}

bool MapOutputBuffer::BeginPartition(int64_t partition) {
  if (failed()) return false;
  std::string error;
  writer_.reset();
  writer_partition_ = partition;
  combined_in_partition_ = false;
  if (sink_ == Sink::kSpill) {
    writer_path_ = spill_dir_.NewRunPath("spill", partition, &error);
    if (writer_path_.empty()) return Fail(error);
    writer_ = RunWriter::Create(writer_path_, &error);
  } else {
    while (next_final_partition_ < partition) {
      if (!CreateEmptyFinalRun(next_final_partition_++)) return false;
    }
    writer_ = store_->CreatePartition(job_id_, task_id_, attempt_, partition, &writer_path_,
                                      &error);
    next_final_partition_ = partition + 1;
  }
  if (!writer_) return Fail(error);
  combine_out_->inner_.Reset(writer_.get());
  return true;
}

bool MapOutputBuffer::WriteRecord(std::string_view key, std::string_view value) {
  std::string error;
  if (!writer_->Add(key, value, &error)) return Fail(error);
  if (++groups_written_ % kCheckEveryRecords == 0 && Cancelled()) return Fail(kCancelledError);
  return true;
}

bool MapOutputBuffer::EndPartition() {
  if (failed()) return false;
  std::string error;
  if (combined_in_partition_) {
    if (!app_->FlushCombine(*combine_out_, &error)) {
      return Fail(error.empty() ? "combiner failed" : error);
    }
    if (!combine_out_->inner_.failure().empty()) return Fail(combine_out_->inner_.failure());
    std::string app_failure = app_->Failure();
    if (!app_failure.empty()) return Fail(app_failure);
  }
  counters_.combine_output_records += combine_out_->inner_.records();
  combine_out_->inner_.Reset(nullptr);
  if (!writer_->Finish(&error)) return Fail(error);
  counters_.spilled_records += writer_->records();
  if (sink_ == Sink::kSpill) {
    spill_runs_[static_cast<std::size_t>(writer_partition_)].push_back(writer_path_);
    spill_bytes_ += writer_->bytes();
  } else {
    outputs_->push_back(
        MapOutput{writer_partition_, writer_path_, writer_->bytes(), writer_->records()});
  }
  writer_.reset();
  return true;
}

bool MapOutputBuffer::CreateEmptyFinalRun(int64_t partition) {
  std::string location, error;
  auto writer =
      store_->CreatePartition(job_id_, task_id_, attempt_, partition, &location, &error);
  if (!writer || !writer->Finish(&error)) return Fail(error);
  outputs_->push_back(MapOutput{partition, location, writer->bytes(), 0});
  return true;
}

bool MapOutputBuffer::Finish(ShuffleStore* store, const std::string& job_id,
                             const std::string& task_id, int64_t attempt,
                             std::vector<MapOutput>* outputs, std::string* error) {
  if (finished_) Fail("map output finished twice");
  finished_ = true;
  store_ = store;
  job_id_ = job_id;
  task_id_ = task_id;
  attempt_ = attempt;
  outputs_ = outputs;
  DrainPending();
  if (!failed() && Cancelled()) Fail(kCancelledError);
  if (!failed()) {
    if (counters_.spills == 0) {
      // Everything is in memory: sort it and write the final runs directly.
      sink_ = Sink::kFinal;
      if (WriteSorted()) {
        while (next_final_partition_ < options_.num_partitions &&
               CreateEmptyFinalRun(next_final_partition_++)) {
        }
      } else {
        Fail("");
      }
    } else {
      if (!empty()) Spill();
      Release();
      for (int64_t p = 0; p < options_.num_partitions && !failed(); ++p) MergePartition(p);
    }
  }
  if (failed()) {
    *error = failure_;
    return false;
  }
  return true;
}

bool MapOutputBuffer::MergePartition(int64_t partition) {
  std::vector<std::string> runs = std::move(spill_runs_[static_cast<std::size_t>(partition)]);
  const int fan_in = options_.merge_fan_in;
  std::string error;
  while (runs.size() > static_cast<std::size_t>(fan_in)) {
    std::vector<std::string> next;
    std::size_t at = 0;
    for (auto [begin, end] : PlanMergePass(runs.size(), fan_in)) {
      for (; at < begin; ++at) next.push_back(std::move(runs[at]));
      std::string path = spill_dir_.NewRunPath("merge", partition, &error);
      if (path.empty()) return Fail(error);
      auto out = RunWriter::Create(path, &error);
      if (!out) return Fail(error);
      std::vector<std::string> group(std::make_move_iterator(runs.begin() + begin),
                                     std::make_move_iterator(runs.begin() + end));
      if (!MergeFiles(group, out.get())) return false;
      if (!out->Finish(&error)) return Fail(error);
      counters_.spilled_records += out->records();
      for (const std::string& merged : group) SpillDir::RemoveRun(merged);
      next.push_back(std::move(path));
      at = end;
    }
    for (; at < runs.size(); ++at) next.push_back(std::move(runs[at]));
    runs = std::move(next);
  }
  std::string location;
  auto out = store_->CreatePartition(job_id_, task_id_, attempt_, partition, &location, &error);
  if (!out) return Fail(error);
  if (!MergeFiles(runs, out.get())) return false;
  if (!out->Finish(&error)) return Fail(error);
  counters_.spilled_records += out->records();
  outputs_->push_back(MapOutput{partition, location, out->bytes(), out->records()});
  for (const std::string& merged : runs) SpillDir::RemoveRun(merged);
  return true;
}

bool MapOutputBuffer::MergeFiles(const std::vector<std::string>& paths, RunWriter* out) {
  const std::size_t read_buffer = std::clamp<std::size_t>(
      static_cast<std::size_t>(options_.buffer_bytes / (options_.merge_fan_in + 1)),
      kMinSpillReadBuffer, kRunReadBufferBytes);
  std::string error;
  std::vector<std::unique_ptr<RunReader>> readers;
  readers.reserve(paths.size());
  for (const std::string& path : paths) {
    auto reader = RunReader::Open(path, &error, nullptr, read_buffer);
    if (!reader) return Fail(error);
    readers.push_back(std::move(reader));
  }
  MergeControl control;
  control.cancelled = options_.cancelled;
  if (options_.merge_progress) {
    control.progress = [this](int64_t bytes_read) {
      const double total = static_cast<double>(std::max<int64_t>(spill_bytes_, 1));
      options_.merge_progress(
          std::min(1.0, static_cast<double>(merged_bytes_ + bytes_read) / total));
    };
  }
  MergeStats stats;
  MergeFailure ignored;
  bool ok = MergeRunsInto(
      std::move(readers), out, options_.combine ? app_ : nullptr,
      options_.combine_eagerly ? CombineGroups::kMultiple : CombineGroups::kAll, control, &stats,
      &ignored, &error);
  merged_bytes_ += stats.bytes_read;
  counters_.combine_input_records += stats.combine_input_records;
  counters_.combine_output_records += stats.combine_output_records;
  return ok || Fail(error);
}

std::unique_ptr<MapOutputBuffer> MapOutputBuffer::Create(App* app, MapOutputOptions options) {
  if (options.combine && options.combine_eagerly) {
    if (app->KnownCombiner() == CombinerKind::kInt64Sum) {
      return NewSummingBuffer(app, std::move(options));
    }
    return NewCombiningBuffer(app, std::move(options));
  }
  return NewSortingBuffer(app, std::move(options));
}

}  // namespace zmr
