// Map and reduce attempts. Everything here runs on one task thread; the only shared state is the
// cancel flag (read) and the store (whose implementations are per-call safe).
//
// Failure handling, in order: any error or cancellation returns false with a one-line message;
// writers not finished remove their temporary files (RAII); runs a map attempt already finished
// are removed again (RemoveFinishedRuns); a reduce's temporary part file is removed by
// PartFileWriter's destructor unless it was committed by rename.
#include "worker/task_runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/apps.h"
#include "common/partition.h"
#include "common/splits.h"

namespace zmr {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCancelledError = "cancelled";
// Lines (map) or records (reduce) between checks of the cancel flag and the progress clock.
constexpr int64_t kCheckEveryRecords = 1024;
// Also check after this many input bytes, so very long lines do not delay a cancel.
constexpr int64_t kCheckEveryBytes = 4 << 20;
// A key's pending map output values are combined once this many have accumulated.
constexpr std::size_t kCombineThreshold = 32;
// Output buffer of a reduce's part file.
constexpr std::size_t kPartBufferSize = 1 << 20;

bool IsCancelled(const TaskContext& ctx) {
  return ctx.cancelled != nullptr && ctx.cancelled->load(std::memory_order_relaxed);
}

// A path component taken from the wire that cannot escape its parent directory.
bool IsSafeComponent(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

std::string PartName(int64_t partition) {
  char name[32];
  std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(partition));
  return name;
}

std::string BaseName(std::string_view path) {
  std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Reports progress at most every kProgressIntervalMs, and 1.0 once at the end.
class ProgressReporter {
 public:
  explicit ProgressReporter(const TaskContext& ctx)
      : ctx_(ctx), last_(std::chrono::steady_clock::now()) {}

  void Maybe(double fraction) {
    if (!ctx_.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(kProgressIntervalMs)) return;
    last_ = now;
    ctx_.progress(std::clamp(fraction, 0.0, 1.0));
  }
  void Done() {
    if (ctx_.progress) ctx_.progress(1.0);
  }

 private:
  const TaskContext& ctx_;
  std::chrono::steady_clock::time_point last_;
};

// Values of one key packed into one string: for each value a varint length, then its bytes.
// Far smaller than a vector of strings for the tiny values combiners see ("1" takes 2 bytes, not
// 32), which keeps the collector's working set (and cache misses) small.
class PackedValues {
 public:
  void Append(std::string_view value) {
    uint64_t n = value.size();
    while (n >= 0x80) {
      bytes_.push_back(static_cast<char>((n & 0x7F) | 0x80));
      n >>= 7;
    }
    bytes_.push_back(static_cast<char>(n));
    bytes_.append(value);
    ++count_;
  }
  std::size_t count() const { return count_; }
  void Clear() {
    bytes_.clear();
    count_ = 0;
  }
  void Swap(PackedValues& other) {
    bytes_.swap(other.bytes_);
    std::swap(count_, other.count_);
  }

  // Iterates the values in append order.
  class Stream : public ValueStream {
   public:
    explicit Stream(const PackedValues& values) : bytes_(values.bytes_) {}
    bool Next(std::string_view* value) override {
      if (pos_ >= bytes_.size()) return false;
      uint64_t n = 0;
      int shift = 0;
      unsigned char c;
      do {
        c = static_cast<unsigned char>(bytes_[pos_++]);
        n |= static_cast<uint64_t>(c & 0x7F) << shift;
        shift += 7;
      } while (c & 0x80);
      *value = std::string_view(bytes_.data() + pos_, static_cast<std::size_t>(n));
      pos_ += static_cast<std::size_t>(n);
      return true;
    }

   private:
    const std::string& bytes_;
    std::size_t pos_ = 0;
  };

 private:
  std::string bytes_;
  std::size_t count_ = 0;
};

// Collects what a combiner emits for one key (the contract is that it emits under that key).
class PackedCollector : public Emitter {
 public:
  explicit PackedCollector(PackedValues* out) : out_(out) {}
  void Emit(std::string_view, std::string_view value) override { out_->Append(value); }

 private:
  PackedValues* out_;
};

// ---------------------------------------------------------------------------------------------
// Map output collection.
//
// Holds map output in memory, one hash table per partition, and writes one sorted run per
// partition at the end. With a combiner, a key's values are combined whenever kCombineThreshold of
// them are pending, so memory grows with the number of distinct keys, not of records. Without a
// combiner every value is kept in emit order. (A later version replaces this class by a bounded
// sort buffer that spills; the map loop only sees the Emitter interface and WriteRuns.)
class MapOutputCollector : public Emitter {
 public:
  MapOutputCollector(App* app, int64_t num_partitions)
      : app_(app),
        combine_(app->HasCombiner()),
        partitions_(static_cast<std::size_t>(num_partitions)) {}

  void Emit(std::string_view key, std::string_view value) override {
    ++output_records_;
    auto& table = partitions_[static_cast<std::size_t>(
        PartitionOf(key, static_cast<int64_t>(partitions_.size())))];
    auto it = table.find(key);
    if (it == table.end()) it = table.emplace(std::string(key), Entry{}).first;
    Entry& entry = it->second;
    entry.values.Append(value);
    ++entry.raw;
    if (combine_ && entry.values.count() >= entry.combine_at) {
      Combine(it->first, &entry);
      // An app whose combiner does not shrink its input must not be combined on every emit.
      entry.combine_at = std::max(kCombineThreshold, 2 * entry.values.count());
    }
  }

  // Writes partitions 0..R-1 through the store, appending one MapOutput per partition to
  // *outputs. Stops with false on an error or cancellation (then *error is set).
  bool WriteRuns(const AssignMsg& task, const TaskContext& ctx, std::vector<MapOutput>* outputs,
                 std::string* error) {
    for (std::size_t p = 0; p < partitions_.size(); ++p) {
      if (IsCancelled(ctx)) {
        *error = kCancelledError;
        return false;
      }
      auto& table = partitions_[p];
      std::vector<std::pair<const std::string, Entry>*> sorted;
      sorted.reserve(table.size());
      for (auto& kv : table) sorted.push_back(&kv);
      std::sort(sorted.begin(), sorted.end(),
                [](const auto* a, const auto* b) { return a->first < b->first; });

      std::string location;
      auto writer = ctx.store->CreatePartition(task.job_id, task.task_id, task.attempt,
                                               static_cast<int64_t>(p), &location, error);
      if (!writer) return false;
      int64_t keys_done = 0;
      for (auto* kv : sorted) {
        if (++keys_done % kCheckEveryRecords == 0 && IsCancelled(ctx)) {
          *error = kCancelledError;
          return false;
        }
        Entry& entry = kv->second;
        if (combine_ && entry.raw > 0) Combine(kv->first, &entry);
        PackedValues::Stream values(entry.values);
        std::string_view value;
        while (values.Next(&value)) {
          if (!writer->Add(kv->first, value, error)) return false;
        }
      }
      if (!writer->Finish(error)) return false;
      outputs->push_back(MapOutput{static_cast<int64_t>(p), location, writer->bytes(),
                                   writer->records()});
      table = {};  // release this partition's memory before writing the next
    }
    return true;
  }

  int64_t output_records() const { return output_records_; }
  int64_t combine_input_records() const { return combine_input_records_; }
  int64_t combine_output_records() const { return combine_output_records_; }

 private:
  struct Entry {
    PackedValues values;                         // pending values, in emit order
    std::size_t raw = 0;                         // how many have not been through the combiner
    std::size_t combine_at = kCombineThreshold;  // combine when values reach this many
  };
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };
  using Table = std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>>;

  void Combine(const std::string& key, Entry* entry) {
    scratch_.Clear();
    PackedValues::Stream in(entry->values);
    PackedCollector out(&scratch_);
    app_->Combine(key, in, out);
    combine_input_records_ += static_cast<int64_t>(entry->values.count());
    combine_output_records_ += static_cast<int64_t>(scratch_.count());
    entry->values.Swap(scratch_);
    entry->raw = 0;
  }

  App* app_;
  bool combine_;
  std::vector<Table> partitions_;
  PackedValues scratch_;  // combiner output, swapped into the entry
  int64_t output_records_ = 0;
  int64_t combine_input_records_ = 0;
  int64_t combine_output_records_ = 0;
};

// Removes the runs a failed map attempt already finished, and then their directory if empty.
// Only the local store's locations are known to be paths; other stores keep what they have until
// the job's cleanup.
void RemoveFinishedRuns(ShuffleStore* store, const std::vector<MapOutput>& outputs) {
  if (dynamic_cast<LocalFileStore*>(store) == nullptr) return;
  std::error_code ec;
  for (const MapOutput& out : outputs) fs::remove(out.location, ec);
  if (!outputs.empty()) fs::remove(fs::path(outputs.front().location).parent_path(), ec);
}

// The runs a map attempt has finished so far; removed again unless handed to the result.
struct FinishedRuns {
  ShuffleStore* store;
  std::vector<MapOutput> outputs;
  ~FinishedRuns() { RemoveFinishedRuns(store, outputs); }
};

bool MapTaskImpl(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                 std::string* error) {
  if (ctx.store == nullptr) {
    *error = "map task without a shuffle store";
    return false;
  }
  if (task.num_reduces < 1) {
    *error = "invalid num_reduces " + std::to_string(task.num_reduces);
    return false;
  }
  std::unique_ptr<App> app = MakeApp(task.app, task.params, error);
  if (!app) return false;

  MapOutputCollector collector(app.get(), task.num_reduces);
  SplitReader reader(task.split);
  ProgressReporter progress(ctx);
  const double total = static_cast<double>(std::max<int64_t>(reader.total_bytes(), 1));

  std::string_view line;
  std::string path;  // current input file, and its base name for MapContext
  std::string name;
  int64_t next_check_bytes = kCheckEveryBytes;
  while (reader.Next(&line)) {
    if (reader.current_path() != path) {
      path = reader.current_path();
      name = BaseName(path);
    }
    MapContext map_ctx{path, name};
    app->Map(line, map_ctx, collector);
    if (reader.lines() % kCheckEveryRecords == 0 || reader.bytes_consumed() >= next_check_bytes) {
      next_check_bytes = reader.bytes_consumed() + kCheckEveryBytes;
      if (IsCancelled(ctx)) {
        *error = kCancelledError;
        return false;
      }
      progress.Maybe(static_cast<double>(reader.bytes_consumed()) / total);
    }
  }
  if (!reader.error().empty()) {
    *error = reader.error();
    return false;
  }
  if (IsCancelled(ctx)) {
    *error = kCancelledError;
    return false;
  }

  FinishedRuns finished{ctx.store, {}};
  if (!collector.WriteRuns(task, ctx, &finished.outputs, error)) return false;

  result->outputs = std::move(finished.outputs);
  finished.outputs.clear();
  Counters& c = result->counters;
  c["map_input_records"] = reader.lines();
  c["map_input_bytes"] = reader.bytes_consumed();
  c["map_output_records"] = collector.output_records();
  c["combine_input_records"] = collector.combine_input_records();
  c["combine_output_records"] = collector.combine_output_records();
  progress.Done();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reduce.

// Splits the merged stream into groups of equal keys. The group's values are pulled from the merge
// lazily as the app asks for them; the first record of the next group stays in the merge reader's
// buffers (its views remain valid until the merge is advanced again).
class GroupReader : public ValueStream {
 public:
  GroupReader(MergeReader* merge, const TaskContext& ctx) : merge_(merge), ctx_(ctx) {}

  // Skips what is left of the current group and starts the next one. False at the end of the
  // merge, on a merge error or on cancellation (see cancelled() and the merge's error()).
  bool NextGroup(std::string_view* key) {
    std::string_view ignored;
    while (in_group_) Next(&ignored);
    if (!has_lookahead_ && !Pull()) return false;
    has_lookahead_ = false;
    key_.assign(look_key_.data(), look_key_.size());
    first_pending_ = true;
    in_group_ = true;
    ++groups_;
    *key = key_;
    return true;
  }

  // ValueStream: the current group's values, in merge order.
  bool Next(std::string_view* value) override {
    if (!in_group_) return false;
    if (first_pending_) {
      first_pending_ = false;
      *value = look_value_;
      return true;
    }
    if (!Pull()) {
      in_group_ = false;
      return false;
    }
    if (look_key_ != std::string_view(key_)) {
      has_lookahead_ = true;
      in_group_ = false;
      return false;
    }
    *value = look_value_;
    return true;
  }

  bool cancelled() const { return cancelled_; }
  int64_t groups() const { return groups_; }
  int64_t records() const { return records_; }

 private:
  bool Pull() {
    if (stopped_) return false;
    if (records_ % kCheckEveryRecords == 0 && records_ > 0 && IsCancelled(ctx_)) {
      cancelled_ = true;
      stopped_ = true;
      return false;
    }
    if (!merge_->Next(&look_key_, &look_value_)) {
      stopped_ = true;
      return false;
    }
    ++records_;
    return true;
  }

  MergeReader* merge_;
  const TaskContext& ctx_;
  std::string key_;               // the current group's key (copied: the merge moves on)
  std::string_view look_key_;     // last record pulled from the merge
  std::string_view look_value_;
  bool has_lookahead_ = false;    // look_* is the first record of the next group
  bool first_pending_ = false;    // look_value_ is the current group's first, not yet returned
  bool in_group_ = false;
  bool stopped_ = false;          // merge ended, failed or was cancelled
  bool cancelled_ = false;
  int64_t groups_ = 0;
  int64_t records_ = 0;
};

// Writes a part file to a temporary path and renames it into place on Commit. The destructor
// removes the temporary file (and its attempt directory) unless Commit succeeded.
class PartFileWriter : public Emitter {
 public:
  // Creates tmp_dir (retrying if a concurrent attempt removes the shared _temporary parent in
  // between) and opens tmp_dir/file_name. nullptr with *error on failure.
  static std::unique_ptr<PartFileWriter> Create(const fs::path& tmp_dir,
                                                const std::string& file_name,
                                                std::string* error) {
    std::unique_ptr<PartFileWriter> w(new PartFileWriter());
    w->tmp_dir_ = tmp_dir;
    w->tmp_path_ = (tmp_dir / file_name).string();
    for (int tries = 0;; ++tries) {
      std::error_code ec;
      fs::create_directories(tmp_dir, ec);
      if (ec && tries < 3) continue;
      if (ec) {
        *error = "cannot create directory " + tmp_dir.string() + ": " + ec.message();
        return nullptr;
      }
      w->fd_ = ::open(w->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (w->fd_ >= 0) break;
      int err = errno;
      if (err == ENOENT && tries < 3) continue;
      *error = "cannot create " + w->tmp_path_ + ": " + std::generic_category().message(err);
      return nullptr;
    }
    w->buffer_.reserve(kPartBufferSize);
    return w;
  }

  ~PartFileWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
      std::error_code ec;
      if (!tmp_path_.empty()) fs::remove(tmp_path_, ec);
      RemoveTempDirs();
    }
  }
  PartFileWriter(const PartFileWriter&) = delete;
  PartFileWriter& operator=(const PartFileWriter&) = delete;

  // Emitter: one "key\tvalue\n" line.
  void Emit(std::string_view key, std::string_view value) override {
    std::size_t before = buffer_.size();
    buffer_.append(key);
    buffer_.push_back('\t');
    buffer_.append(value);
    buffer_.push_back('\n');
    ++records_;
    bytes_ += static_cast<int64_t>(buffer_.size() - before);
    if (buffer_.size() >= kPartBufferSize) Flush();
  }

  // Flushes, closes and renames to final_path. False with *error on any failure (including an
  // earlier write error).
  bool Commit(const std::string& final_path, std::string* error) {
    Flush();
    if (fd_ >= 0 && ::close(fd_) != 0 && failure_.empty()) {
      failure_ = "cannot write " + tmp_path_ + ": " + std::generic_category().message(errno);
    }
    fd_ = -1;
    if (!failure_.empty()) {
      *error = failure_;
      return false;
    }
    if (::rename(tmp_path_.c_str(), final_path.c_str()) != 0) {
      *error = "cannot rename " + tmp_path_ + " to " + final_path + ": " +
               std::generic_category().message(errno);
      return false;
    }
    committed_ = true;
    RemoveTempDirs();
    return true;
  }

  // The first write error, or empty.
  const std::string& failure() const { return failure_; }
  int64_t records() const { return records_; }
  int64_t bytes() const { return bytes_; }

 private:
  PartFileWriter() = default;

  void Flush() {
    if (buffer_.empty() || !failure_.empty()) {
      buffer_.clear();
      return;
    }
    const char* p = buffer_.data();
    std::size_t left = buffer_.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        failure_ = "cannot write " + tmp_path_ + ": " + std::generic_category().message(errno);
        break;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

  // Removes the attempt's directory and then the shared _temporary directory, each only if empty
  // (other attempts may still be using _temporary).
  void RemoveTempDirs() {
    std::error_code ec;
    if (tmp_dir_.empty()) return;
    fs::remove(tmp_dir_, ec);
    fs::remove(tmp_dir_.parent_path(), ec);
  }

  fs::path tmp_dir_;
  std::string tmp_path_;
  int fd_ = -1;
  std::string buffer_;
  std::string failure_;
  bool committed_ = false;
  int64_t records_ = 0;
  int64_t bytes_ = 0;
};

bool ReduceTaskImpl(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                    std::string* error) {
  if (ctx.store == nullptr) {
    *error = "reduce task without a shuffle store";
    return false;
  }
  if (!IsSafeComponent(task.task_id)) {
    *error = "invalid task id '" + task.task_id + "'";
    return false;
  }
  if (task.output_dir.empty() || task.partition < 0) {
    *error = "reduce task without an output directory or with a negative partition";
    return false;
  }
  std::unique_ptr<App> app = MakeApp(task.app, task.params, error);
  if (!app) return false;

  std::vector<std::unique_ptr<RunReader>> runs;
  runs.reserve(task.inputs.size());
  for (const std::string& location : task.inputs) {
    if (IsCancelled(ctx)) {
      *error = kCancelledError;
      return false;
    }
    std::string open_error;
    auto run = ctx.store->OpenPartition(location, &open_error);
    if (!run) {
      *error = open_error.find(location) != std::string::npos
                   ? open_error
                   : "cannot read map output " + location + ": " + open_error;
      return false;
    }
    runs.push_back(std::move(run));
  }
  MergeReader merge(std::move(runs));

  const fs::path output(task.output_dir);
  const std::string part = PartName(task.partition);
  auto writer = PartFileWriter::Create(
      output / "_temporary" / (task.task_id + ".a" + std::to_string(task.attempt)), part, error);
  if (!writer) return false;

  GroupReader groups(&merge, ctx);
  ProgressReporter progress(ctx);
  const double total = static_cast<double>(std::max<int64_t>(merge.total_bytes(), 1));
  int64_t next_check = kCheckEveryRecords;
  std::string_view key;
  while (groups.NextGroup(&key)) {
    app->Reduce(key, groups, *writer);
    if (!writer->failure().empty()) {
      *error = writer->failure();
      return false;
    }
    if (groups.records() >= next_check) {
      next_check = groups.records() + kCheckEveryRecords;
      if (IsCancelled(ctx)) {
        *error = kCancelledError;
        return false;
      }
      progress.Maybe(static_cast<double>(merge.bytes_read()) / total);
    }
  }
  if (groups.cancelled() || IsCancelled(ctx)) {
    *error = kCancelledError;
    return false;
  }
  if (!merge.error().empty()) {
    *error = merge.error();
    return false;
  }
  if (!writer->Commit((output / part).string(), error)) return false;

  Counters& c = result->counters;
  c["reduce_input_groups"] = groups.groups();
  c["reduce_input_records"] = groups.records();
  c["reduce_output_records"] = writer->records();
  c["reduce_output_bytes"] = writer->bytes();
  progress.Done();
  return true;
}

}  // namespace

bool RunMapTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                std::string* error) {
  try {
    return MapTaskImpl(task, ctx, result, error);
  } catch (const std::exception& e) {
    // An app throwing (e.g. std::regex_error on a pathological line) or memory exhaustion; the
    // collector's writers have cleaned up during unwinding.
    *error = std::string("map task failed: ") + e.what();
    return false;
  }
}

bool RunReduceTask(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                   std::string* error) {
  try {
    return ReduceTaskImpl(task, ctx, result, error);
  } catch (const std::exception& e) {
    *error = std::string("reduce task failed: ") + e.what();
    return false;
  }
}

}  // namespace zmr
