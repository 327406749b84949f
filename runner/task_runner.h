// Runs one map or reduce attempt to completion on the calling thread: reads the split or the
// partition's runs, applies the app, writes intermediate runs or the attempt's uncommitted part
// file. Called by the zmr-task runner (runner/runner.h) on one thread; it touches no sockets and
// reports through the callbacks given. RunMapTask is runner/map_task.cc, RunReduceTask
// runner/reduce_task.cc; the steps they share are runner/task_attempt.h, the part file
// runner/part_file.h.
//
// Memory: a map buffers its output in at most sort_buffer_bytes (runner/map_output_buffer.h), spilling
// sorted runs under attempt_dir and merging them at the end; merges on both sides read at most
// merge_fan_in runs at once. So an attempt's memory is about sort_buffer_bytes plus a constant
// (merge_fan_in read buffers of <= 256 KiB, 1 MiB write buffers), whatever the input size.
//
// Part file lines: a record is written as `key<TAB>value<LF>`, except that a record with an empty
// value is written as `key<LF>` (so a streaming job's tab-less lines come out as they went in).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "runner/protocol.h"
#include "runner/shuffle_store.h"

namespace zmr {

class App;

struct TaskContext {
  ShuffleStore* store = nullptr;               // must outlive the call
  const std::atomic<bool>* cancelled = nullptr;  // checked often; when set the task stops early
  // Called with the fraction of input consumed (0..1), at most every kProgressIntervalMs.
  std::function<void(double)> progress;
  // Sets the attempt's status text (AttemptInfo::set_status); may be empty.
  std::function<void(const std::string&)> status;
  // The user code to run. When null, the built-in app named by task.app is created (MakeApp).
  // Not owned; must outlive the call. The runner calls its Start and Finish.
  App* app = nullptr;
  // Directory of the attempt (scratch space for spills, the streaming working directory).
  // Created if missing; the runner keeps its spills in the subdirectory .zmr-spill, which it
  // removes, and leaves the directory itself. When empty, spills go to
  // WORK_DIR/jobs/<job>/<task>.a<attempt>.spill (local store) or the system temp directory.
  std::string attempt_dir;
  int64_t sort_buffer_bytes = kDefaultSortBufferBytes;  // at least 1 KiB is used
  int merge_fan_in = kDefaultMergeFanIn;                // at least 2 is used
};

// Map: calls app->Start, reads the split's lines into App::Map, then App::Finish (whose emits are
// map output too). Keys go to partition App::Partition(key, R); output is buffered up to
// sort_buffer_bytes, then sorted, combined (when the app has a combiner) and spilled; at the end
// the spills are merged into one sorted run per partition (every partition gets a run, possibly
// empty), combining again while merging. An in-process combiner (no task.code.combiner) is also
// applied to a key's values as they arrive. Combine and FlushCombine may be called from inside
// the app's own Map or Finish (when an Emit fills the buffer).
// With num_reduces == 0 (map-only) there is no sort: lines are written in emit order to
// OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN (NNNNN = task.partition, the map index), which
// is reported and not renamed. Returns false with a one-line *error on any failure, on
// app->Failure() or on cancellation ("cancelled"); then no run, spill or part file is left.
bool RunMapTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                std::string* error);

// Reduce: opens every run at task.inputs (reporting all missing or corrupt ones in bad_inputs),
// merges them (in passes of at most merge_fan_in runs, intermediate runs under attempt_dir),
// groups by key, calls App::Reduce and then App::Finish, writing lines to
// OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN (NNNNN = partition, 5 digits), reported in
// result->outputs; the coordinator commits it. A run found corrupt while merging fails the attempt
// with that run in bad_inputs. A failed or cancelled attempt leaves no file.
bool RunReduceTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                   std::string* error);

}  // namespace zmr
