// Intermediate data: the on-disk format of a sorted run of key/value records, readers and writers
// for it, a k-way sorted merge over runs, and the ShuffleStore interface through which map tasks
// write and reduce tasks read their partitions. Every class is single-threaded; one instance belongs
// to one task attempt.
//
// Run file format (little endian):
//   header  : "ZMRI" (4 bytes), u32 format version (1)
//   records : varint key length, key bytes, varint value length, value bytes   (repeated)
//   trailer : "ZMRE" (4 bytes), u64 record count, u32 CRC32C of all record bytes
// Records are sorted by key bytewise. A reader reports an error for a bad header, a truncated file,
// a record count or checksum that does not match the trailer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zmr {

inline constexpr uint32_t kRunFormatVersion = 1;
// Default read buffer of one RunReader; a reduce may merge many runs at once.
inline constexpr std::size_t kRunReadBufferBytes = 256 << 10;

// Why reading a run failed. kBadData: the run is missing, truncated, corrupt or unreadable (an
// I/O error): whoever produced it must produce it again. kLocal: this process could not read it
// for reasons of its own (out of file descriptors or memory): the data may well be fine.
enum class ReadFault { kNone, kBadData, kLocal };

// CRC32C (Castagnoli) of data, continuing from crc (0 to start).
uint32_t Crc32c(uint32_t crc, const void* data, std::size_t size);

// Writes one run file. The file appears under its final path only after Finish() succeeds (it is
// written to path + ".tmp" and renamed), so a killed writer never leaves a partial run.
class RunWriter {
 public:
  // Returns nullptr with *error if the temporary file cannot be created.
  static std::unique_ptr<RunWriter> Create(const std::string& path, std::string* error);
  ~RunWriter();  // removes the temporary file if Finish() was not called or failed
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;

  // Appends a record; keys must be added in non-decreasing bytewise order.
  bool Add(std::string_view key, std::string_view value, std::string* error);
  // Writes the trailer, flushes and renames into place.
  bool Finish(std::string* error);

  int64_t records() const;
  int64_t bytes() const;  // file size so far, including header (and trailer once finished)

 private:
  RunWriter();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streams the records of one run file with a bounded buffer.
class RunReader {
 public:
  // Returns nullptr with *error (and *fault, when given) if the file cannot be opened or its header
  // or trailer is invalid. buffer_bytes bounds the read buffer (a larger record still fits).
  static std::unique_ptr<RunReader> Open(const std::string& path, std::string* error,
                                         ReadFault* fault = nullptr,
                                         std::size_t buffer_bytes = kRunReadBufferBytes);
  ~RunReader();
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  // Sets the next record (views valid until the next call). Returns false at the end or on error;
  // at the end the trailer has been verified, and error() is empty only if it matched.
  bool Next(std::string_view* key, std::string_view* value);
  const std::string& error() const;
  ReadFault fault() const;  // kNone unless error() is set
  int64_t bytes_read() const;
  int64_t size() const;  // file size
  const std::string& path() const;

 private:
  RunReader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Merges several sorted runs into one sorted stream (a heap over the run heads). Records with equal
// keys come out in run order, so the merge is stable. Errors of any run end the merge.
class MergeReader {
 public:
  explicit MergeReader(std::vector<std::unique_ptr<RunReader>> runs);
  ~MergeReader();
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

// Where intermediate data lives. Map tasks create one run per partition through it and report the
// returned locations; reduce tasks open the locations they are given. Locations are opaque strings
// to everything but the store (the coordinator only passes them along), so a network shuffle can
// replace the local-file store without touching map/reduce logic.
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
