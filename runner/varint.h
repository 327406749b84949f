// The varint of the run format (runner/intermediate.h): LEB128, 7 bits a byte, least significant
// group first, the high bit set on every byte but the last. Run files and the map-side buffers'
// in-memory value lists write their lengths with it.
// Pure functions: callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zmr {

// Writes v as a varint at p, which must have room for 10 bytes (a uint64's longest varint).
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

}  // namespace zmr
