#include "coordinator/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
#include <unordered_map>

namespace zmr {

namespace {

// Most running attempts listed in one JobInfo (a big job has thousands; `zmr tasks` is for those).
constexpr std::size_t kMaxListedAttempts = 64;
// Attempts remembered per task (for `logs` and failure reports); a task re-queued this often by
// lost workers forgets its oldest.
constexpr std::size_t kMaxAttemptRecords = 64;
// Failed attempts listed in JobInfo's recent_failures.
constexpr std::size_t kRecentFailures = 16;
// Events kept per job for `events` (catching up after a gap without a snapshot); once the job has
// finished only the last kFinishedEventHistory stay.
constexpr std::size_t kEventHistory = 256;
constexpr std::size_t kFinishedEventHistory = 32;

// Smoothing of the heartbeat load figures: weight of the newest sample.
constexpr double kLoadSmoothing = 0.3;
// Heartbeats with load figures needed before a host can count as saturated.
constexpr int64_t kSaturationSamples = 3;

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
};

// The estimated total run time of a live attempt: the larger of its elapsed time and what its
// progress rate at its last report implies (so an attempt that stopped reporting looks at least
// as slow as its age).
int64_t EstimatedTotalMs(const LiveAttempt& a, int64_t now_ms) {
  int64_t estimate = now_ms - a.start_ms;
  if (a.progress > 0) {
    auto by_rate =
        static_cast<int64_t>(static_cast<double>(a.progress_ms - a.start_ms) / a.progress);
    estimate = std::max(estimate, by_rate);
  }
  return estimate;
}

// Median of a growing set of durations in O(log n) per insertion (two heaps).
class RunningMedian {
 public:
  void Add(int64_t x) {
    if (low_.empty() || x <= low_.top()) {
      low_.push(x);
    } else {
      high_.push(x);
    }
    if (low_.size() > high_.size() + 1) {
      high_.push(low_.top());
      low_.pop();
    } else if (high_.size() > low_.size()) {
      low_.push(high_.top());
      high_.pop();
    }
  }
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
};

// (job_id, kind, index, attempt) of an attempt running on a worker.
using AttemptKey = std::tuple<std::string, TaskKind, int64_t, int64_t>;

struct Worker {
  std::string key;
  std::string name;
  std::string host;
  int64_t pid = 0;
  int64_t slots = 1;
  int64_t queue = 0;               // assignments beyond its slots it holds until a slot frees
  std::string work_dir;
  int64_t joined_ms = 0;
  int64_t last_seen_ms = 0;
  int64_t tasks_done = 0;
  int64_t tasks_failed = 0;
  std::set<std::string> jobs_with_files;  // jobs whose shipped files this registration has
  std::set<AttemptKey> running;
  HeartbeatMsg load;               // the last heartbeat's figures
  int64_t load_samples = 0;        // heartbeats that carried host_cpu
  double host_cpu_avg = 0;         // smoothed host_cpu
  double other_cores_avg = 0;      // smoothed CPU of the host's other processes, in cores
  std::optional<std::pair<double, std::string>> free_as;   // key in Impl::free_workers
  std::optional<std::pair<double, std::string>> queue_as;  // key in Impl::queue_workers

  bool saturated() const {
    return load_samples >= kSaturationSamples && host_cpu_avg >= kSaturatedHostCpu;
  }
  // Slots this worker may fill now: all of them, unless its host stays saturated; then only as
  // many as the cores the host's other processes leave (at least one).
  int64_t capacity() const {
    if (!saturated() || load.cores <= 0) return slots;
    int64_t left = std::llround(static_cast<double>(load.cores) - other_cores_avg);
    return std::clamp<int64_t>(left, 1, slots);
  }
  // Lower is preferred: the share of its capacity in use, then how busy its host is.
  double score() const {
    double used = static_cast<double>(running.size()) / static_cast<double>(capacity());
    return used + (load_samples > 0 ? 0.25 * host_cpu_avg : 0.0);
  }
};

std::string TaskIdFor(TaskKind kind, int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%c-%05lld", kind == TaskKind::kMap ? 'm' : 'r',
                static_cast<long long>(index));
  return buf;
}

bool ParseTaskId(const std::string& task_id, TaskKind* kind, int64_t* index) {
  if (task_id.size() < 3 || task_id[1] != '-') return false;
  if (task_id[0] == 'm') {
    *kind = TaskKind::kMap;
  } else if (task_id[0] == 'r') {
    *kind = TaskKind::kReduce;
  } else {
    return false;
  }
  int64_t value = 0;
  for (std::size_t i = 2; i < task_id.size(); ++i) {
    char c = task_id[i];
    if (c < '0' || c > '9' || value > 100000000) return false;
    value = value * 10 + (c - '0');
  }
  *index = value;
  return true;
}

TaskCounts CountsOf(const Phase& phase, int64_t planned_total) {
  int64_t total = std::max<int64_t>(planned_total, static_cast<int64_t>(phase.tasks.size()));
  int64_t pending = 0, running = 0, done = 0, failed = 0;
  for (const Task& t : phase.tasks) {
    switch (t.state) {
      case TaskState::kPending: ++pending; break;
      case TaskState::kRunning: ++running; break;
      case TaskState::kDone: ++done; break;
      case TaskState::kFailed: ++failed; break;
    }
  }
  // Reduce tasks not created yet count as pending.
  pending += total - static_cast<int64_t>(phase.tasks.size());
  return {total, pending, running, done, failed};
}

double PhaseProgress(const Phase& phase, int64_t total) {
  if (total <= 0) return 0;
  double sum = static_cast<double>(phase.done);
  for (int64_t index : phase.running) {
    double best = 0;
    for (const LiveAttempt& a : phase.tasks[index].live) best = std::max(best, a.progress);
    sum += best;
  }
  return std::min(1.0, sum / static_cast<double>(total));
}

AttemptRecordInfo InfoOf(const AttemptRecord& r) {
  return {r.number, r.worker_name, r.state, r.start_ms, r.end_ms, r.error, r.stderr_tail};
}

const char* StageOf(const Job& job) {
  switch (job.state) {
    case JobState::kSubmitted: return "SUBMITTED";
    case JobState::kMapping: return "MAPPING";
    case JobState::kReducing: return "REDUCING";
    default: return JobStateName(job.state);
  }
}

}  // namespace

