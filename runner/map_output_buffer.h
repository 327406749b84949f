// Map output with bounded memory: the Emitter a map task emits into. It sorts, combines and spills
// sorted runs to disk whenever its memory budget is reached, and at the end merges the spills into
// one sorted run per partition (runner/merge.h). Everything here is single-threaded: one instance
// belongs to one attempt, and runner/map_task.cc is its caller.
//
// Three buffers, chosen by MapOutputBuffer::Create:
//  - Combining (the app has an in-process combiner; runner/combining_buffer.h): a hash table from
//    key to the key's values, combined as they arrive, so memory grows with distinct keys, not
//    records.
//  - Summing (the combiner is declared an int64 sum, App::KnownCombiner() == kInt64Sum, as the
//    built-in wordcount's; runner/summing_buffer.h): a hash table from key to a running sum and
//    count. Its spills hold exactly the records the combining buffer's would, without calling the
//    combiner.
//  - Sorting (no combiner, or a combiner that is an external command; runner/sorting_buffer.h):
//    records appended to one buffer of the budget's size, sorted by (partition, key, arrival)
//    when full. A combiner, if any, gets every key group of the batch (it may hold its output
//    back until FlushCombine, so nothing is written around it).
// Memory counted against the budget is everything the buffer holds: key and value bytes, the
// per-record index or per-key entry, the hash table's slots and the value chains' slack.
//
// Spill files are ordinary run files (runner/run_file.h), one per partition that has records,
// named spill-<seq>.p<partition>.run in the spill directory. Records with equal keys keep their
// arrival order through sorting and merging (merges take consecutive runs and break ties by run
// order), so without a combiner the final run equals a stable sort of the map output.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/app.h"
#include "common/protocol.h"
#include "runner/merge.h"
#include "runner/run_file.h"
#include "runner/shuffle_store.h"

namespace zmr {

// The error of an attempt (or of a spill or merge inside it) stopped by the cancel flag.
inline constexpr const char* kCancelledError = "cancelled";
// Lines (map), records or groups (reduce, spills, merges) between checks of the cancel flag, app
// failure and progress.
inline constexpr int64_t kCheckEveryRecords = 1024;

struct MapOutputOptions {
  int64_t num_partitions = 1;       // R >= 1; keys go to app->Partition(key, R)
  int64_t buffer_bytes = 64 << 20;  // memory budget of the buffered records (a minimum applies)
  int merge_fan_in = 64;            // most runs merged at once (>= 2)
  std::string spill_dir;            // where spills go; owned by the buffer (see SpillDir)
  bool combine = false;             // run app->Combine over spills and merges
  // Also combine a key's values as they arrive (the combining buffer). Only for combiners that are
  // cheap to call per key: Combine is then followed by FlushCombine for every such call.
  bool combine_eagerly = false;
  const std::atomic<bool>* cancelled = nullptr;
  // Called with the fraction (0..1) of the final merge done, when there were spills.
  std::function<void(double)> merge_progress;
};

struct MapOutputCounters {
  int64_t output_records = 0;          // records emitted into the buffer
  int64_t output_bytes = 0;            // their key + value bytes
  int64_t combine_input_records = 0;
  int64_t combine_output_records = 0;
  int64_t spilled_records = 0;         // records written to any run (spill, merge, final)
  int64_t spills = 0;                  // spill batches written
};

// The Emitter a map task's App writes into. Emit may spill (sort, combine, write) before it
// returns, so the app's Combine and FlushCombine can be called from inside its own Map or Finish.
class MapOutputBuffer : public Emitter {
 public:
  // app must outlive the buffer. Never fails: files are only created when it spills.
  static std::unique_ptr<MapOutputBuffer> Create(App* app, MapOutputOptions options);
  ~MapOutputBuffer() override;  // removes every spill file (the spill directory)
  MapOutputBuffer(const MapOutputBuffer&) = delete;
  MapOutputBuffer& operator=(const MapOutputBuffer&) = delete;

