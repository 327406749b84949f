// The babysitter of one zmr-task runner. Run reads as its five steps, one function each:
//   1. check the ids, create the attempt directory and copy the shipped files in (an attempt of
//      user code only), open the log, encode the request (CheckAttempt, MakeAttemptDir,
//      Materialise, EncodeRequest);
//   2. take an idle runner that may run the attempt, or spawn one (TakeOrSpawnRunner;
//      worker/runner_pool.h: a new process group with stdin = request pipe, fd 1 and 2 = stderr
//      pipe, fd 3 = control pipe, nothing else open);
//   3. one poll loop: write the request, read control frames (progress resets the timeout), copy
//      stderr to the log; on cancel / timeout / a bad frame SIGTERM the process group (zmr-task
//      kills its streaming commands' groups and dies), SIGKILL it after a grace period; it ends
//      when the runner reported success (then the runner goes back to the pool) or has exited
//      (WatchRunner);
//   4. once zmr-task has exited (seen with WNOWAIT, so its pid and process group cannot be reused
//      yet) SIGKILL the group to end anything it left behind, drain stderr, reap zmr-task with
//      wait4 (for its rusage), then reap the rest of the group until it is gone (EndRunner);
//   5. build the result or the error (BuildSuccess, BuildFailure), reap orphans; the attempt
//      directory is removed as Run returns.
#include "worker/attempt_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/layout.h"
#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/signals.h"
#include "common/posix/subprocess.h"
#include "worker/blob_cache.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// The poll loop wakes at least this often to check the cancel flag and the timeout.
constexpr int kPollIntervalMs = 100;
// How long stderr is drained after the process group was killed (a process that left the group
// may hold the pipe open forever).
constexpr int64_t kStderrDrainMs = 2000;
// How long Run waits for the rest of a killed process group to disappear before giving up.
constexpr int64_t kGroupReapMs = 10000;

// What the control frames said.
struct ChildReport {
  bool done = false;
  bool failed = false;
  std::vector<MapOutput> outputs;
  Counters counters;
  std::string error;
  std::vector<std::string> bad_inputs;
};

// Applies one control frame. Returns false with *error for a malformed one.
bool HandleFrame(const Value& frame, const std::string& type, const AttemptCallbacks& callbacks,
                 ChildReport* report, std::string* error) {
  if (type == task_frame::kProgress) {
    double progress = 0;
    std::string status;
    if (!ReadDouble(frame, "progress", &progress, error) ||
        !ReadOptString(frame, "status", &status, error)) {
      return false;
    }
    if (!(progress >= 0.0)) progress = 0.0;  // also NaN
    progress = std::min(progress, 1.0);
    if (callbacks.progress) callbacks.progress(progress, status);
    return true;
  }
  if (type == task_frame::kDone) {
    std::optional<TaskDoneMsg> done = TaskDoneMsg::FromValue(frame, error);
    if (!done) return false;
    report->done = true;
    report->outputs = std::move(done->outputs);
    report->counters = std::move(done->counters);
    return true;
  }
  if (type == task_frame::kFailed) {
    std::optional<TaskFailedMsg> failed = TaskFailedMsg::FromValue(frame, error);
    if (!failed) return false;
    report->failed = true;
    report->error = std::move(failed->error);
    report->bad_inputs = std::move(failed->bad_inputs);
    return true;
  }
  *error = "unknown control frame type '" + type + "'";
  return false;
}

// Removes a directory tree when it goes out of scope.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}  // "": nothing to remove
  ~RemoveOnExit() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (ec) spdlog::warn("cannot remove attempt dir {}: {}", path_, ec.message());
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;

 private:
  std::string path_;
};


// Step 1. Whether the attempt may start: ids that are safe in paths, not cancelled already.
bool CheckAttempt(const AttemptRef& ref, const std::atomic<bool>& cancelled, std::string* error) {
  if (!layout::IsSafeComponent(ref.job_id) || !layout::IsSafeComponent(ref.task_id)) {
    *error = "invalid job or task id";
    return false;
  }
  if (cancelled.load()) {
    *error = "cancelled";
    return false;
  }
  return true;
}