struct Scheduler::Impl {
  SchedulerOptions options;
  std::map<std::string, std::unique_ptr<Job>> jobs;    // by job id
  std::map<int64_t, Job*> jobs_by_order;
  std::deque<std::string> finished;                    // finished job ids, oldest first
  int64_t next_job_number = 1;
  // By routing key. Hashed: every message from a worker looks its registration up, a thousand
  // times a second with a thousand workers; nothing needs them in key order.
  std::unordered_map<std::string, Worker> workers;
  // At most the smallest last_seen_ms of any worker: ExpireSilentWorkers scans the workers only
  // once this is old enough for someone to have expired.
  int64_t earliest_seen_ms = 0;
  std::map<std::string, std::string> key_by_name;
  std::set<JobKey> runnable;                           // jobs with pending tasks, in turn order
  std::set<std::pair<double, std::string>> free_workers;  // (score, key) of workers with room
  // (score, key) of workers whose slots are full but whose queue has room (ready.queue).
  std::set<std::pair<double, std::string>> queue_workers;
  std::vector<Action> out;
  int64_t last_expiry_check_ms = 0;
  int64_t last_speculation_ms = 0;

  // --- events ---

  void PublishJob(Job& job, int64_t now_ms, JobEvent::Detail detail) {
    JobEvent event{now_ms, job.job_id, ++job.seq, std::move(detail)};
    job.events.push_back(event);
    if (job.events.size() > kEventHistory) job.events.pop_front();
    out.push_back(Publish{std::move(event)});
  }

  static TaskEventHead Head(const Task& task, int64_t attempt, const std::string& worker_name) {
    return {task.task_id, task.kind, attempt, worker_name};
  }

  void PublishWorker(const Worker& w, int64_t now_ms, WorkerEvent::Detail detail) {
    out.push_back(Publish{WorkerEvent{now_ms, w.name, std::move(detail)}});
  }

  void SetState(Job& job, JobState state, int64_t now_ms) {
    JobStateEvent e;
    e.state = state;
    if (job.seq > 0) e.prev_state = job.state;
    job.state = state;
    if (state == JobState::kFailed) {
      e.error = job.error;
      e.stage = job.failure.stage;
      e.task_id = job.failure.task_id;
    }
    PublishJob(job, now_ms, std::move(e));
  }

  void SendToWorker(const std::string& key, WorkerMessage message) {
    out.push_back(ToWorker{key, std::move(message)});
  }

  // --- lookups ---

  Job* FindJob(const std::string& job_id) {
    auto it = jobs.find(job_id);
    return it == jobs.end() ? nullptr : it->second.get();
  }

  Task* FindTask(Job& job, TaskKind kind, int64_t index) {
    std::vector<Task>& tasks = job.phase(kind).tasks;
    if (index < 0 || index >= static_cast<int64_t>(tasks.size())) return nullptr;
    return &tasks[index];
  }

  // The task a worker message refers to, if that registration runs exactly that attempt now;
  // *live_index is the attempt's position in task->live.
  Task* FindLive(const std::string& worker_key, const AttemptRef& ref, Job** job_out,
                 std::size_t* live_index) {
    Job* job = FindJob(ref.job_id);
    if (job == nullptr || IsTerminal(job->state)) return nullptr;
    TaskKind kind;
    int64_t index;
    if (!ParseTaskId(ref.task_id, &kind, &index)) return nullptr;
    Task* task = FindTask(*job, kind, index);
    if (task == nullptr || task->state != TaskState::kRunning) return nullptr;
    for (std::size_t i = 0; i < task->live.size(); ++i) {
      if (task->live[i].number == ref.attempt && task->live[i].worker_key == worker_key) {
        *job_out = job;
        *live_index = i;
        return task;
      }
    }
    return nullptr;
  }

  // --- queues ---

  // Puts the job in (or takes it out of) the runnable set under its current key.
  void Requeue(Job& job) {
    if (job.queued_as) {
      runnable.erase(*job.queued_as);
      job.queued_as.reset();
    }
    if (!job.pending.empty() && !IsTerminal(job.state)) {
      job.queued_as = JobKey{-job.spec.priority, job.running_tasks(), job.order};
      runnable.insert(*job.queued_as);
    }
  }

  // Puts the worker in (or takes it out of) `set` under its current score: in it when `in`.
  // Does nothing when neither changed (the common case of a heartbeat).
  static void File(std::set<std::pair<double, std::string>>& set,
                   std::optional<std::pair<double, std::string>>& as, bool in, const Worker& w) {
    if (in && as && as->first == w.score()) return;
    if (!in && !as) return;
    if (as) {
      set.erase(*as);
      as.reset();
    }
    if (in) {
      as = std::make_pair(w.score(), w.key);
      set.insert(*as);
    }
  }

  // Files the worker among the free ones (a slot is free) or the queueing ones (its slots are
  // full, its queue is not), or neither.
  void UpdateFree(Worker& w) {
    const auto used = static_cast<int64_t>(w.running.size());
    const bool has_room = used < w.capacity();
    File(free_workers, w.free_as, has_room, w);
    File(queue_workers, w.queue_as, !has_room && used < w.capacity() + w.queue, w);
  }

  // Whether the phase's tasks are short enough to be queued on a worker behind a running attempt
  // (ready.queue): a few are done and their median time is at most kQueueTaskMaxMs. A longer task
  // would be better off waiting for whichever slot frees first.
  static bool QueueAllowed(const Phase& phase) {
    return static_cast<int64_t>(phase.durations.size()) >= kQueueMinDone &&
           phase.durations.Median() <= kQueueTaskMaxMs;
  }

  void Enqueue(Job& job, Task& task) {
    task.state = TaskState::kPending;
    job.phase(task.kind).running.erase(task.index);
    job.pending.insert({task.kind, task.index});
    Requeue(job);
  }

  // --- attempts ---

  // Removes task.live[i] and frees its worker slot. Returns the removed attempt. The task's state
  // is the caller's to set.
  static AttemptRecord* FindRecord(Task& task, int64_t number) {
    for (auto it = task.tried.rbegin(); it != task.tried.rend(); ++it) {
      if (it->number == number) return &*it;
    }
    return nullptr;
  }

  // Forgets a live attempt that ended: `state` (SUCCEEDED, FAILED, KILLED, LOST) and `why` go
  // into its record.
  LiveAttempt RemoveLive(Job& job, Task& task, std::size_t i, const char* state, int64_t now_ms,
                         const std::string& why = "") {
    LiveAttempt a = std::move(task.live[i]);
    if (AttemptRecord* record = FindRecord(task, a.number)) {
      record->state = state;
      record->end_ms = now_ms;
      record->error = why;
    }
    task.live.erase(task.live.begin() + static_cast<std::ptrdiff_t>(i));
    --job.live_attempts;
    if (a.speculative) --job.live_backups;
    auto it = workers.find(a.worker_key);
    if (it != workers.end()) {
      it->second.running.erase({job.job_id, task.kind, task.index, a.number});
      UpdateFree(it->second);
    }
    if (task.live.empty()) job.phase(task.kind).running.erase(task.index);
    return a;
  }

