// zmr-task, the runner proper (see runner/runner.h).
#include "runner/runner.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <poll.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "common/app.h"
#include "common/clock.h"
#include "common/layout.h"
#include "common/logging.h"
#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/signals.h"
#include "common/protocol.h"
#include "common/value.h"
#include "runner/plugin_loader.h"
#include "runner/protocol.h"
#include "runner/shuffle_store.h"
#include "runner/streaming.h"
#include "runner/task_runner.h"

namespace zmr {
namespace {

// Status-only frames are sent at most this often; the latest status rides on every progress frame
// and is flushed before the outcome, so throttling loses nothing but intermediate texts.
constexpr int64_t kStatusIntervalMs = 200;
// After an attempt that peaked above this many KiB, the runner returns its free heap to the
// kernel (malloc_trim) before it waits for the next attempt.
constexpr int64_t kTrimAfterPeakKb = 16 << 10;

// Writes control frames to fd 3. Safe from any thread (a streaming app reports status from its
// stderr reader).
class ControlChannel {
 public:
  // Forgets the previous attempt's progress and status; the next attempt starts now.
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    progress_ = 0;
    status_.clear();
    status_pending_ = false;
    attempt_start_ms_ = SteadyMs();
  }

  // A final 1.0 of an attempt younger than kProgressIntervalMs is not sent: its outcome follows
  // at once and implies it, and a tiny task is spared a frame (and the worker a wake-up).
  void Progress(double progress) {
    std::lock_guard<std::mutex> lock(mu_);
    progress_ = progress;
    if (progress >= 1.0 && SteadyMs() - attempt_start_ms_ < kProgressIntervalMs) return;
    SendProgressLocked();
  }

  void Status(const std::string& status) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    status_pending_ = true;
    if (SteadyMs() - last_sent_ms_ >= kStatusIntervalMs) SendProgressLocked();
  }

  // Sends `frame` (the outcome), after a progress frame if a status change is not sent yet.
  void Send(const Value& frame) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_pending_) SendProgressLocked();
    WriteLocked(EncodeControlFrame(frame));
  }

 private:
  void SendProgressLocked() {
    Value v;
    v.Set("type", task_frame::kProgress);
    v.Set("progress", progress_);
    if (!status_.empty()) v.Set("status", status_);
    WriteLocked(EncodeControlFrame(v));
    last_sent_ms_ = SteadyMs();
    status_pending_ = false;
  }

  void WriteLocked(const std::string& bytes) {
    // A failure means the worker is gone; it will not read the outcome either.
    WriteAll(kTaskControlFd, bytes);
  }

  std::mutex mu_;
  double progress_ = 0;
  std::string status_;
  bool status_pending_ = false;   // status_ changed since the last frame
  int64_t last_sent_ms_ = 0;
  int64_t attempt_start_ms_ = 0;
};

// Wraps the user's App to see its status updates: Start gets an AttemptInfo whose set_status also
// reports to the worker. Everything else is forwarded unchanged.
class StatusReportingApp final : public App {
 public:
  StatusReportingApp(App* inner, ControlChannel* channel) : inner_(inner), channel_(channel) {}

  bool Start(const AttemptInfo& info, std::string* error) override {
    info_ = info;  // kept: the inner app may hold on to the reference
    std::function<void(const std::string&)> original = info.set_status;
    ControlChannel* channel = channel_;
    info_.set_status = [channel, original](const std::string& status) {
      channel->Status(status);
      if (original) original(status);
    };
    return inner_->Start(info_, error);
  }
  bool Finish(Emitter& out, std::string* error) override { return inner_->Finish(out, error); }
  std::string Failure() const override { return inner_->Failure(); }
  int64_t Partition(std::string_view key, int64_t num_partitions) override {
    return inner_->Partition(key, num_partitions);
  }
  void Map(std::string_view line, const MapContext& ctx, Emitter& out) override {
    inner_->Map(line, ctx, out);
  }
  bool HasCombiner() const override { return inner_->HasCombiner(); }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    inner_->Combine(key, values, out);
  }
  bool FlushCombine(Emitter& out, std::string* error) override {
    return inner_->FlushCombine(out, error);
  }
  void TakeCounters(Counters* into) override { inner_->TakeCounters(into); }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    inner_->Reduce(key, values, out);
  }

 private:
  App* inner_;
  ControlChannel* channel_;
  AttemptInfo info_;
};

