// The sorting buffer: records appended to one buffer, index growing down from its end (see
// sorting_buffer.h).
#include "runner/sorting_buffer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <utility>

#include "runner/arena.h"
#include "runner/buffer_internal.h"

namespace zmr {

namespace {

// The sorting buffer's index uses 32-bit offsets.
constexpr int64_t kMaxSortingBufferBytes = (int64_t{1} << 32) - 64;

class SortingBuffer final : public MapOutputBuffer {
 public:
  SortingBuffer(App* app, MapOutputOptions options)
      : MapOutputBuffer(app, std::move(options)),
        capacity_(static_cast<std::size_t>(
                      std::min(options_.buffer_bytes, kMaxSortingBufferBytes)) &
                  ~(alignof(Meta) - 1)),
        buffer_(capacity_) {}

  void Emit(std::string_view key, std::string_view value) override {
    if (!failure_.empty()) return;
    ++counters_.output_records;
    counters_.output_bytes += static_cast<int64_t>(key.size() + value.size());
    const int64_t partition = PartitionOf(key);
    if (partition < 0) return;
    const std::size_t need = key.size() + value.size();
    if (!Fits(need)) {
      if (count_ > 0 && !Spill()) return;
      if (!Fits(need)) {
        SpillSingle(partition, key, value);
        return;
      }
    }
    char* data = &buffer_[data_end_];
    CopyBytes(data, key.data(), key.size());
    CopyBytes(data + key.size(), value.data(), value.size());
    new (MetaEnd() - count_ - 1) Meta{KeyPrefix(key.data(), key.size()),
                                      static_cast<uint32_t>(data_end_),
                                      static_cast<uint32_t>(key.size()),
                                      static_cast<uint32_t>(value.size()),
                                      static_cast<uint32_t>(partition)};
    data_end_ += need;
    ++count_;
  }

 private:
  // The index entry of one record. 24 bytes.
  struct Meta {
    uint64_t prefix;     // KeyPrefix of the key
    uint32_t offset;     // of the key in the buffer; the value follows it
    uint32_t key_len;
    uint32_t value_len;
    uint32_t partition;
  };

  // Values of consecutive index entries (one key group).
  class MetaValues final : public ValueStream {
   public:
    MetaValues(const char* buffer, const Meta* begin, const Meta* end)
        : buffer_(buffer), at_(begin), end_(end) {}
    bool Next(std::string_view* value) override {
      if (at_ == end_) return false;
      *value = std::string_view(buffer_ + at_->offset + at_->key_len, at_->value_len);
      ++at_;
      return true;
    }

   private:
    const char* buffer_;
    const Meta* at_;
    const Meta* end_;
  };

  Meta* MetaEnd() { return reinterpret_cast<Meta*>(&buffer_[0] + capacity_); }

  bool Fits(std::size_t need) const {
    return need <= capacity_ &&
           data_end_ + need + (count_ + 1) * sizeof(Meta) <= capacity_;
  }

  std::string_view KeyOf(const Meta& m) const {
    return std::string_view(&buffer_[m.offset], m.key_len);
  }

  bool WriteSorted() override {
    Meta* begin = MetaEnd() - count_;
    Meta* end = MetaEnd();
    const char* buf = &buffer_[0];
    // Ties on (partition, key) are broken by offset, i.e. arrival order: a stable sort in place.
    std::sort(begin, end, [buf](const Meta& a, const Meta& b) {
      if (a.partition != b.partition) return a.partition < b.partition;
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      int c = std::string_view(buf + a.offset, a.key_len)
                  .compare(std::string_view(buf + b.offset, b.key_len));
      if (c != 0) return c < 0;
      return a.offset < b.offset;
    });
    bool ok = true;
    const Meta* m = begin;
    while (ok && m != end) {
      const uint32_t partition = m->partition;
      ok = BeginPartition(partition);
      while (ok && m != end && m->partition == partition) {
        const std::string_view key = KeyOf(*m);
        if (!options_.combine) {
          // Records are read in key order, i.e. at random places of the buffer: fetch the ones
          // a few entries ahead while this one is written (a cache miss per record otherwise).
          if (end - m > kPrefetchAhead) {
            const Meta& ahead = m[kPrefetchAhead];
            const std::size_t size = std::size_t{ahead.key_len} + ahead.value_len;
            __builtin_prefetch(buf + ahead.offset);
            if (size > 64) __builtin_prefetch(buf + ahead.offset + size - 1);
          }
          ok = WriteRecord(key, std::string_view(buf + m->offset + m->key_len, m->value_len));
          ++m;
          continue;
        }
        const Meta* group_end = m + 1;
        while (group_end != end && group_end->partition == partition &&
               group_end->prefix == m->prefix && KeyOf(*group_end) == key) {
          ++group_end;
        }
        MetaValues values(buf, m, group_end);
        ok = WriteGroup(key, values, static_cast<std::size_t>(group_end - m));
        m = group_end;
      }
      ok = ok && EndPartition();
    }
    data_end_ = 0;
    count_ = 0;
    return ok;
  }

  void Release() override {
    buffer_ = PageArray<char>();
    capacity_ = 0;
    data_end_ = 0;
    count_ = 0;
  }

  bool empty() const override { return count_ == 0; }

  // How many index entries ahead WriteSorted prefetches records.
  static constexpr std::ptrdiff_t kPrefetchAhead = 8;

  std::size_t capacity_;    // usable bytes of buffer_ (a multiple of alignof(Meta))
  // Pages are touched only as records arrive; huge pages when large, so that first touch costs
  // few page faults and reading the records in key order few TLB misses.
  PageArray<char> buffer_;
  std::size_t data_end_ = 0;        // records occupy [0, data_end_)
  std::size_t count_ = 0;           // index entries occupy the last count_ Metas
};

}  // namespace

std::unique_ptr<MapOutputBuffer> NewSortingBuffer(App* app, MapOutputOptions options) {
  return std::make_unique<SortingBuffer>(app, std::move(options));
}

}  // namespace zmr
