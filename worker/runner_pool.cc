// Spawning and ReapOrphans share one mutex and a registry of live runner pids (g_task_pids), so
// the orphan sweep never mistakes a runner that was just spawned for a leftover.
#include "worker/runner_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include "common/clock.h"
#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/subprocess.h"
#include "runner/protocol.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// Live runners: started by SpawnRunner and not yet reaped, guarded by g_children_mutex.
std::mutex g_children_mutex;
std::set<pid_t> g_task_pids;

void UnregisterTask(pid_t pid) {
  std::lock_guard<std::mutex> lock(g_children_mutex);
  g_task_pids.erase(pid);
}

// Pids of this process's children from /proc/*/stat (the parent pid is the second field after
// the parenthesised command name, which may itself contain spaces and parentheses): the fallback
// for kernels without /proc/PID/task/TID/children.
std::vector<pid_t> ChildPidsByScan() {
  std::vector<pid_t> children;
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    // One read into a stack buffer: this runs over every process of the host (hundreds on a busy
    // one), so no stream or string per process.
    char path[300];  // d_name is at most 255 bytes
    std::snprintf(path, sizeof(path), "/proc/%s/stat", entry->d_name);
    const UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) continue;
    char buf[512];
    int err = 0;
    const ssize_t n = ReadSome(fd.get(), buf, sizeof(buf) - 1, &err);  // the whole file
    if (n <= 0) continue;
    buf[n] = '\0';
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    const char* end_of_comm = std::strrchr(buf, ')');
    if (end_of_comm == nullptr) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(end_of_comm + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (ppid == self) children.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return children;
}

// Pids of this process's children: the union of /proc/self/task/TID/children over its threads (a
// child belongs to the thread that started it; an orphan reparented to this subreaper to one of
// its threads). A dozen small reads instead of a scan of every process of the host.
std::vector<pid_t> ChildPids() {
  std::vector<pid_t> children;
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) return ChildPidsByScan();
  bool have_children_files = true;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    char path[300];
    std::snprintf(path, sizeof(path), "/proc/self/task/%s/children", entry->d_name);
    const UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) have_children_files = false;  // CONFIG_PROC_CHILDREN is off
      continue;  // (or the thread just ended)
    }
    std::string text;
    char buf[4096];
    int err = 0;
    for (;;) {
      const ssize_t n = ReadFull(fd.get(), buf, sizeof(buf), &err);
      if (n > 0) text.append(buf, static_cast<std::size_t>(n));
      if (n < static_cast<ssize_t>(sizeof(buf))) break;  // end of file (or an error)
    }
    const char* p = text.c_str();
    char* end = nullptr;
    for (long pid = std::strtol(p, &end, 10); end != p; pid = std::strtol(p, &end, 10)) {
      if (pid > 0) children.push_back(static_cast<pid_t>(pid));
      p = end;
    }
  }
  closedir(tasks);
  if (!have_children_files) return ChildPidsByScan();
  return children;
}

// Ends an idle runner: EOF on its stdin, SIGKILL to its group (nothing of an attempt may run in
// an idle runner, so nothing is lost), then reaps it.
void EndIdleRunner(Runner& runner) {
  runner.stdin_w.Reset();
  KillProcessGroup(runner.pid, SIGKILL);
  Reap(runner.pid);
  UnregisterTask(runner.pid);
  ReapExitedInGroup(runner.pid);
}

// The label zmr-task starts with (argv[1]): a title padded to kRunnerTitleBytes with spaces, so
// it has room to rewrite it in place.
std::string PaddedTitle(const std::string& title) {
  std::string padded = title.substr(0, kRunnerTitleBytes);
  padded.resize(kRunnerTitleBytes, ' ');
  return padded;
}

}  // namespace

void BecomeSubreaper() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
      spdlog::warn("cannot become a child subreaper: {}; orphans of killed attempts are reaped "
                   "by init",
                   ErrnoText(errno));
    }
  });
}