// Reads the next request frame from stdin into *body. Returns 1, 0 at EOF, -1 with *error.
int ReadRequestFrame(std::string* body, std::string* error) {
  unsigned char header[kFrameHeaderBytes];
  int rc = ReadExactly(0, reinterpret_cast<char*>(header), sizeof(header));
  if (rc <= 0) {
    if (rc < 0) *error = "cannot read the task request: " + ErrnoText(errno);
    return rc;
  }
  const uint32_t length = DecodeFrameLength(header);
  if (length > kMaxControlFrameBytes) {
    *error = "task request frame of " + std::to_string(length) + " bytes";
    return -1;
  }
  body->resize(length);
  if (ReadExactly(0, body->data(), length) != 1) {
    *error = "the task request ends early";
    return -1;
  }
  return 1;
}

// argv[1], which the worker made kRunnerTitleBytes long: rewritten in place so that ps shows what
// this runner is doing.
char* g_title = nullptr;
std::size_t g_title_capacity = 0;

void SetTitle(const std::string& title) {
  if (g_title == nullptr) return;
  const std::size_t n = std::min(title.size(), g_title_capacity);
  std::memcpy(g_title, title.data(), n);
  std::memset(g_title + n, 0, g_title_capacity - n);
}

// Resource use of one attempt: CPU of this process and of the children it waited for (streaming
// commands) since Start, and the peak resident set since Start (the kernel's high-water mark is
// reset by writing 5 to /proc/self/clear_refs; without that it is this process's lifetime peak).
class AttemptUsage {
 public:
  void Start() {
    start_cpu_ms_ = CpuMs();
    const UniqueFd fd(open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC));
    if (fd.valid()) WriteAll(fd.get(), "5");  // best effort: without it the peak is the lifetime's
  }
  int64_t CpuSinceStartMs() const { return CpuMs() - start_cpu_ms_; }
  // VmHWM of /proc/self/status in KiB, or ru_maxrss.
  static int64_t PeakRssKb() {
    std::FILE* f = std::fopen("/proc/self/status", "re");
    if (f != nullptr) {
      char line[256];
      while (std::fgets(line, sizeof(line), f) != nullptr) {
        long kb = 0;
        if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
          std::fclose(f);
          return kb;
        }
      }
      std::fclose(f);
    }
    rusage self{};
    getrusage(RUSAGE_SELF, &self);
    return self.ru_maxrss;
  }

 private:
  static int64_t CpuMs() {
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    auto ms = [](const timeval& t) { return t.tv_sec * 1000 + t.tv_usec / 1000; };
    return ms(self.ru_utime) + ms(self.ru_stime) + ms(children.ru_utime) + ms(children.ru_stime);
  }
  int64_t start_cpu_ms_ = 0;
};

// Reports failure and returns the exit code.
int Fail(ControlChannel& channel, const AssignMsg& task, const std::string& error,
         std::vector<std::string> bad_inputs = {}) {
  TaskFailedMsg failed;
  failed.ref = AttemptRef{task.job_id, task.task_id, task.attempt};
  failed.error = error.empty() ? "unknown error" : error;
  failed.bad_inputs = std::move(bad_inputs);
  Value v = failed.ToValue();
  v.Set("type", task_frame::kFailed);
  channel.Send(v);
  return 1;
}