  // True once a spill failed, the app's partitioner misbehaved, a combiner failed or the task was
  // cancelled during a spill; further Emits are ignored and failure() says why.
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }

  // Writes one sorted run per partition 0..R-1 through store (every partition gets a run, maybe
  // empty), appending one MapOutput per finished run to *outputs in partition order. Without
  // spills the runs are written straight from memory; otherwise the rest is spilled and each
  // partition's spills are merged (in passes of at most merge_fan_in). On failure the runs already
  // in *outputs are the caller's to remove. Call at most once.
  bool Finish(ShuffleStore* store, const std::string& job_id, const std::string& task_id,
              int64_t attempt, std::vector<MapOutput>* outputs, std::string* error);

  const MapOutputCounters& counters() const { return counters_; }

 protected:
  MapOutputBuffer(App* app, MapOutputOptions options);

  // Subclass interface. WriteSorted writes the buffered records in (partition, key) order with
  // BeginPartition / WriteRecord / WriteGroup / EndPartition, then empties the buffer. It returns
  // false after Fail(). Release frees the buffer's memory for good (before the final merges).
  virtual bool WriteSorted() = 0;
  virtual void Release() = 0;
  virtual bool empty() const = 0;
  // Adds records that Emit queued without adding them yet (a buffer may hold back a few records
  // to prefetch their place); WriteSorted writes only what was added. Finish calls it first.
  virtual void DrainPending() {}

  // Writes the buffered records as a new spill. False (after Fail) on failure.
  bool Spill();
  // Writes one record that does not fit in an empty buffer as a spill of its own.
  bool SpillSingle(int64_t partition, std::string_view key, std::string_view value);

  bool BeginPartition(int64_t partition);
  bool WriteRecord(std::string_view key, std::string_view value);
  // Writes a key's `count` values: through the combiner when combining (for an eager combiner
  // only when count > 1, as it emits during Combine), else as they are. Inline, in
  // runner/buffer_internal.h: the buffers' spill loops call it per key.
  inline bool WriteGroup(std::string_view key, ValueStream& values, std::size_t count);
  bool EndPartition();

  // Records the first failure; returns false for convenience.
  bool Fail(std::string error);
  inline bool Cancelled() const;  // in runner/buffer_internal.h
  // The partition of a key through the app, checked (Fail and -1 if out of range).
  int64_t PartitionOf(std::string_view key);

  App* app_;
  const MapOutputOptions options_;
  MapOutputCounters counters_;
  std::string failure_;

 private:
  enum class Sink { kSpill, kFinal };
  class RunEmitter;  // the combiner's emitter into writer_ (runner/buffer_internal.h)

  bool CreateEmptyFinalRun(int64_t partition);
  bool FinishWriter();
  bool MergePartition(int64_t partition);
  bool MergeFiles(const std::vector<std::string>& paths, RunWriter* out);

  SpillDir spill_dir_;
  Sink sink_ = Sink::kSpill;
  std::unique_ptr<RunWriter> writer_;          // the run being written
  std::unique_ptr<RunEmitter> combine_out_;    // the combiner's emitter into writer_
  int64_t writer_partition_ = -1;
  std::string writer_path_;                    // spill: its path; final: its location
  bool combined_in_partition_ = false;         // Combine was called since BeginPartition
  int64_t groups_written_ = 0;                 // for periodic cancel checks
  std::vector<std::vector<std::string>> spill_runs_;  // per partition, spill files in order
  int64_t spill_bytes_ = 0;                    // total size of spill files written
  int64_t merged_bytes_ = 0;                   // bytes read by the final merges so far
  // Final sink.
  ShuffleStore* store_ = nullptr;
  std::string job_id_, task_id_;
  int64_t attempt_ = 0;
  std::vector<MapOutput>* outputs_ = nullptr;
  int64_t next_final_partition_ = 0;
  bool finished_ = false;
};

}  // namespace zmr
