// The combining buffer: a hash table from key to a chain of values (see combining_buffer.h).
//
// Layout for few cache misses per record: the slot array (8 bytes per slot: hash tag and entry
// index) leads to an Entry of two cache lines, the first holding the key (inline up to
// kInlineKey bytes) and the second the first slab of the key's values. A word count touches a
// slot and one entry per record. A key's values are combined when they fill their slab.
#include "runner/combining_buffer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runner/arena.h"
#include "runner/buffer_internal.h"
#include "runner/varint.h"

namespace zmr {

namespace {

// Values packed into one string: a varint length, then the bytes, per value.
class PackedValues {
 public:
  void Clear() {
    bytes_.clear();
    count_ = 0;
  }
  void Append(std::string_view value) {
    char len[10];
    bytes_.append(len, EncodeVarint(value.size(), len));
    bytes_.append(value.data(), value.size());
    ++count_;
  }
  uint32_t count() const { return count_; }

  // Calls fn(value) for each value in order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    std::size_t pos = 0;
    while (pos < bytes_.size()) {
      uint64_t n = 0;
      int shift = 0;
      unsigned char c;
      do {
        c = static_cast<unsigned char>(bytes_[pos++]);
        n |= static_cast<uint64_t>(c & 0x7F) << shift;
        shift += 7;
      } while (c & 0x80);
      fn(std::string_view(bytes_.data() + pos, static_cast<std::size_t>(n)));
      pos += static_cast<std::size_t>(n);
    }
  }

 private:
  std::string bytes_;
  uint32_t count_ = 0;
};

// Collects what a combiner emits for one key during an eager combine. Anything emitted under
// another key is an error (the eager combine puts the output back under the same key).
class SameKeyCollector final : public Emitter {
 public:
  void Reset(std::string_view key) {
    key_ = key;
    values_.Clear();
    failure_.clear();
  }
  void Emit(std::string_view key, std::string_view value) override {
    if (key != key_) {
      if (failure_.empty()) {
        failure_ = "combiner emitted key '" + Printable(key) + "' while combining key '" +
                   Printable(key_) + "' (a combiner must emit under the key it was given)";
      }
      return;
    }
    values_.Append(value);
  }
  const PackedValues& values() const { return values_; }
  const std::string& failure() const { return failure_; }

 private:
  std::string_view key_;
  PackedValues values_;
  std::string failure_;
};

class CombiningBuffer final : public MapOutputBuffer {
 public:
  CombiningBuffer(App* app, MapOutputOptions options)
      : MapOutputBuffer(app, std::move(options)),
        budget_(options_.buffer_bytes),
        arena_(ArenaBlockBytes(options_.buffer_bytes)) {
    const std::size_t initial = InitialEntries(budget_);
    entries_.reserve(initial);
    slots_.assign(2 * initial, 0);
    usage_ = TableBytes();
  }

  void Emit(std::string_view key, std::string_view value) override {
    if (!failure_.empty()) return;
    ++counters_.output_records;
    counters_.output_bytes += static_cast<int64_t>(key.size() + value.size());
    const uint64_t hash = HashKey(key);
    uint32_t index = Find(key, hash);
    if (index == kNoEntry) {
      index = Insert(key, hash);
      if (index == kNoEntry) return;
    }
    Entry& e = entries_[index];
    if (options_.combine_eagerly && !FitsInTail(e, value.size()) && e.raw >= e.combine_at &&
        e.no_eager == 0) {
      if (!EagerCombine(&e)) return;
    }
    AppendValue(&e, value);
    ++e.count;
    if (e.raw < UINT16_MAX) ++e.raw;
    if (usage_ > budget_) Spill();
  }

 private:
  static constexpr std::size_t kInlineKey = 30;
  static constexpr uint32_t kNoEntry = UINT32_MAX;

  // One distinct key: two cache lines.
  struct alignas(64) Entry {
    uint64_t hash;        // of the key (HashKey)
    char* tail;           // last slab of the value chain; nullptr: the embedded slab
    uint32_t key_len;
    uint32_t partition;
    uint32_t count;       // values in the chain
    uint16_t raw;         // values added since the last combine (saturating)
    uint16_t combine_at;  // combine when the slab is full and raw has reached this
    uint8_t tail_used;    // data bytes used in the tail slab
    uint8_t no_eager;     // the combiner does not shrink this key's values: combine at spill only
    // The key if it has at most kInlineKey bytes, else a pointer to it in the arena.
    char key_bytes[kInlineKey];
    char slab[kSlabSize];  // the first slab of the chain
  };
  static_assert(sizeof(Entry) == 2 * kSlabSize);

  static const char* KeyData(const Entry& e) {
    if (e.key_len <= kInlineKey) return e.key_bytes;
    const char* p;
    std::memcpy(&p, e.key_bytes, sizeof(p));
    return p;
  }
  static std::string_view KeyOf(const Entry& e) { return std::string_view(KeyData(e), e.key_len); }
  static char* Tail(Entry& e) { return e.tail != nullptr ? e.tail : e.slab; }
  static bool FitsInTail(const Entry& e, std::size_t value_size) {
    return value_size < 0x80 && e.tail_used + 1 + value_size <= kSlabData;
  }