void ApplyMemoryLimit(int64_t bytes) {
  if (bytes <= 0) return;
#if defined(__SANITIZE_ADDRESS__)
  spdlog::warn("memory limit of {} MB not applied: zmr-task is built with AddressSanitizer, "
               "whose shadow memory needs a huge address space",
               bytes >> 20);
#else
  rlimit limit{static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
  if (setrlimit(RLIMIT_AS, &limit) != 0) {
    spdlog::warn("cannot apply the memory limit of {} MB: {}", bytes >> 20, ErrnoText(errno));
  }
#endif
}

std::string OutOfMemoryError(int64_t limit_bytes) {
  if (limit_bytes <= 0) return "out of memory";
  return "out of memory (limit " + std::to_string(limit_bytes >> 20) + " MB)";
}

// Set when operator new failed: the runner turns exceptions into its own error text, so this is
// how an attempt that failed for lack of memory is told apart.
std::atomic<bool> g_allocation_failed{false};

void OnAllocationFailure() {
  g_allocation_failed.store(true);
  throw std::bad_alloc();
}

int RunTask(ControlChannel& channel, const TaskRequest& request, const AttemptUsage& usage) {
  const AssignMsg& task = request.assign;
  const bool is_map = task.kind == TaskKind::kMap;
  std::string error;
  std::unique_ptr<App> user_app;
  if (!task.code.mapper.empty()) {
    user_app = MakeStreamingApp(task.code, is_map, &error);
  } else if (!task.code.plugin.empty()) {
    user_app = LoadPluginApp(request.plugin_path, task.app, task.params, &error);
  }
  if ((!task.code.mapper.empty() || !task.code.plugin.empty()) && !user_app) {
    return Fail(channel, task, error.empty() ? "cannot create the app" : error);
  }
  std::unique_ptr<StatusReportingApp> app;
  if (user_app) app = std::make_unique<StatusReportingApp>(user_app.get(), &channel);

  LocalFileStore store(request.work_dir);
  std::atomic<bool> cancelled{false};  // the worker kills this process instead
  TaskContext ctx;
  ctx.store = &store;
  ctx.cancelled = &cancelled;
  ctx.progress = [&channel](double fraction) { channel.Progress(fraction); };
  ctx.app = app.get();  // null: the runner creates the built-in app
  ctx.attempt_dir = request.attempt_dir;
  ctx.sort_buffer_bytes = request.sort_buffer_bytes;
  ctx.merge_fan_in = static_cast<int>(request.merge_fan_in);
  TaskResult result;
  bool ok = is_map ? RunMapTask(task, ctx, &result, &error)
                   : RunReduceTask(task, ctx, &result, &error);
  if (!ok) {
    if (g_allocation_failed.load()) {
      error = OutOfMemoryError(request.memory_limit_bytes) + ": " + error;
    }
    return Fail(channel, task, error, std::move(result.bad_inputs));
  }
  TaskDoneMsg done;
  done.ref = AttemptRef{task.job_id, task.task_id, task.attempt};
  done.outputs = std::move(result.outputs);
  done.counters = std::move(result.counters);
  done.counters["task_cpu_ms"] = usage.CpuSinceStartMs();
  const int64_t peak_rss_kb = AttemptUsage::PeakRssKb();
  done.counters["peak_rss_kb"] = peak_rss_kb;
  Value v = done.ToValue();
  v.Set("type", task_frame::kDone);
  // Idle from here on: the worker may hand this process its next attempt as soon as it reads
  // the frame.
  SetTitle(kIdleRunnerTitle);
  channel.Send(v);
  // A big attempt leaves freed heap that malloc keeps (its mmap threshold grows with every large
  // free): hand it back, so the next attempt's peak RSS starts from this process's baseline,
  // not from what an earlier attempt happened to leave. Tiny attempts skip the walk.
  if (peak_rss_kb > kTrimAfterPeakKb) malloc_trim(0);
  return 0;
}

// Runs one request: the attempt's directory (if it has one) is the working directory while it
// runs. Returns the exit code if this process must end (the attempt failed), or -1 to wait for
// the next request.
int RunRequest(ControlChannel& channel, const TaskRequest& request) {
  const AssignMsg& task = request.assign;
  if (request.parent_pid != 0 && getppid() != static_cast<pid_t>(request.parent_pid)) {
    return Fail(channel, task, "the worker that started this task is gone");
  }
  if (!request.attempt_dir.empty() && chdir(request.attempt_dir.c_str()) != 0) {
    return Fail(channel, task, "cannot enter the attempt dir " + request.attempt_dir + ": " +
                                   ErrnoText(errno));
  }
  SetTitle(task.job_id + "/" + layout::AttemptName(task.task_id, task.attempt));
  ApplyMemoryLimit(request.memory_limit_bytes);
  g_allocation_failed.store(false);
  channel.Reset();
  AttemptUsage usage;
  usage.Start();
  int rc;
  try {
    rc = RunTask(channel, request, usage);
  } catch (const std::bad_alloc&) {
    rc = Fail(channel, task, OutOfMemoryError(request.memory_limit_bytes));
  } catch (const std::exception& e) {
    rc = Fail(channel, task, std::string("task threw: ") + e.what());
  } catch (...) {
    rc = Fail(channel, task, "task threw an unknown exception");
  }
  if (rc != 0) return rc;
  // Out of the attempt dir, which the worker removes now.
  if (chdir(request.work_dir.c_str()) != 0 && chdir("/") != 0) return 1;
  return -1;
}

// Ends this process when the worker is gone while an attempt runs: the worker holds the write end
// of stdin, so its death (or its closing the pipe to retire this runner) is a hang-up there.
// (PR_SET_PDEATHSIG would fire when the worker *thread* that spawned this runner ends, which is
// after its first attempt.)
void WatchWorker() {
  for (;;) {
    pollfd pfd{0, 0, 0};  // POLLHUP and POLLERR are reported whatever is asked for
    int ready = poll(&pfd, 1, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) break;
  }
  kill(getpid(), SIGTERM);  // OnTerminate: the streaming commands' groups go too
}

// SIGTERM is how the worker stops an attempt: the streaming commands run in process groups of
// their own, so end those first, then die of the signal. Async-signal-safe.
void OnTerminate(int signal_number) {
  KillStreamingProcessGroups();
  RaiseWithDefaultAction(signal_number);
}

}  // namespace