  // Tells the workers to stop every live attempt of the task and forgets them.
  void KillLive(Job& job, Task& task, const std::string& reason, int64_t now_ms) {
    while (!task.live.empty()) {
      LiveAttempt a = RemoveLive(job, task, task.live.size() - 1, "KILLED", now_ms, reason);
      CancelAttemptMsg c;
      c.ref = {job.job_id, task.task_id, a.number};
      SendToWorker(a.worker_key, std::move(c));
      PublishJob(job, now_ms, TaskKilledEvent{Head(task, a.number, a.worker_name), reason});
    }
  }

  // Takes the key by value: callers may pass a reference into the maps this erases from.
  void LoseWorker(std::string key, const std::string& reason, int64_t now_ms) {
    auto it = workers.find(key);
    if (it == workers.end()) return;
    if (it->second.free_as) free_workers.erase(*it->second.free_as);
    if (it->second.queue_as) queue_workers.erase(*it->second.queue_as);
    Worker w = std::move(it->second);
    workers.erase(it);
    auto name_it = key_by_name.find(w.name);
    if (name_it != key_by_name.end() && name_it->second == key) key_by_name.erase(name_it);
    for (const auto& [job_id, kind, index, number] : w.running) {
      Job* job = FindJob(job_id);
      if (job == nullptr || IsTerminal(job->state)) continue;
      Task* task = FindTask(*job, kind, index);
      if (task == nullptr) continue;
      for (std::size_t i = 0; i < task->live.size(); ++i) {
        if (task->live[i].number != number || task->live[i].worker_key != key) continue;
        const std::string error = "worker " + w.name + " lost (" + reason + ")";
        LiveAttempt a = RemoveLive(*job, *task, i, "LOST", now_ms, error);
        RecordFailure(*job, *task, a, error, {}, now_ms);
        PublishJob(*job, now_ms, TaskFailedEvent{Head(*task, a.number, a.worker_name), error, {}});
        // Re-queued at once, unless its other attempt goes on.
        if (task->live.empty()) Enqueue(*job, *task);
        Requeue(*job);
        break;
      }
    }
    PublishWorker(w, now_ms, WorkerLostEvent{reason});
  }

  void RecordFailure(Job& job, const Task& task, const LiveAttempt& a, const std::string& error,
                     const std::vector<std::string>& stderr_tail, int64_t now_ms) {
    ++job.failed_attempts;
    FailureRecord f;
    f.task_id = task.task_id;
    f.kind = task.kind;
    f.attempt = a.number;
    f.worker_name = a.worker_name;
    f.error = error;
    f.stderr_tail = stderr_tail;
    f.ts_ms = now_ms;
    job.recent_failures.push_back(std::move(f));
    if (job.recent_failures.size() > kRecentFailures) job.recent_failures.pop_front();
  }

  // Whether every registered worker is on the job's blacklist (then the blacklist is ignored:
  // a job is never left with nowhere to run).
  bool BlacklistCoversAll(const Job& job) const {
    if (job.blacklist.empty()) return false;
    std::size_t listed = 0;
    for (const std::string& name : job.blacklist) listed += key_by_name.count(name);
    return listed >= workers.size();
  }

  // The least loaded worker with a free slot for an attempt of `task`: not on the job's
  // blacklist, not already running an attempt of the task, and preferably not where it last
  // failed. With Room::kSlotOrQueue and no such slot, the same among the workers whose queue has
  // room.
  enum class Room { kSlot, kSlotOrQueue };
  Worker* PickWorker(const Job& job, const Task& task, Room room) {
    Worker* w = PickAmong(free_workers, job, task);
    if (w == nullptr && room == Room::kSlotOrQueue) w = PickAmong(queue_workers, job, task);
    return w;
  }

  Worker* PickAmong(const std::set<std::pair<double, std::string>>& candidates, const Job& job,
                    const Task& task) {
    bool use_blacklist = !job.blacklist.empty() && !BlacklistCoversAll(job);
    Worker* fallback = nullptr;
    for (const auto& [score, key] : candidates) {
      Worker& w = workers.at(key);
      if (use_blacklist && job.blacklist.count(w.name) != 0) continue;
      bool runs_it = false;
      for (const LiveAttempt& a : task.live) runs_it = runs_it || a.worker_key == key;
      if (runs_it) continue;
      if (!task.last_failed_worker.empty() && w.name == task.last_failed_worker) {
        if (fallback == nullptr) fallback = &w;
        continue;
      }
      return &w;
    }
    return fallback;
  }

  void StartAttempt(Job& job, Task& task, Worker& w, bool speculative, int64_t now_ms) {
    ++task.attempt;
    LiveAttempt a;
    a.number = task.attempt;
    a.worker_key = w.key;
    a.worker_name = w.name;
    a.start_ms = now_ms;
    a.progress_ms = now_ms;
    a.speculative = speculative;
    task.live.push_back(a);
    AttemptRecord record;
    record.number = a.number;
    record.worker_name = w.name;
    record.start_ms = now_ms;
    task.tried.push_back(std::move(record));
    if (task.tried.size() > kMaxAttemptRecords) task.tried.pop_front();
    task.state = TaskState::kRunning;
    job.phase(task.kind).running.insert(task.index);
    ++job.live_attempts;
    if (speculative) {
      ++job.live_backups;
      ++job.backups_launched;
    }
    w.running.insert({job.job_id, task.kind, task.index, a.number});
    UpdateFree(w);

    AssignMsg m;
    m.job_id = job.job_id;
    m.task_id = task.task_id;
    m.attempt = a.number;
    m.kind = task.kind;
    m.app = job.spec.app;
    m.params = job.spec.params;
    m.code = job.spec.code;
    m.num_reduces = job.spec.num_reduces;
    m.output_dir = job.spec.output_dir;
    m.partition = task.index;
    if (!job.spec.blobs.empty() && w.jobs_with_files.insert(job.job_id).second) {
      JobFilesMsg files;
      files.job_id = job.job_id;
      files.blobs = job.spec.blobs;
      SendToWorker(w.key, std::move(files));
    }
    if (task.kind == TaskKind::kMap) {
      m.split = job.spec.splits[task.index];
    } else {
      task.input_bytes = 0;
      for (const Task& map : job.maps.tasks) {
        for (const MapOutput& o : map.outputs) {
          if (o.partition != task.index) continue;
          m.inputs.push_back(o.location);
          task.input_bytes += o.bytes;
        }
      }
    }
    SendToWorker(w.key, std::move(m));
    if (job.state == JobState::kSubmitted) {
      job.started_ms = now_ms;
      SetState(job, JobState::kMapping, now_ms);
    }
    PublishJob(job, now_ms, TaskAssignedEvent{Head(task, a.number, a.worker_name), speculative});
    Requeue(job);
  }

