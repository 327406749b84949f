// Streaming commands behind the App interface. Everything runs on the attempt's thread: one
// ChildProcess per running command (the mapper or reducer for the whole attempt, a combiner per
// batch), each driven by one poll() loop over its non-blocking stdin, stdout and stderr pipes, so a
// command that writes while we write never deadlocks against us.
//
// Failure handling, in order: a write that fails (EPIPE: the command stopped reading) stops the
// input, gives the command kBrokenPipeGrace to exit and then kills its process group; a command
// seen to have exited (waitid WNOWAIT, checked every kExitCheckIntervalMs) has its process group
// killed while it is still a zombie (so the group id cannot have been reused), is reaped, and what
// is left in its pipes is read for at most kDrainAfterExit; a set cancel flag kills the group at
// once. The App's first failure is kept (Failure()) and every later call is a no-op; destroying a
// ChildProcess SIGKILLs a group still running and reaps it.
#include "runner/streaming.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/signals.h"
#include "common/posix/subprocess.h"

extern char** environ;

namespace zmr {

namespace {

using Clock = std::chrono::steady_clock;

// Bytes read from a pipe per read().
constexpr std::size_t kReadChunkBytes = 64 << 10;
// poll() timeout while a command runs: how often we look whether it exited or was cancelled (an
// exit is usually seen sooner, as EOF or EPIPE on its pipes).
constexpr int kExitCheckIntervalMs = 100;
// After /bin/sh exited and its group was killed, how long processes that left the group (setsid
// daemons) may keep the output pipes open before we stop reading them.
constexpr auto kDrainAfterExit = std::chrono::seconds(2);
// A command that closed its stdin before the end of the input gets this long to exit by itself
// (and report why) before its group is killed.
constexpr auto kBrokenPipeGrace = std::chrono::seconds(2);
// A stderr "line" longer than this is passed on in pieces of this size.
constexpr std::size_t kMaxStderrLineBytes = 64 << 10;
// Each stderr line kept for error messages is cut to this many bytes.
constexpr std::size_t kTailLineBytes = 1024;
// Ordinary stderr lines are copied to our stderr in batches of up to this many bytes.
constexpr std::size_t kLogBatchBytes = 64 << 10;
// The input buffer keeps its memory unless a huge line made it larger than this.
constexpr std::size_t kKeepInputCapacity = 4 * kStreamingWriteBufferBytes;

constexpr std::string_view kCounterPrefix = "reporter:counter:";
constexpr std::string_view kStatusPrefix = "reporter:status:";

// Process groups of running commands, for KillStreamingProcessGroups (0: free slot).
constexpr int kMaxProcessGroups = 256;
std::atomic<pid_t> g_process_groups[kMaxProcessGroups];
static_assert(std::atomic<pid_t>::is_always_lock_free, "read from a signal handler");

int RegisterProcessGroup(pid_t pgid) {
  for (int i = 0; i < kMaxProcessGroups; ++i) {
    pid_t expected = 0;
    if (g_process_groups[i].compare_exchange_strong(expected, pgid)) return i;
  }
  return -1;  // table full: the group is still killed by its App, just not by the handler
}

void UnregisterProcessGroup(int* slot) {
  if (*slot >= 0) g_process_groups[*slot].store(0);
  *slot = -1;
}

// Bytes read from a pipe, cut into "\n"-terminated lines.
class LineReader {
 public:
  // Reads once from fd. Returns the number of bytes read, 0 at end of file (a read error other
  // than EAGAIN counts as end of file), or -1 if nothing was available.
  ssize_t ReadFrom(int fd) {
    if (start_ == buf_.size()) {
      buf_.clear();
      start_ = scanned_ = 0;
    } else if (start_ > 0 && start_ >= buf_.size() - start_) {
      buf_.erase(0, start_);
      scanned_ -= start_;
      start_ = 0;
    }
    std::size_t old_size = buf_.size();
    buf_.resize(old_size + kReadChunkBytes);
    ssize_t n;
    do {
      n = ::read(fd, buf_.data() + old_size, kReadChunkBytes);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    buf_.resize(old_size + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) return (err == EAGAIN || err == EWOULDBLOCK) ? -1 : 0;
    return n;
  }

  // Calls f(line) for each complete line (without its "\n"). An unterminated rest longer than
  // max_partial is handed to f as a line too. The views are valid during the call.
  template <typename F>
  void ForEachLine(F&& f, std::size_t max_partial) {
    for (;;) {
      std::size_t from = std::max(scanned_, start_);
      const void* nl = std::memchr(buf_.data() + from, '\n', buf_.size() - from);
      if (nl == nullptr) {
        scanned_ = buf_.size();
        if (buf_.size() - start_ > max_partial) {
          std::size_t begin = start_;
          start_ = scanned_ = buf_.size();
          f(std::string_view(buf_.data() + begin, buf_.size() - begin));
        }
        return;
      }
      std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data());
      std::size_t begin = start_;
      start_ = end + 1;
      f(std::string_view(buf_.data() + begin, end - begin));
    }
  }

