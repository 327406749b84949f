// The Scheduler's state machine: every transition of workers, jobs, tasks and attempts, and the
// actions each one queues. Over 600 lines because it is one unit: the invariants in scheduler.h
// (attempts per task and per worker, who may change a task, gapless event seq) are kept by these
// transitions together, and splitting them would put one invariant's halves in two files. What
// they consult lives beside it: the job model (job.h), placement (placement.h), speculation
// (speculation.h) and the views (job_views.h).
#include "coordinator/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "common/layout.h"
#include "coordinator/job.h"
#include "coordinator/job_views.h"
#include "coordinator/placement.h"
#include "coordinator/speculation.h"

namespace zmr {

struct Scheduler::Impl {
  SchedulerOptions options;
  std::map<std::string, std::unique_ptr<Job>> jobs;    // by job id
  std::map<int64_t, Job*> jobs_by_order;
  std::deque<std::string> finished;                    // finished job ids, oldest first
  int64_t next_job_number = 1;
  // By routing key. Hashed: every message from a worker looks its registration up, a thousand
  // times a second with a thousand workers; nothing needs them in key order.
  Workers workers;
  // At most the smallest last_seen_ms of any worker: ExpireSilentWorkers scans the workers only
  // once this is old enough for someone to have expired.
  int64_t earliest_seen_ms = 0;
  std::map<std::string, std::string> key_by_name;
  std::set<JobKey> runnable;                           // jobs with pending tasks, in turn order
  Placement placement;                                 // the workers with room
  std::vector<Action> out;
  int64_t last_expiry_check_ms = 0;
  int64_t last_speculation_ms = 0;

  // --- events ---