  // Starts the job's next pending task on a worker, if one can take it. False when the job has
  // nothing it can start now.
  bool StartNext(Job& job, int64_t now_ms) {
    if (!job.start_checked && options.start_check) {
      job.start_checked = true;
      std::string error;
      if (!options.start_check(job.spec, &error)) {
        FailJob(job, {"SUBMITTED", ""}, "SUBMITTED: " + error, now_ms);
        return false;
      }
    }
    job.start_checked = true;
    while (!job.pending.empty()) {
      auto [kind, index] = *job.pending.begin();
      Task* task = FindTask(job, kind, index);
      if (task == nullptr || task->state != TaskState::kPending) {
        job.pending.erase(job.pending.begin());
        continue;
      }
      if (kind == TaskKind::kReduce && !job.all_maps_done()) {
        // Some map is being re-run: this reduce waits for it (MapsDone re-queues it).
        job.pending.erase(job.pending.begin());
        job.blocked_reduces.push_back(index);
        continue;
      }
      Worker* w = PickWorker(job, *task,
                             QueueAllowed(job.phase(kind)) ? Room::kSlotOrQueue : Room::kSlot);
      if (w == nullptr) break;
      job.pending.erase(job.pending.begin());
      StartAttempt(job, *task, *w, /*speculative=*/false, now_ms);
      return true;
    }
    Requeue(job);
    return false;
  }

  void Schedule(int64_t now_ms) {
    // Each round starts one attempt for the first job in turn order that can use a free slot;
    // starting it changes the job's key (one more running task), so the next round looks again.
    while ((!free_workers.empty() || !queue_workers.empty()) && !runnable.empty()) {
      bool started = false;
      for (auto it = runnable.begin(); it != runnable.end() && !started;) {
        Job* job = jobs_by_order.at(std::get<2>(*it));
        ++it;  // StartNext re-keys this job; `it` stays valid (it points at another element)
        started = StartNext(*job, now_ms);
      }
      if (!started) break;
    }
    if (!free_workers.empty() && runnable.empty()) Speculate(now_ms);
  }

  // --- speculation ---

  // Launches backups for stragglers while slots are free and no task is waiting.
  void Speculate(int64_t now_ms) {
    if (now_ms - last_speculation_ms < options.speculation_interval_ms) return;
    last_speculation_ms = now_ms;
    for (auto& [order, job_ptr] : jobs_by_order) {
      if (free_workers.empty()) return;
      Job& job = *job_ptr;
      if (!job.spec.speculation) continue;
      Phase* phase = nullptr;
      if (job.state == JobState::kMapping) phase = &job.maps;
      if (job.state == JobState::kReducing && job.all_maps_done()) phase = &job.reduces;
      if (phase == nullptr || phase->running.empty()) continue;
      auto total = static_cast<double>(phase->tasks.size());
      auto needed = static_cast<int64_t>(std::ceil(kSpeculationMinDoneFraction * total));
      if (phase->done < std::max<int64_t>(1, needed)) continue;
      int64_t typical = phase->durations.Median();
      int64_t cap = std::max<int64_t>(1, job.running_tasks() / kSpeculationCapDivisor);
      while (job.live_backups < cap && !free_workers.empty()) {
        Task* best = nullptr;
        int64_t best_finish = 0, best_estimate = 0;
        for (int64_t index : phase->running) {
          Task& t = phase->tasks[index];
          if (t.speculated || t.live.size() != 1) continue;
          const LiveAttempt& a = t.live[0];
          if (now_ms - a.start_ms < typical) continue;
          int64_t estimate = EstimatedTotalMs(a, now_ms);
          if (static_cast<double>(estimate) <= kSpeculationFactor * static_cast<double>(typical) ||
              estimate - typical < options.speculation_slack_ms) {
            continue;
          }
          int64_t finish = a.start_ms + estimate;
          if (best == nullptr || finish > best_finish) {
            best = &t;
            best_finish = finish;
            best_estimate = estimate;
          }
        }
        if (best == nullptr) break;
        Worker* w = PickWorker(job, *best, Room::kSlot);  // a backup never waits in a queue
        if (w == nullptr) break;
        best->speculated = true;
        const LiveAttempt& original = best->live[0];
        PublishJob(job, now_ms,
                   TaskSpeculatedEvent{Head(*best, best->attempt + 1, w->name), original.number,
                                       original.worker_name, now_ms - original.start_ms,
                                       best_estimate, typical});
        StartAttempt(job, *best, *w, /*speculative=*/true, now_ms);
      }
    }
  }

  // --- job ends ---

  void StopAttempts(Job& job, const std::string& reason, int64_t now_ms) {
    for (Phase* phase : {&job.maps, &job.reduces}) {
      std::vector<int64_t> running(phase->running.begin(), phase->running.end());
      for (int64_t index : running) {
        Task& t = phase->tasks[index];
        KillLive(job, t, reason, now_ms);
        if (t.state == TaskState::kRunning) t.state = TaskState::kPending;
      }
    }
    job.pending.clear();
    job.blocked_reduces.clear();
    Requeue(job);
  }

  void Finish(Job& job, JobState state, int64_t now_ms) {
    if (state != JobState::kCompleted) {
      StopAttempts(job, state == JobState::kCancelled ? "job cancelled" : "job failed", now_ms);
    }
    job.spec.blobs.clear();  // shipped files are only needed while attempts may start
    job.finished_ms = now_ms;
    SetState(job, state, now_ms);
    out.push_back(JobEnded{job.job_id, state, job.spec.output_dir});
    while (job.events.size() > kFinishedEventHistory) job.events.pop_front();
    Requeue(job);
    if (state != JobState::kCompleted) out.push_back(AbortJob{job.job_id, job.spec.output_dir});
    for (const auto& [key, w] : workers) SendToWorker(key, CleanupMsg{job.job_id});
    finished.push_back(job.job_id);
    while (finished.size() > options.max_finished_jobs) {
      auto it = jobs.find(finished.front());
      if (it != jobs.end()) {
        jobs_by_order.erase(it->second->order);
        jobs.erase(it);
      }
      finished.pop_front();
    }
  }

  void FailJob(Job& job, Failure failure, const std::string& error, int64_t now_ms) {
    job.error = error;
    job.failure = std::move(failure);
    Finish(job, JobState::kFailed, now_ms);
  }

