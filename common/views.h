// What the coordinator shows of its state: the JobInfo, TaskInfo and WorkerInfo views that replies
// carry, and the events it publishes (PROTOCOL.md, "JobInfo" and "Events"). Typed structs with one
// codec each, shared by the coordinator (which builds them and calls ToValue) and clients (which
// call FromValue). ToValue writes the maps PROTOCOL.md describes, key for key; FromValue refuses a
// listed field of the wrong type or a missing required one, and ignores fields it does not know.
// Clients read with Missing::kDefault, which lets a listed field be missing (see Missing).
// Plain data and pure functions: any thread may use them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/protocol.h"
#include "common/value.h"

namespace zmr {

// What FromValue does with a listed field that is missing (or nil). The coordinator sends every
// field, and kRefuse checks exactly that: a missing field is an error, except those PROTOCOL.md
// calls optional (JobInfo `failure`; job_state's `error`, `stage` and `task_id`) and the lists of
// strings and the counters, which are empty then. kDefault, for clients, takes any missing field
// as its default (a coordinator may predate a field: adding fields is compatible), except what a
// reader cannot act without: JobInfo's `state`, an event's `type` and job_state's `state`, the
// `job` of a status reply and the `complete` of an events reply. A field of the wrong type is an
// error in both modes.
enum class Missing { kRefuse, kDefault };

// A task's state, as TaskInfo names it.
enum class TaskState { kPending, kRunning, kDone, kFailed };
const char* TaskStateName(TaskState state);
std::optional<TaskState> ParseTaskState(const std::string& name);

// --- JobInfo ---

// Task counts of one phase: JobInfo's `maps` and `reduces`.
struct TaskCounts {
  int64_t total = 0;
  int64_t pending = 0;   // reduces not created yet count as pending
  int64_t running = 0;
  int64_t done = 0;
  int64_t failed = 0;
  bool operator==(const TaskCounts&) const = default;
};

// One attempt of the task a failed job blames (JobInfo failure.attempts).
struct AttemptRecordInfo {
  int64_t attempt = 0;
  std::string worker;
  std::string state;     // RUNNING, SUCCEEDED, FAILED, KILLED or LOST
  int64_t start_ms = 0;
  int64_t end_ms = 0;    // 0 while running
  std::string error;
  std::vector<std::string> stderr_tail;
  bool operator==(const AttemptRecordInfo&) const = default;
};

// Why a job FAILED (JobInfo `failure`).
struct FailureInfo {
  std::string stage;     // SUBMITTED, MAPPING, REDUCING or COMMITTING
  std::string task_id;   // empty when no task is to blame
  std::vector<AttemptRecordInfo> attempts;
  bool operator==(const FailureInfo&) const = default;
};

// A running attempt (JobInfo `attempts`).
struct RunningAttemptInfo {
  std::string task_id;
  int64_t attempt = 0;
  std::string worker;
  double progress = 0;
  int64_t elapsed_ms = 0;
  bool speculative = false;
  bool operator==(const RunningAttemptInfo&) const = default;
};

// A failed attempt (JobInfo `recent_failures`).
struct FailedAttemptInfo {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  int64_t attempt = 0;
  std::string worker;
  std::string error;
  std::vector<std::string> stderr_tail;
  int64_t ts_ms = 0;
  bool operator==(const FailedAttemptInfo&) const = default;
};

struct JobInfo {
  std::string job_id;
  std::string name;
  std::string app;
  JobState state = JobState::kSubmitted;
  std::string error;                    // why it FAILED, starting with the stage
  std::optional<FailureInfo> failure;   // present exactly when FAILED
  std::string output;
  int64_t input_files = 0;
  int64_t input_bytes = 0;
  int64_t priority = 0;
  bool speculation = true;
  int64_t submitted_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t elapsed_ms = 0;
  int64_t age_ms = 0;
  TaskCounts maps;
  TaskCounts reduces;
  double map_progress = 0;
  double reduce_progress = 0;
  bool waiting_for_workers = false;
  std::string waiting;
  int64_t running_attempts = 0;
  int64_t speculative_attempts = 0;
  int64_t backups_launched = 0;
  std::vector<std::string> blacklisted_workers;
  std::vector<RunningAttemptInfo> attempts;   // at most 64
  int64_t failed_attempts = 0;
  std::vector<FailedAttemptInfo> recent_failures;
  Counters counters;
  int64_t last_seq = 0;

