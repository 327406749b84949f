// Merging sorted runs (runner/run_file.h), for both sides of the shuffle: a map merges its
// spills into its final runs (runner/map_output_buffer.h), a reduce merges the maps' runs into its
// input (runner/reduce_task.cc). Here are the attempt's scratch directory of temporary runs
// (SpillDir), the plan of a multi-pass merge with bounded fan-in (PlanMergePass) and one merge of
// runs into a run, through the app's combiner if asked (MergeRunsInto). Records with equal keys
// keep their order: a merge takes consecutive runs and breaks ties by run order.
// Single-threaded: a SpillDir and a merge belong to one attempt, on its thread.
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
#include "runner/run_file.h"

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

  // A new, unused path <dir>/<prefix>-<NNNNNN>.p<NNNNN>.run (layout::SpillRunPath), creating the
  // directory if needed. Empty with *error if the directory cannot be created.
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

}  // namespace zmr
