// Wall-clock and monotonic time in milliseconds. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace zmr {

// Milliseconds since the Unix epoch (for timestamps people read).
inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Monotonic milliseconds (for intervals and deadlines).
inline int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace zmr