  void Commit(Job& job, const Task& task, const std::string& from) {
    char name[32];
    std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(task.index));
    out.push_back(CommitTask{job.job_id, task.task_id, job.spec.output_dir, from,
                             job.spec.output_dir + "/" + name});
  }

  // Every task is done: the loop checks the part files and writes _SUCCESS.
  void CommitOutput(Job& job) {
    int64_t parts = job.map_only() ? static_cast<int64_t>(job.maps.tasks.size())
                                   : job.spec.num_reduces;
    out.push_back(CommitJob{job.job_id, job.spec.output_dir, parts});
  }

  void MapsDone(Job& job, int64_t now_ms) {
    if (job.map_only()) {
      CommitOutput(job);
    } else if (job.reduces.tasks.empty()) {
      StartReduces(job, now_ms);
    } else {
      // Maps re-run after a reduce found their output bad: the waiting reduces may go again.
      for (int64_t r : job.blocked_reduces) Enqueue(job, job.reduces.tasks[r]);
      job.blocked_reduces.clear();
    }
  }

  void StartReduces(Job& job, int64_t now_ms) {
    job.reduces.tasks.resize(job.spec.num_reduces);
    for (int64_t r = 0; r < job.spec.num_reduces; ++r) {
      Task& t = job.reduces.tasks[r];
      t.kind = TaskKind::kReduce;
      t.index = r;
      t.task_id = TaskIdFor(TaskKind::kReduce, r);
      job.pending.insert({TaskKind::kReduce, r});
    }
    Requeue(job);
    SetState(job, JobState::kReducing, now_ms);
  }

  // A failed attempt counts against its worker for this job; enough failures blacklist it.
  void CountFailure(Job& job, const std::string& worker_name, int64_t now_ms) {
    int64_t n = ++job.failures_by_worker[worker_name];
    if (n == kBlacklistFailures && job.blacklist.insert(worker_name).second) {
      PublishJob(job, now_ms, WorkerBlacklistedEvent{worker_name, n});
    }
  }

  // Why a job with pending tasks is not running them, or "".
  std::string WaitingReason(const Job& job) const {
    if (IsTerminal(job.state)) return "";
    bool has_pending = !job.pending.empty() || !job.blocked_reduces.empty();
    if (!has_pending && job.live_attempts > 0) return "";
    if (workers.empty()) return "no workers connected";
    if (!job.blocked_reduces.empty() && job.pending.empty()) {
      return "reduces wait for re-run maps";
    }
    if (!has_pending) return "";
    if (free_workers.empty()) return "every worker slot is busy";
    if (BlacklistCoversAll(job)) return "";
    bool any = false;
    for (const auto& [score, key] : free_workers) {
      any = any || job.blacklist.count(workers.at(key).name) == 0;
    }
    if (!any) return "free slots are only on workers blacklisted for this job";
    return "";
  }
};