  Value ToValue() const;
  static std::optional<JobInfo> FromValue(const Value& v, std::string* error,
                                          Missing missing = Missing::kRefuse);
  bool operator==(const JobInfo&) const = default;
};

// stderr lines per failed attempt in a `jobs` listing (status has them all).
inline constexpr std::size_t kListedStderrLines = 2;

// The JobInfo as `jobs` lists it (a thousand of them may go in one reply): recent_failures keeps
// only the latest failure, and every stderr_tail only its last kListedStderrLines lines.
void TrimForList(JobInfo& info);

// --- TaskInfo, WorkerInfo ---

struct TaskInfo {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  TaskState state = TaskState::kPending;
  int64_t attempts = 0;      // started so far
  int64_t failures = 0;
  std::string worker;        // DONE: the winner's; RUNNING: the live attempts', comma-separated
  double progress = 0;
  int64_t input_bytes = 0;   // a map's split; a reduce's partition over all maps (-1: unknown)
  int64_t records = 0;
  int64_t duration_ms = 0;
  bool speculative = false;  // a backup was launched
  bool straggler = false;    // a live attempt is expected to take over twice the phase's median

  Value ToValue() const;
  static std::optional<TaskInfo> FromValue(const Value& v, std::string* error,
                                           Missing missing = Missing::kRefuse);
  bool operator==(const TaskInfo&) const = default;
};

struct WorkerInfo {
  std::string name;
  std::string host;
  int64_t pid = 0;
  int64_t slots = 1;
  int64_t queue = 0;
  int64_t running = 0;       // attempts assigned, queued ones included
  int64_t capacity = 1;      // slots it may fill now
  bool saturated = false;
  double cpu = -1;           // the last heartbeat's figures (-1 or 0: unknown)
  double host_cpu = -1;
  int64_t cores = 0;
  double load1 = -1;
  int64_t rss_kb = -1;
  int64_t disk_free_bytes = -1;
  int64_t heartbeat_age_ms = 0;
  int64_t tasks_done = 0;
  int64_t tasks_failed = 0;
  int64_t joined_ms = 0;
  std::vector<std::string> attempts;  // JOB/TASK.aN running there, at most 64

  Value ToValue() const;
  static std::optional<WorkerInfo> FromValue(const Value& v, std::string* error,
                                             Missing missing = Missing::kRefuse);
  bool operator==(const WorkerInfo&) const = default;
};

// --- events ---

// What every task event says about its attempt.
struct TaskEventHead {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  int64_t attempt = 0;
  std::string worker;
  bool operator==(const TaskEventHead&) const = default;
};

namespace event {
inline constexpr const char* kJobState = "job_state";
inline constexpr const char* kTaskAssigned = "task_assigned";
inline constexpr const char* kTaskSpeculated = "task_speculated";
inline constexpr const char* kTaskProgress = "task_progress";
inline constexpr const char* kTaskCompleted = "task_completed";
inline constexpr const char* kTaskFailed = "task_failed";
inline constexpr const char* kTaskKilled = "task_killed";
inline constexpr const char* kWorkerBlacklisted = "worker_blacklisted";
inline constexpr const char* kWorkerJoined = "worker_joined";
inline constexpr const char* kWorkerLost = "worker_lost";
inline constexpr const char* kHeartbeat = "heartbeat";    // topic kClusterHeartbeatTopic
inline constexpr const char* kClusterHeartbeatTopic = "cluster/heartbeat";
}  // namespace event

struct JobStateEvent {
  JobState state = JobState::kSubmitted;
  std::optional<JobState> prev_state;   // nullopt for the first (sent as "")
  // Only when FAILED: JobInfo's error and failure stage and task.
  std::string error;
  std::string stage;
  std::string task_id;
  bool operator==(const JobStateEvent&) const = default;
};
struct TaskAssignedEvent {
  TaskEventHead task;
  bool speculative = false;
  bool operator==(const TaskAssignedEvent&) const = default;
};
// Published just before the backup's task_assigned; `task` names the backup.
struct TaskSpeculatedEvent {
  TaskEventHead task;
  int64_t original_attempt = 0;
  std::string original_worker;
  int64_t elapsed_ms = 0;
  int64_t estimated_ms = 0;   // the original's estimated total
  int64_t typical_ms = 0;     // the phase's median
  bool operator==(const TaskSpeculatedEvent&) const = default;
};
struct TaskProgressEvent {
  TaskEventHead task;
  double progress = 0;
  bool operator==(const TaskProgressEvent&) const = default;
};
struct TaskCompletedEvent {
  TaskEventHead task;
  Counters counters;
  int64_t duration_ms = 0;
  bool speculative = false;
  bool operator==(const TaskCompletedEvent&) const = default;
};
struct TaskFailedEvent {
  TaskEventHead task;
  std::string error;
  std::vector<std::string> stderr_tail;   // sent only when not empty
  bool operator==(const TaskFailedEvent&) const = default;
};
struct TaskKilledEvent {
  TaskEventHead task;
  std::string reason;
  bool operator==(const TaskKilledEvent&) const = default;
};
struct WorkerBlacklistedEvent {
  std::string worker;
  int64_t failures = 0;
  bool operator==(const WorkerBlacklistedEvent&) const = default;
};

// An event of one job, published on topic job/<job_id>/<type>.
struct JobEvent {
  int64_t ts_ms = 0;
  std::string job_id;
  int64_t seq = 0;         // per job: 1, 2, 3, ... with no gaps
  using Detail = std::variant<JobStateEvent, TaskAssignedEvent, TaskSpeculatedEvent,
                              TaskProgressEvent, TaskCompletedEvent, TaskFailedEvent,
                              TaskKilledEvent, WorkerBlacklistedEvent>;
  Detail detail;