  // A spill's sort order: compact, so sorting touches no entry unless 8-byte prefixes tie.
  struct SortKey {
    uint64_t prefix;
    uint32_t partition;
    uint32_t index;
  };
  // Entries visited this far ahead of the one being written are prefetched.
  static constexpr std::size_t kPrefetchAhead = 8;

  // The table's memory, including the sort order a spill allocates (one SortKey per entry).
  int64_t TableBytes() const {
    return static_cast<int64_t>(entries_.capacity() * (sizeof(Entry) + sizeof(SortKey)) +
                                slots_.size() * sizeof(uint64_t));
  }

  uint32_t Find(std::string_view key, uint64_t hash) const {
    const std::size_t mask = slots_.size() - 1;
    const uint64_t tag = hash >> 32;
    for (std::size_t i = static_cast<std::size_t>(hash) & mask;; i = (i + 1) & mask) {
      const uint64_t slot = slots_[i];
      if (slot == 0) return kNoEntry;
      if ((slot >> 32) == tag) {
        const uint32_t index = static_cast<uint32_t>(slot) - 1;
        const Entry& e = entries_[index];
        if (e.key_len == key.size() &&
            (key.empty() || std::memcmp(KeyData(e), key.data(), key.size()) == 0)) {
          return index;
        }
      }
    }
  }

  void PutSlot(uint64_t hash, uint32_t index) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>(hash) & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = ((hash >> 32) << 32) | (static_cast<uint64_t>(index) + 1);
  }

  // Adds an entry for a new key (the table grows, or spills first if growing would pass the
  // budget). kNoEntry after a failure.
  uint32_t Insert(std::string_view key, uint64_t hash) {
    const int64_t partition = PartitionOf(key);
    if (partition < 0) return kNoEntry;
    auto growth = [&]() -> int64_t {
      int64_t bytes = 0;
      if (entries_.size() == entries_.capacity()) {
        bytes += 2 * entries_.capacity() * (sizeof(Entry) + sizeof(SortKey));
      }
      if ((entries_.size() + 1) * 2 > slots_.size()) bytes += 2 * slots_.size() * sizeof(uint64_t);
      return bytes;
    };
    int64_t grow = growth();
    if (grow > 0 && !entries_.empty() && usage_ + grow > budget_) {
      if (!Spill()) return kNoEntry;
      grow = growth();  // the emptied table has room
    }
    if (grow > 0) {
      if (entries_.size() == entries_.capacity()) entries_.reserve(2 * entries_.capacity());
      if ((entries_.size() + 1) * 2 > slots_.size()) Rehash(2 * slots_.size());
      usage_ = TableBytes() + data_bytes_;
    }
    const uint32_t index = static_cast<uint32_t>(entries_.size());
    Entry& e = entries_.emplace_back();
    e.hash = hash;
    e.tail = nullptr;
    e.key_len = static_cast<uint32_t>(key.size());
    e.partition = static_cast<uint32_t>(partition);
    e.count = 0;
    e.raw = 0;
    e.combine_at = 2;
    e.tail_used = 0;
    e.no_eager = 0;
    if (key.size() <= kInlineKey) {
      CopyBytes(e.key_bytes, key.data(), key.size());
    } else {
      char* copy = arena_.Allocate(key.size());
      std::memcpy(copy, key.data(), key.size());
      std::memcpy(e.key_bytes, &copy, sizeof(copy));
      data_bytes_ += static_cast<int64_t>(key.size());
      usage_ += static_cast<int64_t>(key.size());
    }
    SetNextSlab(e.slab, nullptr);
    PutSlot(hash, index);
    return index;
  }