Scheduler::Scheduler(SchedulerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

Scheduler::~Scheduler() = default;

void Scheduler::WorkerReady(const std::string& worker_key, const ReadyMsg& ready,
                            int64_t now_ms) {
  Impl& s = *impl_;
  if (ready.proto != kProtocolVersion) {
    s.SendToWorker(worker_key, RefusedMsg{"protocol version " + std::to_string(ready.proto) +
                                          " not supported (coordinator speaks " +
                                          std::to_string(kProtocolVersion) + ")"});
    return;
  }
  // A READY is always a fresh registration: forget an older one of this key or name.
  if (s.workers.count(worker_key) != 0) s.LoseWorker(worker_key, "replaced", now_ms);
  auto name_it = s.key_by_name.find(ready.name);
  if (name_it != s.key_by_name.end()) s.LoseWorker(name_it->second, "replaced", now_ms);

  Worker w;
  w.key = worker_key;
  w.name = ready.name;
  w.host = ready.host;
  w.pid = ready.pid;
  w.slots = std::max<int64_t>(1, ready.slots);
  w.queue = std::max<int64_t>(0, ready.queue);
  w.work_dir = ready.work_dir;
  w.joined_ms = now_ms;
  w.last_seen_ms = now_ms;
  s.earliest_seen_ms = std::min(s.earliest_seen_ms, now_ms);
  s.key_by_name[w.name] = worker_key;
  s.PublishWorker(w, now_ms, WorkerJoinedEvent{w.host, w.slots});
  Worker& registered = s.workers.emplace(worker_key, std::move(w)).first->second;
  s.UpdateFree(registered);

  WelcomeMsg welcome;
  welcome.worker = ready.name;
  welcome.heartbeat_ms = s.options.heartbeat_ms;
  welcome.liveness = s.options.liveness;
  s.SendToWorker(worker_key, std::move(welcome));
}

bool Scheduler::IsRegistered(const std::string& worker_key) const {
  return impl_->workers.count(worker_key) != 0;
}

bool Scheduler::WorkerSeen(const std::string& worker_key, int64_t now_ms) {
  auto it = impl_->workers.find(worker_key);
  if (it == impl_->workers.end()) return false;
  it->second.last_seen_ms = now_ms;
  // Only if the clock went back: the expiry scan must still come in time for this worker.
  impl_->earliest_seen_ms = std::min(impl_->earliest_seen_ms, now_ms);
  return true;
}

bool Scheduler::WorkerHeartbeat(const std::string& worker_key, const HeartbeatMsg& heartbeat,
                                int64_t now_ms) {
  auto it = impl_->workers.find(worker_key);
  if (it == impl_->workers.end()) return false;
  Worker& w = it->second;
  w.last_seen_ms = now_ms;
  impl_->earliest_seen_ms = std::min(impl_->earliest_seen_ms, now_ms);
  w.load = heartbeat;
  if (heartbeat.host_cpu >= 0) {
    double host = std::clamp(heartbeat.host_cpu, 0.0, 1.0);
    double other = 0;
    if (heartbeat.cores > 0) {
      other = std::max(0.0, host * static_cast<double>(heartbeat.cores) -
                                std::max(0.0, heartbeat.cpu));
    }
    if (w.load_samples == 0) {
      w.host_cpu_avg = host;
      w.other_cores_avg = other;
    } else {
      w.host_cpu_avg += kLoadSmoothing * (host - w.host_cpu_avg);
      w.other_cores_avg += kLoadSmoothing * (other - w.other_cores_avg);
    }
    ++w.load_samples;
  }
  impl_->UpdateFree(w);
  return true;
}

void Scheduler::WorkerDisconnected(const std::string& worker_key, int64_t now_ms) {
  impl_->LoseWorker(worker_key, "disconnected", now_ms);
}

void Scheduler::TaskProgress(const std::string& worker_key, const TaskProgressMsg& msg,
                             int64_t now_ms) {
  Job* job = nullptr;
  std::size_t i = 0;
  Task* task = impl_->FindLive(worker_key, msg.ref, &job, &i);
  if (task == nullptr) return;
  LiveAttempt& a = task->live[i];
  a.progress = std::clamp(msg.progress, 0.0, 1.0);
  a.progress_ms = now_ms;
  impl_->PublishJob(*job, now_ms,
                    TaskProgressEvent{Impl::Head(*task, a.number, a.worker_name), a.progress});
}

void Scheduler::TaskDone(const std::string& worker_key, const TaskDoneMsg& msg, int64_t now_ms) {
  Impl& s = *impl_;
  Job* job = nullptr;
  std::size_t i = 0;
  Task* task = s.FindLive(worker_key, msg.ref, &job, &i);
  if (task == nullptr) return;
  bool commits = task->kind == TaskKind::kReduce || job->map_only();
  if (commits) {
    // Reduces and map-only maps report their one finished part file, which the coordinator
    // commits: the first attempt to finish wins; later ones are ignored above.
    if (msg.outputs.size() != 1 || msg.outputs[0].location.empty()) {
      TaskFailedMsg failed;
      failed.ref = msg.ref;
      failed.error = "attempt reported no output file to commit";
      TaskFailed(worker_key, failed, now_ms);
      return;
    }
  } else {
    // A map attempt must report exactly one output per partition.
    std::vector<bool> seen(job->spec.num_reduces, false);
    bool complete = static_cast<int64_t>(msg.outputs.size()) == job->spec.num_reduces;
    for (const MapOutput& o : msg.outputs) {
      if (o.partition < 0 || o.partition >= job->spec.num_reduces || seen[o.partition]) {
        complete = false;
        break;
      }
      seen[o.partition] = true;
    }
    if (!complete) {
      TaskFailedMsg failed;
      failed.ref = msg.ref;
      failed.error = "map attempt reported an incomplete set of partitions";
      TaskFailed(worker_key, failed, now_ms);
      return;
    }
    task->outputs = msg.outputs;
  }
  LiveAttempt winner = s.RemoveLive(*job, *task, i, "SUCCEEDED", now_ms);
  task->state = TaskState::kDone;
  task->duration_ms = now_ms - winner.start_ms;
  task->done_worker = winner.worker_name;
  auto records = msg.counters.find(task->kind == TaskKind::kMap ? "map_input_records"
                                                                 : "reduce_input_records");
  task->records = records == msg.counters.end() ? 0 : records->second;
  Phase& phase = job->phase(task->kind);
  phase.durations.Add(task->duration_ms);
  ++phase.done;
  for (const auto& [name, amount] : msg.counters) {
    // Peak memory is a maximum over attempts, not a sum; every other counter adds up.
    int64_t& total = job->counters[name];
    total = name == "peak_rss_kb" ? std::max(total, amount) : total + amount;
  }
  auto w = s.workers.find(worker_key);
  if (w != s.workers.end()) ++w->second.tasks_done;
  s.PublishJob(*job, now_ms,
               TaskCompletedEvent{Impl::Head(*task, winner.number, winner.worker_name),
                                  msg.counters, task->duration_ms, winner.speculative});
  // The other attempt (the backup, or the original a backup overtook) is of no use now.
  s.KillLive(*job, *task, "attempt " + std::to_string(winner.number) + " finished first", now_ms);
  if (commits) s.Commit(*job, *task, msg.outputs[0].location);
  s.Requeue(*job);

  if (task->kind == TaskKind::kMap) {
    if (job->all_maps_done()) s.MapsDone(*job, now_ms);
  } else if (phase.done == static_cast<int64_t>(phase.tasks.size())) {
    s.CommitOutput(*job);
  }
}

void Scheduler::TaskFailed(const std::string& worker_key, const TaskFailedMsg& msg,
                           int64_t now_ms) {
  Impl& s = *impl_;
  Job* job = nullptr;
  std::size_t i = 0;
  Task* task = s.FindLive(worker_key, msg.ref, &job, &i);
  if (task == nullptr) return;
  LiveAttempt a = s.RemoveLive(*job, *task, i, "FAILED", now_ms, msg.error);
  if (AttemptRecord* record = Impl::FindRecord(*task, a.number)) {
    record->stderr_tail = msg.stderr_tail;
  }
  s.RecordFailure(*job, *task, a, msg.error, msg.stderr_tail, now_ms);
  auto w = s.workers.find(worker_key);
  if (w != s.workers.end()) ++w->second.tasks_failed;
  s.PublishJob(*job, now_ms,
               TaskFailedEvent{Impl::Head(*task, a.number, a.worker_name), msg.error,
                               msg.stderr_tail});

  // A reduce that found map output missing or corrupt is not at fault: re-run the maps that
  // produced it and let the reduce wait for them.
  std::set<int64_t> bad_maps;
  if (task->kind == TaskKind::kReduce) {
    for (const std::string& location : msg.bad_inputs) {
      for (Task& m : job->maps.tasks) {
        for (const MapOutput& o : m.outputs) {
          if (o.location == location && m.state == TaskState::kDone) bad_maps.insert(m.index);
        }
      }
    }
  }
  if (!bad_maps.empty() || (!msg.bad_inputs.empty() && !job->all_maps_done())) {
    for (int64_t index : bad_maps) {
      Task& m = job->maps.tasks[index];
      m.outputs.clear();
      --job->maps.done;
      m.speculated = false;
      m.history.push_back("output of attempt " + std::to_string(m.attempt) +
                          " found bad by " + task->task_id);
      s.Enqueue(*job, m);
    }
    if (task->live.empty()) {
      task->state = TaskState::kPending;
      job->blocked_reduces.push_back(task->index);
    }
    s.Requeue(*job);
    return;
  }

  ++task->failures;
  task->last_failed_worker = a.worker_name;
  task->history.push_back("attempt " + std::to_string(a.number) + " on " + a.worker_name +
                          ": " + msg.error);
  s.CountFailure(*job, a.worker_name, now_ms);
  if (task->failures >= job->max_attempts(s.options.max_attempts)) {
    std::string stage = StageOf(*job);
    s.KillLive(*job, *task, "task failed", now_ms);
    task->state = TaskState::kFailed;
    std::string kind = task->kind == TaskKind::kMap ? "map" : "reduce";
    std::string error = stage + ": " + kind + " task " + task->task_id + " failed " +
                        std::to_string(task->failures) + " attempts: ";
    for (std::size_t h = 0; h < task->history.size(); ++h) {
      error += (h == 0 ? "" : "; ") + task->history[h];
    }
    s.FailJob(*job, {stage, task->task_id}, error, now_ms);
    return;
  }
  // Retried at once, unless its other attempt goes on.
  if (task->live.empty()) s.Enqueue(*job, *task);
  s.Requeue(*job);
}

std::string Scheduler::AddJob(JobSpec spec, int64_t now_ms) {
  Impl& s = *impl_;
  auto job = std::make_unique<Job>();
  char id[96];
  std::snprintf(id, sizeof(id), "job_%s_%04lld", s.options.cluster_id.c_str(),
                static_cast<long long>(s.next_job_number));
  job->job_id = id;
  job->order = s.next_job_number++;
  job->submitted_ms = now_ms;
  job->maps.tasks.resize(spec.splits.size());
  for (std::size_t i = 0; i < job->maps.tasks.size(); ++i) {
    Task& t = job->maps.tasks[i];
    t.kind = TaskKind::kMap;
    t.index = static_cast<int64_t>(i);
    t.task_id = TaskIdFor(TaskKind::kMap, t.index);
    job->pending.insert(job->pending.end(), {TaskKind::kMap, t.index});
  }
  job->spec = std::move(spec);
  Job& j = *job;
  s.jobs_by_order[j.order] = &j;
  s.jobs.emplace(j.job_id, std::move(job));
  j.state = JobState::kSubmitted;
  s.SetState(j, JobState::kSubmitted, now_ms);
  s.Requeue(j);
  return j.job_id;
}

std::optional<Scheduler::CancelResult> Scheduler::CancelJob(const std::string& job_id,
                                                             int64_t now_ms) {
  Job* job = impl_->FindJob(job_id);
  if (job == nullptr) return std::nullopt;
  if (IsTerminal(job->state)) return CancelResult{job->state, false};
  impl_->Finish(*job, JobState::kCancelled, now_ms);
  return CancelResult{job->state, true};
}

void Scheduler::JobCommitted(const std::string& job_id, bool ok, const std::string& error,
                             int64_t now_ms) {
  Job* job = impl_->FindJob(job_id);
  if (job == nullptr || IsTerminal(job->state)) return;
  if (ok) {
    impl_->Finish(*job, JobState::kCompleted, now_ms);
  } else {
    impl_->FailJob(*job, {"COMMITTING", ""}, "COMMITTING: " + error, now_ms);
  }
}

void Scheduler::Tick(int64_t now_ms) {
  ExpireSilentWorkers(now_ms);
  AssignPending(now_ms);
}

void Scheduler::ExpireSilentWorkers(int64_t now_ms) {
  Impl& s = *impl_;
  if (now_ms - s.last_expiry_check_ms >= std::max<int64_t>(1, s.options.heartbeat_ms / 10)) {
    s.last_expiry_check_ms = now_ms;
    int64_t deadline = s.options.liveness * s.options.heartbeat_ms;
    // Nobody can have expired before the earliest last_seen_ms does: with every worker
    // heartbeating, the scan runs about once per (liveness - 1) heartbeats, not ten times each.
    if (now_ms - s.earliest_seen_ms <= deadline) return;
    std::vector<std::string> expired;
    int64_t earliest = std::numeric_limits<int64_t>::max();
    for (const auto& [key, w] : s.workers) {
      if (now_ms - w.last_seen_ms > deadline) {
        expired.push_back(key);
      } else {
        earliest = std::min(earliest, w.last_seen_ms);
      }
    }
    s.earliest_seen_ms = earliest;  // the maximum when none is left: WorkerReady lowers it
    // In key order, as they were before the workers were hashed (events come out the same).
    std::sort(expired.begin(), expired.end());
    for (const std::string& key : expired) s.LoseWorker(key, "heartbeat expired", now_ms);
  }
}

void Scheduler::AssignPending(int64_t now_ms) { impl_->Schedule(now_ms); }

std::vector<Action> Scheduler::TakeActions() {
  std::vector<Action> result;
  result.swap(impl_->out);
  return result;
}

std::optional<JobInfo> Scheduler::GetJobInfo(const std::string& job_id, int64_t now_ms) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  const Job& job = *it->second;
  JobInfo v;
  v.job_id = job.job_id;
  v.name = job.spec.name;
  v.app = job.spec.app;
  v.state = job.state;
  v.error = job.error;
  if (job.state == JobState::kFailed) {
    FailureInfo failure{job.failure.stage, job.failure.task_id, {}};
    // Every attempt of the task to blame: where it ran and how it ended.
    TaskKind kind;
    int64_t index = 0;
    if (ParseTaskId(job.failure.task_id, &kind, &index)) {
      const Phase& phase = job.phase(kind);
      if (index >= 0 && index < static_cast<int64_t>(phase.tasks.size())) {
        for (const AttemptRecord& r : phase.tasks[index].tried) {
          failure.attempts.push_back(InfoOf(r));
        }
      }
    }
    v.failure = std::move(failure);
  }
  v.output = job.spec.output_dir;
  v.input_files = job.spec.input_files;
  v.input_bytes = job.spec.input_bytes;
  v.priority = job.spec.priority;
  v.speculation = job.spec.speculation;
  v.submitted_ms = job.submitted_ms;
  v.started_ms = job.started_ms;
  v.finished_ms = job.finished_ms;
  v.elapsed_ms = (job.finished_ms != 0 ? job.finished_ms : now_ms) - job.submitted_ms;
  v.age_ms = now_ms - job.submitted_ms;
  int64_t num_maps = static_cast<int64_t>(job.maps.tasks.size());
  v.maps = CountsOf(job.maps, num_maps);
  v.reduces = CountsOf(job.reduces, job.spec.num_reduces);
  v.map_progress = PhaseProgress(job.maps, num_maps);
  v.reduce_progress = PhaseProgress(job.reduces, job.spec.num_reduces);
  v.waiting_for_workers = !IsTerminal(job.state) && impl_->workers.empty();
  v.waiting = impl_->WaitingReason(job);
  v.running_attempts = job.live_attempts;
  v.speculative_attempts = job.live_backups;
  v.backups_launched = job.backups_launched;
  v.blacklisted_workers.assign(job.blacklist.begin(), job.blacklist.end());
  for (const Phase* phase : {&job.maps, &job.reduces}) {
    for (int64_t index : phase->running) {
      const Task& t = phase->tasks[index];
      for (const LiveAttempt& a : t.live) {
        if (v.attempts.size() >= kMaxListedAttempts) break;
        v.attempts.push_back({t.task_id, a.number, a.worker_name, a.progress,
                              now_ms - a.start_ms, a.speculative});
      }
    }
  }
  v.failed_attempts = job.failed_attempts;
  for (const FailureRecord& f : job.recent_failures) {
    v.recent_failures.push_back(
        {f.task_id, f.kind, f.attempt, f.worker_name, f.error, f.stderr_tail, f.ts_ms});
  }
  v.counters = job.counters;
  v.last_seq = job.seq;
  return v;
}

