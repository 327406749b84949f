// The part file an attempt writes its output lines to (a reduce's part-NNNNN, or a map-only
// attempt's): OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN, left for the coordinator to
// commit. Used by runner/map_task.cc and runner/reduce_task.cc; a writer belongs to one attempt,
// on its thread.
//
// Lines: a record is written as `key<TAB>value<LF>`, except that a record with an empty value is
// written as `key<LF>` (see runner/task_runner.h). Emit is called once per output record, so it is
// defined here, inline; it writes only when its buffer is full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/app.h"
#include "common/posix/fd.h"
#include "common/protocol.h"

namespace zmr {

// Output buffer of a part file.
inline constexpr std::size_t kPartBufferSize = 1 << 20;

// Writes a part file under a temporary directory. The file stays where it is after Finish (the
// coordinator commits it); the destructor removes it, and its directory and the shared
// _temporary directory if they are empty, unless Finish succeeded.
class PartFileWriter : public Emitter {
 public:
  // Creates tmp_dir (retrying if a concurrent attempt removes the shared _temporary parent in
  // between) and opens tmp_dir/file_name. nullptr with *error on failure.
  static std::unique_ptr<PartFileWriter> Create(const std::filesystem::path& tmp_dir,
                                                const std::string& file_name,
                                                std::string* error);

  ~PartFileWriter() override;
  PartFileWriter(const PartFileWriter&) = delete;
  PartFileWriter& operator=(const PartFileWriter&) = delete;

  // Emitter: one "key\tvalue\n" line, or "key\n" when the value is empty. A write error is kept
  // (failed(), failure()) and later lines are dropped.
  void Emit(std::string_view key, std::string_view value) override {
    std::size_t before = buffer_.size();
    buffer_.append(key.data(), key.size());
    if (!value.empty()) {
      buffer_.push_back('\t');
      buffer_.append(value.data(), value.size());
    }
    buffer_.push_back('\n');
    ++records_;
    payload_bytes_ += static_cast<int64_t>(key.size() + value.size());
    bytes_ += static_cast<int64_t>(buffer_.size() - before);
    if (buffer_.size() >= kPartBufferSize) Flush();
  }

  // Flushes and closes; the file stays. False with *error on any failure (including an earlier
  // write error).
  bool Finish(std::string* error);

  bool failed() const { return !failure_.empty(); }
  // The first write error, or empty.
  const std::string& failure() const { return failure_; }
  const std::string& path() const { return path_; }
  int64_t records() const { return records_; }
  int64_t bytes() const { return bytes_; }                  // bytes of the file
  int64_t payload_bytes() const { return payload_bytes_; }  // key + value bytes emitted

 private:
  PartFileWriter() = default;

  // Writes the buffer out (unless a write failed before) and empties it.
  void Flush();
  // Removes the attempt's directory and then the shared _temporary directory, each only if empty
  // (other attempts may still be using _temporary).
  void RemoveTempDirs();

  std::filesystem::path tmp_dir_;
  std::string path_;
  UniqueFd fd_;
  std::string buffer_;   // lines not yet written
  std::string failure_;  // the first write error
  bool kept_ = false;    // Finish succeeded: the file stays
  int64_t records_ = 0;
  int64_t bytes_ = 0;
  int64_t payload_bytes_ = 0;
};

// The part file of an attempt: OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN, NNNNN being
// task.partition (the partition of a reduce, the map index of a map-only attempt). nullptr with
// *error if it cannot be created.
std::unique_ptr<PartFileWriter> CreatePartFile(const AssignMsg& task, std::string* error);

}  // namespace zmr
