// The zmr wire protocol: constants, message type names and the typed messages exchanged between
// coordinator, workers and clients. Every message body is one msgpack map with string keys and a
// "type" field; PROTOCOL.md is the human-readable contract and must match this file.
// Plain data and pure functions: any thread may use them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/splits.h"
#include "common/value.h"

namespace zmr {

// Bumped on any incompatible change to a message; READY and HELLO carry it and peers refuse others.
inline constexpr int kProtocolVersion = 1;

// Default heartbeat interval: one second, as in the Paranoid Pirate pattern.
inline constexpr int kDefaultHeartbeatMs = 1000;
// Missed heartbeats before a peer is declared lost: three tolerates a dropped beat or a slow loop.
inline constexpr int kDefaultLiveness = 3;
// A worker that lost its coordinator waits this long before reconnecting, doubling per failure.
inline constexpr int kReconnectInitialMs = 1000;
// Upper bound of the reconnect backoff, so a returning coordinator is found within half a minute.
inline constexpr int kReconnectMaxMs = 32000;
// A running task reports progress this often (the contract is "at least once a second").
inline constexpr int kProgressIntervalMs = 500;
// Default client request timeout.
inline constexpr int kDefaultTimeoutMs = 5000;
// A worker sends at most this much of an attempt log (its end) per `fetch_log`; the log itself is
// capped at 8 MiB of stderr plus the worker's notes (worker/attempt_process.h).
inline constexpr int64_t kLogFetchMaxBytes = 9ll << 20;
// How long workers keep a finished job's attempt logs by default: three hours, as YARN's
// yarn.nodemanager.log.retain-seconds.
inline constexpr int64_t kDefaultLogRetentionS = 10800;
// Outgoing queue bound per socket: sends never block, they fail and are counted past this.
inline constexpr int kSendHighWaterMark = 100000;
// How long a `logs` request waits for the worker's answer unless it asks otherwise (`wait_ms`):
// long enough for a busy worker, short enough to answer within the client's default timeout.
inline constexpr int64_t kDefaultLogWaitMs = 3000;

// Message type names (the "type" field). Worker <-> coordinator:
namespace msg {
inline constexpr const char* kReady = "ready";              // worker -> coordinator
inline constexpr const char* kWelcome = "welcome";          // coordinator -> worker
inline constexpr const char* kRefused = "refused";          // coordinator -> worker
inline constexpr const char* kHeartbeat = "heartbeat";      // both ways
inline constexpr const char* kReregister = "reregister";    // coordinator -> worker
inline constexpr const char* kDisconnect = "disconnect";    // worker -> coordinator
inline constexpr const char* kAssign = "assign";            // coordinator -> worker
inline constexpr const char* kCancel = "cancel";            // both: coordinator -> worker (kill
                                                            // attempts), client -> coordinator
inline constexpr const char* kCleanup = "cleanup";          // coordinator -> worker
inline constexpr const char* kJobFiles = "job_files";       // coordinator -> worker
inline constexpr const char* kTaskProgress = "task_progress";  // worker -> coordinator
inline constexpr const char* kTaskDone = "task_done";          // worker -> coordinator
inline constexpr const char* kTaskFailed = "task_failed";      // worker -> coordinator
inline constexpr const char* kFetchLog = "fetch_log";          // coordinator -> worker
inline constexpr const char* kLog = "log";  // worker -> coordinator, and the reply to `logs`
// Client <-> coordinator requests, and their replies.
inline constexpr const char* kHello = "hello";
inline constexpr const char* kSubmit = "submit";
inline constexpr const char* kSubmitted = "submitted";
inline constexpr const char* kStatus = "status";
inline constexpr const char* kJob = "job";
inline constexpr const char* kJobs = "jobs";
inline constexpr const char* kWorkers = "workers";
inline constexpr const char* kTasks = "tasks";
inline constexpr const char* kLogs = "logs";
inline constexpr const char* kEvents = "events";
inline constexpr const char* kCancelled = "cancelled";
inline constexpr const char* kError = "error";
}  // namespace msg

// Error codes carried by an "error" reply.
namespace errc {
inline constexpr const char* kInvalid = "invalid";          // the request is well formed but refused
inline constexpr const char* kNotFound = "not_found";       // unknown job
inline constexpr const char* kVersion = "version";          // protocol version mismatch
inline constexpr const char* kBadRequest = "bad_request";   // undecodable or malformed request
inline constexpr const char* kUnavailable = "unavailable";  // the worker holding it is gone or silent
}  // namespace errc

// Job states, as strings on the wire.
enum class JobState { kSubmitted, kMapping, kReducing, kCompleted, kFailed, kCancelled };
const char* JobStateName(JobState state);
std::optional<JobState> ParseJobState(const std::string& name);
bool IsTerminal(JobState state);

enum class TaskKind { kMap, kReduce };
const char* TaskKindName(TaskKind kind);

using Params = std::map<std::string, std::string>;
using Counters = std::map<std::string, int64_t>;


// Codec pieces for fields nested in a message, shared by the typed messages here and the views
// (common/views.h). Readers of an optional field take an absent or nil one as empty.
namespace wire {
bool ReadStringMap(const Value& v, std::string_view key, std::map<std::string, std::string>* out,
                   std::string* error);
bool ReadIntMap(const Value& v, std::string_view key, std::map<std::string, int64_t>* out,
                std::string* error);
bool ReadStringList(const Value& v, std::string_view key, std::vector<std::string>* out,
                    std::string* error);
Value StringMapValue(const std::map<std::string, std::string>& m);
Value IntMapValue(const std::map<std::string, int64_t>& m);
Value StringListValue(const std::vector<std::string>& items);
// A map holding only "type": type.
Value Typed(const char* type);
// False with "message is not a map" unless v is a map.
bool RequireMap(const Value& v, std::string* error);
// The same for a map nested in field `field` (or an item of it): the error names the field.
bool RequireMapIn(const Value& v, std::string_view field, std::string* error);
// A job state name (JobStateName) or a task kind ("map", "reduce") in a required field.
bool ReadJobState(const Value& v, std::string_view key, JobState* state, std::string* error);
bool ReadTaskKind(const Value& v, std::string_view key, TaskKind* kind, std::string* error);
}  // namespace wire

// Decodes a message body into a map with a string "type" field. Returns nullopt and an error for
// anything else (garbage, truncated bytes, a non-map, a missing or non-string type).
std::optional<Value> DecodeMessage(std::string_view bytes, std::string* type, std::string* error);

struct ReadyMsg {
  int64_t proto = kProtocolVersion;
  std::string name;      // unique per live worker; the coordinator replaces an older registration
  std::string host;
  int64_t pid = 0;
  int64_t slots = 1;
  // Assignments beyond its slots it accepts and holds, starting each when a slot frees (0: none).
  // Optional on the wire (absent = 0).
  int64_t queue = 0;
  std::string work_dir;  // where its intermediate files live

