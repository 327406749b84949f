#include "common/splits.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "common/posix/fd.h"
#include "common/posix/io.h"

namespace zmr {

namespace {

constexpr int64_t kBytesPerMap = int64_t{64} << 20;  // default input bytes per map task
constexpr size_t kBufferSize = size_t{1} << 20;      // reader buffer; grows only for longer lines
constexpr size_t kMinBufferSize = size_t{64} << 10;  // buffer for splits smaller than kBufferSize

// floor(i * total / m) without overflowing int64 for any total and 0 <= i <= m.
int64_t Boundary(int64_t i, int64_t total, int64_t m) {
  return i * (total / m) + (i * (total % m)) / m;
}

}  // namespace

std::vector<Split> PlanSplits(const std::vector<InputFile>& files, int num_splits) {
  const int64_t m = std::max(num_splits, 1);
  int64_t total = 0;
  for (const InputFile& f : files) total += std::max<int64_t>(f.size, 0);

  std::vector<Split> splits(static_cast<size_t>(m));
  size_t file_index = 0;
  int64_t file_begin = 0;  // offset of files[file_index] in the concatenation
  for (int64_t i = 0; i < m; ++i) {
    const int64_t lo = Boundary(i, total, m);
    const int64_t hi = Boundary(i + 1, total, m);
    // Advance past files that end at or before lo (including empty files).
    while (file_index < files.size() &&
           file_begin + std::max<int64_t>(files[file_index].size, 0) <= lo) {
      file_begin += std::max<int64_t>(files[file_index].size, 0);
      ++file_index;
    }
    size_t j = file_index;
    int64_t begin = file_begin;
    while (j < files.size() && begin < hi) {
      const int64_t size = std::max<int64_t>(files[j].size, 0);
      const int64_t start = std::max(lo, begin) - begin;
      const int64_t end = std::min(hi, begin + size) - begin;
      if (end > start) splits[i].push_back(FileRange{files[j].path, start, end});
      begin += size;
      ++j;
    }
  }
  return splits;
}

int DefaultMapCount(int64_t total_bytes) {
  if (total_bytes <= 0) return 1;
  const int64_t count = total_bytes / kBytesPerMap + (total_bytes % kBytesPerMap != 0 ? 1 : 0);
  return static_cast<int>(std::min<int64_t>(count, INT_MAX));
}

// Buffer layout: buffer[begin, end) holds unconsumed file bytes; buffer[end] corresponds to file
// offset read_offset. The reader's position in the file (the first byte not yet consumed) is
// therefore read_offset - (end - begin).
struct SplitReader::Impl {
  Split split;
  int64_t total_bytes = 0;       // sum of the ranges' sizes
  size_t range_index = 0;        // range being read (or next to open)
  bool range_open = false;       // fd and buffer belong to split[range_index]
  bool done = false;             // end of split reached or error; Next returns false from now on
  int64_t consumed_done = 0;     // bytes of ranges already finished
  int64_t lines = 0;             // lines returned
  size_t line_range = SIZE_MAX;  // range index of the last returned line
  std::string error;
  const std::string no_path;     // current_path() before the first line

  UniqueFd fd;  // split[range_index]'s file while range_open
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;       // size of buffer
  size_t base_capacity = 0;  // capacity outside of lines longer than the buffer
  size_t begin = 0;         // first unconsumed byte in buffer
  size_t end = 0;           // one past the last valid byte in buffer
  size_t scanned = 0;       // bytes after begin already known to contain no '\n'
  int64_t read_offset = 0;  // file offset of buffer[end]
  bool eof = false;         // read returned 0 at read_offset

  int64_t Position() const { return read_offset - static_cast<int64_t>(end - begin); }
  const FileRange& range() const { return split[range_index]; }

  void CloseFile() { fd.Reset(); }

  void SetError(std::string message) {
    error = std::move(message);
    done = true;
    CloseFile();
  }

  // Reads more of the file after buffer[end], keeping buffer[begin, end). Grows the buffer when it
  // is full of one unfinished line; shrinks it back once such a line is gone. Sets eof at the end
  // of the file. Returns false (with error set) on an I/O error.
  bool Fill() {
    const size_t kept = end - begin;
    if (capacity > base_capacity && kept <= base_capacity / 2) {
      std::unique_ptr<char[]> smaller = std::make_unique_for_overwrite<char[]>(base_capacity);
      std::memcpy(smaller.get(), buffer.get() + begin, kept);
      buffer = std::move(smaller);
      capacity = base_capacity;
    } else if (kept == capacity) {
      const size_t grown = capacity * 2;
      std::unique_ptr<char[]> larger = std::make_unique_for_overwrite<char[]>(grown);
      if (kept > 0) std::memcpy(larger.get(), buffer.get() + begin, kept);
      buffer = std::move(larger);
      capacity = grown;
    } else if (begin > 0 && kept > 0) {
      std::memmove(buffer.get(), buffer.get() + begin, kept);
    }
    begin = 0;
    end = kept;

    for (;;) {
      const ssize_t n = ::pread(fd.get(), buffer.get() + end, capacity - end, read_offset);
      if (n > 0) {
        end += static_cast<size_t>(n);
        read_offset += n;
        return true;
      }
      if (n == 0) {
        eof = true;
        return true;
      }
      if (errno == EINTR) continue;
      SetError("cannot read input " + range().path + ": " + ErrnoText(errno));
      return false;
    }
  }

