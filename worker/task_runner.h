// Runs one map or reduce attempt to completion on the calling thread: reads the split or the
// partition's runs, applies the app, writes intermediate runs or the final part file. Called by the
// worker on a task thread; it touches no sockets and reports through the callbacks given.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "common/intermediate.h"
#include "common/protocol.h"

namespace zmr {

struct TaskContext {
  ShuffleStore* store = nullptr;               // must outlive the call
  const std::atomic<bool>* cancelled = nullptr;  // checked often; when set the task stops early
  // Called with the fraction of input consumed (0..1), at most every kProgressIntervalMs.
  std::function<void(double)> progress;
};

struct TaskResult {
  std::vector<MapOutput> outputs;  // map: one per partition, partitions 0..R-1 in order
  Counters counters;               // built-in counters (see PROTOCOL.md "Counters")
};

// Map: reads the split's lines, calls App::Map, partitions by PartitionOf(key, R), combines when the
// app has a combiner, and writes one sorted run per partition (every partition gets a run, possibly
// empty). Returns false with a one-line *error on any failure or on cancellation ("cancelled").
bool RunMapTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                std::string* error);

// Reduce: merges the runs at task.inputs, groups by key, calls App::Reduce and writes
// `key<TAB>value` lines to OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN, then renames it to
// OUTPUT/part-NNNNN (NNNNN = partition, 5 digits). A failed or cancelled attempt leaves no part file.
bool RunReduceTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                   std::string* error);

}  // namespace zmr
