// A map attempt: the split's lines into the app, its output into a MapOutputBuffer (sorted,
// combined, spilled and merged into one run per partition) or, for a map-only job, straight into a
// part file. Runs on the attempt's thread.
//
// Failure handling, in order: any error, app failure or cancellation returns false with a
// one-line message; the MapOutputBuffer removes its spills and unfinished runs; runs it already
// finished are removed again (FinishedRuns); an unfinished part file is removed by
// PartFileWriter's destructor. A part file that was finished is left for the coordinator to commit.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/layout.h"
#include "common/splits.h"
#include "runner/map_output_buffer.h"
#include "runner/part_file.h"
#include "runner/shuffle_store.h"
#include "runner/task_attempt.h"
#include "runner/task_runner.h"

namespace zmr {

namespace {

namespace fs = std::filesystem;

// Also check after this many input bytes, so very long lines do not delay a cancel.
constexpr int64_t kCheckEveryBytes = 4 << 20;
// Share of a map's progress that is reading its input; the rest is the final merge of spills.
constexpr double kMapReadShare = 0.9;

std::string BaseName(std::string_view path) {
  std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

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

}  // namespace zmr
