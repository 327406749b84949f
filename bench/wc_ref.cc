// wc_ref: the single-threaded reference word count of the benchmarks (bench/run.sh), the per-core
// yardstick zmr's wordcount is compared with.
//
//   wc_ref FILE... > counts
//
// Words are exactly zmr's (apps/text.h): maximal runs of ASCII letters, lower-cased; a file's end
// ends a word. Prints "word\tcount" lines sorted bytewise by word (the order of LC_ALL=C sort, and
// of zmr's part files). Reads each file with read(2) into one 1 MiB buffer, lower-cases words in
// place and counts them in an open-addressing hash table (linear probing, power-of-two capacity
// kept at most half full, short keys stored in the slot, slots prefetched a batch of words ahead).
// Nothing is allocated per word.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::array<char, 256> MakeLetterTable() {
  std::array<char, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = static_cast<char>(c);
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = static_cast<char>(c - 'A' + 'a');
  return table;
}
constexpr std::array<char, 256> kLetter = MakeLetterTable();

inline uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// A fast 64-bit hash of short strings: 8 bytes at a time, multiply-xorshift, murmur3's finaliser.
inline uint64_t Hash(const char* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xbf58476d1ce4e5b9ULL);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94d049bb133111ebULL;
  }
  return Mix(h);
}

// Word -> count. Slots are 32 bytes: a word of at most 16 bytes is stored in the slot itself (two
// zero-padded 8-byte halves, compared as two integers: no memcmp, no second cache miss); a longer
// word's bytes live in an arena and the slot holds their offset.
class CountTable {
 public:
  static uint64_t ShortHash(uint64_t k0, uint64_t k1, uint32_t len) {
    return Mix((k0 * 0x9e3779b97f4a7c15ULL) ^ (k1 * 0xbf58476d1ce4e5b9ULL) ^ len);
  }

  CountTable() : slots_(1u << 16) { mask_ = slots_.size() - 1; }

  // A word's hash and, for a word of at most 16 bytes, its zero-padded halves.
  struct Probe {
    const char* word;
    uint32_t len;
    uint64_t k0, k1, hash;
  };

  static Probe Prepare(const char* word, uint32_t len) {
    Probe p{word, len, 0, 0, 0};
    if (len <= 16) {
      std::memcpy(&p.k0, word, len < 8 ? len : 8);
      if (len > 8) std::memcpy(&p.k1, word + 8, len - 8);
      p.hash = ShortHash(p.k0, p.k1, len);
    } else {
      p.hash = Hash(word, len);
    }
    return p;
  }

  // Starts loading the slot where the probe for `p` begins (a hint; Add stays correct without).
  void Prefetch(const Probe& p) const { __builtin_prefetch(&slots_[p.hash & mask_]); }

  // Counts one occurrence of p's word; p.word must stay valid during the call only.
  void Add(const Probe& p) {
    const uint32_t tag = static_cast<uint32_t>(p.hash >> 32);
    size_t i = p.hash & mask_;
    for (;;) {
      Slot& s = slots_[i];
      if (s.length == 0) {
        s.length = p.len;
        s.tag = tag;
        s.count = 1;
        if (p.len <= 16) {
          s.k0 = p.k0;
          s.k1 = p.k1;
        } else {
          s.k0 = arena_.size();
          arena_.append(p.word, p.len);
        }
        if (++size_ * 2 > slots_.size()) Grow();
        return;
      }
      if (s.length == p.len && s.tag == tag &&
          (p.len <= 16 ? s.k0 == p.k0 && s.k1 == p.k1
                       : std::memcmp(arena_.data() + s.k0, p.word, p.len) == 0)) {
        ++s.count;
        return;
      }
      i = (i + 1) & mask_;
    }
  }