  // Consumes bytes through the next '\n' (or to the end of the file). Returns false on error.
  bool SkipLine() {
    for (;;) {
      const void* nl = std::memchr(buffer.get() + begin, '\n', end - begin);
      if (nl != nullptr) {
        begin = static_cast<size_t>(static_cast<const char*>(nl) - buffer.get()) + 1;
        scanned = 0;
        return true;
      }
      begin = end;
      if (eof) return true;
      if (!Fill()) return false;
    }
  }

  // Opens split[range_index] and positions at the first line starting in [start, end): when the
  // byte before start is not '\n', the line at start began in an earlier split and is skipped.
  bool OpenRange() {
    const FileRange& r = range();
    if (r.start < 0 || r.end < r.start) {
      SetError("invalid split range for " + r.path + ": [" + std::to_string(r.start) + ", " +
               std::to_string(r.end) + ")");
      return false;
    }
    fd = UniqueFd(::open(r.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      SetError("cannot open input " + r.path + ": " + ErrnoText(errno));
      return false;
    }
    ::posix_fadvise(fd.get(), r.start, 0, POSIX_FADV_SEQUENTIAL);
    if (!buffer) {
      // Small splits (many maps over little input) need no full-size buffer.
      base_capacity = static_cast<size_t>(std::clamp<int64_t>(
          total_bytes, static_cast<int64_t>(kMinBufferSize), static_cast<int64_t>(kBufferSize)));
      buffer = std::make_unique_for_overwrite<char[]>(base_capacity);
      capacity = base_capacity;
    }
    begin = end = scanned = 0;
    eof = false;
    range_open = true;
    if (r.start == 0) {
      read_offset = 0;
      return true;
    }
    // Start one byte early: if that byte is '\n', SkipLine consumes just it and we are at start.
    read_offset = r.start - 1;
    return SkipLine();
  }

  void CloseRange() {
    consumed_done += range().end - range().start;
    range_open = false;
    ++range_index;
    CloseFile();
  }
};

SplitReader::SplitReader(Split split) : impl_(std::make_unique<Impl>()) {
  for (const FileRange& r : split) impl_->total_bytes += std::max<int64_t>(r.end - r.start, 0);
  impl_->split = std::move(split);
}

SplitReader::~SplitReader() = default;

bool SplitReader::Next(std::string_view* line) {
  Impl& s = *impl_;
  while (!s.done) {
    if (!s.range_open) {
      if (s.range_index == s.split.size()) {
        s.done = true;
        break;
      }
      if (!s.OpenRange()) break;
      continue;
    }
    if (s.Position() >= s.range().end) {
      s.CloseRange();
      continue;
    }
    // The line starting at Position() is ours: find its end, reading past the range if needed.
    for (;;) {
      const size_t available = s.end - s.begin;
      const char* start = s.buffer.get() + s.begin;
      const void* nl = std::memchr(start + s.scanned, '\n', available - s.scanned);
      if (nl != nullptr) {
        size_t length = static_cast<size_t>(static_cast<const char*>(nl) - start);
        s.begin += length + 1;
        s.scanned = 0;
        if (length > 0 && start[length - 1] == '\r') --length;
        *line = std::string_view(start, length);
        break;
      }
      s.scanned = available;
      if (s.eof) {
        if (available == 0) {
          s.SetError("input " + s.range().path + " is shorter than planned: ends at byte " +
                     std::to_string(s.read_offset) + ", split range ends at " +
                     std::to_string(s.range().end));
          return false;
        }
        // A file's end ends a line; no "\n" means no "\r" is stripped.
        s.begin = s.end;
        s.scanned = 0;
        *line = std::string_view(start, available);
        break;
      }
      if (!s.Fill()) return false;
    }
    s.line_range = s.range_index;
    ++s.lines;
    return true;
  }
  return false;
}

const std::string& SplitReader::current_path() const {
  if (impl_->line_range >= impl_->split.size()) return impl_->no_path;
  return impl_->split[impl_->line_range].path;
}

int64_t SplitReader::bytes_consumed() const {
  const Impl& s = *impl_;
  int64_t consumed = s.consumed_done;
  if (s.range_open) {
    const int64_t size = s.range().end - s.range().start;
    consumed += std::clamp<int64_t>(s.Position() - s.range().start, 0, size);
  }
  return std::min(consumed, s.total_bytes);
}

int64_t SplitReader::total_bytes() const { return impl_->total_bytes; }

int64_t SplitReader::lines() const { return impl_->lines; }

const std::string& SplitReader::error() const { return impl_->error; }

}  // namespace zmr
