// The seam between the two programs of a worker host: zmr-worker (the daemon, worker/) and the
// zmr-task runner processes it starts (runner/). This header is the only part of runner/ that
// worker/ includes; runner/protocol.cc (library zmr_runner_protocol) is the only runner code the
// worker links.
//
// The pipe protocol: the worker writes one TaskRequest frame per attempt to the runner's stdin
// and waits; the runner answers on its fd kTaskControlFd with control frames ("progress" any
// number of times, then exactly one "done" or "failed"). A frame is a 4-byte big-endian length,
// then that many bytes of one msgpack map. EOF on stdin (the worker closed it, or died) ends the
// runner. After "done" the runner waits for its next request; after "failed" it exits (status 1).
// Reuse rules and the babysitting are in worker/attempt_process.h; the runner's side is
// runner/runner.h.
//
// Threads: plain values and pure functions; FrameReader belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"
#include "common/value.h"

namespace zmr {

// Default map-side sort buffer of an attempt (worker flag --sort-buffer-mb).
inline constexpr int64_t kDefaultSortBufferBytes = 64ll << 20;
// Default most runs merged at once; more runs are merged in passes.
inline constexpr int kDefaultMergeFanIn = 64;

// The file descriptor on which zmr-task writes its control frames.
inline constexpr int kTaskControlFd = 3;
// The length prefix of every frame, in bytes (big-endian).
inline constexpr std::size_t kFrameHeaderBytes = 4;
// Frames larger than this are a protocol error (a done frame is a few KiB).
inline constexpr uint32_t kMaxControlFrameBytes = 64u << 20;
// zmr-task's argv[1] is this many bytes long (space-padded) so it can rewrite it in place: "idle"
// between attempts, "JOB/TASK.aN" while it runs one (what ps and /proc/PID/cmdline show).
inline constexpr int kRunnerTitleBytes = 96;
// The title of a runner waiting for its next attempt.
inline constexpr const char* kIdleRunnerTitle = "idle";

// Control frame types (the "type" field), zmr-task -> worker.
namespace task_frame {
inline constexpr const char* kProgress = "progress";  // progress float 0..1, status str
// outputs [MapOutput], counters map (with task_cpu_ms and peak_rss_kb of this attempt)
inline constexpr const char* kDone = "done";
inline constexpr const char* kFailed = "failed";      // error str, bad_inputs [str]
}  // namespace task_frame

// What the worker sends zmr-task on its stdin for each attempt (one frame).
struct TaskRequest {
  AssignMsg assign;
  std::string attempt_dir;         // the attempt's working directory (shipped files are there);
                                   // "" for a built-in app's attempt, which needs none
  std::string work_dir;            // the worker's WORK_DIR (root of the LocalFileStore)
  int64_t sort_buffer_bytes = kDefaultSortBufferBytes;
  int64_t merge_fan_in = kDefaultMergeFanIn;
  int64_t memory_limit_bytes = 0;  // 0: no limit
  std::string plugin_path;         // local path of the cached plugin library, "" if none
  int64_t parent_pid = 0;          // the worker's pid: zmr-task fails it if it is not its parent

  Value ToValue() const;
  // Rejects missing fields and out-of-range sizes with a one-line *error.
  static std::optional<TaskRequest> FromValue(const Value& v, std::string* error);
};

// The outcome of one attempt, as the runner computes it and the worker reports it.
struct TaskResult {
  // Map with reduces: one per partition, partitions 0..R-1 in order. Reduce, and map of a
  // map-only job: exactly one, the finished but uncommitted part file under OUTPUT/_temporary/
  // (location is its absolute path).
  std::vector<MapOutput> outputs;
  // Built-in and user counters (see PROTOCOL.md "Counters"). Map: map_input_records,
  // map_input_bytes, map_output_records, map_output_bytes (key + value bytes emitted),
  // combine_input_records, combine_output_records, spilled_records (every record the map wrote to
  // a run: spills, intermediate merges and the final runs, as Hadoop counts them). Reduce:
  // reduce_input_groups, reduce_input_records, reduce_output_records, reduce_output_bytes,
  // spilled_records (records written by intermediate merge passes).
  Counters counters;
  // On failure: input locations found missing or corrupt (reduce), so their maps can be re-run.
  // Only locations whose data is at fault (not, say, this process running out of descriptors).
  std::vector<std::string> bad_inputs;
  // On failure: the last lines the attempt's process wrote to stderr, oldest first.
  std::vector<std::string> stderr_tail;
};

// A frame on the wire: the 4-byte big-endian length, then the msgpack bytes of `body`.
std::string EncodeControlFrame(const Value& body);

// The length a frame header announces (kFrameHeaderBytes bytes at `header`).
uint32_t DecodeFrameLength(const unsigned char* header);

// Splits a byte stream (a non-blocking pipe read in pieces) into frames. One thread.
class FrameReader {
 public:
  void Append(std::string_view data) { buffer_.append(data); }

  // Sets *frame and *type to the next complete frame. Returns 1 for a frame, 0 when more bytes
  // are needed, -1 with a one-line *error for a frame that is too long or cannot be decoded.
  int Next(Value* frame, std::string* type, std::string* error);

  // No bytes of an unfinished frame are buffered.
  bool empty() const { return buffer_.size() == offset_; }

 private:
  int Compact();

  std::string buffer_;
  std::size_t offset_ = 0;  // start of the first unread frame in buffer_
};

}  // namespace zmr