std::optional<JobState> Scheduler::GetJobState(const std::string& job_id) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  return it->second->state;
}

std::optional<Scheduler::AttemptLocation> Scheduler::FindAttempt(const std::string& job_id,
                                                                  const std::string& task_id,
                                                                  int64_t attempt,
                                                                  std::string* error) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) {
    *error = "no such job: " + job_id;
    return std::nullopt;
  }
  const Job& job = *it->second;
  TaskKind kind;
  int64_t index = 0;
  const Task* task = nullptr;
  if (ParseTaskId(task_id, &kind, &index) && index >= 0 &&
      index < static_cast<int64_t>(job.phase(kind).tasks.size())) {
    task = &job.phase(kind).tasks[index];
  }
  if (task == nullptr || task->task_id != task_id) {
    *error = "job " + job_id + " has no task " + task_id;
    return std::nullopt;
  }
  if (task->tried.empty()) {
    *error = "task " + task_id + " of job " + job_id + " has not started yet";
    return std::nullopt;
  }
  const AttemptRecord* record = &task->tried.back();
  if (attempt > 0) {
    record = nullptr;
    for (const AttemptRecord& r : task->tried) {
      if (r.number == attempt) record = &r;
    }
    if (record == nullptr) {
      *error = "task " + task_id + " of job " + job_id + " has no attempt " +
               std::to_string(attempt) + " (attempts so far: " + std::to_string(task->attempt) +
               ")";
      return std::nullopt;
    }
  }
  AttemptLocation where;
  where.attempt = record->number;
  where.worker_name = record->worker_name;
  where.state = record->state;
  auto key = impl_->key_by_name.find(record->worker_name);
  if (key != impl_->key_by_name.end()) where.worker_key = key->second;
  return where;
}