  // The unterminated rest.
  std::string_view pending() const {
    return std::string_view(buf_.data() + start_, buf_.size() - start_);
  }
  void Clear() {
    std::string().swap(buf_);
    start_ = scanned_ = 0;
  }

 private:
  std::string buf_;
  std::size_t start_ = 0;    // first byte not yet handed out
  std::size_t scanned_ = 0;  // bytes before this are known to hold no "\n" past start_
};

// The last stderr lines of a command, for its error message.
class StderrTail {
 public:
  void Add(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return;
    lines_.emplace_back(line.substr(0, kTailLineBytes));
    bytes_ += lines_.back().size();
    while (lines_.size() > static_cast<std::size_t>(kStreamingStderrTailLines) ||
           (lines_.size() > 1 && bytes_ > kStreamingStderrTailBytes)) {
      bytes_ -= lines_.front().size();
      lines_.pop_front();
    }
  }
  std::string Joined() const {
    std::string out;
    for (const std::string& line : lines_) {
      if (!out.empty()) out += " | ";
      out += line;
    }
    return out;
  }

 private:
  std::deque<std::string> lines_;
  std::size_t bytes_ = 0;
};

// Where the stderr lines of an App's commands go: user counters, the status callback, and this
// process's stderr (the attempt log).
class StderrSink {
 public:
  ~StderrSink() { FlushLog(); }

  void set_status_callback(std::function<void(const std::string&)> f) {
    set_status_ = std::move(f);
  }

  // Handles one line; returns true if it is an ordinary line (not a reporter line).
  bool Line(std::string_view line) {
    ReporterLine r = ParseReporterLine(line);
    switch (r.kind) {
      case ReporterLine::Kind::kCounter: {
        std::string name;
        name.reserve(r.group.size() + 1 + r.name.size());
        name.append(r.group).append("/").append(r.name);
        int64_t& counter = counters_[name];
        if (__builtin_add_overflow(counter, r.amount, &counter)) {
          counter = r.amount > 0 ? INT64_MAX : INT64_MIN;
        }
        return false;
      }
      case ReporterLine::Kind::kStatus:
        if (set_status_ && r.status != last_status_) {
          last_status_.assign(r.status);
          set_status_(last_status_);
        }
        return false;
      case ReporterLine::Kind::kOther:
        break;
    }
    log_.append(line);
    log_.push_back('\n');
    if (log_.size() >= kLogBatchBytes) FlushLog();
    return true;
  }

  void FlushLog() {
    WriteAll(STDERR_FILENO, log_);  // best effort
    log_.clear();
  }

  void TakeCounters(Counters* into) {
    for (const auto& [name, amount] : counters_) {
      int64_t& total = (*into)[name];
      if (__builtin_add_overflow(total, amount, &total)) total = amount > 0 ? INT64_MAX : INT64_MIN;
    }
    counters_.clear();
  }

