#include "worker/resources.h"

#include <doctest/doctest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>

#include "common/clock.h"
#include "tests/support/temp_dir.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

// CPU time this process has used, in seconds (all its threads; not its children).
double OwnCpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Spins until this process has used `seconds` more CPU time (measured, not wall time).
void BurnCpu(double seconds) {
  const double until = OwnCpuSeconds() + seconds;
  volatile uint64_t sink = 0;
  while (OwnCpuSeconds() < until) {
    for (int i = 0; i < 100000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
}

// VmRSS of this process from /proc/self/status, in KiB (0 if unreadable).
int64_t OwnRssKb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  long long kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb;
}

// A child of this process that forks a grandchild; the grandchild (named with spaces and
// parentheses, which /proc/PID/stat shows inside the parenthesised comm field) burns `seconds` of
// its own CPU time, says so, and stays alive until released. The destructor releases both and
// reaps the child (which reaps the grandchild), whatever the test checked.
class BurningGrandchild {
 public:
  explicit BurningGrandchild(double seconds) {
    int ready[2], release[2];
    REQUIRE(pipe(ready) == 0);
    if (pipe(release) != 0) {
      close(ready[0]);
      close(ready[1]);
      FAIL("pipe failed");
    }
    pid_ = fork();
    if (pid_ == 0) {
      // Child: only async-signal-safe calls from here on.
      close(ready[0]);
      close(release[1]);
      pid_t burner = fork();
      if (burner == 0) {
        prctl(PR_SET_NAME, "zmr) (b u r n");
        BurnCpu(seconds);
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(1);
        while (read(release[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
      }
      close(ready[1]);
      close(release[0]);
      int status = 0;
      while (burner > 0 && waitpid(burner, &status, 0) < 0 && errno == EINTR) {
      }
      _exit(burner > 0 ? 0 : 1);
    }
    close(ready[1]);
    close(release[0]);
    ready_fd_ = ready[0];
    release_fd_ = release[1];
    REQUIRE(pid_ > 0);
  }

  ~BurningGrandchild() {
    if (release_fd_ >= 0) close(release_fd_);
    if (ready_fd_ >= 0) close(ready_fd_);
    int status = 0;
    while (pid_ > 0 && waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  BurningGrandchild(const BurningGrandchild&) = delete;
  BurningGrandchild& operator=(const BurningGrandchild&) = delete;

  // Blocks until the grandchild has burnt its CPU time. False if it died first.
  bool WaitBurnt() {
    char c = 0;
    ssize_t n;
    while ((n = read(ready_fd_, &c, 1)) < 0 && errno == EINTR) {
    }
    return n == 1;
  }

 private:
  pid_t pid_ = -1;
  int ready_fd_ = -1;
  int release_fd_ = -1;
};

TEST_CASE("the first sample has no CPU rates and the following ones do") {
  TempDir dir;
  ResourceSampler sampler(dir.path().string());
  ResourceSample first = sampler.Sample(SteadyMs());
  CHECK(first.cpu == -1);
  CHECK(first.host_cpu == -1);
  CHECK(first.tree_cpu_seconds >= 0);

  BurnCpu(0.1);  // lets /proc/stat advance by a few ticks
  ResourceSample second = sampler.Sample(SteadyMs());
  CHECK(second.cpu >= 0);
  CHECK(second.host_cpu >= 0);
  CHECK(second.host_cpu <= 1);
  CHECK(second.cores >= 1);
  CHECK(second.load1 >= 0);
  CHECK(second.tree_cpu_seconds >= first.tree_cpu_seconds);
}

TEST_CASE("the CPU time a grandchild burns while alive counts in the process tree's total") {
  TempDir dir;
  ResourceSampler sampler(dir.path().string());
  ResourceSample before = sampler.Sample(SteadyMs());
  REQUIRE(before.tree_cpu_seconds >= 0);
  {
    BurningGrandchild burner(0.3);
    REQUIRE(burner.WaitBurnt());
    ResourceSample during = sampler.Sample(SteadyMs());
    CHECK(during.tree_cpu_seconds - before.tree_cpu_seconds >= 0.2);
    CHECK(during.cpu > 0);
  }
  // Reaped, its time is in this process's cutime/cstime: a fresh sampler (no high-water mark
  // from earlier samples) still counts it.
  ResourceSampler fresh(dir.path().string());
  ResourceSample after = fresh.Sample(SteadyMs());
  CHECK(after.tree_cpu_seconds - before.tree_cpu_seconds >= 0.2);
}

TEST_CASE("resident memory of the process tree is at least this process's own") {
  TempDir dir;
  ResourceSampler sampler(dir.path().string());
  const int64_t own_kb = OwnRssKb();
  REQUIRE(own_kb > 0);
  ResourceSample s = sampler.Sample(SteadyMs());
  CHECK(s.rss_kb >= own_kb / 2);
}

TEST_CASE("free disk space is reported for the work dir and unknown when it does not exist") {
  TempDir dir;
  ResourceSampler present(dir.path().string());
  CHECK(present.Sample(SteadyMs()).disk_free_bytes > 0);

  ResourceSampler missing((dir.path() / "no" / "such" / "dir").string());
  ResourceSample s = missing.Sample(SteadyMs());
  CHECK(s.disk_free_bytes == -1);
  CHECK(s.cores >= 1);  // the other figures do not depend on the work dir
}

}  // namespace
}  // namespace zmr
