// Where intermediate data lives: the ShuffleStore interface through which map attempts write and
// reduce attempts read their partitions' runs (runner/run_file.h), and its local-file
// implementation. Single-threaded: a store is used by one task attempt, on its thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runner/run_file.h"

namespace zmr {

// Map tasks create one run per partition through it and report the returned locations; reduce
// tasks open the locations they are given. Locations are opaque strings to everything but the
// store (the coordinator only passes them along), so a network shuffle can replace the local-file
// store without touching map/reduce logic.
class ShuffleStore {
 public:
  virtual ~ShuffleStore() = default;
  // Creates the writer for one partition of one map attempt; *location is where it will be.
  virtual std::unique_ptr<RunWriter> CreatePartition(const std::string& job_id,
                                                     const std::string& task_id, int64_t attempt,
                                                     int64_t partition, std::string* location,
                                                     std::string* error) = 0;
  // Opens a location for reading. nullptr with *error on failure, and *fault (when non-null) set
  // to whether the data is bad (produce it again) or the failure is local to this process.
  virtual std::unique_ptr<RunReader> OpenPartition(const std::string& location,
                                                   std::string* error, ReadFault* fault) = 0;
  // Removes everything stored for a job. Missing data is not an error.
  virtual void RemoveJob(const std::string& job_id) = 0;
};

// Intermediate files under a work dir: WORK_DIR/jobs/<job_id>/<task_id>.a<attempt>.pNNNNN.run
// Locations are absolute file paths, readable by any worker on the same machine or shared mount.
class LocalFileStore : public ShuffleStore {
 public:
  explicit LocalFileStore(std::string work_dir);
  std::unique_ptr<RunWriter> CreatePartition(const std::string& job_id, const std::string& task_id,
                                             int64_t attempt, int64_t partition,
                                             std::string* location, std::string* error) override;
  std::unique_ptr<RunReader> OpenPartition(const std::string& location, std::string* error,
                                           ReadFault* fault) override;
  void RemoveJob(const std::string& job_id) override;
  const std::string& work_dir() const { return work_dir_; }  // absolute

 private:
  std::string work_dir_;
};

}  // namespace zmr