  void Rehash(std::size_t size) {
    slots_.assign(size, 0);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      PutSlot(entries_[i].hash, static_cast<uint32_t>(i));
    }
  }

  char* NewSlab() {
    char* slab;
    if (free_slabs_ != nullptr) {
      slab = free_slabs_;
      free_slabs_ = NextSlab(slab);
    } else {
      slab = arena_.Allocate(kSlabSize);
    }
    SetNextSlab(slab, nullptr);
    data_bytes_ += kSlabSize;
    usage_ += kSlabSize;
    return slab;
  }

  // Returns the slabs after the embedded one to the free list.
  void FreeChain(Entry* e) {
    char* s = NextSlab(e->slab);
    SetNextSlab(e->slab, nullptr);
    while (s != nullptr) {
      char* next = NextSlab(s);
      SetNextSlab(s, free_slabs_);
      free_slabs_ = s;
      data_bytes_ -= kSlabSize;
      usage_ -= kSlabSize;
      s = next;
    }
    e->tail = nullptr;
    e->tail_used = 0;
  }

  void AppendBytes(Entry* e, const char* data, std::size_t n) {
    while (n > 0) {
      if (e->tail_used == kSlabData) {
        char* slab = NewSlab();
        SetNextSlab(Tail(*e), slab);
        e->tail = slab;
        e->tail_used = 0;
      }
      std::size_t k = std::min(n, kSlabData - e->tail_used);
      std::memcpy(Tail(*e) + kSlabHeader + e->tail_used, data, k);
      e->tail_used = static_cast<uint8_t>(e->tail_used + k);
      data += k;
      n -= k;
    }
  }

  void AppendValue(Entry* e, std::string_view value) {
    if (FitsInTail(*e, value.size())) {
      char* dst = Tail(*e) + kSlabHeader + e->tail_used;
      dst[0] = static_cast<char>(value.size());
      CopyBytes(dst + 1, value.data(), value.size());
      e->tail_used = static_cast<uint8_t>(e->tail_used + 1 + value.size());
      return;
    }
    char len[10];
    AppendBytes(e, len, EncodeVarint(value.size(), len));
    AppendBytes(e, value.data(), value.size());
  }

  // Replaces a key's values by what the combiner makes of them. False after a failure.
  bool EagerCombine(Entry* e) {
    const std::string_view key = KeyOf(*e);
    eager_out_.Reset(key);
    ChainReader values(e->slab, e->count, &value_scratch_);
    app_->Combine(key, values, eager_out_);
    std::string error;
    if (!app_->FlushCombine(eager_out_, &error)) return Fail(error.empty() ? "combiner failed" : error);
    if (!eager_out_.failure().empty()) return Fail(eager_out_.failure());
    const uint32_t in = e->count;
    const uint32_t out = eager_out_.values().count();
    counters_.combine_input_records += in;
    counters_.combine_output_records += out;
    FreeChain(e);
    eager_out_.values().ForEach([&](std::string_view value) { AppendValue(e, value); });
    e->count = out;
    e->raw = 0;
    // A combiner that keeps as many values is not worth calling again; one whose output fills
    // the slab by itself is called again only after as many new values as it just took.
    if (static_cast<uint64_t>(out) * 2 > in) e->no_eager = 1;
    e->combine_at = e->tail != nullptr ? static_cast<uint16_t>(std::min<uint32_t>(in, UINT16_MAX))
                                       : uint16_t{2};
    return true;
  }

  bool WriteSorted() override {
    const std::size_t n = entries_.size();
    order_.clear();
    order_.reserve(entries_.capacity());
    for (std::size_t i = 0; i < n; ++i) {
      const Entry& e = entries_[i];
      order_.push_back(SortKey{KeyPrefix(KeyData(e), e.key_len), e.partition,
                               static_cast<uint32_t>(i)});
    }
    std::sort(order_.begin(), order_.end(), [this](const SortKey& a, const SortKey& b) {
      if (a.partition != b.partition) return a.partition < b.partition;
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      return KeyOf(entries_[a.index]) < KeyOf(entries_[b.index]);
    });
    bool ok = true;
    std::size_t i = 0;
    while (ok && i < n) {
      const uint32_t partition = order_[i].partition;
      ok = BeginPartition(partition);
      for (; ok && i < n && order_[i].partition == partition; ++i) {
        if (i + kPrefetchAhead < n) {
          const char* ahead = reinterpret_cast<const char*>(&entries_[order_[i + kPrefetchAhead].index]);
          __builtin_prefetch(ahead);
          __builtin_prefetch(ahead + kSlabSize);
        }
        const Entry& e = entries_[order_[i].index];
        if (e.count == 0) continue;
        ChainReader values(e.slab, e.count, &value_scratch_);
        ok = WriteGroup(KeyOf(e), values, e.count);
      }
      ok = ok && EndPartition();
    }
    Reset();
    return ok;
  }

  void Reset() {
    entries_.clear();
    std::fill(slots_.begin(), slots_.end(), 0);
    arena_.Reset();
    free_slabs_ = nullptr;
    data_bytes_ = 0;
    usage_ = TableBytes();
  }

  void Release() override {
    entries_ = {};
    slots_ = {};
    order_ = {};
    arena_.Clear();
    free_slabs_ = nullptr;
    data_bytes_ = 0;
    usage_ = 0;
  }

  bool empty() const override { return entries_.empty(); }

  const int64_t budget_;
  Arena arena_;                   // long keys and slabs after the first
  std::vector<Entry> entries_;    // dense, in insertion order
  std::vector<uint64_t> slots_;   // open addressing: (hash tag << 32) | (entry index + 1), 0 empty
  std::vector<SortKey> order_;    // a spill's sort order (capacity kept for the next spill)
  char* free_slabs_ = nullptr;    // slabs freed by eager combines, linked through their header
  int64_t data_bytes_ = 0;        // long key bytes + slabs in use
  int64_t usage_ = 0;             // TableBytes() + data_bytes_: what the budget limits
  SameKeyCollector eager_out_;
  std::string value_scratch_;     // a value that crosses slabs
};

}  // namespace

std::unique_ptr<MapOutputBuffer> NewCombiningBuffer(App* app, MapOutputOptions options) {
  return std::make_unique<CombiningBuffer>(app, std::move(options));
}

}  // namespace zmr