  Value ToValue() const;
  static std::optional<ReadyMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const ReadyMsg&) const = default;
};

// coordinator -> worker "refused": the answer to a `ready` of another protocol version.
struct RefusedMsg {
  std::string error;

  Value ToValue() const;
  static std::optional<RefusedMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const RefusedMsg&) const = default;
};

struct WelcomeMsg {
  int64_t proto = kProtocolVersion;
  std::string worker;    // the name the coordinator registered
  int64_t heartbeat_ms = kDefaultHeartbeatMs;
  int64_t liveness = kDefaultLiveness;

  Value ToValue() const;
  static std::optional<WelcomeMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const WelcomeMsg&) const = default;
};

// Worker -> coordinator heartbeats also carry the worker's load (all fields optional on the wire:
// a worker that cannot read a figure leaves it at its "unknown" value). Coordinator -> worker
// heartbeats carry none of them.
struct HeartbeatMsg {
  int64_t running = 0;   // attempts running on the sender (0 from the coordinator)
  int64_t free_slots = -1;      // slots not running an attempt (-1: not reported)
  double cpu = -1;              // CPU of the worker and its attempts, in cores (1.0 = one core)
  double host_cpu = -1;         // busy fraction of the host's CPUs since the last beat, 0..1
  int64_t cores = 0;            // online CPUs of the host (0: unknown)
  double load1 = -1;            // 1-minute load average of the host
  int64_t rss_kb = -1;          // resident memory of the worker and its attempts
  int64_t disk_free_bytes = -1; // available bytes in the worker's work dir

  Value ToValue() const;
  static std::optional<HeartbeatMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const HeartbeatMsg&) const = default;
};

// The heartbeat in `bytes`, read straight from the msgpack with no allocation, when it is in the
// plain form zmr's workers send: one map of `type` "heartbeat" and HeartbeatMsg fields, each at
// most once, with integer, float or nil values. nullopt for anything else, valid or not: the
// caller then takes the general path (DecodeMessage, HeartbeatMsg::FromValue), which yields the
// same HeartbeatMsg for every message this accepts. For the coordinator's hot path: a thousand
// workers send a thousand heartbeats a second.
std::optional<HeartbeatMsg> ParsePlainHeartbeat(std::string_view bytes);

