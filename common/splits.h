// Input splits: planning M near-equal, line-aligned splits over a list of files, and reading the
// lines that belong to one split. Used by the coordinator (planning) and the worker (reading).
// Pure functions and a single-threaded reader class.
//
// Line ownership: the inputs are treated as one concatenation in the given order (the caller sorts
// paths), cut into M byte ranges of near-equal size. A line belongs to the split in which its first
// byte lies; a line may extend past the end of its split (and is then read in full), a split may
// span several files and may own no line at all. A file's end always ends a line, so a last line
// without a newline is still a line. "\n" ends a line; one "\r" before it is stripped (CRLF).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zmr {

struct InputFile {
  std::string path;
  int64_t size = 0;
  bool operator==(const InputFile&) const = default;
};

// Bytes [start, end) of one file that lie inside a split.
struct FileRange {
  std::string path;
  int64_t start = 0;
  int64_t end = 0;
  bool operator==(const FileRange&) const = default;
};

using Split = std::vector<FileRange>;

// Cuts the concatenation of `files` (total T bytes) into exactly `num_splits` ranges
// [floor(i*T/M), floor((i+1)*T/M)) and expresses each as per-file ranges. Empty files contribute no
// range; a split may be empty (T < M). Requires num_splits >= 1.
std::vector<Split> PlanSplits(const std::vector<InputFile>& files, int num_splits);

// Default map count: one per 64 MiB of input, at least 1.
int DefaultMapCount(int64_t total_bytes);

// Reads the lines owned by one split, streaming with a bounded buffer (a line longer than the
// buffer is still returned whole). Not thread-safe.
class SplitReader {
 public:
  explicit SplitReader(Split split);
  ~SplitReader();
  SplitReader(const SplitReader&) = delete;
  SplitReader& operator=(const SplitReader&) = delete;

  // Sets *line to the next owned line (without "\n" or "\r\n"); the view is valid until the next
  // call. Returns false at the end of the split or on an I/O error (then error() is non-empty).
  bool Next(std::string_view* line);

  // Path of the file the last returned line came from.
  const std::string& current_path() const;
  // Bytes of the split's ranges consumed so far, for progress (0..total_bytes()).
  int64_t bytes_consumed() const;
  int64_t total_bytes() const;
  // Lines returned so far.
  int64_t lines() const;
  const std::string& error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
