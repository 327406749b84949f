// The coordinator's decision core: workers, jobs, tasks and attempts, and what to do when something
// happens. A plain class with no sockets, threads or clock of its own: the coordinator loop feeds it
// events with the current time and carries out the Actions it queues (coordinator/actions.h). Single-threaded.
//
// Invariants kept here:
// - a task has at most two running attempts (the second a speculative backup), each on its own
//   registered worker; the first to finish wins and the other is killed;
// - a worker is assigned at most slots + queue attempts, beyond its slots only attempts of short
//   tasks (kQueueTaskMaxMs), and never a backup beyond its slots;
// - only a message from the registration that runs an attempt, naming that attempt, changes the
//   task (results of lost, replaced, killed or superseded attempts are ignored);
// - every job event carries the job's next seq (1, 2, 3, ... with no gaps).
// Costs: assigning a freed slot is O(log jobs + log workers), never a scan of tasks or workers;
// a worker's message costs one hashed look-up (a heartbeat re-files the worker among the free ones
// only when its score changed); expiry looks at every worker only when the least recently heard
// one may have expired, and at most every heartbeat/10.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/splits.h"
#include "common/value.h"
#include "common/views.h"
#include "coordinator/actions.h"

namespace zmr {

struct JobSpec;

// Speculation: a running attempt gets a backup when its estimated total time is more than
// kSpeculationFactor x the phase's median task time and at least speculation_slack_ms beyond it.
inline constexpr double kSpeculationFactor = 2.0;
// Fraction of a phase's tasks that must be done before its median task time is trusted.
inline constexpr double kSpeculationMinDoneFraction = 0.05;
// Concurrent backups per job: at most max(1, running tasks / kSpeculationCapDivisor).
inline constexpr int64_t kSpeculationCapDivisor = 10;
// A worker that failed this many attempts of one job gets no more of that job's tasks.
inline constexpr int64_t kBlacklistFailures = 3;
// Queueing short tasks (a worker's ready.queue): once this many of a phase's tasks are done and
// their median time (assignment to done) is at most kQueueTaskMaxMs, more of the phase's tasks
// may be assigned to a worker than it has slots; it starts each as a slot frees, so the next
// tiny task does not wait for a round trip to the coordinator. Longer tasks wait for a free slot
// (queued behind a long one, a task could finish a whole task later than on another worker).
inline constexpr int64_t kQueueMinDone = 3;
inline constexpr int64_t kQueueTaskMaxMs = 250;
// A host is saturated when its smoothed CPU use is at least this (fraction of all its cores).
inline constexpr double kSaturatedHostCpu = 0.9;

struct SchedulerOptions {
  int64_t heartbeat_ms = kDefaultHeartbeatMs;
  int64_t liveness = kDefaultLiveness;
  int64_t max_attempts = 4;          // failed attempts per task before the job fails
  std::size_t max_finished_jobs = 1000;  // finished jobs kept for status/jobs, oldest dropped
  std::string cluster_id = "0";      // embedded in job ids: job_<cluster_id>_<NNNN>
  // A backup is launched only for an attempt expected to finish this much after a typical one:
  // it keeps noise in short tasks (a slow process start, a busy disk) from costing slots.
  int64_t speculation_slack_ms = 2000;
  // Candidates for speculation are looked at no more often than this.
  int64_t speculation_interval_ms = 250;
  // Called once per job, just before its first attempt starts; false (with a one-line reason)
  // fails the job in its SUBMITTED stage. Unset: no check. The coordinator re-checks the inputs.
  std::function<bool(const JobSpec& spec, std::string* error)> start_check;
};

// A validated job, ready to plan: the coordinator checked the inputs and output and cut the splits.
struct JobSpec {
  std::string name;
  std::string app;
  Params params;
  std::string output_dir;            // absolute; exists and is empty
  std::vector<Split> splits;         // one per map task
  int64_t num_reduces = 1;           // 0: map-only (each map commits OUTPUT/part-<map index>)
  int64_t input_files = 0;
  int64_t input_bytes = 0;
  int64_t max_attempts = 0;          // failed attempts per task before the job fails (0: default)
  int64_t priority = 0;              // higher first; equal priorities share the slots fairly
  bool speculation = true;           // backup attempts for stragglers
  JobCode code;                      // plugin / streaming commands / shipped file refs
  std::map<std::string, std::string> blobs;  // sha256 -> bytes of every file in code.files
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // --- workers (worker_key is the ROUTER routing id of one registration) ---

