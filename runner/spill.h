// Map output with bounded memory, and the run merges built on it: the buffer a map task emits into
// (it sorts, combines and spills sorted runs to disk whenever its memory budget is reached), the
// multi-pass merge that turns spills into one sorted run per partition, and the pieces the reduce
// side shares (merge planning with a bounded fan-in, merging runs into a run, the attempt's
// scratch directory). Everything here is single-threaded: one instance belongs to one attempt.
//
// Three buffers, chosen by MapOutputBuffer::Create:
//  - Combining (the app has an in-process combiner): a hash table from key to the key's values.
//    Equal keys share one entry, and a key's values are combined as they arrive (whenever they
//    fill the entry's 64-byte slab), so memory grows with distinct keys, not records. No
//    allocation per record: entries hold short keys and the first slab inline; long keys and
//    further slabs live in arena chunks reused after every spill.
//  - Summing (the combiner is declared an int64 sum, App::KnownCombiner() == kInt64Sum, as the
//    built-in wordcount's): a hash table from key to a running sum and count, in 32-byte slots
//    that hold keys of up to 16 bytes, with Emits queued a few deep so their slots are
//    prefetched. Its spills hold exactly the records the combining buffer's would (a lone value
//    as it came, else the decimal sum), without calling the combiner.
//  - Sorting (no combiner, or a combiner that is an external command): records are appended to one
//    buffer of the budget's size (mmap'd, huge pages when large), data growing up from the start
//    and a fixed-size index growing down from the end; when they meet the index is sorted by
//    (partition, key, arrival) and written, the records a few entries ahead prefetched. A combiner, if any, gets every key group of the batch (it may hold its output back
//    until FlushCombine, so nothing is written around it).
// Memory counted against the budget is everything the buffer holds: key and value bytes, the
// per-record index or per-key entry, the hash table's slots and the value chains' slack.
//
// Spill files are ordinary run files (runner/intermediate.h), one per partition that has records,
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
#include <utility>
#include <vector>

#include "common/app.h"
#include "common/protocol.h"
#include "runner/intermediate.h"

namespace zmr {

// The attempt's directory of temporary runs (spills and intermediate merges). Created on first
// use; the destructor removes it with everything in it, so it must be a directory this attempt
// owns alone.
class SpillDir {
 public:
  explicit SpillDir(std::string path);
  ~SpillDir();
  SpillDir(const SpillDir&) = delete;
  SpillDir& operator=(const SpillDir&) = delete;

  // A new, unused path "<dir>/<prefix>-<seq>.p<partition>.run", creating the directory if needed.
  // Empty with *error if the directory cannot be created.
  std::string NewRunPath(const char* prefix, int64_t partition, std::string* error);
  // Removes a run made here (missing is fine).
  static void RemoveRun(const std::string& path);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool created_ = false;
  int64_t next_ = 0;
};

// Plans one pass of a merge with bounded fan-in: the consecutive ranges [first, second) of runs to
// merge into one run each so that the number of runs drops towards fan_in, merging as few runs as
// possible when this pass can already reach fan_in. Ranges are disjoint, in order, each of at
// least two runs. Empty when runs <= fan_in. Requires fan_in >= 2.
std::vector<std::pair<std::size_t, std::size_t>> PlanMergePass(std::size_t runs, int fan_in);

// What a merge checks as it goes.
struct MergeControl {
  const std::atomic<bool>* cancelled = nullptr;  // when set the merge stops with "cancelled"
  // Called now and then with the bytes the merge has read so far.
  std::function<void(int64_t bytes_read)> progress;
};

struct MergeStats {
  int64_t bytes_read = 0;
  int64_t records_read = 0;
  int64_t combine_input_records = 0;
  int64_t combine_output_records = 0;
};

// Why a merge failed, when a run it read was at fault.
struct MergeFailure {
  std::size_t run = SIZE_MAX;          // index into the runs given, or SIZE_MAX (not a read error)
  ReadFault fault = ReadFault::kNone;
};

// Which key groups a merge passes through a combiner.
enum class CombineGroups {
  kAll,       // every group: for combiners that may hold output back until FlushCombine
  kMultiple,  // groups of two or more records; a single record is copied as it is (a combiner
              // known to emit during Combine, so copied records and its output stay in order)
};

// Merges sorted runs into out (out is not finished here). With combiner non-null, key groups
// (chosen by `groups`) are passed to combiner->Combine, and combiner->FlushCombine is called once
// at the end if Combine was called; the combiner's output must come in key order (RunWriter
// checks it). Returns false with *error on a read error (then *failure names the run), a write
// error, a combiner failure or cancellation ("cancelled"). A write error caused by records out of
// order is traced to the run whose checksum then fails, if one does.
bool MergeRunsInto(std::vector<std::unique_ptr<RunReader>> runs, RunWriter* out, App* combiner,
                   CombineGroups groups, const MergeControl& control, MergeStats* stats,
                   MergeFailure* failure, std::string* error);

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
  // only when count > 1, as it emits during Combine), else as they are.
  bool WriteGroup(std::string_view key, ValueStream& values, std::size_t count);
  bool EndPartition();

  // Records the first failure; returns false for convenience.
  bool Fail(std::string error);
  bool Cancelled() const;
  // The partition of a key through the app, checked (Fail and -1 if out of range).
  int64_t PartitionOf(std::string_view key);

  App* app_;
  const MapOutputOptions options_;
  MapOutputCounters counters_;
  std::string failure_;

 private:
  enum class Sink { kSpill, kFinal };
  class RunEmitter;

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
