// The partitioner: which reduce partition a key goes to. Stable across processes, machines and
// builds (a fixed FNV-1a 64-bit hash, never std::hash), so every map attempt agrees.
#pragma once

#include <cstdint>
#include <string_view>

namespace zmr {

inline uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Requires num_partitions >= 1.
inline int64_t PartitionOf(std::string_view key, int64_t num_partitions) {
  return static_cast<int64_t>(Fnv1a64(key) % static_cast<uint64_t>(num_partitions));
}

}  // namespace zmr
