// Map and reduce attempts. Everything here runs on one thread; the only shared state is the cancel
// flag (read) and the store (whose implementations are per-call safe).
//
// Failure handling, in order: any error, app failure or cancellation returns false with a
// one-line message; writers not finished remove their temporary files (RAII); spill files go with
// the MapOutputBuffer or the reduce's SpillDir; runs a map attempt already finished are removed
// again (FinishedRuns); an unfinished part file is removed by PartFileWriter's destructor. A part
// file that was finished is left for the coordinator to commit.
#include "runner/task_runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "apps/registry.h"
#include "common/layout.h"
#include "common/splits.h"
#include "runner/map_output_buffer.h"
#include "runner/merge.h"
#include "runner/merge_reader.h"

namespace zmr {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCancelledError = "cancelled";
// Lines (map) or records (reduce) between checks of the cancel flag, app failure and progress.
constexpr int64_t kCheckEveryRecords = 1024;
// Also check after this many input bytes, so very long lines do not delay a cancel.
constexpr int64_t kCheckEveryBytes = 4 << 20;
// Output buffer of a part file.
constexpr std::size_t kPartBufferSize = 1 << 20;
// Share of a map's progress that is reading its input; the rest is the final merge of spills.
constexpr double kMapReadShare = 0.9;

bool IsCancelled(const TaskContext& ctx) {
  return ctx.cancelled != nullptr && ctx.cancelled->load(std::memory_order_relaxed);
}

std::string BaseName(std::string_view path) {
  std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string AttemptName(const AssignMsg& task) {
  return layout::AttemptName(task.task_id, task.attempt);
}

// Where an attempt's spills and intermediate merges go (see TaskContext::attempt_dir).
std::string SpillDirFor(const AssignMsg& task, const TaskContext& ctx) {
  if (!ctx.attempt_dir.empty()) {
    return (fs::path(ctx.attempt_dir) / layout::kSpillSubdir).string();
  }
  if (auto* local = dynamic_cast<LocalFileStore*>(ctx.store)) {
    return layout::MapSpillDir(local->work_dir(), task.job_id, task.task_id, task.attempt);
  }
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  if (ec) tmp = "/tmp";
  return (tmp / ("zmr-spill-" + task.job_id + "-" + AttemptName(task) + "-" +
                 std::to_string(::getpid())))
      .string();
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

// The app of an attempt: ctx.app, or the built-in app the task names (owned here).
class AttemptApp {
 public:
  bool Resolve(const AssignMsg& task, const TaskContext& ctx, std::string* error) {
    if (ctx.app != nullptr) {
      app_ = ctx.app;
      return true;
    }
    owned_ = MakeApp(task.app, task.params, error);
    app_ = owned_.get();
    return app_ != nullptr;
  }
  App* get() const { return app_; }

 private:
  std::unique_ptr<App> owned_;
  App* app_ = nullptr;
};

// Creates the attempt directory and calls app->Start.
bool StartApp(const AssignMsg& task, const TaskContext& ctx, App* app, std::string* error) {
  if (!ctx.attempt_dir.empty()) {
    std::error_code ec;
    fs::create_directories(ctx.attempt_dir, ec);
    if (ec) {
      *error = "cannot create attempt directory " + ctx.attempt_dir + ": " + ec.message();
      return false;
    }
  }
  AttemptInfo info;
  info.job_id = task.job_id;
  info.task_id = task.task_id;
  info.attempt = task.attempt;
  info.is_map = task.kind == TaskKind::kMap;
  info.partition = task.partition;
  info.num_reduces = task.num_reduces;
  info.work_dir = ctx.attempt_dir;
  if (info.is_map && !task.split.empty()) {
    info.input_file = task.split.front().path;
    info.input_start = task.split.front().start;
    info.input_length = task.split.front().end - task.split.front().start;
  }
  info.set_status = ctx.status;
  if (!app->Start(info, error)) {
    if (error->empty()) *error = "the app failed to start";
    return false;
  }
  return true;
}

// Sets *error to the app's failure, if it has one.
bool AppFailed(const App* app, std::string* error) {
  std::string failure = app->Failure();
  if (failure.empty()) return false;
  *error = std::move(failure);
  return true;
}

// Writes a part file under a temporary directory. The file stays where it is after Finish (the
// coordinator commits it); the destructor removes it, and its directory and the shared
// _temporary directory if they are empty, unless Finish succeeded.
class PartFileWriter : public Emitter {
 public:
  // Creates tmp_dir (retrying if a concurrent attempt removes the shared _temporary parent in
  // between) and opens tmp_dir/file_name. nullptr with *error on failure.
  static std::unique_ptr<PartFileWriter> Create(const fs::path& tmp_dir,
                                                const std::string& file_name,
                                                std::string* error) {
    std::unique_ptr<PartFileWriter> w(new PartFileWriter());
    w->tmp_dir_ = tmp_dir;
    w->path_ = (tmp_dir / file_name).string();
    for (int tries = 0;; ++tries) {
      std::error_code ec;
      fs::create_directories(tmp_dir, ec);
      if (ec && tries < 3) continue;
      if (ec) {
        *error = "cannot create directory " + tmp_dir.string() + ": " + ec.message();
        return nullptr;
      }
      w->fd_ = ::open(w->path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (w->fd_ >= 0) break;
      int err = errno;
      if (err == ENOENT && tries < 3) continue;
      *error = "cannot create " + w->path_ + ": " + std::generic_category().message(err);
      return nullptr;
    }
    w->buffer_.reserve(kPartBufferSize);
    return w;
  }

  ~PartFileWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!kept_) {
      std::error_code ec;
      if (!path_.empty()) fs::remove(path_, ec);
      RemoveTempDirs();
    }
  }
  PartFileWriter(const PartFileWriter&) = delete;
  PartFileWriter& operator=(const PartFileWriter&) = delete;

  // Emitter: one "key\tvalue\n" line, or "key\n" when the value is empty.
  void Emit(std::string_view key, std::string_view value) override {
    std::size_t before = buffer_.size();
    buffer_.append(key.data(), key.size());
    if (!value.empty()) {
      buffer_.push_back('\t');
      buffer_.append(value.data(), value.size());
    }
    buffer_.push_back('\n');
    ++records_;
    payload_bytes_ += static_cast<int64_t>(key.size() + value.size());
    bytes_ += static_cast<int64_t>(buffer_.size() - before);
    if (buffer_.size() >= kPartBufferSize) Flush();
  }

  // Flushes and closes; the file stays. False with *error on any failure (including an earlier
  // write error).
  bool Finish(std::string* error) {
    Flush();
    if (fd_ >= 0 && ::close(fd_) != 0 && failure_.empty()) {
      failure_ = "cannot write " + path_ + ": " + std::generic_category().message(errno);
    }
    fd_ = -1;
    if (!failure_.empty()) {
      *error = failure_;
      return false;
    }
    kept_ = true;
    return true;
  }

  bool failed() const { return !failure_.empty(); }
  // The first write error, or empty.
  const std::string& failure() const { return failure_; }
  const std::string& path() const { return path_; }
  int64_t records() const { return records_; }
  int64_t bytes() const { return bytes_; }                  // bytes of the file
  int64_t payload_bytes() const { return payload_bytes_; }  // key + value bytes emitted

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
        failure_ = "cannot write " + path_ + ": " + std::generic_category().message(errno);
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
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  std::string failure_;
  bool kept_ = false;
  int64_t records_ = 0;
  int64_t bytes_ = 0;
  int64_t payload_bytes_ = 0;
};

// The part file of an attempt: OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN.
std::unique_ptr<PartFileWriter> CreatePartFile(const AssignMsg& task, std::string* error) {
  std::error_code ec;
  fs::path output = fs::absolute(task.output_dir, ec);
  if (ec) output = task.output_dir;
  return PartFileWriter::Create(
      output.lexically_normal() / layout::kTemporaryDir / AttemptName(task),
      layout::PartFileName(task.partition), error);
}

// ---------------------------------------------------------------------------------------------
// Map.

struct MapInputStats {
  int64_t records = 0;
  int64_t bytes = 0;
};

// Feeds the split's lines to app->Map and then calls app->Finish, all output going to *out (a
// MapOutputBuffer or a PartFileWriter: an Emitter with failed() and failure()). Progress goes up
// to read_share. False with *error on a read error, an output or app failure, or cancellation.
template <typename Output>
bool RunMapInput(const AssignMsg& task, const TaskContext& ctx, App* app, Output* out,
                 ProgressReporter* progress, double read_share, MapInputStats* stats,
                 std::string* error) {
  SplitReader reader(task.split);
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
    const MapContext map_ctx{path, name};
    app->Map(line, map_ctx, *out);
    if (out->failed()) break;
    if (reader.lines() % kCheckEveryRecords == 0 || reader.bytes_consumed() >= next_check_bytes) {
      next_check_bytes = reader.bytes_consumed() + kCheckEveryBytes;
      if (IsCancelled(ctx)) {
        *error = kCancelledError;
        return false;
      }
      if (AppFailed(app, error)) return false;
      progress->Maybe(read_share * static_cast<double>(reader.bytes_consumed()) / total);
    }
  }
  stats->records = reader.lines();
  stats->bytes = reader.bytes_consumed();
  if (out->failed()) {
    *error = out->failure();
    return false;
  }
  if (!reader.error().empty()) {
    *error = reader.error();
    return false;
  }
  if (IsCancelled(ctx)) {
    *error = kCancelledError;
    return false;
  }
  if (AppFailed(app, error)) return false;
  if (!app->Finish(*out, error)) {
    if (error->empty()) *error = "the app failed to finish";
    return false;
  }
  if (out->failed()) {
    *error = out->failure();
    return false;
  }
  if (IsCancelled(ctx)) {
    *error = kCancelledError;
    return false;
  }
  return !AppFailed(app, error);
}

// Removes the runs a failed map attempt already finished (their directory is the job's, shared
// with other attempts, so it stays). Only the local store's locations are known to be paths; other
// stores keep what they have until the job's cleanup.
void RemoveFinishedRuns(ShuffleStore* store, const std::vector<MapOutput>& outputs) {
  if (dynamic_cast<LocalFileStore*>(store) == nullptr) return;
  std::error_code ec;
  for (const MapOutput& out : outputs) fs::remove(out.location, ec);
}

// The runs a map attempt has finished so far; removed again unless handed to the result.
struct FinishedRuns {
  ShuffleStore* store;
  std::vector<MapOutput> outputs;
  ~FinishedRuns() { RemoveFinishedRuns(store, outputs); }
};

bool MapWithReduces(const AssignMsg& task, const TaskContext& ctx, App* app, TaskResult* result,
                    std::string* error) {
  ProgressReporter progress(ctx);
  MapOutputOptions options;
  options.num_partitions = task.num_reduces;
  options.buffer_bytes = ctx.sort_buffer_bytes;
  options.merge_fan_in = ctx.merge_fan_in;
  options.spill_dir = SpillDirFor(task, ctx);
  options.combine = app->HasCombiner();
  // An external combiner command costs a process per call: combine it per spill only.
  options.combine_eagerly = options.combine && task.code.combiner.empty();
  options.cancelled = ctx.cancelled;
  options.merge_progress = [&progress](double f) {
    progress.Maybe(kMapReadShare + (1 - kMapReadShare) * f);
  };
  std::unique_ptr<MapOutputBuffer> buffer = MapOutputBuffer::Create(app, std::move(options));

  MapInputStats input;
  if (!RunMapInput(task, ctx, app, buffer.get(), &progress, kMapReadShare, &input, error)) {
    return false;
  }
  FinishedRuns finished{ctx.store, {}};
  if (!buffer->Finish(ctx.store, task.job_id, task.task_id, task.attempt, &finished.outputs,
                      error)) {
    return false;
  }
  result->outputs = std::move(finished.outputs);
  finished.outputs.clear();

  const MapOutputCounters& out = buffer->counters();
  Counters& c = result->counters;
  c["map_input_records"] = input.records;
  c["map_input_bytes"] = input.bytes;
  c["map_output_records"] = out.output_records;
  c["map_output_bytes"] = out.output_bytes;
  c["combine_input_records"] = out.combine_input_records;
  c["combine_output_records"] = out.combine_output_records;
  c["spilled_records"] = out.spilled_records;
  progress.Done();
  return true;
}

bool MapOnly(const AssignMsg& task, const TaskContext& ctx, App* app, TaskResult* result,
             std::string* error) {
  if (task.output_dir.empty() || task.partition < 0) {
    *error = "map-only task without an output directory or with a negative map index";
    return false;
  }
  auto writer = CreatePartFile(task, error);
  if (!writer) return false;
  ProgressReporter progress(ctx);
  MapInputStats input;
  if (!RunMapInput(task, ctx, app, writer.get(), &progress, 1.0, &input, error)) return false;
  if (!writer->Finish(error)) return false;
  result->outputs = {MapOutput{task.partition, writer->path(), writer->bytes(), writer->records()}};
  Counters& c = result->counters;
  c["map_input_records"] = input.records;
  c["map_input_bytes"] = input.bytes;
  c["map_output_records"] = writer->records();
  c["map_output_bytes"] = writer->payload_bytes();
  c["combine_input_records"] = 0;
  c["combine_output_records"] = 0;
  c["spilled_records"] = 0;
  progress.Done();
  return true;
}

bool MapTaskImpl(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                 std::string* error) {
  if (ctx.store == nullptr) {
    *error = "map task without a shuffle store";
    return false;
  }
  if (task.num_reduces < 0) {
    *error = "invalid num_reduces " + std::to_string(task.num_reduces);
    return false;
  }
  if (!layout::IsSafeComponent(task.job_id) || !layout::IsSafeComponent(task.task_id)) {
    *error = "invalid job or task id '" + task.job_id + "' / '" + task.task_id + "'";
    return false;
  }
  AttemptApp app;
  if (!app.Resolve(task, ctx, error)) return false;
  if (!StartApp(task, ctx, app.get(), error)) return false;
  bool ok = task.num_reduces == 0 ? MapOnly(task, ctx, app.get(), result, error)
                                  : MapWithReduces(task, ctx, app.get(), result, error);
  app.get()->TakeCounters(&result->counters);
  return ok;
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

// One run a reduce merges: one of its inputs, or a temporary run of an intermediate pass.
struct ReduceRun {
  std::string path;                    // the input's location, or the temporary run's path
  bool is_input = false;
  std::unique_ptr<RunReader> reader;   // open, or null until needed
};

// The reduce's runs and how they are opened; records inputs found bad in *bad_inputs.
class ReduceRuns {
 public:
  ReduceRuns(const TaskContext& ctx, std::vector<std::string>* bad_inputs)
      : ctx_(ctx), bad_inputs_(bad_inputs) {}

  // Opens every input once, so that all bad ones are reported together. Keeps them open if
  // there are at most keep_open of them. False with *error (naming the first bad input).
  bool OpenInputs(const std::vector<std::string>& locations, std::size_t keep_open,
                  std::string* error) {
    std::string first_error;
    for (const std::string& location : locations) {
      if (IsCancelled(ctx_)) {
        *error = kCancelledError;
        return false;
      }
      std::string open_error;
      ReadFault fault = ReadFault::kNone;
      auto reader = ctx_.store->OpenPartition(location, &open_error, &fault);
      if (!reader) {
        open_error = NameInput(location, open_error);
        if (fault == ReadFault::kLocal) {
          *error = open_error;
          return false;
        }
        if (bad_inputs_->empty()) first_error = open_error;
        bad_inputs_->push_back(location);
        continue;
      }
      input_bytes_ += reader->size();
      ReduceRun run;
      run.path = location;
      run.is_input = true;
      if (locations.size() <= keep_open) run.reader = std::move(reader);
      runs_.push_back(std::move(run));
    }
    if (!bad_inputs_->empty()) {
      *error = first_error;
      if (bad_inputs_->size() > 1) {
        *error += " (and " + std::to_string(bad_inputs_->size() - 1) + " more bad map outputs)";
      }
      return false;
    }
    return true;
  }

  // Takes the readers of runs [begin, end), opening those not open yet.
  bool TakeReaders(std::size_t begin, std::size_t end,
                   std::vector<std::unique_ptr<RunReader>>* readers, std::string* error) {
    for (std::size_t i = begin; i < end; ++i) {
      ReduceRun& run = runs_[i];
      if (!run.reader) {
        ReadFault fault = ReadFault::kNone;
        std::string open_error;
        run.reader = run.is_input ? ctx_.store->OpenPartition(run.path, &open_error, &fault)
                                  : RunReader::Open(run.path, &open_error, &fault);
        if (!run.reader) {
          *error = run.is_input ? NameInput(run.path, open_error) : open_error;
          NoteFault(run, fault);
          return false;
        }
      }
      readers->push_back(std::move(run.reader));
    }
    return true;
  }

  // Records the run at index i (as given to TakeReaders' range start + failed index) as bad if
  // its data is at fault.
  void NoteReadFailure(std::size_t i, ReadFault fault) { NoteFault(runs_[i], fault); }

  std::vector<ReduceRun>& runs() { return runs_; }
  int64_t input_bytes() const { return input_bytes_; }

 private:
  static std::string NameInput(const std::string& location, const std::string& message) {
    return message.find(location) != std::string::npos
               ? message
               : "cannot read map output " + location + ": " + message;
  }
  void NoteFault(const ReduceRun& run, ReadFault fault) {
    if (run.is_input && fault != ReadFault::kLocal) *bad_inputs_ = {run.path};
  }

  const TaskContext& ctx_;
  std::vector<std::string>* bad_inputs_;
  std::vector<ReduceRun> runs_;
  int64_t input_bytes_ = 0;
};

// Passes a merge of `runs` runs with fan-in f takes, the final one included.
int CountMergePasses(std::size_t runs, int fan_in) {
  int passes = 1;
  while (runs > static_cast<std::size_t>(fan_in)) {
    for (auto [begin, end] : PlanMergePass(runs, fan_in)) runs -= end - begin - 1;
    ++passes;
  }
  return passes;
}

bool ReduceTaskImpl(const AssignMsg& task, const TaskContext& ctx, TaskResult* result,
                    std::string* error) {
  if (ctx.store == nullptr) {
    *error = "reduce task without a shuffle store";
    return false;
  }
  if (!layout::IsSafeComponent(task.job_id) || !layout::IsSafeComponent(task.task_id)) {
    *error = "invalid job or task id '" + task.job_id + "' / '" + task.task_id + "'";
    return false;
  }
  if (task.output_dir.empty() || task.partition < 0) {
    *error = "reduce task without an output directory or with a negative partition";
    return false;
  }
  AttemptApp attempt_app;
  if (!attempt_app.Resolve(task, ctx, error)) return false;
  App* app = attempt_app.get();
  if (!StartApp(task, ctx, app, error)) return false;
  struct TakeCountersAtExit {
    App* app;
    Counters* counters;
    ~TakeCountersAtExit() { app->TakeCounters(counters); }
  } take_counters{app, &result->counters};

  const int fan_in = std::max(ctx.merge_fan_in, 2);
  ProgressReporter progress(ctx);
  SpillDir spills(SpillDirFor(task, ctx));
  ReduceRuns inputs(ctx, &result->bad_inputs);
  if (!inputs.OpenInputs(task.inputs, static_cast<std::size_t>(fan_in), error)) return false;
  std::vector<ReduceRun>& runs = inputs.runs();

  // Progress: bytes read over all passes against the input size times the number of passes.
  const double planned = static_cast<double>(std::max<int64_t>(inputs.input_bytes(), 1)) *
                         CountMergePasses(runs.size(), fan_in);
  int64_t bytes_done = 0;

  // Intermediate passes until at most fan_in runs are left.
  int64_t spilled = 0;
  while (runs.size() > static_cast<std::size_t>(fan_in)) {
    std::vector<ReduceRun> next;
    std::size_t at = 0;
    for (auto [begin, end] : PlanMergePass(runs.size(), fan_in)) {
      for (; at < begin; ++at) next.push_back(std::move(runs[at]));
      std::vector<std::unique_ptr<RunReader>> readers;
      if (!inputs.TakeReaders(begin, end, &readers, error)) return false;
      std::string path = spills.NewRunPath("merge", task.partition, error);
      if (path.empty()) return false;
      auto out = RunWriter::Create(path, error);
      if (!out) return false;
      MergeControl control;
      control.cancelled = ctx.cancelled;
      control.progress = [&](int64_t bytes_read) {
        progress.Maybe(static_cast<double>(bytes_done + bytes_read) / planned);
      };
      MergeStats stats;
      MergeFailure failure;
      if (!MergeRunsInto(std::move(readers), out.get(), nullptr, CombineGroups::kAll, control,
                         &stats, &failure, error)) {
        if (failure.run != SIZE_MAX) inputs.NoteReadFailure(begin + failure.run, failure.fault);
        return false;
      }
      bytes_done += stats.bytes_read;
      if (!out->Finish(error)) return false;
      spilled += out->records();
      for (std::size_t i = begin; i < end; ++i) {
        if (!runs[i].is_input) SpillDir::RemoveRun(runs[i].path);
      }
      ReduceRun merged;
      merged.path = std::move(path);
      next.push_back(std::move(merged));
      at = end;
    }
    for (; at < runs.size(); ++at) next.push_back(std::move(runs[at]));
    runs = std::move(next);
  }

  // The final merge streams into the app.
  std::vector<std::unique_ptr<RunReader>> readers;
  if (!inputs.TakeReaders(0, runs.size(), &readers, error)) return false;
  MergeReader merge(std::move(readers));
  auto writer = CreatePartFile(task, error);
  if (!writer) return false;

  GroupReader groups(&merge, ctx);
  int64_t next_check = kCheckEveryRecords;
  std::string_view key;
  while (groups.NextGroup(&key)) {
    app->Reduce(key, groups, *writer);
    if (writer->failed()) {
      *error = writer->failure();
      return false;
    }
    if (groups.records() >= next_check) {
      next_check = groups.records() + kCheckEveryRecords;
      if (IsCancelled(ctx)) {
        *error = kCancelledError;
        return false;
      }
      if (AppFailed(app, error)) return false;
      progress.Maybe(static_cast<double>(bytes_done + merge.bytes_read()) / planned);
    }
  }
  if (groups.cancelled() || IsCancelled(ctx)) {
    *error = kCancelledError;
    return false;
  }
  if (!merge.error().empty()) {
    *error = merge.error();
    if (merge.failed_run() != SIZE_MAX) inputs.NoteReadFailure(merge.failed_run(), merge.fault());
    return false;
  }
  if (AppFailed(app, error)) return false;
  if (!app->Finish(*writer, error)) {
    if (error->empty()) *error = "the app failed to finish";
    return false;
  }
  if (AppFailed(app, error)) return false;
  if (!writer->Finish(error)) return false;

  result->outputs = {
      MapOutput{task.partition, writer->path(), writer->bytes(), writer->records()}};
  Counters& c = result->counters;
  c["reduce_input_groups"] = groups.groups();
  c["reduce_input_records"] = groups.records();
  c["reduce_output_records"] = writer->records();
  c["reduce_output_bytes"] = writer->bytes();
  c["spilled_records"] = spilled;
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
    // writers and spill directories have cleaned up during unwinding.
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
