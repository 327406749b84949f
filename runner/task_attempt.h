// The steps a map attempt (runner/map_task.cc) and a reduce attempt (runner/reduce_task.cc) share:
// resolving and starting the attempt's app, checking the cancel flag and the app's failure,
// reporting progress, and where the attempt's spills go. For those two files only; everyone else
// calls runner/task_runner.h. Everything here runs on the attempt's thread.
//
// The checks are made every kCheckEveryRecords records (runner/map_output_buffer.h), so they are
// defined here, inline.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "common/app.h"
#include "common/protocol.h"
#include "runner/map_output_buffer.h"
#include "runner/task_runner.h"

namespace zmr {

// Whether the attempt's cancel flag is set.
inline bool IsCancelled(const TaskContext& ctx) {
  return ctx.cancelled != nullptr && ctx.cancelled->load(std::memory_order_relaxed);
}

// Sets *error to the app's failure and returns true, if it has one.
inline bool AppFailed(const App* app, std::string* error) {
  std::string failure = app->Failure();
  if (failure.empty()) return false;
  *error = std::move(failure);
  return true;
}

// Where an attempt's spills and intermediate merges go (see TaskContext::attempt_dir).
std::string SpillDirFor(const AssignMsg& task, const TaskContext& ctx);

// Reports progress at most every kProgressIntervalMs, and 1.0 once at the end. ctx must outlive it.
class ProgressReporter {
 public:
  explicit ProgressReporter(const TaskContext& ctx)
      : ctx_(ctx), last_(std::chrono::steady_clock::now()) {}

  // Reports fraction (clamped to 0..1) unless the last report is younger than the interval.
  void Maybe(double fraction) {
    if (!ctx_.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(kProgressIntervalMs)) return;
    last_ = now;
    ctx_.progress(std::clamp(fraction, 0.0, 1.0));
  }
  // Reports 1.0.
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
  // Takes ctx.app, or creates the built-in app task.app names. False with *error if there is none
  // by that name or its parameters are bad.
  bool Resolve(const AssignMsg& task, const TaskContext& ctx, std::string* error);
  App* get() const { return app_; }

 private:
  std::unique_ptr<App> owned_;
  App* app_ = nullptr;
};

// Creates the attempt directory (ctx.attempt_dir, when given) and calls app->Start with the
// attempt's AttemptInfo. False with a one-line *error if either fails.
bool StartApp(const AssignMsg& task, const TaskContext& ctx, App* app, std::string* error);

}  // namespace zmr
