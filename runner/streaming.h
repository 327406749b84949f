// Hadoop-Streaming user code: mapper, combiner and reducer commands run with `/bin/sh -c CMD`
// behind the App interface (common/app.h). The zmr-task process creates one for an attempt of a
// job whose JobCode has commands and hands it to the task runner (TaskContext::app). An instance
// belongs to one attempt and is used from one thread, the one that calls Start (see below).
//
// What a command sees:
//  - stdin: map: each input line followed by "\n". Reduce and combine: "key\tvalue\n" for each
//    value, keys in the order they are passed (bytewise sorted for reduce).
//  - stdout: every line ("\n" ends a line; a last line without one counts too) is split at its
//    first TAB into key and value; a line without TAB is all key with an empty value. Bytes are
//    kept exactly: no "\r" stripping, no encoding.
//  - stderr: `reporter:counter:GROUP,NAME,AMOUNT` adds AMOUNT to the user counter "GROUP/NAME"
//    (TakeCounters); `reporter:status:MSG` sets the attempt's status (AttemptInfo::set_status);
//    every other line is copied to this process's stderr (the attempt log) and the last few are
//    kept for the error message.
//  - environment: this process's, plus
//      mapreduce_job_id, mapreduce_task_id        AttemptInfo::job_id, task_id ("m-00003")
//      mapreduce_task_attempt_id                  "<task_id>.a<attempt>" ("m-00003.a1"), the
//                                                 name of the attempt's _temporary directory
//      mapreduce_task_partition                   map index (map) or partition (reduce)
//      mapreduce_task_is_map                      "true" / "false"
//      mapreduce_job_reduces                      number of reduce tasks (0: map-only job)
//      mapreduce_map_input_file, _start, _length  map only: the split's first file and range
//      PWD                                        the working directory (when one is given)
//    then JobCode::cmdenv, which overrides any of the above (as Hadoop's -cmdenv does).
//  - descriptors: only 0, 1 and 2; nothing else this process has open is inherited.
//  - working directory: AttemptInfo::work_dir (this process's when empty). Its own process group,
//    killed as a whole when the attempt ends early; /bin/sh gets SIGKILL if the thread that
//    started it dies (KillStreamingProcessGroups is for the rest of the group). Signals ignored
//    here (SIGPIPE) are back to their defaults in the command, and none is blocked.
//  - success: exit status 0 with no input left that it would not take. A non-zero exit, death
//    by a signal or stopping reading before the end of the input ("broken pipe") fails the
//    attempt with an error naming the command's role, its exit status or signal, and the last
//    stderr lines.
//
// A command is finished when /bin/sh exits: what it left running in its process group (background
// jobs) is then killed, and output still buffered in the pipes is read.
//
// The App is runner/streaming.cc; one command's driver runner/streaming_process.h; the stderr
// lines' sink (and ParseReporterLine) runner/stderr_sink.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/app.h"
#include "common/protocol.h"

namespace zmr {

// stdin bytes buffered before they are written to a command (one write per buffer, not per line).
inline constexpr std::size_t kStreamingWriteBufferBytes = 64 << 10;
// Longest stdout line accepted from a command; a longer one fails the attempt instead of growing
// memory without bound.
inline constexpr std::size_t kStreamingMaxOutputLineBytes = std::size_t{256} << 20;
// Stderr lines (and bytes) kept for error messages.
inline constexpr int kStreamingStderrTailLines = 20;
inline constexpr std::size_t kStreamingStderrTailBytes = 4 << 10;

// Splits one stdout line of a command (without its "\n") at the first TAB. Returns true if the
// line had a TAB; otherwise *key is the whole line and *value is empty. The views point into line.
// Inline: every output record of a command goes through it.
inline bool ParseStreamingLine(std::string_view line, std::string_view* key,
                               std::string_view* value) {
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

// One stderr line of a command, as the streaming protocol reads it.
struct ReporterLine {
  enum class Kind { kOther, kCounter, kStatus };
  Kind kind = Kind::kOther;
  std::string_view group;   // kCounter: GROUP (up to the first comma)
  std::string_view name;    // kCounter: NAME (between the first and the last comma)
  int64_t amount = 0;       // kCounter: AMOUNT (after the last comma; decimal, may be negative)
  std::string_view status;  // kStatus: MSG (may be empty)
};

// Classifies a stderr line (without its "\n"). A `reporter:counter:` line without two commas,
// with an empty group or name, or whose amount is not a 64-bit decimal integer (surrounding
// blanks and a trailing "\r" are allowed) is kOther, like any line that is not a reporter line.
// The views point into line.
ReporterLine ParseReporterLine(std::string_view line);

// Creates the App of a map (is_map: runs code.mapper, and code.combiner when set) or reduce
// (runs code.reducer) attempt. Nothing is started until App::Start. Returns nullptr with *error
// if the command for that role is empty or a command or cmdenv entry cannot be passed to exec
// (NUL byte, empty name or '=' in a name).
//
// cancelled, when not null, must outlive the App: while a call waits on the command (writing its
// input, or waiting for it to finish), a set flag kills the command and fails the attempt with
// "cancelled". Without it only the destructor stops a command that never reads or never exits.
//
// Requirements on the host: SIGCHLD not ignored (the command is waited for). SIGPIPE is set to
// ignored process-wide on first Start if it was at its default (writes to a command that exited
// must fail with EPIPE, not kill the host); the worker and zmr-task ignore it already.
//
// Combiner: Combine feeds one batch's keys to a combiner process started on the first Combine of
// the batch (Combine may come after Finish: the runner merges spills once the mapper is done);
// FlushCombine ends it and reaps it. What the combiner prints is emitted in the order it prints it
// (sorted only if it prints sorted: the caller sorts or checks if it needs to), as soon as it is
// read: to the Emitter of the Combine call that reads it, the rest to FlushCombine's. So Combine
// and FlushCombine of one batch must be given one Emitter, and output may lag behind input (keys
// of one Combine call can come out during the next). Nothing is held back in memory.
std::unique_ptr<App> MakeStreamingApp(const JobCode& code, bool is_map, std::string* error,
                                      const std::atomic<bool>* cancelled = nullptr);

// SIGKILLs the process group of every streaming command this process has running. Async-signal-
// safe: meant for a termination signal handler of the process hosting attempts, so that killing it
// does not leave its commands' children behind (the commands themselves get SIGKILL when the
// thread that started them dies). The Apps still reap their commands as usual.
void KillStreamingProcessGroups();

}  // namespace zmr