  // Registers a worker (a fresh registration even if the key or name was known: the older
  // registration's attempts are re-queued). Queues `welcome`, or `refused` on a protocol mismatch.
  void WorkerReady(const std::string& worker_key, const ReadyMsg& ready, int64_t now_ms);
  // Whether worker_key is a current registration.
  bool IsRegistered(const std::string& worker_key) const;
  // Any message from a worker: refreshes its liveness if worker_key is a current registration,
  // and returns whether it is (the caller tells an unknown sender to register again). O(1).
  bool WorkerSeen(const std::string& worker_key, int64_t now_ms);
  // Heartbeat figures (cpu, host_cpu, ...) feed placement: the less loaded worker is preferred and
  // a saturated host gets fewer attempts (ARCHITECTURE.md, Scheduling). Refreshes liveness as
  // WorkerSeen does, and returns the same.
  bool WorkerHeartbeat(const std::string& worker_key, const HeartbeatMsg& heartbeat,
                       int64_t now_ms);
  // The worker said goodbye: lost at once, attempts re-queued.
  void WorkerDisconnected(const std::string& worker_key, int64_t now_ms);

  // --- attempts (ignored unless from the registration running that very attempt) ---
  void TaskProgress(const std::string& worker_key, const TaskProgressMsg& msg, int64_t now_ms);
  void TaskDone(const std::string& worker_key, const TaskDoneMsg& msg, int64_t now_ms);
  void TaskFailed(const std::string& worker_key, const TaskFailedMsg& msg, int64_t now_ms);

  // --- jobs ---
  // Creates the job (state SUBMITTED, then MAPPING) and returns its id. Requires a valid spec
  // (at least one split, num_reduces >= 1).
  std::string AddJob(JobSpec spec, int64_t now_ms);
  // Cancels a job. Returns nullopt for an unknown job, else the state after the call and whether
  // it changed (false when already finished).
  struct CancelResult {
    JobState state;
    bool changed;
  };
  std::optional<CancelResult> CancelJob(const std::string& job_id, int64_t now_ms);
  // The loop finished a CommitJob (or a CommitTask failed): the job COMPLETES, or FAILS with
  // `error`. Ignored for an unknown or ended job.
  void JobCommitted(const std::string& job_id, bool ok, const std::string& error,
                    int64_t now_ms);

  // ExpireSilentWorkers then AssignPending. Call after every batch of messages and at least every
  // heartbeat interval.
  void Tick(int64_t now_ms);
  // Declares workers silent for liveness x heartbeat lost (looks at most every heartbeat / 10).
  void ExpireSilentWorkers(int64_t now_ms);
  // Starts pending tasks on free slots, then backups for stragglers if slots are still free.
  void AssignPending(int64_t now_ms);

  // Moves out the queued actions, oldest first.
  std::vector<Action> TakeActions();

  // --- views (PROTOCOL.md JobInfo, TaskInfo, WorkerInfo) ---
  // nullopt for an unknown job (or one dropped after max_finished_jobs).
  std::optional<JobInfo> GetJobInfo(const std::string& job_id, int64_t now_ms) const;
  std::optional<JobState> GetJobState(const std::string& job_id) const;
  // Jobs, oldest first: the unfinished ones, and with `finished` the (bounded number of) finished
  // ones kept too. Trimmed for a listing (TrimForList).
  enum class Finished { kExclude, kInclude };
  std::vector<JobInfo> ListJobs(int64_t now_ms, Finished finished) const;
  // Every task of the job, maps then reduces; nullopt for an unknown job.
  std::optional<std::vector<TaskInfo>> ListTasks(const std::string& job_id, int64_t now_ms) const;
  std::vector<WorkerInfo> ListWorkers(int64_t now_ms) const;   // by name

  // Where an attempt of a task ran, for fetching its log. `attempt` 0: the latest. nullopt with
  // a one-line *error for an unknown job, task or attempt (or a task never started).
  struct AttemptLocation {
    int64_t attempt = 0;
    std::string worker_name;
    std::string worker_key;  // the current registration of that worker name, "" if none
    std::string state;       // RUNNING, SUCCEEDED, FAILED, KILLED or LOST
  };
  std::optional<AttemptLocation> FindAttempt(const std::string& job_id, const std::string& task_id,
                                             int64_t attempt, std::string* error) const;
  // The job's kept events with seq > after_seq, oldest first; `complete` is false when older
  // events the caller lacks are no longer kept (take a snapshot instead). nullopt for an unknown
  // job.
  std::optional<JobEventsView> EventsAfter(const std::string& job_id, int64_t after_seq) const;
  std::vector<std::string> WorkerKeys() const;
  std::size_t worker_count() const;
  std::size_t active_job_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