int RunTaskRunner(int argc, char** argv) {
  // argv[1], if any, labels the process for ps: rewritten to "idle" or JOB/TASK.aN (SetTitle).
  IgnoreSignal(SIGPIPE);
  SetSignalHandler(SIGTERM, OnTerminate);
  if (fcntl(kTaskControlFd, F_GETFD) < 0) {
    std::fprintf(stderr,
                 "zmr-task: runs one task attempt for zmr-worker and is started by it (fd %d, "
                 "its control pipe, is not open)\n",
                 kTaskControlFd);
    return 2;
  }
  // Keep the control pipe out of user commands (streaming children): EOF on it must mean that
  // this process is gone.
  SetCloseOnExec(kTaskControlFd);
  SetupLogging("zmr-task", "info");
  if (argc > 1) {
    g_title = argv[1];
    g_title_capacity = std::strlen(argv[1]);
    SetTitle(kIdleRunnerTitle);
  }
  std::thread(WatchWorker).detach();  // lives as long as the process; never joined
  std::set_new_handler(OnAllocationFailure);
  ControlChannel channel;
  for (;;) {
    std::string body, error;
    int got = ReadRequestFrame(&body, &error);
    if (got == 0) return 0;  // the worker retired this runner
    AssignMsg unknown;
    if (got < 0) return Fail(channel, unknown, error);
    std::optional<Value> value = Unpack(body, &error);
    std::optional<TaskRequest> request;
    if (value) request = TaskRequest::FromValue(*value, &error);
    if (!request) return Fail(channel, unknown, "bad task request: " + error);
    int rc = RunRequest(channel, *request);
    if (rc >= 0) return rc;
  }
}

}  // namespace zmr
