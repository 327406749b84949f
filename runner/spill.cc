// The map-side buffers, spills and merges (see spill.h for the design).
//
// Failure handling: the first failure is recorded (Fail) and everything after it is a no-op; the
// run being written is removed by RunWriter's destructor, spill files by SpillDir's, and final runs
// already reported in *outputs by the caller.
#include "runner/spill.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "runner/varint.h"

namespace zmr {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCancelledError = "cancelled";
// Records (or groups) between checks of the cancel flag and progress during spills and merges.
constexpr int64_t kCheckEveryRecords = 1024;
// The smallest budget honoured: the hash table's minimum size must leave room for some records.
constexpr int64_t kMinBufferBytes = 1 << 10;
// The sorting buffer's index uses 32-bit offsets.
constexpr int64_t kMaxSortingBufferBytes = (int64_t{1} << 32) - 64;
// Read buffer bounds of one spill being merged (the budget is shared by merge_fan_in runs).
constexpr std::size_t kMinSpillReadBuffer = 16 << 10;

// ---------------------------------------------------------------------------------------------
// Small helpers.

void CopyBytes(char* to, const char* from, std::size_t n) {
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
std::string Printable(std::string_view key) {
  std::string out;
  for (std::size_t i = 0; i < key.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

bool IsCancelled(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

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

// A zero-filled array of a trivially copyable T. Arrays of at least kHugePage bytes get memory of
// their own from mmap, aligned to it and advised to use transparent huge pages: a hash table
// probed at random then costs far fewer TLB misses (page walks are dear under a hypervisor) and
// its first touch far fewer page faults; pages are only resident once touched. Smaller ones come
// from the heap (cache-line aligned): a runner process runs attempt after attempt, and a tiny
// attempt's table must not cost an mmap and an munmap (whose TLB shootdown reaches every CPU the
// process's threads ran on).
template <typename T>
class PageArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  PageArray() = default;
  // Throws std::bad_alloc when the memory cannot be mapped.
  explicit PageArray(std::size_t n) : size_(n) {
    if (n == 0) return;
    const std::size_t bytes = n * sizeof(T);
    const bool huge = bytes >= kHugePage;
    if (!huge) {
      const std::size_t rounded = (bytes + kLine - 1) & ~(kLine - 1);
      void* p = std::aligned_alloc(kLine, rounded);
      if (p == nullptr) throw std::bad_alloc();
      std::memset(p, 0, rounded);
      heap_ = true;
      map_ = static_cast<char*>(p);
      data_ = reinterpret_cast<T*>(map_);
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
    data_ = reinterpret_cast<T*>(data);
  }
  ~PageArray() { Free(); }
  PageArray(PageArray&& other) noexcept { *this = std::move(other); }
  PageArray& operator=(PageArray&& other) noexcept {
    if (this != &other) {
      Free();
      map_ = std::exchange(other.map_, nullptr);
      map_bytes_ = std::exchange(other.map_bytes_, 0);
      heap_ = std::exchange(other.heap_, false);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  PageArray(const PageArray&) = delete;
  PageArray& operator=(const PageArray&) = delete;

  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  std::size_t size() const { return size_; }
  // Zeroes every element.
  void Clear() {
    if (size_ > 0) std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T));
  }

 private:
  static constexpr std::size_t kHugePage = 2 << 20;
  static constexpr std::size_t kLine = 64;
  void Free() {
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
    size_ = 0;
  }
  char* map_ = nullptr;          // the mapping, or the heap block when heap_
  std::size_t map_bytes_ = 0;
  bool heap_ = false;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// Bump allocation from chunks that are kept and reused after Reset (so a buffer that spills again
// and again touches the same memory). Allocations larger than a quarter chunk get their own block,
// freed by Reset.
class Arena {
 public:
  explicit Arena(std::size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}

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

  void Reset() {
    large_.clear();
    next_chunk_ = 0;
    cur_ = nullptr;
    left_ = 0;
  }

  void Clear() {
    Reset();
    chunks_.clear();
    chunks_.shrink_to_fit();
  }

 private:
  const std::size_t chunk_bytes_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<std::unique_ptr<char[]>> large_;
  std::size_t next_chunk_ = 0;
  char* cur_ = nullptr;
  std::size_t left_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Value chains of the combining buffer: a key's values as one byte stream (varint length, bytes)
// over fixed-size slabs linked by a pointer in their first bytes.

constexpr std::size_t kSlabSize = 64;
constexpr std::size_t kSlabHeader = sizeof(char*);
constexpr std::size_t kSlabData = kSlabSize - kSlabHeader;

inline char* NextSlab(const char* slab) {
  char* next;
  std::memcpy(&next, slab, sizeof(next));
  return next;
}
inline void SetNextSlab(char* slab, char* next) { std::memcpy(slab, &next, sizeof(next)); }

// Reads `count` values from a chain. A value that crosses slabs is copied into *scratch.
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

// The values of one key group during a merge: the group's first record (copied by the caller),
// then either the second (a view into the merge) and the merge's records for as long as the key
// matches, or nothing (a group of one, whose following record the caller has already seen). The
// first record of the next group is left as the lookahead.
class MergeGroup final : public ValueStream {
 public:
  MergeGroup(MergeReader* merge, std::string_view key, std::string_view first)
      : merge_(merge), key_(key), first_(first) {}

  // The group goes on with this record (same key).
  void SetSecond(std::string_view second) {
    second_ = second;
    has_second_ = true;
  }
  // The group has one record; this is the next group's first.
  void SetLookahead(std::string_view key, std::string_view value) {
    look_key_ = key;
    look_value_ = value;
    has_lookahead_ = true;
  }

  bool Next(std::string_view* value) override {
    switch (state_) {
      case State::kFirst:
        state_ = has_second_ ? State::kSecond : State::kDone;
        *value = first_;
        ++count_;
        return true;
      case State::kSecond:
        state_ = State::kMore;
        *value = second_;
        ++count_;
        return true;
      case State::kMore: {
        std::string_view key;
        if (!merge_->Next(&key, value)) {
          state_ = State::kDone;
          return false;
        }
        if (key != key_) {
          look_key_ = key;
          look_value_ = *value;
          has_lookahead_ = true;
          state_ = State::kDone;
          return false;
        }
        ++count_;
        return true;
      }
      case State::kDone:
        return false;
    }
    return false;
  }

  // Skips the values the combiner did not read.
  void Drain() {
    std::string_view ignored;
    while (Next(&ignored)) {
    }
  }
  int64_t count() const { return count_; }
  bool has_lookahead() const { return has_lookahead_; }
  std::string_view look_key() const { return look_key_; }
  std::string_view look_value() const { return look_value_; }

 private:
  enum class State { kFirst, kSecond, kMore, kDone };
  MergeReader* merge_;
  std::string_view key_;
  std::string_view first_;
  std::string_view second_;
  bool has_second_ = false;
  State state_ = State::kFirst;
  int64_t count_ = 0;
  bool has_lookahead_ = false;
  std::string_view look_key_;
  std::string_view look_value_;
};

// Writes what a combiner emits into a run, counting it; the first write error sticks.
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

}  // namespace

// =============================================================================================
// SpillDir, merge planning and merging.

SpillDir::SpillDir(std::string path) : path_(std::move(path)) {}

SpillDir::~SpillDir() {
  if (!created_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string SpillDir::NewRunPath(const char* prefix, int64_t partition, std::string* error) {
  if (!created_) {
    std::error_code ec;
    fs::create_directories(path_, ec);
    if (ec) {
      *error = "cannot create spill directory " + path_ + ": " + ec.message();
      return {};
    }
    created_ = true;
  }
  char name[96];
  std::snprintf(name, sizeof(name), "/%s-%06lld.p%05lld.run", prefix,
                static_cast<long long>(next_++), static_cast<long long>(partition));
  return path_ + name;
}

void SpillDir::RemoveRun(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

std::vector<std::pair<std::size_t, std::size_t>> PlanMergePass(std::size_t runs, int fan_in) {
  const std::size_t f = static_cast<std::size_t>(std::max(fan_in, 2));
  std::vector<std::pair<std::size_t, std::size_t>> plan;
  if (runs <= f) return plan;
  if ((runs + f - 1) / f <= f) {
    // This pass can bring the count down to f: merge only as many runs as that takes (a group
    // of g runs removes g - 1).
    std::size_t excess = runs - f;
    std::size_t begin = 0;
    while (excess > 0) {
      std::size_t size = std::min(f, excess + 1);
      plan.emplace_back(begin, begin + size);
      begin += size;
      excess -= size - 1;
    }
    return plan;
  }
  for (std::size_t begin = 0; begin < runs; begin += f) {
    std::size_t end = std::min(runs, begin + f);
    if (end - begin >= 2) plan.emplace_back(begin, end);
  }
  return plan;
}

bool MergeRunsInto(std::vector<std::unique_ptr<RunReader>> runs, RunWriter* out, App* combiner,
                   CombineGroups groups, const MergeControl& control, MergeStats* stats,
                   MergeFailure* failure, std::string* error) {
  MergeReader merge(std::move(runs));
  RunCollector collector;
  collector.Reset(out);
  int64_t steps = 0;
  auto stop_requested = [&]() {
    if (++steps % kCheckEveryRecords != 0) return false;
    if (IsCancelled(control.cancelled)) {
      *error = kCancelledError;
      return true;
    }
    if (control.progress) control.progress(merge.bytes_read());
    return false;
  };
  auto read_failed = [&]() {
    stats->bytes_read = merge.bytes_read();
    if (merge.error().empty()) return false;
    *error = merge.error();
    failure->run = merge.failed_run();
    failure->fault = merge.fault();
    return true;
  };
  // A record the writer refused: if a run is corrupt (records out of order), reading on until its
  // checksum fails names it; otherwise the write error stands.
  auto write_failed = [&]() {
    std::string_view k, v;
    while (merge.Next(&k, &v)) {
      if (stop_requested()) return false;
    }
    read_failed();
    return false;
  };

  std::string key;    // the current group's key and first value (copied: the merge moves on)
  std::string first;
  std::string_view k, v;
  bool combined = false;
  bool have = merge.Next(&k, &v);
  while (have) {
    if (stop_requested()) return false;
    if (combiner == nullptr) {
      ++stats->records_read;
      if (!out->Add(k, v, error)) return write_failed();
      have = merge.Next(&k, &v);
      continue;
    }
    key.assign(k.data(), k.size());
    first.assign(v.data(), v.size());
    have = merge.Next(&k, &v);
    const bool single = !have || k != std::string_view(key);
    if (single && groups == CombineGroups::kMultiple) {
      ++stats->records_read;
      if (!out->Add(key, first, error)) return write_failed();
      continue;
    }
    MergeGroup group(&merge, key, first);
    if (!single) {
      group.SetSecond(v);
    } else if (have) {
      group.SetLookahead(k, v);
    }
    combiner->Combine(key, group, collector);
    combined = true;
    group.Drain();
    stats->records_read += group.count();
    stats->combine_input_records += group.count();
    if (!collector.failure().empty()) {
      *error = collector.failure();
      return false;
    }
    have = group.has_lookahead();
    if (have) {
      k = group.look_key();
      v = group.look_value();
    }
  }
  if (read_failed()) return false;
  if (combined) {
    std::string flush_error;
    if (!combiner->FlushCombine(collector, &flush_error)) {
      *error = flush_error.empty() ? "combiner failed" : flush_error;
      return false;
    }
    if (!collector.failure().empty()) {
      *error = collector.failure();
      return false;
    }
    std::string app_failure = combiner->Failure();
    if (!app_failure.empty()) {
      *error = app_failure;
      return false;
    }
  }
  stats->combine_output_records += collector.records();
  return true;
}

// =============================================================================================
// MapOutputBuffer: spills, the final write and the merges.

class MapOutputBuffer::RunEmitter final : public Emitter {
 public:
  void Emit(std::string_view key, std::string_view value) override { inner_.Emit(key, value); }
  RunCollector inner_;
};

namespace {

MapOutputOptions Normalized(MapOutputOptions options) {
  options.num_partitions = std::max<int64_t>(options.num_partitions, 1);
  options.buffer_bytes = std::max(options.buffer_bytes, kMinBufferBytes);
  options.merge_fan_in = std::max(options.merge_fan_in, 2);
  if (!options.combine) options.combine_eagerly = false;
  return options;
}

}  // namespace

MapOutputBuffer::MapOutputBuffer(App* app, MapOutputOptions options)
    : app_(app),
      options_(Normalized(std::move(options))),
      spill_dir_(options_.spill_dir),
      combine_out_(std::make_unique<RunEmitter>()),
      spill_runs_(static_cast<std::size_t>(options_.num_partitions)) {}

MapOutputBuffer::~MapOutputBuffer() {
  writer_.reset();  // removes a half-written run before the directory goes
}

bool MapOutputBuffer::Fail(std::string error) {
  if (failure_.empty()) failure_ = error.empty() ? "map output failed" : std::move(error);
  return false;
}

bool MapOutputBuffer::Cancelled() const { return IsCancelled(options_.cancelled); }

int64_t MapOutputBuffer::PartitionOf(std::string_view key) {
  if (options_.num_partitions == 1) return 0;
  int64_t p = app_->Partition(key, options_.num_partitions);
  if (p < 0 || p >= options_.num_partitions) {
    Fail("partitioner returned " + std::to_string(p) + " for key '" + Printable(key) + "' (" +
         std::to_string(options_.num_partitions) + " partitions)");
    return -1;
  }
  return p;
}

bool MapOutputBuffer::Spill() {
  if (failed()) return false;
  sink_ = Sink::kSpill;
  if (!WriteSorted()) return Fail("");
  ++counters_.spills;
  return true;
}

bool MapOutputBuffer::SpillSingle(int64_t partition, std::string_view key,
                                  std::string_view value) {
  if (failed()) return false;
  sink_ = Sink::kSpill;
  if (!BeginPartition(partition) || !WriteRecord(key, value) || !EndPartition()) return false;
  ++counters_.spills;
  return true;
}

bool MapOutputBuffer::BeginPartition(int64_t partition) {
  if (failed()) return false;
  std::string error;
  writer_.reset();
  writer_partition_ = partition;
  combined_in_partition_ = false;
  if (sink_ == Sink::kSpill) {
    writer_path_ = spill_dir_.NewRunPath("spill", partition, &error);
    if (writer_path_.empty()) return Fail(error);
    writer_ = RunWriter::Create(writer_path_, &error);
  } else {
    while (next_final_partition_ < partition) {
      if (!CreateEmptyFinalRun(next_final_partition_++)) return false;
    }
    writer_ = store_->CreatePartition(job_id_, task_id_, attempt_, partition, &writer_path_,
                                      &error);
    next_final_partition_ = partition + 1;
  }
  if (!writer_) return Fail(error);
  combine_out_->inner_.Reset(writer_.get());
  return true;
}

bool MapOutputBuffer::WriteRecord(std::string_view key, std::string_view value) {
  std::string error;
  if (!writer_->Add(key, value, &error)) return Fail(error);
  if (++groups_written_ % kCheckEveryRecords == 0 && Cancelled()) return Fail(kCancelledError);
  return true;
}

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

bool MapOutputBuffer::EndPartition() {
  if (failed()) return false;
  std::string error;
  if (combined_in_partition_) {
    if (!app_->FlushCombine(*combine_out_, &error)) {
      return Fail(error.empty() ? "combiner failed" : error);
    }
    if (!combine_out_->inner_.failure().empty()) return Fail(combine_out_->inner_.failure());
    std::string app_failure = app_->Failure();
    if (!app_failure.empty()) return Fail(app_failure);
  }
  counters_.combine_output_records += combine_out_->inner_.records();
  combine_out_->inner_.Reset(nullptr);
  if (!writer_->Finish(&error)) return Fail(error);
  counters_.spilled_records += writer_->records();
  if (sink_ == Sink::kSpill) {
    spill_runs_[static_cast<std::size_t>(writer_partition_)].push_back(writer_path_);
    spill_bytes_ += writer_->bytes();
  } else {
    outputs_->push_back(
        MapOutput{writer_partition_, writer_path_, writer_->bytes(), writer_->records()});
  }
  writer_.reset();
  return true;
}

bool MapOutputBuffer::CreateEmptyFinalRun(int64_t partition) {
  std::string location, error;
  auto writer =
      store_->CreatePartition(job_id_, task_id_, attempt_, partition, &location, &error);
  if (!writer || !writer->Finish(&error)) return Fail(error);
  outputs_->push_back(MapOutput{partition, location, writer->bytes(), 0});
  return true;
}

bool MapOutputBuffer::Finish(ShuffleStore* store, const std::string& job_id,
                             const std::string& task_id, int64_t attempt,
                             std::vector<MapOutput>* outputs, std::string* error) {
  if (finished_) Fail("map output finished twice");
  finished_ = true;
  store_ = store;
  job_id_ = job_id;
  task_id_ = task_id;
  attempt_ = attempt;
  outputs_ = outputs;
  DrainPending();
  if (!failed() && Cancelled()) Fail(kCancelledError);
  if (!failed()) {
    if (counters_.spills == 0) {
      // Everything is in memory: sort it and write the final runs directly.
      sink_ = Sink::kFinal;
      if (WriteSorted()) {
        while (next_final_partition_ < options_.num_partitions &&
               CreateEmptyFinalRun(next_final_partition_++)) {
        }
      } else {
        Fail("");
      }
    } else {
      if (!empty()) Spill();
      Release();
      for (int64_t p = 0; p < options_.num_partitions && !failed(); ++p) MergePartition(p);
    }
  }
  if (failed()) {
    *error = failure_;
    return false;
  }
  return true;
}

bool MapOutputBuffer::MergePartition(int64_t partition) {
  std::vector<std::string> runs = std::move(spill_runs_[static_cast<std::size_t>(partition)]);
  const int fan_in = options_.merge_fan_in;
  std::string error;
  while (runs.size() > static_cast<std::size_t>(fan_in)) {
    std::vector<std::string> next;
    std::size_t at = 0;
    for (auto [begin, end] : PlanMergePass(runs.size(), fan_in)) {
      for (; at < begin; ++at) next.push_back(std::move(runs[at]));
      std::string path = spill_dir_.NewRunPath("merge", partition, &error);
      if (path.empty()) return Fail(error);
      auto out = RunWriter::Create(path, &error);
      if (!out) return Fail(error);
      std::vector<std::string> group(std::make_move_iterator(runs.begin() + begin),
                                     std::make_move_iterator(runs.begin() + end));
      if (!MergeFiles(group, out.get())) return false;
      if (!out->Finish(&error)) return Fail(error);
      counters_.spilled_records += out->records();
      for (const std::string& merged : group) SpillDir::RemoveRun(merged);
      next.push_back(std::move(path));
      at = end;
    }
    for (; at < runs.size(); ++at) next.push_back(std::move(runs[at]));
    runs = std::move(next);
  }
  std::string location;
  auto out = store_->CreatePartition(job_id_, task_id_, attempt_, partition, &location, &error);
  if (!out) return Fail(error);
  if (!MergeFiles(runs, out.get())) return false;
  if (!out->Finish(&error)) return Fail(error);
  counters_.spilled_records += out->records();
  outputs_->push_back(MapOutput{partition, location, out->bytes(), out->records()});
  for (const std::string& merged : runs) SpillDir::RemoveRun(merged);
  return true;
}

bool MapOutputBuffer::MergeFiles(const std::vector<std::string>& paths, RunWriter* out) {
  const std::size_t read_buffer = std::clamp<std::size_t>(
      static_cast<std::size_t>(options_.buffer_bytes / (options_.merge_fan_in + 1)),
      kMinSpillReadBuffer, kRunReadBufferBytes);
  std::string error;
  std::vector<std::unique_ptr<RunReader>> readers;
  readers.reserve(paths.size());
  for (const std::string& path : paths) {
    auto reader = RunReader::Open(path, &error, nullptr, read_buffer);
    if (!reader) return Fail(error);
    readers.push_back(std::move(reader));
  }
  MergeControl control;
  control.cancelled = options_.cancelled;
  if (options_.merge_progress) {
    control.progress = [this](int64_t bytes_read) {
      const double total = static_cast<double>(std::max<int64_t>(spill_bytes_, 1));
      options_.merge_progress(
          std::min(1.0, static_cast<double>(merged_bytes_ + bytes_read) / total));
    };
  }
  MergeStats stats;
  MergeFailure ignored;
  bool ok = MergeRunsInto(
      std::move(readers), out, options_.combine ? app_ : nullptr,
      options_.combine_eagerly ? CombineGroups::kMultiple : CombineGroups::kAll, control, &stats,
      &ignored, &error);
  merged_bytes_ += stats.bytes_read;
  counters_.combine_input_records += stats.combine_input_records;
  counters_.combine_output_records += stats.combine_output_records;
  return ok || Fail(error);
}

// =============================================================================================
// The combining buffer: a hash table from key to a chain of values.
//
// Layout for few cache misses per record: the slot array (8 bytes per slot: hash tag and entry
// index) leads to an Entry of two cache lines, the first holding the key (inline up to
// kInlineKey bytes) and the second the first slab of the key's values. A word count touches a
// slot and one entry per record. A key's values are combined when they fill their slab.

namespace {

// The combining tables' sizing from the sort-buffer budget: blocks of the key arena (1/32 of the
// budget, 4 KiB..1 MiB), and the distinct keys room is made for at first (a power of two, 4..1024).
std::size_t ArenaBlockBytes(int64_t buffer_bytes) {
  return static_cast<std::size_t>(std::clamp<int64_t>(buffer_bytes / 32, 4 << 10, 1 << 20));
}
std::size_t InitialEntries(int64_t budget) {
  return std::bit_floor(static_cast<std::size_t>(std::clamp<int64_t>(budget / 1024, 4, 1024)));
}

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

// =============================================================================================
// The summing buffer: the combining buffer for a combiner declared to be an int64 sum
// (CombinerKind::kInt64Sum, e.g. the built-in wordcount's). Each distinct key holds a running sum
// and a count instead of a chain of value bytes, and a spill writes exactly what the generic
// combining buffer would: a key with one value gets that value's bytes, a key with more the
// decimal of their sum (what the combiner would emit).
//
// Layout for one cache miss per record: an open-addressing table of 32-byte slots (linear probing,
// at most half full) holding the key itself when it has at most kInlineKey bytes (compared as two
// integers), the sum and the count, so a probe of a short key reads one cache line. Emits of short
// keys with canonical values are queued kLookahead deep, their slots prefetched when they arrive
// and added when they leave the queue, so the misses of consecutive records overlap. What a spill
// needs but a probe does not (partition, a lone value that is not canonical decimal) lives in a
// parallel array; long keys and such values live in an arena reset at every spill.

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

// =============================================================================================
// The sorting buffer: records appended to one buffer, index growing down from its end.

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

std::unique_ptr<MapOutputBuffer> MapOutputBuffer::Create(App* app, MapOutputOptions options) {
  if (options.combine && options.combine_eagerly) {
    if (app->KnownCombiner() == CombinerKind::kInt64Sum) {
      return std::make_unique<SumBuffer>(app, std::move(options));
    }
    return std::make_unique<CombiningBuffer>(app, std::move(options));
  }
  return std::make_unique<SortingBuffer>(app, std::move(options));
}

}  // namespace zmr
