// The summing buffer (see summing_buffer.h): the combining buffer for a combiner declared to be
// an int64 sum (CombinerKind::kInt64Sum, e.g. the built-in wordcount's). Each distinct key holds a
// running sum and a count instead of a chain of value bytes, and a spill writes exactly what the
// generic combining buffer would: a key with one value gets that value's bytes, a key with more
// the decimal of their sum (what the combiner would emit).
//
// Layout for one cache miss per record: an open-addressing table of 32-byte slots (linear probing,
// at most half full) holding the key itself when it has at most kInlineKey bytes (compared as two
// integers), the sum and the count, so a probe of a short key reads one cache line. Emits of short
// keys with canonical values are queued kLookahead deep, their slots prefetched when they arrive
// and added when they leave the queue, so the misses of consecutive records overlap. What a spill
// needs but a probe does not (partition, a lone value that is not canonical decimal) lives in a
// parallel array; long keys and such values live in an arena reset at every spill.
#include "runner/summing_buffer.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "runner/arena.h"
#include "runner/buffer_internal.h"

namespace zmr {

namespace {

class SumBuffer final : public MapOutputBuffer {
 public:
  SumBuffer(App* app, MapOutputOptions options)
      : MapOutputBuffer(app, std::move(options)),
        budget_(options_.buffer_bytes),
        arena_(ArenaBlockBytes(options_.buffer_bytes)) {
    const std::size_t initial = InitialEntries(budget_);
    Allocate(2 * initial);
    usage_ = TableBytes();
  }

  void Emit(std::string_view key, std::string_view value) override {
    if (!failure_.empty()) return;
    ++counters_.output_records;
    counters_.output_bytes += static_cast<int64_t>(key.size() + value.size());
    int64_t v;
    const bool canonical = ParseValue(value, &v);
    if (key.size() > kInlineKey || !canonical) {
      // Rare: add it now, after what is queued (keeps arrival order).
      DrainPending();
      if (failure_.empty()) AddSlow(key, value, v, canonical);
      return;
    }
    Probe& p = pending_[(pending_head_ + pending_size_) & (kLookahead - 1)];
    const std::size_t n = key.size();
    p.k0 = LoadPadded(key.data(), std::min<std::size_t>(n, 8));
    p.k1 = n > 8 ? LoadPadded(key.data() + 8, n - 8) : 0;
    p.len = static_cast<uint32_t>(n);
    p.value = static_cast<uint64_t>(v);
    p.hash = ShortHash(p.k0, p.k1, p.len);
    __builtin_prefetch(&slots_[p.hash & mask_], 1);
    if (++pending_size_ == kLookahead) {
      const Probe& oldest = pending_[pending_head_];
      pending_head_ = (pending_head_ + 1) & (kLookahead - 1);
      --pending_size_;
      AddShort(oldest);
    }
  }

 private:
  static constexpr std::size_t kInlineKey = 16;
  static constexpr std::size_t kLookahead = 16;  // records queued between prefetch and add

  struct alignas(32) Slot {
    uint64_t k0;     // short key: bytes 0..7, zero-padded; long key: pointer to it in the arena
    uint64_t k1;     // short key: bytes 8..15, zero-padded; long key: its HashKey
    uint64_t sum;    // of the values, wrapping (as the combiner's int64 arithmetic does)
    uint32_t count;  // values added (saturating); 0: the slot is free
    uint32_t len;    // key length
  };
  static_assert(sizeof(Slot) == 32);
  struct Cold {
    const char* lone_value;  // the first value's bytes when not canonical decimal, else nullptr
    uint32_t lone_len;
    uint32_t partition;
  };
  // A queued short key with a canonical value.
  struct Probe {
    uint64_t k0, k1, hash, value;
    uint32_t len;
  };
  struct SortKey {
    uint64_t prefix;
    uint32_t partition;
    uint32_t slot;
  };

  // The n <= 8 bytes at p as a little-endian number, zero-padded: the bytes a zeroed uint64_t
  // holds after memcpy(&v, p, n), built in a register from loads that stay within [p, p + n) (a
  // memcpy of variable length would be a call, and reading its result back a store-forwarding
  // stall).
  static uint64_t LoadPadded(const char* p, std::size_t n) {
    static_assert(std::endian::native == std::endian::little, "slot keys assume little-endian");
    if (n >= 4) {
      uint32_t lo, hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + n - 4, 4);  // overlaps lo when n < 8: the same bytes, or-ed twice
      return lo | (static_cast<uint64_t>(hi) << ((n - 4) * 8));
    }
    if (n == 0) return 0;
    auto byte = [p](std::size_t i) {
      return static_cast<uint64_t>(static_cast<unsigned char>(p[i]));
    };
    return byte(0) | (byte(n / 2) << (n / 2 * 8)) | (byte(n - 1) << ((n - 1) * 8));
  }

  static uint64_t ShortHash(uint64_t k0, uint64_t k1, uint32_t len) {
    uint64_t h = (k0 * 0x9E3779B97F4A7C15ull) ^ (k1 * 0xBF58476D1CE4E5B9ull) ^ len;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
  }

