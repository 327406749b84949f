// An attempt's log on the worker's disk: the runner's stderr (capped) plus the worker's own notes,
// in WORK_DIR/jobs/<job>/logs/<task>.a<N>.log (common/layout.h), and the last stderr lines kept
// for error messages. An attempt that succeeded without writing to stderr gets no file of its own:
// its notes go, each line prefixed with "TASK.aN ", to the job's succeeded.log (SucceededLogs),
// which spares a tiny task an inode creation; QuietAttemptLog picks one attempt's lines out of it.
//
// Threads: an AttemptLog belongs to the attempt thread running that attempt (worker/attempt_process.h).
// SucceededLogs is shared by every attempt thread and the worker loop: its own mutex guards its
// open files. QuietAttemptLog is a pure function; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "common/posix/fd.h"
#include "common/protocol.h"

namespace zmr {

// An attempt log stops growing here (then one "[log truncated]" line), so a chatty task cannot
// fill the disk.
inline constexpr int64_t kAttemptLogCapBytes = 8ll << 20;
// An attempt's notes beyond this many bytes go to its own log file even if it succeeds quietly.
inline constexpr std::size_t kQuietLogMaxBytes = 64 << 10;
// Lines of the child's stderr kept for error messages.
inline constexpr int kStderrTailLines = 20;

// The log of attempt `ref` as kept in a job's succeeded.log (the bytes of that file): its lines
// without their "TASK.aN " prefix, "" if it has none there.
std::string QuietAttemptLog(const std::string& succeeded_log, const AttemptRef& ref);

// The log of one attempt. The file at `path` is created only when there is more to say than the
// notes of a quiet success: on the child's first stderr bytes, when the notes outgrow
// kQuietLogMaxBytes, or at destruction unless TakeQuiet() took the notes. A log that cannot be
// created loses its lines (as a full disk does), never the attempt. One thread.
class AttemptLog {
 public:
  explicit AttemptLog(std::string path) : path_(std::move(path)) {}
  // Creates the file (with the notes held back) unless TakeQuiet() took them.
  ~AttemptLog();
  AttemptLog(const AttemptLog&) = delete;
  AttemptLog& operator=(const AttemptLog&) = delete;

  // The notes written so far, if the file was never needed; the log is then done (no file).
  // "" once the file exists.
  std::string TakeQuiet();

  // Bytes the child wrote to its stderr: written up to kAttemptLogCapBytes, and split into lines
  // for the tail.
  void AppendChild(std::string_view data);

  // A line from the worker itself, stamped with the wall clock (not part of the stderr tail,
  // written even past the cap).
  void Note(const std::string& line);

  // Ends a last stderr line that has no newline (for the tail).
  void Flush();

  // The last stderr lines, joined with "; ", at most 2000 bytes (the newest lines are kept).
  std::string Tail() const;
  // The last kStderrTailLines stderr lines, each cut to 500 bytes, oldest first.
  const std::deque<std::string>& tail_lines() const { return tail_; }

 private:
  // Creates the file and writes what was held back.
  void Materialise();
  void PushLine();
  void Write(std::string_view data);

  std::string path_;
  UniqueFd fd_;                // the file, once created
  std::string pending_;        // notes written before the file exists
  bool create_failed_ = false;
  bool quiet_taken_ = false;   // TakeQuiet() took the notes: no file, ever
  int64_t written_ = 0;        // child bytes written, against kAttemptLogCapBytes
  bool truncated_ = false;
  std::string partial_;        // the stderr line being read, for the tail
  bool partial_cut_ = false;   // partial_ reached its cap
  std::deque<std::string> tail_;
};

// The succeeded.log of every job with attempts on this worker, each kept open from its first
// quiet success until the job's cleanup. Any thread; one mutex guards the open files.
class SucceededLogs {
 public:
  explicit SucceededLogs(std::string work_dir) : work_dir_(std::move(work_dir)) {}
  SucceededLogs(const SucceededLogs&) = delete;
  SucceededLogs& operator=(const SucceededLogs&) = delete;

  // Appends the notes of attempt `ref` (AttemptLog::TakeQuiet), each line prefixed with
  // "TASK.aN ", to its job's succeeded.log in one write, so lines of attempts never interleave.
  // Nothing for empty notes; a file that cannot be opened is logged and its lines lost.
  void Append(const AttemptRef& ref, const std::string& notes);

  // Closes job_id's succeeded.log (if open). The next Append reopens it.
  void Close(const std::string& job_id);

 private:
  const std::string work_dir_;
  std::mutex mu_;
  std::map<std::string, UniqueFd> files_;  // job_id -> its open succeeded.log; guarded by mu_
};

}  // namespace zmr