// Where one partition of a map attempt's output is, and how big.
struct MapOutput {
  int64_t partition = 0;
  std::string location;  // opaque to the coordinator; a file path for the local store
  int64_t bytes = 0;
  int64_t records = 0;

  Value ToValue() const;
  static std::optional<MapOutput> FromValue(const Value& v, std::string* error);
  bool operator==(const MapOutput&) const = default;
};

// A file shipped with a job (a streaming script, data, or a plugin library), named by the SHA-256
// of its bytes. In `assign` only the reference travels; the bytes come once per worker registration
// in `job_files`.
struct FileRef {
  std::string name;      // base name in the attempt's working directory
  std::string sha256;    // lower-case hex of the content
  int64_t mode = 0644;   // permission bits (the executable bit is kept)
  bool operator==(const FileRef&) const = default;
};

// How an attempt runs user code. Built-in app: everything empty. Plugin: `plugin` names the
// shipped library (its FileRef is in `files`) and AssignMsg::app the app inside it. Streaming:
// `mapper` non-empty (`reducer` empty for a map-only job, `combiner` optional).
struct JobCode {
  std::string plugin;    // sha256 of the plugin library, or empty
  std::string mapper;
  std::string combiner;
  std::string reducer;
  Params cmdenv;         // extra environment for streaming commands
  std::vector<FileRef> files;
  bool operator==(const JobCode&) const = default;
};

struct AssignMsg {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 1;
  TaskKind kind = TaskKind::kMap;
  std::string app;
  Params params;
  JobCode code;
  int64_t num_reduces = 1;   // 0: a map-only job (map output is the job output)
  std::string output_dir;
  // Reduce tasks: the partition; map tasks: the map index (names a map-only job's part file).
  int64_t partition = 0;
  // Map tasks: the byte ranges of the split (see common/splits.h for line ownership).
  Split split;
  // Reduce tasks: the partition's location in every map output (one per map task).
  std::vector<std::string> inputs;

  Value ToValue() const;
  static std::optional<AssignMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const AssignMsg&) const = default;
};

// Identifies one attempt: used by cancel, task_progress and as a key everywhere.
struct AttemptRef {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
  bool operator==(const AttemptRef&) const = default;
  auto operator<=>(const AttemptRef&) const = default;
};

struct TaskProgressMsg {
  AttemptRef ref;
  double progress = 0;   // 0..1 of the task's input consumed
  std::string status;    // the attempt's status text (streaming reporter:status), may be empty

  Value ToValue() const;
  static std::optional<TaskProgressMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const TaskProgressMsg&) const = default;
};

struct TaskDoneMsg {
  AttemptRef ref;
  // Map tasks of a job with reduces: one per partition. Reduce tasks and map-only maps: exactly
  // one, whose location is the attempt's finished part file under OUTPUT/_temporary/; the
  // coordinator commits it by renaming it to OUTPUT/part-NNNNN (first finisher wins).
  std::vector<MapOutput> outputs;
  Counters counters;

  Value ToValue() const;
  static std::optional<TaskDoneMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const TaskDoneMsg&) const = default;
};

struct TaskFailedMsg {
  AttemptRef ref;
  std::string error;
  // Map output locations the attempt found missing or corrupt: the coordinator re-runs the maps
  // that produced them instead of counting this failure against the task.
  std::vector<std::string> bad_inputs;
  // The last lines the attempt's process wrote to stderr (oldest first, at most 20), if any.
  std::vector<std::string> stderr_tail;

  Value ToValue() const;
  static std::optional<TaskFailedMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const TaskFailedMsg&) const = default;
};

// coordinator -> worker "cancel": stop one attempt (sent for cancelled jobs).
struct CancelAttemptMsg {
  AttemptRef ref;

  Value ToValue() const;
  static std::optional<CancelAttemptMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const CancelAttemptMsg&) const = default;
};

// coordinator -> worker "cleanup": delete the job's intermediate data.
struct CleanupMsg {
  std::string job_id;

  Value ToValue() const;
  static std::optional<CleanupMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const CleanupMsg&) const = default;
};

// coordinator -> worker "fetch_log": send the log of this attempt back, tagged with request_id.
struct FetchLogMsg {
  int64_t request_id = 0;
  AttemptRef ref;

  Value ToValue() const;
  static std::optional<FetchLogMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const FetchLogMsg&) const = default;
};

