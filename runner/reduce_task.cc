// A reduce attempt: its inputs (the maps' runs for its partition) merged in passes of at most
// merge_fan_in runs, grouped by key into the app, its output into a part file. Runs on the
// attempt's thread.
//
// Failure handling, in order: any error, app failure or cancellation returns false with a
// one-line message; inputs found missing or corrupt are named in TaskResult::bad_inputs; run
// writers not finished remove their temporary files (RAII), intermediate merges go with the
// SpillDir, and an unfinished part file is removed by PartFileWriter's destructor. A part file
// that was finished is left for the coordinator to commit.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/layout.h"
#include "runner/merge.h"
#include "runner/merge_reader.h"
#include "runner/part_file.h"
#include "runner/run_file.h"
#include "runner/task_attempt.h"
#include "runner/task_runner.h"

namespace zmr {

namespace {

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
