// PageMemory: the heap or mmap behind PageArray (see arena.h).
#include "runner/arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace zmr {

PageMemory::PageMemory(std::size_t bytes) {
  if (bytes == 0) return;
  const bool huge = bytes >= kHugePage;
  if (!huge) {
    const std::size_t rounded = (bytes + kLine - 1) & ~(kLine - 1);
    void* p = std::aligned_alloc(kLine, rounded);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    heap_ = true;
    map_ = static_cast<char*>(p);
    data_ = map_;
    return;
  }
  map_bytes_ = bytes + kHugePage;
  void* p = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  map_ = static_cast<char*>(p);
  char* data = map_;
  if (huge) {
    data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(map_) + kHugePage - 1) &
                                   ~(kHugePage - 1));
#ifdef MADV_HUGEPAGE
    ::madvise(data, (bytes + kHugePage - 1) & ~(kHugePage - 1), MADV_HUGEPAGE);
#endif
  }
  data_ = data;
}

PageMemory& PageMemory::operator=(PageMemory&& other) noexcept {
  if (this != &other) {
    Free();
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    heap_ = std::exchange(other.heap_, false);
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

void PageMemory::Free() {
  if (map_ != nullptr) {
    if (heap_) {
      std::free(map_);
    } else {
      ::munmap(map_, map_bytes_);
    }
  }
  map_ = nullptr;
  map_bytes_ = 0;
  heap_ = false;
  data_ = nullptr;
}

}  // namespace zmr
