// Memory for the map output buffers (runner/combining_buffer.cc, runner/summing_buffer.cc,
// runner/sorting_buffer.cc): PageArray, a zero-filled array that gets large sizes from mmap with
// transparent huge pages; Arena, bump allocation from chunks reused after every spill; and value
// chains, a key's values as one byte stream (varint length, bytes) over fixed-size slabs linked
// by a pointer in their first bytes. None of it is thread-safe: an instance belongs to the buffer
// that owns it, on the attempt's thread.
//
// What a buffer calls per record (PageArray's operator[], Arena::Allocate, the slab links,
// ChainReader::Next) is inline here: it is the data path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/app.h"

namespace zmr {

// A zero-filled array of a trivially copyable T. Arrays of at least kHugePage bytes get memory of
// their own from mmap, aligned to it and advised to use transparent huge pages: a hash table
// probed at random then costs far fewer TLB misses (page walks are dear under a hypervisor) and
// its first touch far fewer page faults; pages are only resident once touched. Smaller ones come
// from the heap (cache-line aligned): a runner process runs attempt after attempt, and a tiny
// attempt's table must not cost an mmap and an munmap (whose TLB shootdown reaches every CPU the
// process's threads ran on).
class PageMemory {
 public:
  PageMemory() = default;
  // `bytes` zero-filled bytes, at least 64-byte aligned (none when 0). Throws std::bad_alloc
  // when the memory cannot be had.
  explicit PageMemory(std::size_t bytes);
  ~PageMemory() { Free(); }
  PageMemory(PageMemory&& other) noexcept { *this = std::move(other); }
  PageMemory& operator=(PageMemory&& other) noexcept;
  PageMemory(const PageMemory&) = delete;
  PageMemory& operator=(const PageMemory&) = delete;

  char* data() const { return data_; }  // nullptr when empty

 private:
  static constexpr std::size_t kHugePage = 2 << 20;
  static constexpr std::size_t kLine = 64;
  void Free();
  char* map_ = nullptr;          // the mapping, or the heap block when heap_
  std::size_t map_bytes_ = 0;
  bool heap_ = false;
  char* data_ = nullptr;         // map_, or map_ rounded up to a huge page when mapped
};

// n zero-filled elements of a trivially copyable T in a PageMemory.
template <typename T>
class PageArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  PageArray() = default;
  // Throws std::bad_alloc when the memory cannot be mapped.
  explicit PageArray(std::size_t n) : memory_(n * sizeof(T)), size_(n) {}
  PageArray(PageArray&& other) noexcept { *this = std::move(other); }
  PageArray& operator=(PageArray&& other) noexcept {
    if (this != &other) {
      memory_ = std::move(other.memory_);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  PageArray(const PageArray&) = delete;
  PageArray& operator=(const PageArray&) = delete;

  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  std::size_t size() const { return size_; }
  // Zeroes every element.
  void Clear() {
    if (size_ > 0) std::memset(static_cast<void*>(data()), 0, size_ * sizeof(T));
  }

 private:
  T* data() const { return reinterpret_cast<T*>(memory_.data()); }
  PageMemory memory_;
  std::size_t size_ = 0;
};

// Bump allocation from chunks that are kept and reused after Reset (so a buffer that spills again
// and again touches the same memory). Allocations larger than a quarter chunk get their own block,
// freed by Reset.
class Arena {
 public:
  explicit Arena(std::size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}

  // n uninitialized bytes (no alignment), valid until the next Reset or Clear. Throws
  // std::bad_alloc when memory runs out.
  char* Allocate(std::size_t n) {
    if (n <= left_) {
      char* p = cur_;
      cur_ += n;
      left_ -= n;
      return p;
    }
    if (n > chunk_bytes_ / 4) {
      large_.push_back(std::make_unique_for_overwrite<char[]>(n));
      return large_.back().get();
    }
    if (next_chunk_ == chunks_.size()) {
      chunks_.push_back(std::make_unique_for_overwrite<char[]>(chunk_bytes_));
    }
    cur_ = chunks_[next_chunk_++].get();
    left_ = chunk_bytes_;
    return Allocate(n);
  }

  // Frees every allocation: the chunks are kept for reuse, large blocks are freed.
  void Reset() {
    large_.clear();
    next_chunk_ = 0;
    cur_ = nullptr;
    left_ = 0;
  }

  // Frees every allocation and the chunks too.
  void Clear() {
    Reset();
    chunks_.clear();
    chunks_.shrink_to_fit();
  }

 private:
  const std::size_t chunk_bytes_;
  std::vector<std::unique_ptr<char[]>> chunks_;  // kept across Reset
  std::vector<std::unique_ptr<char[]>> large_;   // blocks of their own, freed by Reset
  std::size_t next_chunk_ = 0;                   // the next of chunks_ to use
  char* cur_ = nullptr;                          // free bytes of the current chunk
  std::size_t left_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Value chains of the combining buffer: a key's values as one byte stream (varint length, bytes)
// over fixed-size slabs linked by a pointer in their first bytes.

inline constexpr std::size_t kSlabSize = 64;
inline constexpr std::size_t kSlabHeader = sizeof(char*);
inline constexpr std::size_t kSlabData = kSlabSize - kSlabHeader;

// The slab after this one in its chain (nullptr at the end).
inline char* NextSlab(const char* slab) {
  char* next;
  std::memcpy(&next, slab, sizeof(next));
  return next;
}
// Links next (or nullptr) after slab.
inline void SetNextSlab(char* slab, char* next) { std::memcpy(slab, &next, sizeof(next)); }

// Reads `count` values from a chain, starting at its head slab. A value that crosses slabs is
// copied into *scratch; the others are views into their slab. A value stays valid while the chain
// is unchanged, or until the next Next when it was copied. The chain and *scratch must outlive the
// reader.
class ChainReader final : public ValueStream {
 public:
  ChainReader(const char* head, uint32_t count, std::string* scratch)
      : slab_(head), left_(count), scratch_(scratch) {}

  bool Next(std::string_view* value) override {
    if (left_ == 0) return false;
    --left_;
    uint64_t len = 0;
    int shift = 0;
    unsigned char c;
    do {
      c = static_cast<unsigned char>(ReadByte());
      len |= static_cast<uint64_t>(c & 0x7F) << shift;
      shift += 7;
    } while (c & 0x80);
    const std::size_t n = static_cast<std::size_t>(len);
    if (kSlabData - pos_ >= n) {
      *value = std::string_view(slab_ + kSlabHeader + pos_, n);
      pos_ += n;
      return true;
    }
    scratch_->resize(n);
    std::size_t done = 0;
    while (done < n) {
      if (pos_ == kSlabData) {
        slab_ = NextSlab(slab_);
        pos_ = 0;
      }
      std::size_t k = std::min(n - done, kSlabData - pos_);
      std::memcpy(scratch_->data() + done, slab_ + kSlabHeader + pos_, k);
      done += k;
      pos_ += k;
    }
    *value = *scratch_;
    return true;
  }

 private:
  char ReadByte() {
    if (pos_ == kSlabData) {
      slab_ = NextSlab(slab_);
      pos_ = 0;
    }
    return slab_[kSlabHeader + pos_++];
  }

  const char* slab_;
  std::size_t pos_ = 0;
  uint32_t left_;
  std::string* scratch_;
};

}  // namespace zmr
