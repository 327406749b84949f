// A fresh directory under the system temp dir for one test, removed with everything in it when
// the TempDir goes away. Header-only, so every test binary can use it. One thread at a time.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
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

 private:
  std::filesystem::path path_;
};

}  // namespace zmr
