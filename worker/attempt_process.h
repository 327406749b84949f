// Runs task attempts in child processes (the `zmr-task` executable, a "runner") and babysits
// them: the worker's attempt thread calls AttemptProcess::Run, which materialises the attempt
// directory, hands the attempt to an idle runner (or spawns one in its own process group),
// forwards its progress, writes its stderr to the attempt log, enforces cancellation and the
// no-progress timeout by killing the runner's whole process group, and turns the outcome (a
// control frame, an exit status, a signal) into a TaskResult or a one-line error. User code
// (plugins, streaming commands) therefore never runs inside the worker: a crash, a hang or a
// runaway allocation costs one attempt, not the worker.
//
// Runner reuse: a runner whose attempt succeeded goes back to an idle pool and takes later
// attempts (up to attempts_per_runner), so a tiny task costs a few pipe writes instead of a
// process spawn. Only a runner that never loaded user code into itself is shared between jobs
// (built-in apps and streaming jobs, whose commands are separate processes started per attempt);
// a runner that loaded a plugin serves only attempts of that job with that plugin (as Hadoop
// reuses a task JVM only within one job), and is retired when the job is cleaned up. A runner
// whose attempt failed, was cancelled or timed out is killed, never reused.
//
// The pipe protocol between the worker and zmr-task (TaskRequest, TaskResult, frames) is
// runner/protocol.h, the one runner header the worker includes.
//
// Its parts: the attempt log and the jobs' succeeded.log (worker/attempt_log.h), the runner
// processes and their idle pool (worker/runner_pool.h).
//
// Threads: Run may be called from any number of threads at once (one attempt per call); the idle
// pool and the succeeded.log files each have their own mutex. Callbacks run on the calling thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/protocol.h"
#include "common/value.h"
#include "runner/protocol.h"
#include "worker/attempt_log.h"
#include "worker/runner_pool.h"

namespace zmr {

class BlobCache;

// Default --attempts-per-runner: a runner is replaced after this many attempts (bounding what a
// slow leak in a runner can accumulate), 1 = a fresh process for every attempt.
inline constexpr int kDefaultAttemptsPerRunner = 1000;
// Default --task-timeout: an attempt with no progress for this long is killed.
inline constexpr int64_t kDefaultTaskTimeoutMs = 600'000;
// An attempt is stopped with SIGTERM first (zmr-task then SIGKILLs the process groups of its
// streaming commands, which are not in its own group) and SIGKILLed this long after.
inline constexpr int64_t kTerminateGraceMs = 2000;

struct AttemptProcessOptions {
  std::string work_dir;                        // WORK_DIR, absolute
  std::string task_binary;                     // zmr-task; "" = DefaultTaskBinary()
  const BlobCache* blobs = nullptr;            // shipped files; must outlive the AttemptProcess
  int64_t sort_buffer_bytes = kDefaultSortBufferBytes;
  int merge_fan_in = kDefaultMergeFanIn;
  int64_t memory_limit_bytes = 0;              // per attempt (RLIMIT_AS of zmr-task); 0 = none
  int64_t task_timeout_ms = kDefaultTaskTimeoutMs;  // no progress for this long kills the attempt
  int attempts_per_runner = kDefaultAttemptsPerRunner;  // then the runner is replaced; >= 1
  int max_idle_runners = 2;                    // more idle runners than this are retired
};

struct AttemptCallbacks {
  // Each progress report of the child: fraction of input consumed (0..1) and its status text.
  // (zmr-task sends no final 1.0 for an attempt younger than kProgressIntervalMs: its outcome
  // implies it, so a tiny attempt costs no extra progress message.)
  std::function<void(double progress, const std::string& status)> progress;
  // Called once the child runs, with its pid (which is also its process group id). For tests.
  std::function<void(pid_t pid)> started;
};

class AttemptProcess {
 public:
  explicit AttemptProcess(AttemptProcessOptions options);
  // Ends every idle runner (closes its stdin, SIGKILLs its group and reaps it). Runs must be over.
  ~AttemptProcess();
  AttemptProcess(const AttemptProcess&) = delete;
  AttemptProcess& operator=(const AttemptProcess&) = delete;

  // Runs one attempt in a zmr-task runner to completion on the calling thread.
  //
  // Materialises WORK_DIR/jobs/<job>/attempts/<task>.a<N>/ for an attempt running user code,
  // with the job's shipped files (copied from the blob cache with their mode bits), takes an idle
  // runner that may run it (see the top of this file) or spawns zmr-task in a new process group
  // (only stdin, fd 1/2 and fd 3 open), sends it the request (it works in the attempt directory),
  // and waits. Stops the attempt when `cancelled` becomes true (error "cancelled") or when no
  // progress arrived for task_timeout_ms ("task timed out after N s without progress"): SIGTERM to
  // the process group, SIGKILL kTerminateGraceMs later at the latest. Unless the attempt
  // succeeded, its runner's process group is then SIGKILLed, so nothing it started outlives it,
  // and Run returns only after the runner and every process left in its group are reaped; a
  // successful runner goes back to the idle pool. The attempt directory (if any) is
  // removed either way; the log WORK_DIR/jobs/<job>/logs/<task>.a<N>.log stays (until the job's
  // cleanup), or, for an attempt that succeeded without writing to stderr, its lines in the
  // job's succeeded.log.
  //
  // On success fills *result (outputs, counters plus task_cpu_ms and peak_rss_kb of the attempt,
  // as the runner measured them) and returns true. Otherwise returns false with a one-line *error
  // (the task's own error, or "task process killed by signal SIGSEGV" / "task process exited with
  // status N", followed by " | stderr: " and the last stderr lines when the error does not include
  // them) and result->bad_inputs from the task. The first call makes this process a child
  // subreaper (PR_SET_CHILD_SUBREAPER), so descendants orphaned by a killed attempt are reaped
  // here too.
  bool Run(const AssignMsg& task, const std::atomic<bool>& cancelled,
           const AttemptCallbacks& callbacks, TaskResult* result, std::string* error);

  // Retires the idle runners that may only serve job_id (those that loaded its plugin) and closes
  // the job's succeeded.log. The worker calls it when the job is cleaned up. Any thread.
  void RetireRunners(const std::string& job_id);

  // Idle runners now (for tests and logs). Any thread.
  int IdleRunners() const;

  const AttemptProcessOptions& options() const { return options_; }

 private:
  // Step 2 of Run: an idle runner that may take `task`, or a new one, counted as running it and
  // noted in *log. nullptr with a one-line *error when none can be started.
  std::unique_ptr<Runner> TakeOrSpawnRunner(const AssignMsg& task, AttemptLog* log,
                                            std::string* error);

  AttemptProcessOptions options_;
  SucceededLogs succeeded_logs_;  // the jobs' succeeded.log files (own mutex)
  RunnerPool runners_;            // idle runners (own mutex); ended before the logs close
};

}  // namespace zmr
