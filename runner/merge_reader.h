// The k-way merge of sorted runs (runner/run_file.h) into one sorted stream, a heap over the run
// heads. The reduce reads its input through it and runner/merge.h's MergeRunsInto merges runs into
// a run with it. Single-threaded: a MergeReader belongs to one attempt, on its thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runner/run_file.h"

namespace zmr {

// Merges several sorted runs into one sorted stream. Records with equal keys come out in run
// order, so the merge is stable. Errors of any run end the merge.
class MergeReader {
 public:
  // Takes the runs (a null entry counts as an empty run).
  explicit MergeReader(std::vector<std::unique_ptr<RunReader>> runs);
  ~MergeReader();
  // Sets the next record (views valid until the next call). False at the end or on a run's error.
  bool Next(std::string_view* key, std::string_view* value);
  const std::string& error() const;
  // Index (in the constructor's vector) of the run whose error ended the merge, or SIZE_MAX.
  std::size_t failed_run() const;
  ReadFault fault() const;      // that run's fault, kNone if none failed
  int64_t bytes_read() const;   // summed over runs
  int64_t total_bytes() const;  // summed file sizes

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