std::optional<JobEventsView> Scheduler::EventsAfter(const std::string& job_id,
                                                     int64_t after_seq) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  const Job& job = *it->second;
  JobEventsView v;
  for (const JobEvent& event : job.events) {
    if (event.seq > after_seq) v.events.push_back(event);
  }
  // Complete when nothing between after_seq and the first event returned was dropped.
  int64_t first = v.events.empty() ? job.seq + 1 : v.events.front().seq;
  v.complete = first <= after_seq + 1 || after_seq >= job.seq;
  v.last_seq = job.seq;
  return v;
}

std::optional<std::vector<TaskInfo>> Scheduler::ListTasks(const std::string& job_id,
                                                          int64_t now_ms) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  const Job& job = *it->second;
  std::vector<TaskInfo> list;
  list.reserve(job.maps.tasks.size() + job.reduces.tasks.size());
  for (const Phase* phase : {&job.maps, &job.reduces}) {
    // A running attempt is a straggler once it is expected to take more than twice the phase's
    // median (the speculation threshold without its slack).
    int64_t typical = phase->durations.size() > 0 ? phase->durations.Median() : -1;
    for (const Task& t : phase->tasks) {
      TaskInfo v;
      v.task_id = t.task_id;
      v.kind = t.kind;
      v.state = t.state;
      v.attempts = t.attempt;
      v.failures = t.failures;
      std::string workers;
      v.progress = t.state == TaskState::kDone ? 1.0 : 0.0;
      v.duration_ms = t.duration_ms;
      for (const LiveAttempt& a : t.live) {
        workers += (workers.empty() ? "" : ",") + a.worker_name;
        v.progress = std::max(v.progress, a.progress);
        v.duration_ms = std::max(v.duration_ms, now_ms - a.start_ms);
        v.straggler = v.straggler ||
                      (typical > 0 && !a.speculative &&
                       static_cast<double>(EstimatedTotalMs(a, now_ms)) >
                           kSpeculationFactor * static_cast<double>(typical));
      }
      v.worker = t.state == TaskState::kDone ? t.done_worker : workers;
      v.input_bytes = t.input_bytes;
      if (t.kind == TaskKind::kMap) {
        v.input_bytes = 0;
        for (const FileRange& r : job.spec.splits[t.index]) v.input_bytes += r.end - r.start;
      }
      v.records = t.records;
      v.speculative = t.speculated;
      list.push_back(std::move(v));
    }
  }
  return list;
}

std::vector<JobInfo> Scheduler::ListJobs(int64_t now_ms, Finished finished) const {
  std::vector<JobInfo> jobs;
  for (const auto& [order, job] : impl_->jobs_by_order) {
    if (finished == Finished::kExclude && IsTerminal(job->state)) continue;
    jobs.push_back(*GetJobInfo(job->job_id, now_ms));
    TrimForList(jobs.back());
  }
  return jobs;
}

std::vector<WorkerInfo> Scheduler::ListWorkers(int64_t now_ms) const {
  std::vector<const Worker*> sorted;
  for (const auto& [key, w] : impl_->workers) sorted.push_back(&w);
  std::sort(sorted.begin(), sorted.end(),
            [](const Worker* a, const Worker* b) { return a->name < b->name; });
  std::vector<WorkerInfo> list;
  list.reserve(sorted.size());
  for (const Worker* w : sorted) {
    WorkerInfo v;
    v.name = w->name;
    v.host = w->host;
    v.pid = w->pid;
    v.slots = w->slots;
    v.queue = w->queue;
    v.running = static_cast<int64_t>(w->running.size());
    v.capacity = w->capacity();
    v.saturated = w->saturated();
    v.cpu = w->load.cpu;
    v.host_cpu = w->load.host_cpu;
    v.cores = w->load.cores;
    v.load1 = w->load.load1;
    v.rss_kb = w->load.rss_kb;
    v.disk_free_bytes = w->load.disk_free_bytes;
    v.heartbeat_age_ms = now_ms - w->last_seen_ms;
    v.tasks_done = w->tasks_done;
    v.tasks_failed = w->tasks_failed;
    v.joined_ms = w->joined_ms;
    for (const auto& [job_id, kind, index, number] : w->running) {
      v.attempts.push_back(job_id + "/" + TaskIdFor(kind, index) + ".a" + std::to_string(number));
      if (v.attempts.size() >= kMaxListedAttempts) break;
    }
    list.push_back(std::move(v));
  }
  return list;
}

std::vector<std::string> Scheduler::WorkerKeys() const {
  std::vector<std::string> keys;
  keys.reserve(impl_->workers.size());
  for (const auto& [key, w] : impl_->workers) keys.push_back(key);
  return keys;
}

std::size_t Scheduler::worker_count() const { return impl_->workers.size(); }

std::size_t Scheduler::active_job_count() const {
  std::size_t n = 0;
  for (const auto& [id, job] : impl_->jobs) n += IsTerminal(job->state) ? 0 : 1;
  return n;
}

}  // namespace zmr