// worker -> coordinator "log": the answer to a fetch_log.
struct LogMsg {
  int64_t request_id = 0;
  AttemptRef ref;
  bool found = false;      // false: no such log here (never ran here, or removed after retention)
  std::string data;        // the log's bytes (msgpack bin), its end if it was longer
  bool truncated = false;  // data is only the last kLogFetchMaxBytes
  int64_t size = 0;        // the whole log's size in bytes

  Value ToValue() const;
  static std::optional<LogMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const LogMsg&) const = default;
};

// coordinator -> worker "job_files": the bytes of a job's shipped files, sent before the first
// assign of that job to a registration. Workers cache them by sha256.
struct JobFilesMsg {
  std::string job_id;
  std::map<std::string, std::string> blobs;   // sha256 -> bytes (msgpack bin)

  Value ToValue() const;
  static std::optional<JobFilesMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const JobFilesMsg&) const = default;
};

// A file in a submission: name, permission bits and bytes.
struct SubmitFile {
  std::string name;
  int64_t mode = 0644;
  std::string data;
  bool operator==(const SubmitFile&) const = default;
};

// client -> coordinator "submit". Inputs are absolute paths of regular files (the client expands
// directories and globs); the coordinator checks them again before creating anything.
struct SubmitMsg {
  std::string name;
  std::string app;
  std::vector<std::string> inputs;
  std::string output;
  Params params;
  int64_t maps = 0;       // 0: one per 64 MiB of input, at least 1
  int64_t reduces = 1;    // 0: map-only
  int64_t max_attempts = 4;  // failed attempts per task before the job fails
  int64_t priority = 0;      // higher runs first; equal priorities share the cluster fairly
  bool speculation = true;   // backup attempts for stragglers (--no-speculation: false)
  std::string mapper, combiner, reducer;  // streaming commands ("NONE" reducer = map-only)
  Params cmdenv;
  std::vector<SubmitFile> files;          // --file: placed in every attempt's directory
  std::optional<SubmitFile> plugin;       // --plugin: a shared library providing `app`

  Value ToValue() const;
  static std::optional<SubmitMsg> FromValue(const Value& v, std::string* error);
  bool operator==(const SubmitMsg&) const = default;
};

// Client requests other than submit (and their replies that carry no view: common/views.h has
// those). Each may also carry `proto`, which the coordinator checks before decoding the request.

// "status": the JobInfo of one job.
struct StatusRequest {
  std::string job_id;

  Value ToValue() const;
  static std::optional<StatusRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const StatusRequest&) const = default;
};

// "cancel" from a client: cancel one job.
struct CancelRequest {
  std::string job_id;

  Value ToValue() const;
  static std::optional<CancelRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const CancelRequest&) const = default;
};

// "jobs": the jobs kept.
struct JobsRequest {
  bool all = true;   // false: unfinished jobs only (absent on the wire: true)

  Value ToValue() const;
  static std::optional<JobsRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const JobsRequest&) const = default;
};

// "tasks": every task of one job.
struct TasksRequest {
  std::string job_id;

  Value ToValue() const;
  static std::optional<TasksRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const TasksRequest&) const = default;
};

// "events": the events of one job it still keeps after after_seq.
struct EventsRequest {
  std::string job_id;
  int64_t after_seq = 0;

  Value ToValue() const;
  static std::optional<EventsRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const EventsRequest&) const = default;
};

// "logs": the log of one attempt, fetched from the worker that ran it.
struct LogsRequest {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;                   // 0: the latest
  int64_t wait_ms = kDefaultLogWaitMs;   // for the worker's answer

  Value ToValue() const;
  static std::optional<LogsRequest> FromValue(const Value& v, std::string* error);
  bool operator==(const LogsRequest&) const = default;
};

// "submitted": the reply to an accepted submit.
struct SubmittedReply {
  std::string job_id;
  int64_t maps = 0;
  int64_t reduces = 0;

  Value ToValue() const;
  static std::optional<SubmittedReply> FromValue(const Value& v, std::string* error);
  bool operator==(const SubmittedReply&) const = default;
};

// "cancelled": the reply to cancel.
struct CancelledReply {
  std::string job_id;
  JobState state = JobState::kCancelled;   // after the request
  bool changed = false;                    // false when the job had already ended

  Value ToValue() const;
  static std::optional<CancelledReply> FromValue(const Value& v, std::string* error);
  bool operator==(const CancelledReply&) const = default;
};

// Builds an "error" reply.
Value ErrorReply(const char* code, const std::string& message);

}  // namespace zmr
