// The worker's zmr-task runner processes: starting one (SpawnRunner), the pool of idle ones kept
// for later attempts (RunnerPool), reaping one whose attempt is over (ReapRunner), and sweeping
// up what attempts left behind (ReapOrphans). The pipe protocol spoken over a runner's pipes is
// runner/protocol.h; who drives an attempt through them is worker/attempt_process.h.
//
// Live runners: every runner SpawnRunner started and ReapRunner (or the pool) has not yet reaped
// is in one process-wide registry, guarded by one mutex that spawning and ReapOrphans share, so
// the orphan sweep never mistakes a runner that was just spawned for a leftover.
//
// Threads: every function here may be called from any thread (the attempt threads, the worker
// loop). A RunnerPool guards its idle runners with its own mutex; a Runner taken out of the pool
// (or just spawned) belongs to the one attempt thread that holds it.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/posix/fd.h"
#include "common/protocol.h"

namespace zmr {

// A zmr-task process and its pipes, busy with one attempt or idle in a pool.
struct Runner {
  pid_t pid = -1;          // also its process group id
  UniqueFd stdin_w;        // its stdin: requests (non-blocking)
  UniqueFd control_r;      // its fd 3: control frames (non-blocking)
  UniqueFd stderr_r;       // its fd 1 and 2 (non-blocking)
  std::string reuse_key;   // "" : no user code loaded into it; else JOB/PLUGIN_DIGEST
  int attempts = 0;        // attempts handed to it so far
};

// zmr-task next to the running executable (dirname of /proc/self/exe), or "" if it cannot be read.
std::string DefaultTaskBinary();

// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER), once per process, so that
// descendants orphaned by a killed attempt are reparented to it (and reaped by ReapOrphans)
// rather than to init. A failure is logged. Any thread.
void BecomeSubreaper();

// Starts `binary` in `cwd` with the idle title, in a new process group, with stdin, fd 1/2 and
// fd 3 (kTaskControlFd) on pipes and nothing else open, every signal at its default disposition
// and unblocked, and registers it as a live runner. Returns nullptr with a one-line *error if it
// cannot be started. The runner must end through ReapRunner or a RunnerPool.
std::unique_ptr<Runner> SpawnRunner(const std::string& binary, const std::string& cwd,
                                    std::string* error);

// Waits for runner `pid` (which has exited or been killed), reaps it with wait4 and takes it out
// of the live registry. Returns its wait status and fills *usage with its rusage. The rest of its
// process group is the caller's to end.
int ReapRunner(pid_t pid, rusage* usage);

// Kills (SIGKILL) and reaps every child of this process that is not a live runner (busy or idle).
// Because the worker is a child subreaper (BecomeSubreaper), such children are what attempts left
// behind (processes orphaned when their parent in the attempt died), alive or zombie. The worker
// calls it periodically and AttemptProcess::Run when it ends. Do not call it from a process that
// starts other children of its own concurrently. Any thread.
void ReapOrphans();

// The key that decides which runners may take an attempt: a runner that loads a plugin keeps it
// (and whatever state it has) in its address space, so it serves only that job and plugin ("" for
// an attempt that loads no user code into the runner).
std::string RunnerReuseKey(const AssignMsg& task);

// Idle runners, kept between attempts. Any thread.
class RunnerPool {
 public:
  // attempts_per_runner >= 1, max_idle >= 0.
  RunnerPool(int attempts_per_runner, int max_idle)
      : attempts_per_runner_(attempts_per_runner), max_idle_(max_idle) {}
  // Ends every idle runner.
  ~RunnerPool();
  RunnerPool(const RunnerPool&) = delete;
  RunnerPool& operator=(const RunnerPool&) = delete;

  // An idle runner that may run an attempt with this reuse key (RunnerReuseKey), the most
  // recently used first; a runner without user code serves any key. nullptr when there is none.
  // Runners found dead on the way are ended.
  std::unique_ptr<Runner> TakeIdle(const std::string& reuse_key);

  // Takes back a runner whose attempt succeeded (its pipes drained, nothing of the attempt
  // running). It is ended instead when it has had attempts_per_runner attempts; the oldest idle
  // runners are ended while more than max_idle are idle.
  void Release(std::unique_ptr<Runner> runner);

  // Ends the idle runners that may only serve job_id (those that loaded its plugin).
  void RetireJob(const std::string& job_id);

  // Idle runners now.
  int IdleCount() const;

 private:
  const int attempts_per_runner_;
  const int max_idle_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Runner>> idle_;  // guarded by mu_; oldest first
};

}  // namespace zmr
