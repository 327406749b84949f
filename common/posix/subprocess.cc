#include "common/posix/subprocess.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/posix/fd.h"

extern char** environ;

namespace zmr {

namespace {

// The stages as the child reports them on the status pipe: {stage, errno}.
enum ChildStage : int { kChildFds = 1, kChildChdir = 2, kChildExec = 3 };

}  // namespace

namespace {

// The argv and envp arrays execve takes, pointing into `spec` (which must outlive them).
struct ExecArrays {
  std::vector<char*> argv;
  std::vector<char*> envp;
  char** env = nullptr;
};

ExecArrays MakeExecArrays(const SpawnSpec& spec) {
  ExecArrays a;
  a.argv.reserve(spec.argv.size() + 1);
  for (const std::string& arg : spec.argv) a.argv.push_back(const_cast<char*>(arg.c_str()));
  a.argv.push_back(nullptr);
  a.env = environ;
  if (spec.env != nullptr) {
    a.envp.reserve(spec.env->size() + 1);
    for (const std::string& e : *spec.env) a.envp.push_back(const_cast<char*>(e.c_str()));
    a.envp.push_back(nullptr);
    a.env = a.envp.data();
  }
  return a;
}

// Without a parent-death signal: posix_spawn, which glibc runs as clone(CLONE_VM | CLONE_VFORK),
// so a large multi-threaded parent (the worker) copies neither its memory nor its page tables and
// no atfork handler runs. posix_spawn reports a failed chdir or exec as its return value.
pid_t SpawnWithPosixSpawn(const SpawnSpec& spec, int lowest_free, SpawnFailure* failure) {
  ExecArrays exec = MakeExecArrays(spec);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (const auto& [ours, theirs] : spec.fds) {
    posix_spawn_file_actions_adddup2(&actions, ours, theirs);
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, lowest_free);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_process_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, spec.path.c_str(), &actions, &attr, exec.argv.data(), exec.env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *failure = {SpawnStage::kExec, rc};
    return -1;
  }
  return pid;
}

}  // namespace

pid_t Spawn(const SpawnSpec& spec, SpawnFailure* failure) {
  int lowest_free = 0;
  for (const auto& [ours, theirs] : spec.fds) lowest_free = std::max(lowest_free, theirs + 1);
  if (spec.parent_death_signal == 0) return SpawnWithPosixSpawn(spec, lowest_free, failure);

  // With a parent-death signal: fork, and set it up in the child. The status pipe closes at exec (O_CLOEXEC) or carries why exec was not reached.
  int status_fds[2];
  if (::pipe2(status_fds, O_CLOEXEC) != 0) {
    *failure = {SpawnStage::kPipe, errno};
    return -1;
  }
  UniqueFd status_r(status_fds[0]), status_w(status_fds[1]);
  if (status_w.get() < lowest_free) {
    const int moved = ::fcntl(status_w.get(), F_DUPFD_CLOEXEC, kSpawnMinFd);
    if (moved < 0) {
      *failure = {SpawnStage::kPipe, errno};
      return -1;
    }
    status_w = UniqueFd(moved);
  }

  // Everything the child needs is prepared here: between fork and exec it may only make
  // async-signal-safe calls (other threads may hold the allocator's locks).
  ExecArrays exec = MakeExecArrays(spec);
  char** argv = exec.argv.data();
  char** env = exec.env;
  const char* path = spec.path.c_str();
  const char* dir = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  const pid_t parent = ::getpid();
  const int report_fd = status_w.get();

  // Signals stay blocked across fork so no handler of ours runs in the child.
  sigset_t all, old_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto fail = [report_fd](int stage) {
      int report[2] = {stage, errno};
      ssize_t ignored = ::write(report_fd, report, sizeof(report));
      (void)ignored;
      ::_exit(127);
    };
    if (spec.new_process_group) ::setpgid(0, 0);
    if (spec.parent_death_signal != 0) {
      ::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal);
      if (::getppid() != parent) ::_exit(127);  // the starting process already died
    }
    for (const auto& [ours, theirs] : spec.fds) {
      if (::dup2(ours, theirs) < 0) fail(kChildFds);
    }
    if (dir != nullptr && ::chdir(dir) != 0) fail(kChildChdir);
    // Descriptors opened without O_CLOEXEC (by libraries, by user code) are not the child's
    // business: everything above its own close at exec.
    if (::syscall(SYS_close_range, static_cast<unsigned>(lowest_free), ~0U,
                  CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = lowest_free; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    // Every signal at its default action before signals are unblocked: none of our handlers may
    // run in the child, and ignored signals would stay ignored across exec (SIGPIPE above all).
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      struct sigaction current;
      if (::sigaction(sig, nullptr, &current) == 0 &&
          ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL)) {
        struct sigaction dfl;
        std::memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);
      }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(path, argv, env);
    fail(kChildExec);
  }
  const int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (pid < 0) {
    *failure = {SpawnStage::kFork, fork_errno};
    return -1;
  }
  status_w.Reset();
  int report[2] = {0, 0};
  std::size_t got = 0;
  while (got < sizeof(report)) {
    const ssize_t n =
        ::read(status_r.get(), reinterpret_cast<char*>(report) + got, sizeof(report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == 0) return pid;
  Reap(pid);
  if (got < sizeof(report)) {
    *failure = {SpawnStage::kEarly, 0};
  } else {
    const SpawnStage stage = report[0] == kChildChdir ? SpawnStage::kChdir
                             : report[0] == kChildExec ? SpawnStage::kExec
                                                       : SpawnStage::kFds;
    *failure = {stage, report[1]};
  }
  return -1;
}

bool HasExited(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno != EINTR;  // ECHILD: gone (someone reaped it)
  }
  return info.si_pid == pid;
}

int Reap(pid_t pid, rusage* usage) {
  int status = 0;
  for (;;) {
    const pid_t r = ::wait4(pid, &status, 0, usage);
    if (r == pid) return status;
    if (r < 0 && errno == EINTR) continue;
    return -1;
  }
}

void KillProcessGroup(pid_t pgid, int signal_number) {
  if (pgid > 0) ::kill(-pgid, signal_number);
}

void ReapExitedInGroup(pid_t pgid) {
  if (pgid <= 0) return;
  while (::waitpid(-pgid, nullptr, WNOHANG) > 0) {
  }
}

bool ProcessGroupGone(pid_t pgid) { return ::kill(-pgid, 0) != 0 && errno == ESRCH; }

}  // namespace zmr
