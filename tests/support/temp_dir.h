// A fresh directory under the system temp dir for one test, removed with everything in it when
// the TempDir goes away. Header-only, so every test binary can use it. One thread at a time.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace zmr {

class TempDir {
 public:
  // Creates <tmp>/zmr-<prefix>-<pid>-<counter>-<random>; throws std::runtime_error on failure.
  explicit TempDir(std::string_view prefix = "test") {
    static std::atomic<int> counter{0};
    std::random_device random;
    const std::filesystem::path base = std::filesystem::temp_directory_path();
    for (int tries = 0; tries < 100; ++tries) {
      char suffix[64];
      std::snprintf(suffix, sizeof suffix, "-%d-%d-%08x", static_cast<int>(getpid()), counter++,
                    static_cast<unsigned>(random()));
      const std::filesystem::path candidate = base / ("zmr-" + std::string(prefix) + suffix);
      std::error_code ec;
      if (std::filesystem::create_directory(candidate, ec) && !ec) {
        path_ = std::filesystem::canonical(candidate);
        return;
      }
    }
    throw std::runtime_error("cannot create a temporary directory under " + base.string());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  // The path of `relative` inside the directory, as a string.
  std::string Path(std::string_view relative) const { return (path_ / relative).string(); }

  // Creates the file `relative` (and its parent directories) holding exactly `content`; returns
  // its path. Throws std::runtime_error if it cannot be written.
  std::string Write(std::string_view relative, std::string_view content) const {
    const std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out.good()) throw std::runtime_error("cannot write " + file.string());
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace zmr