  const char* type() const;
  std::string Topic() const;
  Value ToValue() const;
  static std::optional<JobEvent> FromValue(const Value& v, std::string* error,
                                           Missing missing = Missing::kRefuse);
  bool operator==(const JobEvent&) const = default;
};

struct WorkerJoinedEvent {
  std::string host;
  int64_t slots = 1;
  bool operator==(const WorkerJoinedEvent&) const = default;
};
struct WorkerLostEvent {
  std::string reason;   // heartbeat expired, disconnected, replaced
  bool operator==(const WorkerLostEvent&) const = default;
};

// An event of one worker, published on topic worker/<worker>/<type>.
struct WorkerEvent {
  int64_t ts_ms = 0;
  std::string worker;
  using Detail = std::variant<WorkerJoinedEvent, WorkerLostEvent>;
  Detail detail;

  const char* type() const;
  std::string Topic() const;
  Value ToValue() const;
  static std::optional<WorkerEvent> FromValue(const Value& v, std::string* error,
                                              Missing missing = Missing::kRefuse);
  bool operator==(const WorkerEvent&) const = default;
};

// Published on kClusterHeartbeatTopic every heartbeat interval.
struct ClusterHeartbeatEvent {
  int64_t ts_ms = 0;
  int64_t workers = 0;
  int64_t jobs = 0;    // unfinished

  Value ToValue() const;
  static std::optional<ClusterHeartbeatEvent> FromValue(const Value& v, std::string* error,
                                                        Missing missing = Missing::kRefuse);
  bool operator==(const ClusterHeartbeatEvent&) const = default;
};

// The events a job still keeps after a seq (the `events` reply without its type and job_id).
struct JobEventsView {
  std::vector<JobEvent> events;   // oldest first
  bool complete = true;           // false: some events after after_seq are no longer kept
  int64_t last_seq = 0;
  bool operator==(const JobEventsView&) const = default;
};

// --- replies that carry views ---

// "job": the reply to `status`.
struct JobReply {
  JobInfo job;
  Value ToValue() const;
  static std::optional<JobReply> FromValue(const Value& v, std::string* error,
                                           Missing missing = Missing::kRefuse);
  bool operator==(const JobReply&) const = default;
};

// "jobs": the reply to `jobs`, oldest first.
struct JobsReply {
  std::vector<JobInfo> jobs;
  Value ToValue() const;
  static std::optional<JobsReply> FromValue(const Value& v, std::string* error,
                                            Missing missing = Missing::kRefuse);
  bool operator==(const JobsReply&) const = default;
};

// "tasks": the reply to `tasks`, maps then reduces.
struct TasksReply {
  std::string job_id;
  std::vector<TaskInfo> tasks;
  Value ToValue() const;
  static std::optional<TasksReply> FromValue(const Value& v, std::string* error,
                                             Missing missing = Missing::kRefuse);
  bool operator==(const TasksReply&) const = default;
};

// "workers": the reply to `workers`, by name.
struct WorkersReply {
  std::vector<WorkerInfo> workers;
  Value ToValue() const;
  static std::optional<WorkersReply> FromValue(const Value& v, std::string* error,
                                               Missing missing = Missing::kRefuse);
  bool operator==(const WorkersReply&) const = default;
};

// "events": the reply to `events`.
struct EventsReply {
  std::string job_id;
  JobEventsView view;
  Value ToValue() const;
  static std::optional<EventsReply> FromValue(const Value& v, std::string* error,
                                              Missing missing = Missing::kRefuse);
  bool operator==(const EventsReply&) const = default;
};

}  // namespace zmr