  void PublishJob(Job& job, int64_t now_ms, JobEvent::Detail detail) {
    out.push_back(Publish{job.RecordEvent(now_ms, std::move(detail))});
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

  // The task a worker message refers to, if that registration runs exactly that attempt now;
  // *live_index is the attempt's position in task->live.
  Task* FindLive(const std::string& worker_key, const AttemptRef& ref, Job** job_out,
                 std::size_t* live_index) {
    Job* job = FindJob(ref.job_id);
    if (job == nullptr || IsTerminal(job->state)) return nullptr;
    TaskKind kind;
    int64_t index;
    if (!layout::ParseTaskId(ref.task_id, &kind, &index)) return nullptr;
    Task* task = job->FindTask(kind, index);
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

  void Enqueue(Job& job, Task& task) {
    task.state = TaskState::kPending;
    job.phase(task.kind).running.erase(task.index);
    job.pending.insert({task.kind, task.index});
    Requeue(job);
  }

  // --- attempts ---

  // Forgets a live attempt that ended, task.live[i], and frees its worker slot: `state`
  // (SUCCEEDED, FAILED, KILLED, LOST) and `why` go into its record. Returns the removed attempt;
  // the task's state is the caller's to set.
  LiveAttempt RemoveLive(Job& job, Task& task, std::size_t i, const char* state, int64_t now_ms,
                         const std::string& why = "") {
    LiveAttempt a = std::move(task.live[i]);
    if (AttemptRecord* record = task.FindRecord(a.number)) {
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
      placement.Update(it->second);
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
      PublishJob(job, now_ms, TaskKilledEvent{task.Head(a.number, a.worker_name), reason});
    }
  }

  // Takes the key by value: callers may pass a reference into the maps this erases from.
  void LoseWorker(std::string key, const std::string& reason, int64_t now_ms) {
    auto it = workers.find(key);
    if (it == workers.end()) return;
    placement.Remove(it->second);
    Worker w = std::move(it->second);
    workers.erase(it);
    auto name_it = key_by_name.find(w.name);
    if (name_it != key_by_name.end() && name_it->second == key) key_by_name.erase(name_it);
    for (const auto& [job_id, kind, index, number] : w.running) {
      Job* job = FindJob(job_id);
      if (job == nullptr || IsTerminal(job->state)) continue;
      Task* task = job->FindTask(kind, index);
      if (task == nullptr) continue;
      for (std::size_t i = 0; i < task->live.size(); ++i) {
        if (task->live[i].number != number || task->live[i].worker_key != key) continue;
        const std::string error = "worker " + w.name + " lost (" + reason + ")";
        LiveAttempt a = RemoveLive(*job, *task, i, "LOST", now_ms, error);
        RecordFailure(*job, *task, a, error, {}, now_ms);
        PublishJob(*job, now_ms, TaskFailedEvent{task->Head(a.number, a.worker_name), error, {}});
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

  Worker* PickWorker(const Job& job, const Task& task, Placement::Room room) {
    return placement.Pick(job, task, room, BlacklistCoversAll(job), workers);
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
    placement.Update(w);

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
    PublishJob(job, now_ms, TaskAssignedEvent{task.Head(a.number, a.worker_name), speculative});
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
      Task* task = job.FindTask(kind, index);
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
                             QueueAllowed(job.phase(kind)) ? Placement::Room::kSlotOrQueue
                                                           : Placement::Room::kSlot);
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
    while (placement.has_room() && !runnable.empty()) {
      bool started = false;
      for (auto it = runnable.begin(); it != runnable.end() && !started;) {
        Job* job = jobs_by_order.at(std::get<2>(*it));
        ++it;  // StartNext re-keys this job; `it` stays valid (it points at another element)
        started = StartNext(*job, now_ms);
      }
      if (!started) break;
    }
    if (placement.has_free_slot() && runnable.empty()) Speculate(now_ms);
  }

  // --- speculation ---

  // Launches backups for stragglers while slots are free and no task is waiting.
  void Speculate(int64_t now_ms) {
    if (now_ms - last_speculation_ms < options.speculation_interval_ms) return;
    last_speculation_ms = now_ms;
    for (auto& [order, job_ptr] : jobs_by_order) {
      if (!placement.has_free_slot()) return;
      Job& job = *job_ptr;
      Phase* phase = SpeculationPhase(job);
      if (phase == nullptr) continue;
      int64_t typical = phase->durations.Median();
      int64_t cap = BackupCap(job);
      while (job.live_backups < cap && placement.has_free_slot()) {
        std::optional<Straggler> straggler =
            PickStraggler(*phase, typical, options.speculation_slack_ms, now_ms);
        if (!straggler) break;
        Task& task = *straggler->task;
        // A backup never waits in a queue.
        Worker* w = PickWorker(job, task, Placement::Room::kSlot);
        if (w == nullptr) break;
        task.speculated = true;
        const LiveAttempt& original = task.live[0];
        PublishJob(job, now_ms,
                   TaskSpeculatedEvent{task.Head(task.attempt + 1, w->name), original.number,
                                       original.worker_name, now_ms - original.start_ms,
                                       straggler->estimate_ms, typical});
        StartAttempt(job, task, *w, /*speculative=*/true, now_ms);
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
    out.push_back(CommitTask{job.job_id, task.task_id, job.spec.output_dir, from,
                             layout::CommittedPartPath(job.spec.output_dir, task.index)});
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
      t.task_id = layout::TaskId(TaskKind::kReduce, r);
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
    if (!placement.has_free_slot()) return "every worker slot is busy";
    if (BlacklistCoversAll(job)) return "";
    if (!placement.FreeSlotOutsideBlacklist(job, workers)) {
      return "free slots are only on workers blacklisted for this job";
    }
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
  s.placement.Update(registered);

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
  RecordLoad(w, heartbeat);
  impl_->placement.Update(w);
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
                    TaskProgressEvent{task->Head(a.number, a.worker_name), a.progress});
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
               TaskCompletedEvent{task->Head(winner.number, winner.worker_name),
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
  if (AttemptRecord* record = task->FindRecord(a.number)) {
    record->stderr_tail = msg.stderr_tail;
  }
  s.RecordFailure(*job, *task, a, msg.error, msg.stderr_tail, now_ms);
  auto w = s.workers.find(worker_key);
  if (w != s.workers.end()) ++w->second.tasks_failed;
  s.PublishJob(*job, now_ms,
               TaskFailedEvent{task->Head(a.number, a.worker_name), msg.error,
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
    t.task_id = layout::TaskId(TaskKind::kMap, t.index);
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
  return JobInfoOf(job, now_ms, impl_->workers.empty(), impl_->WaitingReason(job));
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
  if (layout::ParseTaskId(task_id, &kind, &index) && index >= 0 &&
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
  return EventsOf(*it->second, after_seq);
}

std::optional<std::vector<TaskInfo>> Scheduler::ListTasks(const std::string& job_id,
                                                          int64_t now_ms) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  return TaskInfosOf(*it->second, now_ms);
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
  for (const Worker* w : sorted) list.push_back(WorkerInfoOf(*w, now_ms));
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
