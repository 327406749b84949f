// The scheduler's model of a job: its tasks in two phases (maps, then reduces), each task's live
// attempts and the records of those that ended, and the job's failure, counters and event history.
// Plain data with small helpers; the Scheduler (coordinator/scheduler.cc) owns every Job and is
// the only one to change it, on the coordinator's thread. Views (coordinator/job_views.h) read it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/protocol.h"
#include "common/views.h"
#include "coordinator/scheduler.h"

namespace zmr {

// Attempts remembered per task (for `logs` and failure reports); a task re-queued this often by
// lost workers forgets its oldest.
inline constexpr std::size_t kMaxAttemptRecords = 64;
// Failed attempts listed in JobInfo's recent_failures.
inline constexpr std::size_t kRecentFailures = 16;
// Events kept per job for `events` (catching up after a gap without a snapshot); once the job has
// finished only the last kFinishedEventHistory stay.
inline constexpr std::size_t kEventHistory = 256;
inline constexpr std::size_t kFinishedEventHistory = 32;

// One attempt of a task that is running now.
struct LiveAttempt {
  int64_t number = 0;
  std::string worker_key;         // the registration running it
  std::string worker_name;
  int64_t start_ms = 0;
  double progress = 0;            // 0..1, as last reported
  int64_t progress_ms = 0;        // when `progress` was reported (start_ms before the first)
  bool speculative = false;       // a backup launched for a straggler
};

// One attempt of a task, kept after it ends (for `logs` and failure reports).
struct AttemptRecord {
  int64_t number = 0;
  std::string worker_name;
  int64_t start_ms = 0;
  int64_t end_ms = 0;                // 0 while running
  const char* state = "RUNNING";     // RUNNING, SUCCEEDED, FAILED, KILLED or LOST
  std::string error;                 // FAILED: the worker's message; KILLED, LOST: why
  std::vector<std::string> stderr_tail;  // FAILED: the attempt's last stderr lines
};

// A failed attempt, as JobInfo's recent_failures lists it.
struct FailureRecord {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  int64_t attempt = 0;
  std::string worker_name;
  std::string error;
  std::vector<std::string> stderr_tail;
  int64_t ts_ms = 0;
};

struct Task {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  int64_t index = 0;
  TaskState state = TaskState::kPending;
  int64_t attempt = 0;            // number of the latest attempt (0: never started)
  std::vector<LiveAttempt> live;  // running attempts: none, one, or the original and a backup
  bool speculated = false;        // a backup was launched (at most one per task)
  int64_t failures = 0;           // failed attempts (lost workers and killed attempts do not count)
  std::string last_failed_worker;  // avoided when re-assigning, if another worker is free
  std::vector<std::string> history;  // "attempt N on WORKER: error" per failed attempt
  std::deque<AttemptRecord> tried;   // attempts started, oldest first (the last kMaxAttemptRecords)
  std::vector<MapOutput> outputs;  // map tasks, once done
  int64_t duration_ms = 0;        // of the winning attempt, once done
  std::string done_worker;        // who ran the winning attempt
  int64_t input_bytes = -1;       // reduces: bytes of their partition over all maps, once known
  int64_t records = 0;            // input records of the winning attempt

  // The record of attempt `number`, or nullptr when it is no longer kept.
  AttemptRecord* FindRecord(int64_t number);
  // What a task event says of attempt `attempt` on worker `worker_name`.
  TaskEventHead Head(int64_t attempt, const std::string& worker_name) const {
    return {task_id, kind, attempt, worker_name};
  }
};


// Median of a growing set of durations in O(log n) per insertion (two heaps).
class RunningMedian {
 public:
  void Add(int64_t x);
  // Requires at least one value; the lower median for an even count.
  int64_t Median() const { return low_.top(); }
  std::size_t size() const { return low_.size() + high_.size(); }

 private:
  std::priority_queue<int64_t> low_;
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> high_;
};

// The tasks of one kind of a job.
struct Phase {
  std::vector<Task> tasks;
  int64_t done = 0;
  std::set<int64_t> running;      // indexes of tasks with a live attempt
  RunningMedian durations;        // of done tasks, for speculation
};

// Scheduling order of jobs with pending tasks: priority (higher first), then fewest running
// tasks (fair share), then submission order.
using JobKey = std::tuple<int64_t, int64_t, int64_t>;

// Why a job failed: the stage ("SUBMITTED", "MAPPING", "REDUCING", "COMMITTING") and task.
struct Failure {
  std::string stage;
  std::string task_id;
};

struct Job {
  std::string job_id;
  int64_t order = 0;              // submission order
  JobSpec spec;
  JobState state = JobState::kSubmitted;
  std::string error;
  Failure failure;
  Phase maps;
  Phase reduces;                  // created when every map is done
  int64_t seq = 0;                // of the last event published
  int64_t submitted_ms = 0;
  int64_t started_ms = 0;         // first attempt
  int64_t finished_ms = 0;
  bool start_checked = false;
  std::set<std::pair<TaskKind, int64_t>> pending;  // queued tasks: maps first, by index
  std::optional<JobKey> queued_as;  // key in Impl::runnable while pending is non-empty
  std::vector<int64_t> blocked_reduces;  // waiting for re-run maps (their input went bad)
  int64_t live_attempts = 0;
  int64_t live_backups = 0;
  int64_t backups_launched = 0;
  std::map<std::string, int64_t> failures_by_worker;  // worker name -> failed attempts
  std::set<std::string> blacklist;  // worker names given no more of this job's tasks
  Counters counters;              // summed over accepted attempts
  int64_t failed_attempts = 0;    // task_failed so far (lost workers' attempts included)
  std::deque<FailureRecord> recent_failures;  // the last kRecentFailures failed attempts
  std::deque<JobEvent> events;    // the latest events (kEventHistory; fewer once finished)

  bool map_only() const { return spec.num_reduces == 0; }
  int64_t max_attempts(int64_t fallback) const {
    return spec.max_attempts > 0 ? spec.max_attempts : fallback;
  }
  Phase& phase(TaskKind kind) { return kind == TaskKind::kMap ? maps : reduces; }
  const Phase& phase(TaskKind kind) const { return kind == TaskKind::kMap ? maps : reduces; }
  int64_t running_tasks() const {
    return static_cast<int64_t>(maps.running.size() + reduces.running.size());
  }
  bool all_maps_done() const { return maps.done == static_cast<int64_t>(maps.tasks.size()); }
  // The task, or nullptr when the phase has no task `index` (yet).
  Task* FindTask(TaskKind kind, int64_t index);
  const Task* FindTask(TaskKind kind, int64_t index) const;
  // The next event of the job (seq + 1), kept in `events` (the last kEventHistory) and returned
  // for publishing.
  JobEvent RecordEvent(int64_t now_ms, JobEvent::Detail detail);
};



// The stage a failure now would name: SUBMITTED, MAPPING or REDUCING (else the state's name).
const char* StageOf(const Job& job);

}  // namespace zmr
