// The varint of the run format (runner/run_file.h): LEB128, 7 bits a byte, least significant
// group first, the high bit set on every byte but the last. Run files and the map-side buffers'
// in-memory value lists write their lengths with it; the run reader decodes them with the checked
// decoder here.
// Pure functions: callable from any thread. Inline, since every record's lengths go through them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zmr {

// The longest varint of a uint64.
inline constexpr std::size_t kMaxVarintBytes = 10;

// Writes v as a varint at p, which must have room for kMaxVarintBytes bytes.
// Returns the number of bytes written (1..10).
inline std::size_t EncodeVarint(uint64_t v, char* p) {
  std::size_t n = 0;
  while (v >= 0x80) {
    p[n++] = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  p[n++] = static_cast<char>(v);
  return n;
}

// The number of bytes EncodeVarint writes for v (1..10).
inline std::size_t VarintSize(uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

enum class VarintResult { kOk, kNeedMore, kBad };

// Decodes a varint from [p, end), for bytes that may be short or corrupt. kOk sets *value and
// *used (the bytes it took); kNeedMore when the bytes stop mid-varint; kBad when it is longer than
// kMaxVarintBytes or overflows 64 bits.
inline VarintResult DecodeVarint(const unsigned char* p, const unsigned char* end, uint64_t* value,
                                 std::size_t* used) {
  uint64_t result = 0;
  for (std::size_t i = 0; i < kMaxVarintBytes; ++i) {
    if (p + i >= end) return VarintResult::kNeedMore;
    uint64_t byte = p[i];
    if (i == kMaxVarintBytes - 1 && byte > 1) return VarintResult::kBad;
    result |= (byte & 0x7F) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      *used = i + 1;
      return VarintResult::kOk;
    }
  }
  return VarintResult::kBad;
}

}  // namespace zmr