 private:
  Counters counters_;
  std::function<void(const std::string&)> set_status_;
  std::string last_status_;  // set_status_ is called only when the status changes
  std::string log_;          // ordinary lines not yet written to our stderr
};

// One running command: `/bin/sh -c COMMAND` in its own process group, with pipes for its stdin,
// stdout and stderr. Stdout lines go to the Emitter of the call that reads them; stderr lines to
// the sink.
class ChildProcess {
 public:
  // Starts the command. role ("mapper", "reducer", "combiner") names it in messages. sink and
  // cancelled (may be null) must outlive the ChildProcess. nullptr with *error if /bin/sh cannot
  // be started (e.g. work_dir does not exist).
  static std::unique_ptr<ChildProcess> Spawn(std::string role, const std::string& command,
                                             const std::string& work_dir,
                                             const std::vector<std::string>& env,
                                             StderrSink* sink,
                                             const std::atomic<bool>* cancelled,
                                             std::string* error);

  ~ChildProcess() {
    if (pid_ > 0 && !reaped_) {
      UnregisterProcessGroup(&slot_);
      KillProcessGroup(pid_, SIGKILL);
      Reap();
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Queues parts for the command's stdin; once kStreamingWriteBufferBytes are queued writes them
  // all, reading its stdout (lines emitted to *out, which may be null) and stderr meanwhile.
  // Returns false once input was lost (the command stopped reading or exited before taking it,
  // or was cancelled); Finish then says why.
  bool Feed(std::initializer_list<std::string_view> parts, Emitter* out) {
    if (!stdin_.valid()) {
      if (!cancelled_hit_ && fatal_.empty()) broken_pipe_ = true;
      return false;
    }
    for (std::string_view part : parts) input_.append(part);
    if (input_.size() - input_off_ >= kStreamingWriteBufferBytes) Pump(Goal::kInputWritten, out);
    // A command that exited after taking all of its input so far is only at fault if more comes.
    return !broken_pipe_ && !cancelled_hit_ && fatal_.empty();
  }

  // Writes the queued input, closes stdin, reads stdout (to *out, may be null) and stderr to
  // their ends and reaps the command. True if it took all its input and exited with status 0;
  // otherwise false with a one-line *error. Call once.
  bool Finish(Emitter* out, std::string* error) {
    Pump(Goal::kInputWritten, out);
    StopInput();
    Pump(Goal::kDone, out);
    sink_->FlushLog();
    return Verdict(error);
  }

 private:
  enum class Goal {
    kInputWritten,  // the queued input is written (or can never be)
    kDone,          // stdout and stderr are closed and the command is reaped
  };

  ChildProcess(std::string role, StderrSink* sink, const std::atomic<bool>* cancelled)
      : role_(std::move(role)), sink_(sink), cancelled_(cancelled) {}

  // The poll loop.
  void Pump(Goal goal, Emitter* out) {
    for (;;) {
      if (!reaped_) CheckExited();
      if (cancelled_ != nullptr && !cancelled_hit_ && cancelled_->load(std::memory_order_relaxed)) {
        cancelled_hit_ = true;
        KillGroup();
        StopInput();
      }
      const bool writing = stdin_.valid() && input_off_ < input_.size();
      if (goal == Goal::kInputWritten && !writing) return;
      if (goal == Goal::kDone && reaped_ && !stdout_.valid() && !stderr_.valid()) return;

      const auto now = Clock::now();
      if (kill_at_ && !reaped_ && now >= *kill_at_) {
        killed_after_broken_pipe_ = true;
        kill_at_.reset();
        KillGroup();
      }
      if (give_up_at_ && now >= *give_up_at_) {
        // Processes that left the command's group still hold its output pipes.
        give_up_at_.reset();
        CloseOutputs(out);
        continue;
      }

      pollfd fds[3];
      nfds_t n = 0;
      int in_i = -1, out_i = -1, err_i = -1;
      if (writing) {
        in_i = static_cast<int>(n);
        fds[n++] = pollfd{stdin_.get(), POLLOUT, 0};
      }
      if (stdout_.valid()) {
        out_i = static_cast<int>(n);
        fds[n++] = pollfd{stdout_.get(), POLLIN, 0};
      }
      if (stderr_.valid()) {
        err_i = static_cast<int>(n);
        fds[n++] = pollfd{stderr_.get(), POLLIN, 0};
      }
      // With nothing to poll (outputs closed, command not yet exited) this just waits.
      int rc = ::poll(fds, n, kExitCheckIntervalMs);
      if (rc < 0) {
        if (errno == EINTR) continue;
        fatal_ = "poll failed while running the " + role_ + " command: " + ErrnoText(errno);
        KillGroup();
        StopInput();
        CloseOutputs(out);
        continue;
      }
      if (in_i >= 0 && fds[in_i].revents != 0) WriteSome();
      if (out_i >= 0 && fds[out_i].revents != 0) ReadStdout(out);
      if (err_i >= 0 && fds[err_i].revents != 0) ReadStderr();
    }
  }

  // Notices that /bin/sh exited: kills what it left in its group while it is still a zombie (its
  // pid, the group id, cannot have been reused), then reaps it.
  void CheckExited() {
    if (!HasExited(pid_)) return;  // still running
    UnregisterProcessGroup(&slot_);
    KillProcessGroup(pid_, SIGKILL);
    Reap();
    give_up_at_ = Clock::now() + kDrainAfterExit;
    if (stdin_.valid() && input_off_ < input_.size()) broken_pipe_ = true;
    StopInput();
  }

  void Reap() {
    const int status = zmr::Reap(pid_);
    reaped_ = true;
    status_known_ = status >= 0;  // ECHILD: someone else reaped it (SIGCHLD ignored?)
    wait_status_ = std::max(status, 0);
  }

  void KillGroup() {
    if (!reaped_) KillProcessGroup(pid_, SIGKILL);
  }

  // Nothing more will be written: closes stdin (EOF for the command) and drops queued input.
  void StopInput() {
    stdin_.Reset();
    input_.clear();
    input_off_ = 0;
    if (input_.capacity() > kKeepInputCapacity) std::string().swap(input_);
  }

  void WriteSome() {
    ssize_t n = ::write(stdin_.get(), input_.data() + input_off_, input_.size() - input_off_);
    if (n >= 0) {
      input_off_ += static_cast<std::size_t>(n);
      if (input_off_ == input_.size()) {
        input_.clear();
        input_off_ = 0;
        if (input_.capacity() > kKeepInputCapacity) std::string().swap(input_);
      }
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    // EPIPE: the command closed its stdin (or exited) before the end of its input.
    broken_pipe_ = true;
    StopInput();
    if (!reaped_) kill_at_ = Clock::now() + kBrokenPipeGrace;
  }

  void EmitLine(Emitter* out, std::string_view line) {
    if (out == nullptr) return;
    std::string_view key, value;
    ParseStreamingLine(line, &key, &value);
    out->Emit(key, value);
  }

  void ReadStdout(Emitter* out) {
    ssize_t n = stdout_lines_.ReadFrom(stdout_.get());
    if (n < 0) return;
    stdout_lines_.ForEachLine([&](std::string_view line) { EmitLine(out, line); },
                              SIZE_MAX);
    if (n == 0) {
      if (!stdout_lines_.pending().empty()) EmitLine(out, stdout_lines_.pending());
      stdout_lines_.Clear();
      stdout_.Reset();
    } else if (stdout_lines_.pending().size() > kStreamingMaxOutputLineBytes) {
      fatal_ = role_ + " command wrote an output line longer than " +
               std::to_string(kStreamingMaxOutputLineBytes >> 20) + " MiB";
      KillGroup();
      StopInput();
      stdout_lines_.Clear();
      stdout_.Reset();
    }
  }

  void HandleStderrLine(std::string_view line) {
    if (sink_->Line(line)) tail_.Add(line);
  }

  void ReadStderr() {
    ssize_t n = stderr_lines_.ReadFrom(stderr_.get());
    if (n < 0) return;
    stderr_lines_.ForEachLine([&](std::string_view line) { HandleStderrLine(line); },
                              kMaxStderrLineBytes);
    if (n == 0) {
      if (!stderr_lines_.pending().empty()) HandleStderrLine(stderr_lines_.pending());
      stderr_lines_.Clear();
      stderr_.Reset();
    }
    sink_->FlushLog();
  }

  // Stops reading both outputs, handing out their unterminated rests as lines.
  void CloseOutputs(Emitter* out) {
    if (stdout_.valid() && !stdout_lines_.pending().empty()) {
      EmitLine(out, stdout_lines_.pending());
    }
    if (stderr_.valid() && !stderr_lines_.pending().empty()) {
      HandleStderrLine(stderr_lines_.pending());
    }
    stdout_lines_.Clear();
    stderr_lines_.Clear();
    stdout_.Reset();
    stderr_.Reset();
  }

  // How the command ended, e.g. "exited with status 1".
  std::string DescribeExit() const {
    if (!status_known_) return "exited with unknown status";
    if (WIFEXITED(wait_status_)) {
      int code = WEXITSTATUS(wait_status_);
      std::string text = "exited with status " + std::to_string(code);
      if (code == 127) {
        text += " (command not found)";
      } else if (code == 126) {
        text += " (command not executable)";
      } else if (code > 128 && code - 128 < NSIG && sigabbrev_np(code - 128) != nullptr) {
        // The shell's report of a process it ran being killed by a signal.
        text += " (128+" + std::to_string(code - 128) + ": a process it ran was killed by " +
                SignalDescription(code - 128) + ")";
      }
      return text;
    }
    if (WIFSIGNALED(wait_status_)) {
      std::string text = "killed by signal " + SignalDescription(WTERMSIG(wait_status_));
      if (WCOREDUMP(wait_status_)) text += ", core dumped";
      return text;
    }
    return "ended with wait status " + std::to_string(wait_status_);
  }

  bool Verdict(std::string* error) const {
    if (cancelled_hit_) {
      *error = "cancelled";
      return false;
    }
    const bool clean_exit =
        status_known_ && WIFEXITED(wait_status_) && WEXITSTATUS(wait_status_) == 0;
    std::string message;
    if (!fatal_.empty()) {
      message = fatal_;
    } else if (broken_pipe_) {
      if (killed_after_broken_pipe_) {
        message = "broken pipe: " + role_ + " stopped reading its input and did not exit; killed";
      } else if (clean_exit) {
        message = "broken pipe: " + role_ + " exited before reading all input (exit status 0)";
      } else {
        message = "broken pipe: " + role_ + " command " + DescribeExit() +
                  " before reading all input";
      }
    } else if (!clean_exit) {
      message = role_ + " command " + DescribeExit();
    } else {
      return true;
    }
    std::string tail = tail_.Joined();
    if (!tail.empty()) message += ": " + tail;
    *error = std::move(message);
    return false;
  }

  const std::string role_;
  StderrSink* const sink_;
  const std::atomic<bool>* const cancelled_;
  pid_t pid_ = -1;            // /bin/sh, leader of the command's process group
  int slot_ = -1;             // its entry in g_process_groups
  bool reaped_ = false;
  bool status_known_ = false;
  int wait_status_ = 0;
  UniqueFd stdin_, stdout_, stderr_;  // our ends, non-blocking
  std::string input_;                 // queued stdin bytes; input_off_ of them already written
  std::size_t input_off_ = 0;
  LineReader stdout_lines_, stderr_lines_;
  StderrTail tail_;
  bool broken_pipe_ = false;               // input was left unwritten
  bool killed_after_broken_pipe_ = false;  // it closed stdin, did not exit, and was killed
  bool cancelled_hit_ = false;             // killed because the cancel flag was set
  std::string fatal_;                      // a failure of ours (poll) or an overlong line
  std::optional<Clock::time_point> kill_at_;     // broken pipe: kill it if still running then
  std::optional<Clock::time_point> give_up_at_;  // exited: stop waiting for EOF then
};

std::unique_ptr<ChildProcess> ChildProcess::Spawn(std::string role, const std::string& command,
                                                  const std::string& work_dir,
                                                  const std::vector<std::string>& env,
                                                  StderrSink* sink,
                                                  const std::atomic<bool>* cancelled,
                                                  std::string* error) {
  std::unique_ptr<ChildProcess> p(new ChildProcess(std::move(role), sink, cancelled));
  const std::string what = "cannot start the " + p->role_ + " command: ";
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!MakePipe(&in_r, &in_w, error, kSpawnMinFd) || !MakePipe(&out_r, &out_w, error, kSpawnMinFd) ||
      !MakePipe(&err_r, &err_w, error, kSpawnMinFd)) {
    *error = what + *error;
    return nullptr;
  }
  SpawnSpec spec;
  spec.path = "/bin/sh";
  spec.argv = {"sh", "-c", command};
  spec.env = &env;
  spec.cwd = work_dir;
  spec.fds = {{in_r.get(), STDIN_FILENO}, {out_w.get(), STDOUT_FILENO}, {err_w.get(), STDERR_FILENO}};
  spec.parent_death_signal = SIGKILL;
  SpawnFailure failure;
  const pid_t pid = zmr::Spawn(spec, &failure);
  if (pid < 0) {
    switch (failure.stage) {
      case SpawnStage::kFork:
        *error = what + "fork: " + ErrnoText(failure.err);
        break;
      case SpawnStage::kEarly:
        *error = what + "the child failed before exec";
        break;
      case SpawnStage::kChdir:
        *error = what + "cannot enter working directory " + work_dir + ": " + ErrnoText(failure.err);
        break;
      case SpawnStage::kExec:
        *error = what + "cannot execute /bin/sh: " + ErrnoText(failure.err);
        break;
      case SpawnStage::kFds:
        *error = what + "cannot set up its standard streams: " + ErrnoText(failure.err);
        break;
    }
    return nullptr;
  }
  p->pid_ = pid;
  in_r.Reset();  // the child's ends
  out_w.Reset();
  err_w.Reset();
  p->slot_ = RegisterProcessGroup(pid);
  if (!SetNonBlocking(in_w.get()) || !SetNonBlocking(out_r.get()) ||
      !SetNonBlocking(err_r.get())) {
    *error = what + "cannot make its pipes non-blocking: " + ErrnoText(errno);
    return nullptr;  // the destructor kills and reaps it
  }
  p->stdin_ = std::move(in_w);
  p->stdout_ = std::move(out_r);
  p->stderr_ = std::move(err_r);
  return p;
}

// The command's environment: ours, then the attempt's variables, then cmdenv (later wins).
std::vector<std::string> BuildEnvironment(const AttemptInfo& info, const std::string& work_dir,
                                          const Params& cmdenv) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  vars["mapreduce_job_id"] = info.job_id;
  vars["mapreduce_task_id"] = info.task_id;
  vars["mapreduce_task_attempt_id"] = info.task_id + ".a" + std::to_string(info.attempt);
  vars["mapreduce_task_partition"] = std::to_string(info.partition);
  vars["mapreduce_task_is_map"] = info.is_map ? "true" : "false";
  vars["mapreduce_job_reduces"] = std::to_string(info.num_reduces);
  if (info.is_map) {
    vars["mapreduce_map_input_file"] = info.input_file;
    vars["mapreduce_map_input_start"] = std::to_string(info.input_start);
    vars["mapreduce_map_input_length"] = std::to_string(info.input_length);
  }
  if (!work_dir.empty()) vars["PWD"] = work_dir;
  for (const auto& [name, value] : cmdenv) vars[name] = value;

  std::vector<std::string> env;
  env.reserve(vars.size());
  for (const auto& [name, value] : vars) env.push_back(name + "=" + value);
  return env;
}

class StreamingApp : public App {
 public:
  StreamingApp(JobCode code, bool is_map, const std::atomic<bool>* cancelled)
      : code_(std::move(code)), is_map_(is_map), cancelled_(cancelled) {}