std::unique_ptr<Runner> SpawnRunner(const std::string& binary, const std::string& cwd,
                                    std::string* error) {
  UniqueFd stdin_r, stdin_w, control_r, control_w, stderr_r, stderr_w;
  if (!MakePipe(&stdin_r, &stdin_w, error, kSpawnMinFd) ||
      !MakePipe(&control_r, &control_w, error, kSpawnMinFd) ||
      !MakePipe(&stderr_r, &stderr_w, error, kSpawnMinFd)) {
    return nullptr;
  }
  SpawnSpec spec;
  spec.path = binary;
  spec.argv = {binary, PaddedTitle(kIdleRunnerTitle)};
  spec.cwd = cwd;
  spec.fds = {{stdin_r.get(), 0}, {stderr_w.get(), 1}, {stderr_w.get(), 2},
              {control_w.get(), kTaskControlFd}};
  SpawnFailure failure;
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(g_children_mutex);
    pid = Spawn(spec, &failure);
    if (pid > 0) g_task_pids.insert(pid);
  }
  if (pid < 0) {
    *error = "cannot start task process " + binary + ": " + ErrnoText(failure.err);
    return nullptr;
  }
  auto runner = std::make_unique<Runner>();
  runner->pid = pid;
  runner->stdin_w = std::move(stdin_w);
  runner->control_r = std::move(control_r);
  runner->stderr_r = std::move(stderr_r);
  SetNonBlocking(runner->stdin_w.get());
  SetNonBlocking(runner->control_r.get());
  SetNonBlocking(runner->stderr_r.get());
  return runner;
}

int ReapRunner(pid_t pid, rusage* usage) {
  const int status = Reap(pid, usage);
  UnregisterTask(pid);
  return std::max(status, 0);
}

void ReapOrphans() {
  std::lock_guard<std::mutex> lock(g_children_mutex);
  std::vector<pid_t> orphans;
  for (pid_t pid : ChildPids()) {
    if (g_task_pids.count(pid) != 0) continue;
    kill(pid, SIGKILL);  // harmless for a zombie
    orphans.push_back(pid);
  }
  // SIGKILLed processes die at once unless blocked in the kernel; give them a moment (this holds
  // up spawning), and leave the slow ones to the next sweep.
  int64_t deadline = SteadyMs() + 200;
  while (!orphans.empty()) {
    std::erase_if(orphans, [](pid_t pid) {
      pid_t r = waitpid(pid, nullptr, WNOHANG);
      return r == pid || (r < 0 && errno == ECHILD);
    });
    if (orphans.empty() || SteadyMs() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string DefaultTaskBinary() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (self.parent_path() / "zmr-task").string();
}

std::string RunnerReuseKey(const AssignMsg& task) {
  if (task.code.plugin.empty()) return "";
  return task.job_id + "/" + task.code.plugin;
}

RunnerPool::~RunnerPool() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& runner : idle_) EndIdleRunner(*runner);
  idle_.clear();
}

std::unique_ptr<Runner> RunnerPool::TakeIdle(const std::string& reuse_key) {
  std::lock_guard<std::mutex> lock(mu_);
  // Runners that died while idle would only fail the attempt: end them instead.
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (HasExited((*it)->pid)) {
      spdlog::warn("idle task process {} has exited; starting another", (*it)->pid);
      EndIdleRunner(**it);
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
  // The most recently used first: its pages are the warmest.
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    if ((*it)->reuse_key != reuse_key) continue;
    std::unique_ptr<Runner> runner = std::move(*it);
    idle_.erase(std::next(it).base());
    return runner;
  }
  // A runner without user code can become any job's runner.
  if (!reuse_key.empty()) {
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (!(*it)->reuse_key.empty()) continue;
      std::unique_ptr<Runner> runner = std::move(*it);
      idle_.erase(std::next(it).base());
      return runner;
    }
  }
  return nullptr;
}

void RunnerPool::Release(std::unique_ptr<Runner> runner) {
  std::vector<std::unique_ptr<Runner>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (runner->attempts >= attempts_per_runner_) {
      retired.push_back(std::move(runner));
    } else {
      idle_.push_back(std::move(runner));
    }
    while (static_cast<int>(idle_.size()) > max_idle_) {
      retired.push_back(std::move(idle_.front()));
      idle_.erase(idle_.begin());
    }
  }
  for (auto& r : retired) EndIdleRunner(*r);
}

void RunnerPool::RetireJob(const std::string& job_id) {
  std::vector<std::unique_ptr<Runner>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string prefix = job_id + "/";
    for (auto it = idle_.begin(); it != idle_.end();) {
      if ((*it)->reuse_key.rfind(prefix, 0) == 0) {
        retired.push_back(std::move(*it));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& r : retired) EndIdleRunner(*r);
}

int RunnerPool::IdleCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(idle_.size());
}

}  // namespace zmr