  // Writes "word\tcount\n" lines sorted bytewise by word.
  void Print(std::FILE* out) const {
    std::vector<std::pair<std::string_view, uint64_t>> used;
    used.reserve(size_);
    for (const Slot& s : slots_) {
      if (s.length != 0) used.emplace_back(Key(s), s.count);
    }
    std::sort(used.begin(), used.end());
    std::string buffer;
    buffer.reserve(1 << 20);
    char digits[24];
    for (const auto& [key, count] : used) {
      buffer.append(key);
      buffer.push_back('\t');
      const int n =
          std::snprintf(digits, sizeof(digits), "%llu\n", static_cast<unsigned long long>(count));
      buffer.append(digits, static_cast<size_t>(n));
      if (buffer.size() >= (1u << 20)) {
        std::fwrite(buffer.data(), 1, buffer.size(), out);
        buffer.clear();
      }
    }
    std::fwrite(buffer.data(), 1, buffer.size(), out);
  }

 private:
  struct Slot {
    uint64_t k0 = 0;      // key bytes 0..7 (zero-padded), or the arena offset of a long key
    uint64_t k1 = 0;      // key bytes 8..15 (zero-padded)
    uint32_t length = 0;  // key length; 0: empty slot
    uint32_t tag = 0;     // the hash's high half, to skip most unequal keys cheaply
    uint64_t count = 0;
  };

  std::string_view Key(const Slot& s) const {
    if (s.length > 16) return std::string_view(arena_.data() + s.k0, s.length);
    return std::string_view(reinterpret_cast<const char*>(&s.k0), s.length);
  }

  void Grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.length == 0) continue;
      const uint64_t h = s.length <= 16 ? ShortHash(s.k0, s.k1, s.length)
                                        : Hash(arena_.data() + s.k0, s.length);
      size_t i = h & mask_;
      while (slots_[i].length != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::string arena_;  // bytes of the keys longer than 16
};

constexpr size_t kReadBuffer = 1 << 20;
constexpr size_t kBatch = 16;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: wc_ref FILE... > counts\n");
    return 2;
  }
  CountTable table;
  // The buffer keeps a word cut by the end of one read at its front for the next read; a word
  // longer than the buffer grows it.
  std::vector<char> buffer(kReadBuffer);
  // Words are counted in batches: hashed and their slots prefetched first, then added, so that
  // the cache misses of a batch overlap instead of coming one after another.
  CountTable::Probe batch[kBatch];
  size_t batched = 0;
  auto flush = [&] {
    for (size_t b = 0; b < batched; ++b) table.Add(batch[b]);
    batched = 0;
  };
  for (int a = 1; a < argc; ++a) {
    const int fd = open(argv[a], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::perror(argv[a]);
      return 1;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t carry = 0;  // bytes of a partial word at the buffer's front
    for (;;) {
      if (carry == buffer.size()) buffer.resize(buffer.size() * 2);
      const ssize_t n = read(fd, buffer.data() + carry, buffer.size() - carry);
      if (n < 0) {
        std::perror(argv[a]);
        return 1;
      }
      const bool eof = n == 0;
      char* p = buffer.data();
      char* end = p + carry + n;
      carry = 0;
      while (p < end) {
        while (p < end && kLetter[static_cast<unsigned char>(*p)] == 0) ++p;
        char* start = p;
        // Lower-case in place while finding the word's end.
        while (p < end) {
          const char c = kLetter[static_cast<unsigned char>(*p)];
          if (c == 0) break;
          *p++ = c;
        }
        if (p == start) break;
        if (p == end && !eof) {
          flush();  // before the move below: probes of long words point into the buffer
          carry = static_cast<size_t>(end - start);
          std::memmove(buffer.data(), start, carry);
          break;
        }
        batch[batched] = CountTable::Prepare(start, static_cast<uint32_t>(p - start));
        table.Prefetch(batch[batched]);
        if (++batched == kBatch) flush();
      }
      flush();  // before the next read overwrites the words the probes point at
      if (eof) break;
    }
    close(fd);
  }
  table.Print(stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