  bool Start(const AttemptInfo& info, std::string* error) override {
    if (started_) {
      *error = "streaming app started twice";
      return false;
    }
    started_ = true;
    IgnoreSigpipeUnlessHandled();
    sink_.set_status_callback(info.set_status);
    if (!info.work_dir.empty()) {
      std::error_code ec;
      work_dir_ = std::filesystem::absolute(info.work_dir, ec).string();
      if (ec) work_dir_ = info.work_dir;
    }
    env_ = BuildEnvironment(info, work_dir_, code_.cmdenv);
    command_ = ChildProcess::Spawn(Role(), is_map_ ? code_.mapper : code_.reducer, work_dir_,
                                   env_, &sink_, cancelled_, error);
    if (!command_) {
      failure_ = *error;
      return false;
    }
    return true;
  }

  void Map(std::string_view line, const MapContext&, Emitter& out) override {
    if (!Usable(/*map_call=*/true)) return;
    if (!command_->Feed({line, "\n"}, &out)) CommandStopped(out);
  }

  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    if (!Usable(/*map_call=*/false)) return;
    std::string_view value;
    while (values.Next(&value)) {
      if (!command_->Feed({key, "\t", value, "\n"}, &out)) {
        CommandStopped(out);
        return;
      }
    }
  }

  bool Finish(Emitter& out, std::string* error) override {
    if (finished_ || !failure_.empty()) {
      finished_ = true;
      *error = failure_.empty() ? "streaming app finished twice" : failure_;
      return false;
    }
    finished_ = true;
    if (!command_) {
      failure_ = "streaming app finished before Start";
      *error = failure_;
      return false;
    }
    std::string command_error;
    if (!command_->Finish(&out, &command_error)) {
      failure_ = command_error;
      *error = failure_;
      return false;
    }
    return true;
  }

