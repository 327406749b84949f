// The worker's content-addressed cache of shipped job files (streaming scripts, data files, plugin
// libraries): WORK_DIR/cache/<sha256>, filled from `job_files` messages and read when an attempt is
// materialised. Files are written to a temporary name and renamed, so a reader sees a complete
// file or none. Put() is called from the worker loop and Path() from attempt threads: every method
// is safe from any thread (the filesystem is the only state).
#pragma once

#include <string>
#include <string_view>

namespace zmr {

class BlobCache {
 public:
  // The cache lives in `dir` (created by Put when missing).
  explicit BlobCache(std::string dir);

  // Stores `data` under `sha256` after checking that it is the lower-case hex SHA-256 of data.
  // A blob already present is left alone. Returns false with a one-line *error when the name is
  // not a SHA-256, does not match the bytes, or the file cannot be written.
  bool Put(const std::string& sha256, std::string_view data, std::string* error) const;

  // Whether a blob is present.
  bool Has(const std::string& sha256) const;

  // The cached file's path for sha256, or "" when it is not cached (or the name is not a SHA-256).
  std::string Path(const std::string& sha256) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Whether s is 64 lower-case hex digits.
bool IsSha256Hex(std::string_view s);

}  // namespace zmr
