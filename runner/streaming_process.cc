// The streaming command driver. Everything runs on the attempt's thread: one poll() loop per
// command over its non-blocking stdin, stdout and stderr pipes.
//
// Failure handling, in order: a write that fails (EPIPE: the command stopped reading) stops the
// input, gives the command kBrokenPipeGrace to exit and then kills its process group; a command
// seen to have exited (waitid WNOWAIT, checked every kExitCheckIntervalMs) has its process group
// killed while it is still a zombie (so the group id cannot have been reused), is reaped, and what
// is left in its pipes is read for at most kDrainAfterExit; a set cancel flag kills the group at
// once. Destroying a ChildProcess SIGKILLs a group still running and reaps it.
#include "runner/streaming_process.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

#include "common/posix/io.h"
#include "common/posix/signals.h"
#include "common/posix/subprocess.h"

namespace zmr {

namespace {

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
// The input buffer keeps its memory unless a huge line made it larger than this.
constexpr std::size_t kKeepInputCapacity = 4 * kStreamingWriteBufferBytes;

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

}  // namespace

ssize_t LineReader::ReadFrom(int fd) {
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

void StderrTail::Add(std::string_view line) {
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

std::string StderrTail::Joined() const {
  std::string out;
  for (const std::string& line : lines_) {
    if (!out.empty()) out += " | ";
    out += line;
  }
  return out;
}

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
      case SpawnStage::kPipe:
        *error = what + "cannot create a pipe: " + ErrnoText(failure.err);
        break;
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

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    UnregisterProcessGroup(&slot_);
    KillProcessGroup(pid_, SIGKILL);
    Reap();
  }
}

bool ChildProcess::Finish(Emitter* out, std::string* error) {
  Pump(Goal::kInputWritten, out);
  StopInput();
  Pump(Goal::kDone, out);
  sink_->FlushLog();
  return Verdict(error);
}

// The poll loop.
void ChildProcess::Pump(Goal goal, Emitter* out) {
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
void ChildProcess::CheckExited() {
  if (!HasExited(pid_)) return;  // still running
  UnregisterProcessGroup(&slot_);
  KillProcessGroup(pid_, SIGKILL);
  Reap();
  give_up_at_ = Clock::now() + kDrainAfterExit;
  if (stdin_.valid() && input_off_ < input_.size()) broken_pipe_ = true;
  StopInput();
}

void ChildProcess::Reap() {
  const int status = zmr::Reap(pid_);
  reaped_ = true;
  status_known_ = status >= 0;  // ECHILD: someone else reaped it (SIGCHLD ignored?)
  wait_status_ = std::max(status, 0);
}

void ChildProcess::KillGroup() {
  if (!reaped_) KillProcessGroup(pid_, SIGKILL);
}

// Nothing more will be written: closes stdin (EOF for the command) and drops queued input.
void ChildProcess::StopInput() {
  stdin_.Reset();
  input_.clear();
  input_off_ = 0;
  if (input_.capacity() > kKeepInputCapacity) std::string().swap(input_);
}

void ChildProcess::WriteSome() {
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

void ChildProcess::EmitLine(Emitter* out, std::string_view line) {
  if (out == nullptr) return;
  std::string_view key, value;
  ParseStreamingLine(line, &key, &value);
  out->Emit(key, value);
}

void ChildProcess::ReadStdout(Emitter* out) {
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

void ChildProcess::HandleStderrLine(std::string_view line) {
  if (sink_->Line(line)) tail_.Add(line);
}

void ChildProcess::ReadStderr() {
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
void ChildProcess::CloseOutputs(Emitter* out) {
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
std::string ChildProcess::DescribeExit() const {
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

bool ChildProcess::Verdict(std::string* error) const {
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

void KillStreamingProcessGroups() {
  for (auto& group : g_process_groups) {
    pid_t pgid = group.load();
    KillProcessGroup(pgid, SIGKILL);  // async-signal-safe: one kill(2)
  }
}

}  // namespace zmr