  std::string Failure() const override { return failure_; }

  bool HasCombiner() const override { return !code_.combiner.empty(); }

  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    if (!failure_.empty()) return;
    // Combining may go on after Finish: the runner merges the spills once the mapper is done.
    if (!started_ || code_.combiner.empty()) {
      failure_ = "streaming combiner used before Start or without a combiner command";
      return;
    }
    if (!combiner_) {
      std::string error;
      combiner_ = ChildProcess::Spawn("combiner", code_.combiner, work_dir_, env_, &sink_,
                                      cancelled_, &error);
      if (!combiner_) {
        failure_ = error;
        return;
      }
    }
    std::string_view value;
    while (values.Next(&value)) {
      if (!combiner_->Feed({key, "\t", value, "\n"}, &out)) {
        std::string error;
        if (combiner_->Finish(nullptr, &error)) error = "combiner command stopped taking input";
        failure_ = error;
        combiner_.reset();
        return;
      }
    }
  }

  bool FlushCombine(Emitter& out, std::string* error) override {
    if (!failure_.empty()) {
      *error = failure_;
      return false;
    }
    if (!combiner_) return true;  // nothing was combined in this batch
    std::unique_ptr<ChildProcess> combiner = std::move(combiner_);
    std::string combine_error;
    if (!combiner->Finish(&out, &combine_error)) {
      failure_ = combine_error;
      *error = failure_;
      return false;
    }
    return true;
  }