  // Reads a value as the combiner does (*v = 0 when it is not a decimal int64). True when it is
  // canonical: std::to_chars(*v) gives back exactly these bytes.
  static bool ParseValue(std::string_view value, int64_t* v) {
    if (value.size() == 1 && value[0] >= '0' && value[0] <= '9') {
      *v = value[0] - '0';
      return true;
    }
    *v = 0;
    int64_t x = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), x);
    if (ec != std::errc() || ptr != value.data() + value.size()) return false;
    *v = x;
    char buf[24];
    auto [end, ec2] = std::to_chars(buf, buf + sizeof(buf), x);
    (void)ec2;  // 24 bytes always hold an int64
    return std::string_view(buf, static_cast<std::size_t>(end - buf)) == value;
  }

  std::string_view KeyOf(const Slot& s) const {
    if (s.len <= kInlineKey) return std::string_view(reinterpret_cast<const char*>(&s.k0), s.len);
    return std::string_view(reinterpret_cast<const char*>(s.k0), s.len);
  }
  uint64_t HashOf(const Slot& s) const {
    return s.len <= kInlineKey ? ShortHash(s.k0, s.k1, s.len) : s.k1;
  }

  // What the table holds whatever its fill: slots, their cold halves, and the sort order a spill
  // allocates (one SortKey per key, at most half the slots).
  static int64_t TableBytesFor(std::size_t slots) {
    return static_cast<int64_t>(slots * (sizeof(Slot) + sizeof(Cold)) +
                                slots / 2 * sizeof(SortKey));
  }
  int64_t TableBytes() const { return TableBytesFor(slots_.size()); }

  void Allocate(std::size_t slots) {
    slots_ = PageArray<Slot>(slots);  // zero: every slot free
    cold_ = PageArray<Cold>(slots);
    mask_ = slots - 1;
  }

  // Makes room for one more key: grows the table, or spills first when growing would pass the
  // budget. Growing holds the old table and the new one at once while it rehashes, so both count.
  // False after a failure. Slot positions change either way.
  bool MakeRoom() {
    const int64_t grow = TableBytesFor(2 * slots_.size());
    if (size_ > 0 && usage_ + grow > budget_) return Spill();
    PageArray<Slot> old_slots = std::move(slots_);
    PageArray<Cold> old_cold = std::move(cold_);
    Allocate(2 * old_slots.size());
    for (std::size_t i = 0; i < old_slots.size(); ++i) {
      const Slot& s = old_slots[i];
      if (s.count == 0) continue;
      std::size_t j = HashOf(s) & mask_;
      while (slots_[j].count != 0) j = (j + 1) & mask_;
      slots_[j] = s;
      cold_[j] = old_cold[i];
    }
    usage_ = TableBytes() + data_bytes_;
    return true;
  }

  // Takes a free slot for a new key (whose partition is computed here); kNoSlot after a failure.
  // `find` returns the free slot where the key's probe ends.
  template <typename Find>
  std::size_t Claim(std::string_view key, Find&& find, std::size_t free_slot) {
    const int64_t partition = PartitionOf(key);
    if (partition < 0) return kNoSlot;
    if ((size_ + 1) * 2 > slots_.size()) {
      if (!MakeRoom()) return kNoSlot;
      free_slot = find();
    }
    ++size_;
    cold_[free_slot] = Cold{nullptr, 0, static_cast<uint32_t>(partition)};
    return free_slot;
  }
  static constexpr std::size_t kNoSlot = SIZE_MAX;

  static void AddTo(Slot* s, uint64_t value) {
    s->sum += value;
    if (s->count != UINT32_MAX) ++s->count;
  }

  void AddShort(const Probe& p) {
    auto find = [&]() -> std::size_t {
      for (std::size_t i = p.hash & mask_;; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.count == 0 || (s.k0 == p.k0 && s.k1 == p.k1 && s.len == p.len)) return i;
      }
    };
    std::size_t i = find();
    if (slots_[i].count == 0) {
      const std::string_view key(reinterpret_cast<const char*>(&p.k0), p.len);
      i = Claim(key, find, i);
      if (i == kNoSlot) return;
      slots_[i] = Slot{p.k0, p.k1, 0, 0, p.len};
    }
    AddTo(&slots_[i], p.value);
  }

  // A long key, or a value that is not canonical decimal (`canonical` false, v its value).
  void AddSlow(std::string_view key, std::string_view value, int64_t v, bool canonical) {
    Slot probe{0, 0, 0, 0, static_cast<uint32_t>(key.size())};
    const bool inline_key = key.size() <= kInlineKey;
    if (inline_key) {
      CopyBytes(reinterpret_cast<char*>(&probe.k0), key.data(),
                std::min<std::size_t>(key.size(), 8));
      if (key.size() > 8) {
        CopyBytes(reinterpret_cast<char*>(&probe.k1), key.data() + 8, key.size() - 8);
      }
    } else {
      probe.k1 = HashKey(key);
    }
    const uint64_t hash = HashOf(probe);
    auto find = [&]() -> std::size_t {
      for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.count == 0) return i;
        if (s.len != probe.len || s.k1 != probe.k1) continue;
        if (inline_key ? s.k0 == probe.k0 : KeyOf(s) == key) return i;
      }
    };
    std::size_t i = find();
    if (slots_[i].count == 0) {
      i = Claim(key, find, i);
      if (i == kNoSlot) return;
      if (!inline_key) {
        char* copy = arena_.Allocate(key.size());
        std::memcpy(copy, key.data(), key.size());
        probe.k0 = reinterpret_cast<uint64_t>(copy);
        data_bytes_ += static_cast<int64_t>(key.size());
        usage_ += static_cast<int64_t>(key.size());
      }
      slots_[i] = probe;
      if (!canonical) {
        static constexpr char kEmptyValue[1] = {0};  // a non-null marker for a lone empty value
        char* copy = value.empty() ? nullptr : arena_.Allocate(value.size());
        CopyBytes(copy, value.data(), value.size());
        cold_[i].lone_value = copy != nullptr ? copy : kEmptyValue;
        cold_[i].lone_len = static_cast<uint32_t>(value.size());
        data_bytes_ += static_cast<int64_t>(value.size());
        usage_ += static_cast<int64_t>(value.size());
      }
    }
    AddTo(&slots_[i], static_cast<uint64_t>(v));
    if (usage_ > budget_) Spill();
  }

  void DrainPending() override {
    while (pending_size_ > 0 && failure_.empty()) {
      const Probe& oldest = pending_[pending_head_];
      pending_head_ = (pending_head_ + 1) & (kLookahead - 1);
      --pending_size_;
      AddShort(oldest);
    }
    pending_size_ = 0;
  }

  bool WriteSorted() override {
    order_.clear();
    order_.reserve(slots_.size() / 2);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.count == 0) continue;
      const uint64_t prefix = s.len <= kInlineKey
                                  ? KeyPrefix(reinterpret_cast<const char*>(&s.k0), 8)
                                  : KeyPrefix(reinterpret_cast<const char*>(s.k0), s.len);
      order_.push_back(SortKey{prefix, cold_[i].partition, static_cast<uint32_t>(i)});
    }
    std::sort(order_.begin(), order_.end(), [this](const SortKey& a, const SortKey& b) {
      if (a.partition != b.partition) return a.partition < b.partition;
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      return KeyOf(slots_[a.slot]) < KeyOf(slots_[b.slot]);
    });
    bool ok = true;
    const std::size_t n = order_.size();
    std::size_t i = 0;
    char digits[24];
    while (ok && i < n) {
      const uint32_t partition = order_[i].partition;
      ok = BeginPartition(partition);
      for (; ok && i < n && order_[i].partition == partition; ++i) {
        if (i + kLookahead < n) __builtin_prefetch(&slots_[order_[i + kLookahead].slot]);
        const Slot& s = slots_[order_[i].slot];
        const Cold& c = cold_[order_[i].slot];
        std::string_view value;
        if (s.count == 1 && c.lone_value != nullptr) {
          value = std::string_view(c.lone_value, c.lone_len);
        } else {
          auto [end, ec] = std::to_chars(digits, digits + sizeof(digits),
                                         static_cast<int64_t>(s.sum));
          (void)ec;  // 24 bytes always hold an int64
          value = std::string_view(digits, static_cast<std::size_t>(end - digits));
        }
        if (s.count > 1) {
          counters_.combine_input_records += s.count;
          counters_.combine_output_records += 1;
        }
        ok = WriteRecord(KeyOf(s), value);
      }
      ok = ok && EndPartition();
    }
    Reset();
    return ok;
  }

  void Reset() {
    slots_.Clear();
    size_ = 0;
    arena_.Reset();
    data_bytes_ = 0;
    usage_ = TableBytes();
  }

  void Release() override {
    slots_ = {};
    cold_ = {};
    order_ = {};
    arena_.Clear();
    size_ = 0;
    mask_ = 0;
    data_bytes_ = 0;
    usage_ = 0;
  }

  bool empty() const override { return size_ == 0 && pending_size_ == 0; }

  const int64_t budget_;
  Arena arena_;               // long keys and lone non-canonical values
  PageArray<Slot> slots_;     // the table: a power of two, at most half full
  PageArray<Cold> cold_;      // per slot: what only inserts and spills touch
  std::vector<SortKey> order_;  // a spill's sort order (capacity kept for the next spill)
  std::size_t mask_ = 0;      // slots_.size() - 1
  std::size_t size_ = 0;      // keys in the table
  int64_t data_bytes_ = 0;    // arena bytes in use
  int64_t usage_ = 0;         // TableBytes() + data_bytes_: what the budget limits
  Probe pending_[kLookahead];  // queued Emits: a ring from pending_head_
  std::size_t pending_head_ = 0;
  std::size_t pending_size_ = 0;
};

}  // namespace

std::unique_ptr<MapOutputBuffer> NewSummingBuffer(App* app, MapOutputOptions options) {
  return std::make_unique<SumBuffer>(app, std::move(options));
}

}  // namespace zmr
