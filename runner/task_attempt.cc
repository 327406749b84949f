// The steps map and reduce attempts share: their app, its start, and their spill directory.
#include "runner/task_attempt.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "apps/registry.h"
#include "common/layout.h"
#include "runner/shuffle_store.h"

namespace zmr {

namespace fs = std::filesystem;

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
  return (tmp / layout::TempSpillDirName(task.job_id, task.task_id, task.attempt, ::getpid()))
      .string();
}

bool AttemptApp::Resolve(const AssignMsg& task, const TaskContext& ctx, std::string* error) {
  if (ctx.app != nullptr) {
    app_ = ctx.app;
    return true;
  }
  owned_ = MakeApp(task.app, task.params, error);
  app_ = owned_.get();
  return app_ != nullptr;
}

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

}  // namespace zmr