  void TakeCounters(Counters* into) override { sink_.TakeCounters(into); }

 private:
  std::string Role() const { return is_map_ ? "mapper" : "reducer"; }

  // Whether Map/Reduce may feed the command; records why not when it is a caller's mistake.
  bool Usable(bool map_call) {
    if (!failure_.empty()) return false;
    if (!command_ || finished_) {
      failure_ = "streaming app used outside Start..Finish";
      return false;
    }
    if (map_call != is_map_) {
      failure_ = std::string("streaming ") + Role() + " app called with " +
                 (map_call ? "Map" : "Reduce");
      return false;
    }
    return true;
  }

  // The command cannot take more input: end it now, so Failure() tells the runner why.
  void CommandStopped(Emitter& out) {
    std::string error;
    if (command_->Finish(&out, &error)) error = Role() + " command stopped taking input";
    failure_ = error;
  }

  const JobCode code_;
  const bool is_map_;
  const std::atomic<bool>* const cancelled_;
  std::vector<std::string> env_;  // the commands' environment, built at Start
  std::string work_dir_;
  // Declared before the processes, which write to it until they are destroyed.
  StderrSink sink_;
  std::unique_ptr<ChildProcess> command_;   // the mapper or reducer
  std::unique_ptr<ChildProcess> combiner_;  // the current batch's combiner, if one runs
  bool started_ = false;
  bool finished_ = false;
  std::string failure_;  // the first failure; every later call is a no-op
};

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

bool ParseStreamingLine(std::string_view line, std::string_view* key, std::string_view* value) {
  std::size_t tab = line.find('\t');
  if (tab == std::string_view::npos) {
    *key = line;
    *value = std::string_view();
    return false;
  }
  *key = line.substr(0, tab);
  *value = line.substr(tab + 1);
  return true;
}

ReporterLine ParseReporterLine(std::string_view line) {
  ReporterLine r;
  if (line.substr(0, kCounterPrefix.size()) == kCounterPrefix) {
    std::string_view rest = line.substr(kCounterPrefix.size());
    std::size_t first = rest.find(',');
    std::size_t last = rest.rfind(',');
    if (first == std::string_view::npos || first == last) return r;
    std::string_view group = rest.substr(0, first);
    std::string_view name = rest.substr(first + 1, last - first - 1);
    std::string_view amount = rest.substr(last + 1);
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!amount.empty() && blank(amount.front())) amount.remove_prefix(1);
    while (!amount.empty() && blank(amount.back())) amount.remove_suffix(1);
    if (amount.size() > 1 && amount.front() == '+' && amount[1] != '-') amount.remove_prefix(1);
    if (group.empty() || name.empty() || amount.empty()) return r;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(amount.data(), amount.data() + amount.size(), n);
    if (ec != std::errc() || end != amount.data() + amount.size()) return r;
    r.kind = ReporterLine::Kind::kCounter;
    r.group = group;
    r.name = name;
    r.amount = n;
    return r;
  }
  if (line.substr(0, kStatusPrefix.size()) == kStatusPrefix) {
    r.kind = ReporterLine::Kind::kStatus;
    r.status = line.substr(kStatusPrefix.size());
  }
  return r;
}

std::unique_ptr<App> MakeStreamingApp(const JobCode& code, bool is_map, std::string* error,
                                      const std::atomic<bool>* cancelled) {
  const std::string& command = is_map ? code.mapper : code.reducer;
  const char* role = is_map ? "mapper" : "reducer";
  if (command.empty()) {
    *error = std::string("the job has no ") + role + " command";
    return nullptr;
  }
  if (HasNul(code.mapper) || HasNul(code.reducer) || HasNul(code.combiner)) {
    *error = "a streaming command contains a NUL byte";
    return nullptr;
  }
  for (const auto& [name, value] : code.cmdenv) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value)) {
      *error = "invalid cmdenv entry '" + name + "': the name must be non-empty without '=' "
               "and neither may contain a NUL byte";
      return nullptr;
    }
  }
  return std::make_unique<StreamingApp>(code, is_map, cancelled);
}

void KillStreamingProcessGroups() {
  for (auto& group : g_process_groups) {
    pid_t pgid = group.load();
    KillProcessGroup(pgid, SIGKILL);  // async-signal-safe: one kill(2)
  }
}

}  // namespace zmr
