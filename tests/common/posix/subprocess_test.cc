#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/signals.h"
#include "common/posix/subprocess.h"

namespace zmr {
namespace {

// Runs `script` with /bin/sh; returns what it wrote to stdout and its wait status.
struct Ran {
  std::string out;
  int status = -1;
  pid_t pid = -1;
};

// Runs spec.path with spec.argv; returns what it wrote to stdout and its wait status.
Ran Run(SpawnSpec spec) {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error, kSpawnMinFd));
  spec.fds.push_back({w.get(), 1});
  SpawnFailure failure;
  Ran ran;
  ran.pid = Spawn(spec, &failure);
  REQUIRE_MESSAGE(ran.pid > 0, ErrnoText(failure.err));
  w.Reset();
  char buf[4096];
  int err = 0;
  for (;;) {
    const ssize_t n = ReadFull(r.get(), buf, sizeof(buf), &err);
    if (n <= 0) break;
    ran.out.append(buf, static_cast<std::size_t>(n));
  }
  ran.status = Reap(ran.pid);
  return ran;
}

Ran RunShell(const std::string& script, SpawnSpec spec = {}) {
  spec.path = "/bin/sh";
  spec.argv = {"sh", "-c", script};
  return Run(spec);
}

// The mask of the standard signals (1..31) in a /proc/PID/status line "NAME:\t<hex>".
uint64_t StandardSignals(const std::string& status, const std::string& name) {
  const std::size_t at = status.find(name + ":\t");
  REQUIRE(at != std::string::npos);
  return std::stoull(status.substr(at + name.size() + 2, 16), nullptr, 16) & 0x7fffffffu;
}

TEST_CASE("a spawned child gets its own process group, working directory and environment") {
  const std::vector<std::string> env = {"ZMR_TEST_VALUE=42"};
  SpawnSpec spec;
  SUBCASE("posix_spawn") {}
  SUBCASE("fork, with a parent-death signal") { spec.parent_death_signal = SIGKILL; }
  spec.cwd = "/proc";
  spec.env = &env;
  Ran ran = RunShell("echo \"$ZMR_TEST_VALUE $(pwd)\"; cut -d' ' -f5 /proc/$$/stat", spec);
  REQUIRE(WIFEXITED(ran.status));
  CHECK(WEXITSTATUS(ran.status) == 0);
  CHECK(ran.out == "42 /proc\n" + std::to_string(ran.pid) + "\n");
}

TEST_CASE("a spawned child inherits only the descriptors it was given") {
  const int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  REQUIRE(leaked >= 0);
  UniqueFd null_fd(fcntl(leaked, F_DUPFD_CLOEXEC, kSpawnMinFd));
  SpawnSpec spec;
  SUBCASE("posix_spawn") {}
  SUBCASE("fork, with a parent-death signal") { spec.parent_death_signal = SIGKILL; }
  spec.fds = {{null_fd.get(), 0}, {null_fd.get(), 2}};
  Ran ran = RunShell("ls /proc/self/fd | sort -n | tr '\\n' ' '", spec);
  close(leaked);
  // 0 and 2 given, 1 the pipe, 3 the directory ls itself opened to list them.
  CHECK(ran.out == "0 1 2 3 ");
}

void CountSignal(int) {}

TEST_CASE("a spawned child starts with no signal ignored or blocked whatever ours are") {
  SpawnSpec spec;
  SUBCASE("posix_spawn") {}
  SUBCASE("fork, with a parent-death signal") { spec.parent_death_signal = SIGKILL; }
  IgnoreSignal(SIGUSR2);
  SetSignalHandler(SIGUSR1, CountSignal);
  // cat itself sets no handlers, so its status shows what it was started with. (glibc's own
  // signals above 31 are left out: posix_spawn leaves those to glibc.)
  spec.path = "/bin/cat";
  spec.argv = {"cat", "/proc/self/status"};
  Ran ran = Run(spec);
  SetSignalHandler(SIGUSR2, SIG_DFL);
  SetSignalHandler(SIGUSR1, SIG_DFL);
  // (Caught signals are reset by exec itself; what survives exec is ignored and blocked ones.)
  CHECK(StandardSignals(ran.out, "SigIgn") == 0);
  CHECK(StandardSignals(ran.out, "SigBlk") == 0);
}

TEST_CASE("a spawn that cannot exec or cannot enter its directory fails with the errno") {
  SpawnSpec spec;
  spec.path = "/nonexistent/zmr-no-such-binary";
  spec.argv = {"x"};
  SpawnFailure failure;
  SUBCASE("posix_spawn") {}
  SUBCASE("fork, with a parent-death signal") { spec.parent_death_signal = SIGKILL; }
  CHECK(Spawn(spec, &failure) == -1);
  CHECK(failure.stage == SpawnStage::kExec);
  CHECK(failure.err == ENOENT);

  spec.path = "/bin/true";
  spec.cwd = "/nonexistent-zmr-dir";
  CHECK(Spawn(spec, &failure) == -1);
  // posix_spawn reports a failed chdir as its own failure; the fork path says where it stopped.
  CHECK(failure.stage == (spec.parent_death_signal == 0 ? SpawnStage::kExec : SpawnStage::kChdir));
  CHECK(failure.err == ENOENT);
}

TEST_CASE("killing a child's process group ends what it started, and the group can be reaped") {
  // As the worker does: orphans of our children become ours to reap.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error, kSpawnMinFd));
  SpawnSpec spec;
  spec.path = "/bin/sh";
  spec.argv = {"sh", "-c", "sleep 300 & echo started; wait"};
  spec.fds = {{w.get(), 1}};
  SpawnFailure failure;
  const pid_t pid = Spawn(spec, &failure);
  REQUIRE(pid > 0);
  w.Reset();
  char buf[8];
  REQUIRE(ReadExactly(r.get(), buf, 8) == 1);  // "started\n": the sleep runs
  CHECK_FALSE(HasExited(pid));
  CHECK_FALSE(ProcessGroupGone(pid));
  KillProcessGroup(pid, SIGKILL);
  const int status = Reap(pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  // The sleep, the shell's child, is ours now (subreaper): reap the group until it is empty.
  for (int i = 0; i < 10000 && !ProcessGroupGone(pid); ++i) {
    ReapExitedInGroup(pid);
    usleep(1000);
  }
  CHECK(ProcessGroupGone(pid));
  CHECK(Reap(pid) == -1);  // no longer a child of ours
  CHECK(HasExited(pid));
}

}  // namespace
}  // namespace zmr
