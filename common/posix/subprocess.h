// Starting a child process the way both of zmr's supervisors need it (the worker starting zmr-task
// runners, a runner starting streaming commands): in a process group of its own, with chosen
// pipes as its low descriptors and nothing else inherited, every signal at its default action and
// unblocked, optionally killed when the starting thread dies; plus the small calls around its end
// (has it exited, kill its group, reap it). Part of zmr's POSIX layer (common/posix/).
//
// Spawn is safe in a multi-threaded process: without a parent-death signal it is posix_spawn
// (vfork-like: the parent's memory is not copied); with one it forks, and between fork and exec
// the child makes only async-signal-safe calls, everything it needs being prepared before. Any
// thread.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace zmr {

// Pipes handed to Spawn should be numbered at least this (MakePipe's min_fd), above every
// descriptor a child is given, so that setting up one never overwrites another.
inline constexpr int kSpawnMinFd = 10;

struct SpawnSpec {
  std::string path;                     // the executable (not searched in PATH)
  std::vector<std::string> argv;        // argv[0] first
  const std::vector<std::string>* env = nullptr;  // "NAME=value" entries; null: ours (environ)
  std::string cwd;                      // the child's working directory; "": ours
  // {descriptor of ours, descriptor number in the child}: ours must be >= kSpawnMinFd and every
  // child number below it. Every other descriptor closes at exec.
  std::vector<std::pair<int, int>> fds;
  bool new_process_group = true;        // the child leads a process group (pgid = its pid)
  // PR_SET_PDEATHSIG: sent to the child when the *thread* that spawned it ends (0: none); the
  // child exits at once if the spawning process is already gone. Needs the fork path.
  int parent_death_signal = 0;
};

// Where a failed Spawn stopped.
enum class SpawnStage {
  kPipe,  // the status pipe of the fork path
  kFork,  // fork itself (err: its errno)
  kFds,   // setting up the child's descriptors
  kChdir, // entering spec.cwd (fork path; posix_spawn reports it as kExec)
  kExec,  // execve (or posix_spawn itself)
  kEarly, // the child died before it could say (no errno)
};

struct SpawnFailure {
  SpawnStage stage = SpawnStage::kFork;
  int err = 0;
};

// Starts the child and returns its pid once it has exec'd; -1 with *failure if it could not be
// started (a child that got as far as fork is reaped before returning).
pid_t Spawn(const SpawnSpec& spec, SpawnFailure* failure);

// Whether `pid` (a child of ours) has exited, without reaping it (waitid WNOWAIT): its pid and
// process group id cannot be reused until it is reaped. Also true when it is not (any more) a
// child of ours; false when interrupted.
bool HasExited(pid_t pid);

// Waits for and reaps child `pid` (retrying EINTR), with its resource use in *usage if given.
// Returns its wait status, or -1 if it is not (any more) a child of ours.
int Reap(pid_t pid, struct rusage* usage = nullptr);

// Sends `signal_number` to every process in process group `pgid`. Harmless on an empty group.
void KillProcessGroup(pid_t pgid, int signal_number);

// Reaps whatever members of process group `pgid` that are children of ours have exited, without
// waiting.
void ReapExitedInGroup(pid_t pgid);

// Whether no process of group `pgid` exists any more.
bool ProcessGroupGone(pid_t pgid);

}  // namespace zmr