// Only user code needs an attempt directory (shipped files, the working directory of streaming
// commands, a plugin's WorkDir); a built-in app's attempt gets none, which saves a tiny task two
// of its four file-system updates (its spills, if any, go to WORK_DIR/jobs/<job>/<task>.a<N>.spill,
// removed by the runner or the job's cleanup).
bool RunsUserCode(const JobCode& code) {
  return !code.plugin.empty() || !code.mapper.empty() || !code.combiner.empty() ||
         !code.reducer.empty() || !code.files.empty();
}

// Streaming commands may leave descendants behind (other attempts run no processes but the
// runner).
bool RunsStreamingCommands(const JobCode& code) {
  return !code.mapper.empty() || !code.reducer.empty();
}

// Makes `dir` an empty directory (removing leftovers of a worker that was killed); nothing for "".
// (The logs directory is made when a log is first written: AttemptLog, SucceededLogs.)
bool MakeAttemptDir(const std::string& dir, std::string* error) {
  if (dir.empty()) return true;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create attempt dir " + dir + ": " + ec.message();
    return false;
  }
  return true;
}

// Copies the job's shipped files into the attempt directory. Returns false with *error naming the
// first file that is not cached or cannot be copied.
bool Materialise(const JobCode& code, const BlobCache* blobs, const std::string& attempt_dir,
                 std::string* error) {
  for (const FileRef& f : code.files) {
    std::string source = blobs != nullptr ? blobs->Path(f.sha256) : "";
    if (source.empty()) {
      *error = "shipped file " + f.name + " not available";
      return false;
    }
    if (!layout::IsSafeComponent(f.name)) {
      *error = "invalid shipped file name '" + f.name + "'";
      return false;
    }
    std::string target = layout::ShippedFilePath(attempt_dir, f.name);
    std::error_code ec;
    fs::copy_file(source, target, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      *error = "cannot copy shipped file " + f.name + ": " + ec.message();
      return false;
    }
    if (chmod(target.c_str(), static_cast<mode_t>(f.mode & 07777 & ~(S_ISUID | S_ISGID))) != 0) {
      *error = "cannot set the mode of shipped file " + f.name + ": " + ErrnoText(errno);
      return false;
    }
  }
  return true;
}


// The request frame for the runner. attempt_dir: "" for an attempt without user code. Returns
// false with *error when the plugin is not available.
bool EncodeRequest(const AssignMsg& task, const AttemptProcessOptions& options,
                   const std::string& attempt_dir, std::string* frame, std::string* error) {
  TaskRequest request;
  request.assign = task;
  request.attempt_dir = attempt_dir;
  request.work_dir = options.work_dir;
  request.sort_buffer_bytes = options.sort_buffer_bytes;
  request.merge_fan_in = options.merge_fan_in;
  request.memory_limit_bytes = options.memory_limit_bytes;
  request.parent_pid = getpid();
  if (!task.code.plugin.empty()) {
    // Prefer the copy in the attempt dir: it has the user's file name, which the loader's errors
    // quote ("plugin libfoo.so provides app ..."); the cache only has the digest.
    std::string name = "plugin library";
    for (const FileRef& f : task.code.files) {
      if (f.sha256 == task.code.plugin) {
        name = f.name;
        request.plugin_path = layout::ShippedFilePath(attempt_dir, f.name);
      }
    }
    if (request.plugin_path.empty() && options.blobs != nullptr) {
      request.plugin_path = options.blobs->Path(task.code.plugin);
    }
    if (request.plugin_path.empty()) {
      *error = "shipped file " + name + " not available";
      return false;
    }
  }
  *frame = EncodeControlFrame(request.ToValue());
  return true;
}

// Copies what the runner's stderr has now to the log; closes the pipe at its end.
void CopyStderr(Runner* runner, AttemptLog* log) {
  std::string data;
  bool open = ReadAvailable(runner->stderr_r.get(), &data);
  log->AppendChild(data);
  if (!open) runner->stderr_r.Reset();
}

// What the poll loop (step 3) learnt.
struct Watch {
  ChildReport report;       // what the control frames said
  std::string kill_reason;  // non-empty once the attempt was stopped
  bool succeeded = false;   // success reported whole and before any stop: the runner is reusable
};

