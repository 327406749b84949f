// The driver of one streaming command (runner/streaming.h): `/bin/sh -c COMMAND` spawned through
// common/posix/subprocess.h into its own process group, with non-blocking pipes for its stdin,
// stdout and stderr, driven by one poll() loop over them, so a command that writes while we write
// never deadlocks against us. Stdout lines go to the Emitter of the call that reads them; stderr
// lines to a StderrSink (runner/stderr_sink.h). Used by the StreamingApp (runner/streaming.cc):
// one ChildProcess per running command (the mapper or reducer for the whole attempt, a combiner
// per batch), all on the attempt's thread.
//
// Feed is called once per input record, so it is defined here, inline: it only queues bytes until
// kStreamingWriteBufferBytes are queued. LineReader and StderrTail are parts of a ChildProcess,
// here because it holds them by value.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/app.h"
#include "common/posix/fd.h"
#include "runner/stderr_sink.h"
#include "runner/streaming.h"

namespace zmr {

// Bytes read from a pipe, cut into "\n"-terminated lines.
class LineReader {
 public:
  // Reads once from fd. Returns the number of bytes read, 0 at end of file (a read error other
  // than EAGAIN counts as end of file), or -1 if nothing was available.
  ssize_t ReadFrom(int fd);

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
  // Keeps line (without a trailing "\r", cut to a bounded length), dropping the oldest lines
  // beyond kStreamingStderrTailLines or kStreamingStderrTailBytes. Empty lines are skipped.
  void Add(std::string_view line);
  // The kept lines joined with " | ".
  std::string Joined() const;

 private:
  std::deque<std::string> lines_;
  std::size_t bytes_ = 0;
};

// One running command. Stdout lines go to the Emitter of the call that reads them; stderr lines to
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

  // SIGKILLs the process group of a command still running and reaps it.
  ~ChildProcess();
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
  bool Finish(Emitter* out, std::string* error);

 private:
  using Clock = std::chrono::steady_clock;

  enum class Goal {
    kInputWritten,  // the queued input is written (or can never be)
    kDone,          // stdout and stderr are closed and the command is reaped
  };

  ChildProcess(std::string role, StderrSink* sink, const std::atomic<bool>* cancelled)
      : role_(std::move(role)), sink_(sink), cancelled_(cancelled) {}

  // The poll loop.
  void Pump(Goal goal, Emitter* out);

  // Notices that /bin/sh exited: kills what it left in its group while it is still a zombie (its
  // pid, the group id, cannot have been reused), then reaps it.
  void CheckExited();

  // Waits for /bin/sh and keeps its wait status.
  void Reap();

  // SIGKILLs the command's process group, unless /bin/sh was reaped (the id may be reused).
  void KillGroup();

  // Nothing more will be written: closes stdin (EOF for the command) and drops queued input.
  void StopInput();

  // Writes what stdin takes now; EPIPE stops the input and starts the broken-pipe grace.
  void WriteSome();

  // Splits one stdout line into key and value and emits it to *out (dropped when null).
  void EmitLine(Emitter* out, std::string_view line);

  // Reads stdout once, emitting its complete lines (the rest at EOF); fails an overlong line.
  void ReadStdout(Emitter* out);

  // Hands a stderr line to the sink, and keeps ordinary ones for the error message.
  void HandleStderrLine(std::string_view line);

  // Reads stderr once, handing its lines to the sink (the rest at EOF).
  void ReadStderr();

  // Stops reading both outputs, handing out their unterminated rests as lines.
  void CloseOutputs(Emitter* out);

  // How the command ended, e.g. "exited with status 1".
  std::string DescribeExit() const;

  // True if the command took all its input and exited with status 0; otherwise *error says why.
  bool Verdict(std::string* error) const;

  const std::string role_;
  StderrSink* const sink_;
  const std::atomic<bool>* const cancelled_;
  pid_t pid_ = -1;            // /bin/sh, leader of the command's process group
  int slot_ = -1;             // its entry in the table KillStreamingProcessGroups reads
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

}  // namespace zmr
