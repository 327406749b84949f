// What the map output buffers share, for their files only: runner/map_output_buffer.cc (the base),
// runner/combining_buffer.cc, runner/summing_buffer.cc, runner/sorting_buffer.cc and
// runner/merge.cc. Other code includes runner/map_output_buffer.h or runner/merge.h instead.
// The constants and free functions are pure and callable from any thread; the emitters and the
// MapOutputBuffer members belong to their buffer's (the attempt's) thread.
//
// The MapOutputBuffer members defined here (WriteGroup, Cancelled) are called by every buffer's
// spill loop once per key: defined inline here, they are inlined there, and so is the buffer's
// ValueStream::Next they call.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/app.h"
#include "runner/map_output_buffer.h"
#include "runner/run_file.h"

namespace zmr {

// memcpy that accepts null pointers when n is 0.
inline void CopyBytes(char* to, const char* from, std::size_t n) {
  if (n > 0) std::memcpy(to, from, n);
}

// The first 8 bytes of a key, zero-padded, as a big-endian number: comparing two prefixes orders
// keys bytewise as far as they go.
inline uint64_t KeyPrefix(const char* key, std::size_t len) {
  uint64_t v = 0;
  CopyBytes(reinterpret_cast<char*>(&v), key, std::min<std::size_t>(len, 8));
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

// A fast 64-bit hash for the in-memory table (not stable across builds; never used for
// partitioning).
inline uint64_t HashKey(std::string_view key) {
  constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ull;
  constexpr uint64_t kMul2 = 0xBF58476D1CE4E5B9ull;
  const char* p = key.data();
  std::size_t n = key.size();
  uint64_t h = kMul1 ^ n;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul2;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul2;
  }
  h ^= h >> 32;
  h *= kMul1;
  h ^= h >> 29;
  return h;
}

// A key for an error message: at most 64 bytes, control bytes escaped.
std::string Printable(std::string_view key);

// True when flag is set (a null flag never is).
inline bool IsCancelled(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

// The combining tables' sizing from the sort-buffer budget: blocks of the key arena (1/32 of the
// budget, 4 KiB..1 MiB), and the distinct keys room is made for at first (a power of two, 4..1024).
inline std::size_t ArenaBlockBytes(int64_t buffer_bytes) {
  return static_cast<std::size_t>(std::clamp<int64_t>(buffer_bytes / 32, 4 << 10, 1 << 20));
}
inline std::size_t InitialEntries(int64_t budget) {
  return std::bit_floor(static_cast<std::size_t>(std::clamp<int64_t>(budget / 1024, 4, 1024)));
}

// Writes what a combiner emits into a run (the one given to Reset, which must outlive its use),
// counting it; the first write error sticks.
class RunCollector final : public Emitter {
 public:
  void Reset(RunWriter* out) {
    out_ = out;
    records_ = 0;
    failure_.clear();
  }
  void Emit(std::string_view key, std::string_view value) override {
    if (!failure_.empty() || out_ == nullptr) return;
    std::string error;
    if (!out_->Add(key, value, &error)) {
      failure_ = "combiner output: " + error;
      return;
    }
    ++records_;
  }
  int64_t records() const { return records_; }
  const std::string& failure() const { return failure_; }

 private:
  RunWriter* out_ = nullptr;
  int64_t records_ = 0;
  std::string failure_;
};

// The combiner's emitter into the run being written: a RunCollector, under the name
// map_output_buffer.h declares.
class MapOutputBuffer::RunEmitter final : public Emitter {
 public:
  void Emit(std::string_view key, std::string_view value) override { inner_.Emit(key, value); }
  RunCollector inner_;
};

bool MapOutputBuffer::Cancelled() const { return IsCancelled(options_.cancelled); }

bool MapOutputBuffer::WriteGroup(std::string_view key, ValueStream& values, std::size_t count) {
  // An eager (in-process) combiner emits during Combine, so a single value can be copied as it is
  // without breaking the order; a batch combiner may hold everything back until FlushCombine.
  if (!options_.combine || (count < 2 && options_.combine_eagerly)) {
    std::string_view value;
    while (values.Next(&value)) {
      if (!WriteRecord(key, value)) return false;
    }
    return true;
  }
  app_->Combine(key, values, *combine_out_);
  combined_in_partition_ = true;
  counters_.combine_input_records += static_cast<int64_t>(count);
  if (!combine_out_->inner_.failure().empty()) return Fail(combine_out_->inner_.failure());
  if (++groups_written_ % kCheckEveryRecords == 0 && Cancelled()) return Fail(kCancelledError);
  return true;
}

}  // namespace zmr