// Step 3. Writes the request, reads control frames and stderr, and stops the attempt on cancel,
// timeout or a bad frame, until the runner reported success (its stderr copied to the log
// first: it writes the frame last) or has exited (not yet reaped).
Watch WatchRunner(Runner* runner, const std::string& request_frame,
                  const std::atomic<bool>& cancelled, const AttemptCallbacks& callbacks,
                  int64_t task_timeout_ms, AttemptLog* log) {
  Watch watch;
  ChildReport& report = watch.report;
  std::string& kill_reason = watch.kill_reason;
  Runner& child = *runner;
  const pid_t pid = child.pid;  // also the process group id
  FrameReader control;
  int64_t sigkill_at_ms = 0;  // when SIGTERM has not ended it by then, SIGKILL
  bool sigkill_sent = false;
  std::size_t request_written = 0;
  bool control_eof = false;
  int64_t progress_deadline = SteadyMs() + task_timeout_ms;
  auto stop = [&](const std::string& reason) {
    if (!kill_reason.empty()) return;
    kill_reason = reason;
    log->Note("stopping process group " + std::to_string(pid) + ": " + reason);
    KillProcessGroup(pid, SIGTERM);
    sigkill_at_ms = SteadyMs() + kTerminateGraceMs;
  };
  for (;;) {
    int64_t now = SteadyMs();
    if (cancelled.load()) stop("cancelled");
    if (now >= progress_deadline) {
      stop("task timed out after " + std::to_string(task_timeout_ms / 1000) +
           " s without progress");
    }
    if (!kill_reason.empty() && !sigkill_sent && now >= sigkill_at_ms) {
      log->Note("process group " + std::to_string(pid) + " still running; sending SIGKILL");
      KillProcessGroup(pid, SIGKILL);
      sigkill_sent = true;
    }
    if (control_eof && HasExited(pid)) return watch;
    pollfd fds[3];
    int nfds = 0;
    int stdin_index = -1, control_index = -1, stderr_index = -1;
    const bool writing = child.stdin_w.valid() && request_written < request_frame.size();
    if (writing) {
      stdin_index = nfds;
      fds[nfds++] = {child.stdin_w.get(), POLLOUT, 0};
    }
    if (!control_eof) {
      control_index = nfds;
      fds[nfds++] = {child.control_r.get(), POLLIN, 0};
    }
    if (child.stderr_r.valid()) {
      stderr_index = nfds;
      fds[nfds++] = {child.stderr_r.get(), POLLIN, 0};
    }
    int64_t timeout = control_eof ? 5 : kPollIntervalMs;
    timeout = std::min(timeout, progress_deadline - now);
    if (!kill_reason.empty() && !sigkill_sent) timeout = std::min(timeout, sigkill_at_ms - now);
    timeout = std::max<int64_t>(timeout, 0);
    int ready = poll(fds, static_cast<nfds_t>(nfds), static_cast<int>(timeout));
    if (ready < 0) {
      if (errno == EINTR) continue;
      stop("poll failed: " + ErrnoText(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (stdin_index >= 0 && fds[stdin_index].revents != 0) {
      std::string_view rest = std::string_view(request_frame).substr(request_written);
      ssize_t n = write(child.stdin_w.get(), rest.data(), rest.size());
      if (n > 0) request_written += static_cast<std::size_t>(n);
      if (n < 0 && errno != EINTR && errno != EAGAIN) child.stdin_w.Reset();  // gone: EPIPE
    }
    if (stderr_index >= 0 && fds[stderr_index].revents != 0) CopyStderr(runner, log);
    if (control_index >= 0 && fds[control_index].revents != 0) {
      std::string data;
      control_eof = !ReadAvailable(child.control_r.get(), &data);
      control.Append(data);
      Value frame;
      std::string type, frame_error;
      int got;
      while ((got = control.Next(&frame, &type, &frame_error)) == 1) {
        if (!HandleFrame(frame, type, callbacks, &report, &frame_error)) {
          got = -1;
          break;
        }
        if (type == task_frame::kProgress) progress_deadline = SteadyMs() + task_timeout_ms;
        if (report.done || report.failed) break;
      }
      if (got < 0) stop("task process sent a bad control frame: " + frame_error);
      if (control_eof && !control.empty() && !report.failed) report.done = false;  // torn frame
      // A runner that reported success has written everything of the attempt to its stderr
      // already (it writes the frame last): copy it; the runner can be handed back.
      if (report.done && kill_reason.empty() && control.empty() && !control_eof) {
        if (child.stderr_r.valid()) CopyStderr(runner, log);
        log->Flush();
        watch.succeeded = true;
        return watch;
      }
      if (report.done) report.done = false;  // success reported, but torn or after a stop
      if (report.failed && !control_eof) {
        // The runner exits after a failure; read until its control pipe closes.
        continue;
      }
    }
  }
}

// How the runner ended (step 4).
struct RunnerExit {
  int status = 0;   // its wait status
  rusage usage{};   // its resource use, as wait4 reported it
};

// Step 4. Ends whatever is left of the runner's group while zmr-task's zombie still holds the
// group id, drains stderr into the log, reaps zmr-task and then the rest of the group.
RunnerExit EndRunner(std::unique_ptr<Runner> runner, const AttemptRef& ref, AttemptLog* log) {
  const pid_t pid = runner->pid;
  KillProcessGroup(pid, SIGKILL);
  int64_t drain_deadline = SteadyMs() + kStderrDrainMs;
  while (runner->stderr_r.valid() && SteadyMs() < drain_deadline) {
    pollfd pfd{runner->stderr_r.get(), POLLIN, 0};
    int ready = poll(&pfd, 1, 50);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    CopyStderr(runner.get(), log);
  }
  log->Flush();
  RunnerExit exit;
  exit.status = ReapRunner(pid, &exit.usage);
  int64_t reap_deadline = SteadyMs() + kGroupReapMs;
  for (;;) {
    ReapExitedInGroup(pid);
    if (ProcessGroupGone(pid)) break;
    if (SteadyMs() >= reap_deadline) {
      spdlog::warn("job {} task {} attempt {}: processes of group {} still exist", ref.job_id,
                   ref.task_id, ref.attempt, pid);
      break;
    }
    KillProcessGroup(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return exit;
}

// Step 5 of a successful attempt: its outputs and counters (with the runner's own task_cpu_ms
// and peak_rss_kb) into *result, noted in the log.
void BuildSuccess(ChildReport* report, AttemptLog* log, TaskResult* result) {
  result->counters = std::move(report->counters);
  result->outputs = std::move(report->outputs);
  log->Note("attempt succeeded (cpu " + std::to_string(result->counters["task_cpu_ms"]) +
            " ms, peak rss " + std::to_string(result->counters["peak_rss_kb"]) + " KiB)");
}

// Step 5 of a failed attempt: the one-line error (noted in the log; see Run in the header), and
// into *result the counters, the runner's cpu and peak rss from wait4, the task's bad inputs and
// the stderr tail.
std::string BuildFailure(Watch* watch, const RunnerExit& exit, AttemptLog* log,
                         TaskResult* result) {
  ChildReport& report = watch->report;
  const std::string& kill_reason = watch->kill_reason;
  const rusage& usage = exit.usage;
  const int status = exit.status;
  int64_t cpu_ms = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000 +
                   (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
  result->counters = std::move(report.counters);
  result->counters["task_cpu_ms"] = cpu_ms;
  result->counters["peak_rss_kb"] = usage.ru_maxrss;
  std::string message;
  bool append_tail = true;
  if (!kill_reason.empty()) {
    message = kill_reason;
    append_tail = kill_reason != "cancelled";
  } else if (report.failed) {
    message = report.error.empty() ? "task failed" : report.error;
    result->bad_inputs = std::move(report.bad_inputs);
  } else if (WIFSIGNALED(status)) {
    message = "task process killed by signal " + SignalName(WTERMSIG(status));
  } else if (WIFEXITED(status)) {
    message = "task process exited with status " + std::to_string(WEXITSTATUS(status));
  } else {
    message = "task process ended with wait status " + std::to_string(status);
  }
  if (append_tail && !log->tail_lines().empty() &&
      message.find(log->tail_lines().back()) == std::string::npos) {
    message += " | stderr: " + log->Tail();
  }
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  log->Note("attempt failed: " + message);
  result->stderr_tail.assign(log->tail_lines().begin(), log->tail_lines().end());
  return message;
}

// The options with their defaults filled in and their bounds applied.
AttemptProcessOptions Normalised(AttemptProcessOptions options) {
  if (options.task_binary.empty()) options.task_binary = DefaultTaskBinary();
  options.attempts_per_runner = std::max(options.attempts_per_runner, 1);
  options.max_idle_runners = std::max(options.max_idle_runners, 0);
  return options;
}

}  // namespace

AttemptProcess::AttemptProcess(AttemptProcessOptions options)
    : options_(Normalised(std::move(options))),
      succeeded_logs_(options_.work_dir),
      runners_(options_.attempts_per_runner, options_.max_idle_runners) {}

AttemptProcess::~AttemptProcess() = default;

void AttemptProcess::RetireRunners(const std::string& job_id) {
  runners_.RetireJob(job_id);
  succeeded_logs_.Close(job_id);
}

int AttemptProcess::IdleRunners() const { return runners_.IdleCount(); }

std::unique_ptr<Runner> AttemptProcess::TakeOrSpawnRunner(const AssignMsg& task, AttemptLog* log,
                                                          std::string* error) {
  const std::string reuse_key = RunnerReuseKey(task);
  std::unique_ptr<Runner> runner = runners_.TakeIdle(reuse_key);
  if (runner) {
    log->Note("reusing " + options_.task_binary + " pid " + std::to_string(runner->pid) +
              " (attempt " + std::to_string(runner->attempts + 1) + " of that process) for job " +
              task.job_id + " task " + task.task_id + " attempt " + std::to_string(task.attempt));
  } else {
    runner = SpawnRunner(options_.task_binary, options_.work_dir, error);
    if (runner == nullptr) return nullptr;
    log->Note("started " + options_.task_binary + " pid " + std::to_string(runner->pid) +
              " for job " + task.job_id + " task " + task.task_id + " attempt " +
              std::to_string(task.attempt));
  }
  runner->reuse_key = reuse_key;
  ++runner->attempts;
  return runner;
}

bool AttemptProcess::Run(const AssignMsg& task, const std::atomic<bool>& cancelled,
                         const AttemptCallbacks& callbacks, TaskResult* result,
                         std::string* error) {
  // 1. Check the ids; the attempt directory (user code only), its log, the request.
  const AttemptRef ref{task.job_id, task.task_id, task.attempt};
  if (!CheckAttempt(ref, cancelled, error)) return false;
  BecomeSubreaper();
  const std::string attempt_dir =
      RunsUserCode(task.code) ? layout::AttemptDir(options_.work_dir, ref) : "";
  if (!MakeAttemptDir(attempt_dir, error)) return false;
  RemoveOnExit remove_attempt_dir(attempt_dir);
  AttemptLog log(layout::AttemptLogPath(options_.work_dir, ref));
  std::string request_frame;
  if (!Materialise(task.code, options_.blobs, attempt_dir, error) ||
      !EncodeRequest(task, options_, attempt_dir, &request_frame, error)) {
    log.Note("attempt failed: " + *error);
    return false;
  }

  // 2. A runner: an idle one that may take this attempt, or a new one.
  ScopedSigpipeBlock block_sigpipe;
  std::unique_ptr<Runner> runner = TakeOrSpawnRunner(task, &log, error);
  if (runner == nullptr) {
    log.Note("attempt failed: " + *error);
    return false;
  }
  if (callbacks.started) callbacks.started(runner->pid);

  // 3. The poll loop, until the runner reported success or has exited (not yet reaped).
  Watch watch = WatchRunner(runner.get(), request_frame, cancelled, callbacks,
                            options_.task_timeout_ms, &log);
  if (watch.succeeded) {
    // 5. The outcome of a success: the result; the runner goes back to the pool, and what
    // streaming commands left behind is reaped now rather than at the next sweep.
    BuildSuccess(&watch.report, &log, result);
    succeeded_logs_.Append(ref, log.TakeQuiet());
    runners_.Release(std::move(runner));
    if (RunsStreamingCommands(task.code)) ReapOrphans();
    return true;
  }

  // 4. End the group, drain stderr, reap the runner and the rest of its group.
  const RunnerExit exit = EndRunner(std::move(runner), ref, &log);
  ReapOrphans();

  // 5. The outcome of a failure.
  *error = BuildFailure(&watch, exit, &log, result);
  return false;
}

}  // namespace zmr
