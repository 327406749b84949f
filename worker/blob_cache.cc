#include "worker/blob_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/layout.h"
#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/sha256.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// Distinguishes temporary files of concurrent writers in one process.
std::atomic<uint64_t> g_tmp_counter{0};

}  // namespace

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

BlobCache::BlobCache(std::string dir) : dir_(std::move(dir)) {}

bool BlobCache::Has(const std::string& sha256) const { return !Path(sha256).empty(); }

std::string BlobCache::Path(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return "";
  std::string path = layout::BlobPath(dir_, sha256);
  std::error_code ec;
  return fs::is_regular_file(path, ec) ? path : "";
}

bool BlobCache::Put(const std::string& sha256, std::string_view data, std::string* error) const {
  if (!IsSha256Hex(sha256)) {
    *error = "blob name '" + sha256.substr(0, 80) + "' is not a SHA-256";
    return false;
  }
  std::string actual = Sha256Hex(data);
  if (actual != sha256) {
    *error = "blob " + sha256 + " has SHA-256 " + actual + " (" + std::to_string(data.size()) +
             " bytes)";
    return false;
  }
  if (Has(sha256)) return true;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    *error = "cannot create blob cache " + dir_ + ": " + ec.message();
    return false;
  }
  std::string final_path = layout::BlobPath(dir_, sha256);
  std::string tmp_path =
      layout::UniqueTempPathFor(final_path, getpid(), g_tmp_counter.fetch_add(1));
  UniqueFd fd(open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    *error = "cannot create " + tmp_path + ": " + ErrnoText(errno);
    return false;
  }
  bool ok = WriteAll(fd.get(), data) && fsync(fd.get()) == 0;
  int saved = errno;
  if (fd.Close() != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (ok && rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    unlink(tmp_path.c_str());
    *error = "cannot write " + final_path + ": " + ErrnoText(saved);
    return false;
  }
  return true;
}

}  // namespace zmr
