#include "coordinator/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

namespace zmr {

namespace {

enum class TaskState { kPending, kRunning, kDone, kFailed };

struct Task {
  std::string task_id;
  TaskKind kind = TaskKind::kMap;
  int64_t index = 0;
  TaskState state = TaskState::kPending;
  int64_t attempt = 0;            // number of the latest attempt (0: never started)
  std::string worker_key;         // registration running the current attempt
  std::string worker_name;
  double progress = 0;            // of the running attempt
  int64_t failures = 0;           // failed attempts (lost workers do not count)
  std::string last_failed_worker;  // avoided when re-assigning, if another worker is free
  std::string last_error;
  std::vector<std::string> history;  // "attempt N on WORKER: error" per failed attempt
  std::vector<MapOutput> outputs;  // map tasks, once done
};

struct TaskCounts {
  int64_t total = 0, pending = 0, running = 0, done = 0, failed = 0;
};

struct Job {
  std::string job_id;
  int64_t order = 0;              // submission order
  JobSpec spec;
  JobState state = JobState::kSubmitted;
  std::string error;
  std::vector<Task> maps;
  std::vector<Task> reduces;
  int64_t seq = 0;                // of the last event published
  int64_t submitted_ms = 0;
  int64_t finished_ms = 0;
  int64_t maps_done = 0;
  int64_t reduces_done = 0;
  std::vector<int64_t> blocked_reduces;  // waiting for re-run maps (their input went bad)
  Counters counters;              // summed over accepted attempts

  bool map_only() const { return spec.num_reduces == 0; }
  int64_t max_attempts(int64_t fallback) const {
    return spec.max_attempts > 0 ? spec.max_attempts : fallback;
  }
};

struct Worker {
  std::string key;
  std::string name;
  std::string host;
  int64_t pid = 0;
  int64_t slots = 1;
  std::string work_dir;
  int64_t joined_ms = 0;
  int64_t last_seen_ms = 0;
  int64_t reported_running = 0;
  int64_t tasks_done = 0;
  int64_t tasks_failed = 0;
  std::set<std::string> jobs_with_files;  // jobs whose shipped files this registration has
  // Attempts running here: (job_id, kind, index).
  std::set<std::tuple<std::string, TaskKind, int64_t>> running;
};

// Pending-queue order: job submission order, then maps before reduces, then task index.
using PendingKey = std::tuple<int64_t, TaskKind, int64_t>;

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

Value CountsValue(const std::vector<Task>& tasks, int64_t planned_total) {
  TaskCounts c;
  c.total = std::max<int64_t>(planned_total, static_cast<int64_t>(tasks.size()));
  for (const Task& t : tasks) {
    switch (t.state) {
      case TaskState::kPending: ++c.pending; break;
      case TaskState::kRunning: ++c.running; break;
      case TaskState::kDone: ++c.done; break;
      case TaskState::kFailed: ++c.failed; break;
    }
  }
  // Reduce tasks not created yet count as pending.
  c.pending += c.total - static_cast<int64_t>(tasks.size());
  Value v;
  v.Set("total", c.total);
  v.Set("pending", c.pending);
  v.Set("running", c.running);
  v.Set("done", c.done);
  v.Set("failed", c.failed);
  return v;
}

double PhaseProgress(const std::vector<Task>& tasks, int64_t total) {
  if (total <= 0) return 0;
  double sum = 0;
  for (const Task& t : tasks) {
    if (t.state == TaskState::kDone) {
      sum += 1;
    } else if (t.state == TaskState::kRunning) {
      sum += t.progress;
    }
  }
  return std::min(1.0, sum / static_cast<double>(total));
}

}  // namespace

struct Scheduler::Impl {
  SchedulerOptions options;
  std::map<std::string, std::unique_ptr<Job>> jobs;    // by job id
  std::map<int64_t, Job*> jobs_by_order;
  std::deque<std::string> finished;                    // finished job ids, oldest first
  int64_t next_job_number = 1;
  std::map<std::string, Worker> workers;               // by routing key
  std::map<std::string, std::string> key_by_name;
  std::set<PendingKey> pending;
  std::vector<Outgoing> out;
  int64_t last_expiry_check_ms = 0;

  // --- events ---

  Value JobEvent(Job& job, const char* type, int64_t now_ms) {
    Value v;
    v.Set("type", type);
    v.Set("ts_ms", now_ms);
    v.Set("job_id", job.job_id);
    v.Set("seq", ++job.seq);
    return v;
  }

  void PublishJob(Job& job, const char* type, Value body) {
    out.push_back({Outgoing::Kind::kPublish, "job/" + job.job_id + "/" + type, std::move(body)});
  }

  void PublishTask(Job& job, const Task& task, const char* type, int64_t now_ms, Value extra) {
    Value v = JobEvent(job, type, now_ms);
    v.Set("task_id", task.task_id);
    v.Set("kind", TaskKindName(task.kind));
    v.Set("attempt", task.attempt);
    v.Set("worker", task.worker_name);
    if (extra.is_map()) {
      for (auto& [k, item] : extra.as_map()) v.Set(k, item);
    }
    PublishJob(job, type, std::move(v));
  }

  void PublishWorker(const Worker& w, const char* type, int64_t now_ms, Value extra) {
    Value v;
    v.Set("type", type);
    v.Set("ts_ms", now_ms);
    v.Set("worker", w.name);
    if (extra.is_map()) {
      for (auto& [k, item] : extra.as_map()) v.Set(k, item);
    }
    out.push_back({Outgoing::Kind::kPublish, "worker/" + w.name + "/" + type, std::move(v)});
  }

  void SetState(Job& job, JobState state, int64_t now_ms) {
    JobState prev = job.state;
    job.state = state;
    Value v = JobEvent(job, "job_state", now_ms);
    v.Set("state", JobStateName(state));
    v.Set("prev_state", job.seq == 1 ? "" : JobStateName(prev));
    if (state == JobState::kFailed) v.Set("error", job.error);
    PublishJob(job, "job_state", std::move(v));
  }

  void SendToWorker(const std::string& key, Value body) {
    out.push_back({Outgoing::Kind::kToWorker, key, std::move(body)});
  }

  // --- lookups ---

  Job* FindJob(const std::string& job_id) {
    auto it = jobs.find(job_id);
    return it == jobs.end() ? nullptr : it->second.get();
  }

  Task* FindTask(Job& job, TaskKind kind, int64_t index) {
    std::vector<Task>& tasks = kind == TaskKind::kMap ? job.maps : job.reduces;
    if (index < 0 || index >= static_cast<int64_t>(tasks.size())) return nullptr;
    return &tasks[index];
  }

  // The task a worker message refers to, if that worker runs exactly that attempt now.
  Task* RunningAttempt(const std::string& worker_key, const AttemptRef& ref, Job** job_out) {
    Job* job = FindJob(ref.job_id);
    if (job == nullptr || IsTerminal(job->state)) return nullptr;
    TaskKind kind;
    int64_t index;
    if (!ParseTaskId(ref.task_id, &kind, &index)) return nullptr;
    Task* task = FindTask(*job, kind, index);
    if (task == nullptr || task->state != TaskState::kRunning || task->attempt != ref.attempt ||
        task->worker_key != worker_key) {
      return nullptr;
    }
    *job_out = job;
    return task;
  }

  // --- state changes ---

  void Enqueue(Job& job, Task& task) {
    task.state = TaskState::kPending;
    task.worker_key.clear();
    task.progress = 0;
    pending.insert({job.order, task.kind, task.index});
  }

  // Frees the worker slot of a running task (the task's state is set by the caller).
  void ReleaseSlot(Job& job, Task& task) {
    auto it = workers.find(task.worker_key);
    if (it != workers.end()) it->second.running.erase({job.job_id, task.kind, task.index});
  }

  // Takes the key by value: callers may pass a reference into the maps this erases from.
  void LoseWorker(std::string key, const std::string& reason, int64_t now_ms) {
    auto it = workers.find(key);
    if (it == workers.end()) return;
    Worker w = std::move(it->second);
    workers.erase(it);
    auto name_it = key_by_name.find(w.name);
    if (name_it != key_by_name.end() && name_it->second == key) key_by_name.erase(name_it);
    for (const auto& [job_id, kind, index] : w.running) {
      Job* job = FindJob(job_id);
      if (job == nullptr || IsTerminal(job->state)) continue;
      Task* task = FindTask(*job, kind, index);
      if (task == nullptr || task->state != TaskState::kRunning || task->worker_key != key) {
        continue;
      }
      Value extra;
      extra.Set("error", "worker " + w.name + " lost (" + reason + ")");
      PublishTask(*job, *task, "task_failed", now_ms, std::move(extra));
      Enqueue(*job, *task);
    }
    Value extra;
    extra.Set("reason", reason);
    PublishWorker(w, "worker_lost", now_ms, std::move(extra));
  }

  Worker* PickWorker(const std::string& avoid_name) {
    Worker* best = nullptr;
    Worker* fallback = nullptr;
    double best_load = 2.0, fallback_load = 2.0;
    for (auto& [key, w] : workers) {
      int64_t used = static_cast<int64_t>(w.running.size());
      if (used >= w.slots) continue;
      double load = static_cast<double>(used) / static_cast<double>(w.slots);
      if (!avoid_name.empty() && w.name == avoid_name) {
        if (load < fallback_load) {
          fallback = &w;
          fallback_load = load;
        }
      } else if (load < best_load) {
        best = &w;
        best_load = load;
      }
    }
    return best != nullptr ? best : fallback;
  }

  void Assign(Job& job, Task& task, Worker& w, int64_t now_ms) {
    task.state = TaskState::kRunning;
    ++task.attempt;
    task.worker_key = w.key;
    task.worker_name = w.name;
    task.progress = 0;
    w.running.insert({job.job_id, task.kind, task.index});

    AssignMsg a;
    a.job_id = job.job_id;
    a.task_id = task.task_id;
    a.attempt = task.attempt;
    a.kind = task.kind;
    a.app = job.spec.app;
    a.params = job.spec.params;
    a.code = job.spec.code;
    a.num_reduces = job.spec.num_reduces;
    a.output_dir = job.spec.output_dir;
    a.partition = task.index;
    if (!job.spec.blobs.empty() && w.jobs_with_files.insert(job.job_id).second) {
      JobFilesMsg files;
      files.job_id = job.job_id;
      files.blobs = job.spec.blobs;
      SendToWorker(w.key, files.ToValue());
    }
    if (task.kind == TaskKind::kMap) {
      a.split = job.spec.splits[task.index];
    } else {
      for (const Task& m : job.maps) {
        for (const MapOutput& o : m.outputs) {
          if (o.partition == task.index) a.inputs.push_back(o.location);
        }
      }
    }
    SendToWorker(w.key, a.ToValue());
    if (job.state == JobState::kSubmitted) SetState(job, JobState::kMapping, now_ms);
    PublishTask(job, task, "task_assigned", now_ms, Value());
  }

  void Schedule(int64_t now_ms) {
    while (!pending.empty()) {
      auto it = pending.begin();
      const auto& [order, kind, index] = *it;
      auto job_it = jobs_by_order.find(order);
      if (job_it == jobs_by_order.end() || IsTerminal(job_it->second->state)) {
        pending.erase(it);
        continue;
      }
      Job& job = *job_it->second;
      Task* task = FindTask(job, kind, index);
      if (task == nullptr || task->state != TaskState::kPending) {
        pending.erase(it);
        continue;
      }
      if (kind == TaskKind::kReduce && job.maps_done < static_cast<int64_t>(job.maps.size())) {
        // Some map is being re-run: this reduce waits for it (MapsDone re-queues it).
        pending.erase(it);
        job.blocked_reduces.push_back(task->index);
        continue;
      }
      Worker* w = PickWorker(task->last_failed_worker);
      if (w == nullptr) return;
      pending.erase(it);
      Assign(job, *task, *w, now_ms);
    }
  }

  void StopAttempts(Job& job) {
    for (std::vector<Task>* tasks : {&job.maps, &job.reduces}) {
      for (Task& t : *tasks) {
        if (t.state == TaskState::kRunning) {
          ReleaseSlot(job, t);
          CancelAttemptMsg c;
          c.ref = {job.job_id, t.task_id, t.attempt};
          SendToWorker(t.worker_key, c.ToValue());
          t.state = TaskState::kPending;
          t.worker_key.clear();
        }
      }
    }
  }

  void Finish(Job& job, JobState state, int64_t now_ms) {
    if (state != JobState::kCompleted) StopAttempts(job);
    job.spec.blobs.clear();  // shipped files are only needed while attempts may start
    job.finished_ms = now_ms;
    SetState(job, state, now_ms);
    if (state != JobState::kCompleted) {
      out.push_back({Outgoing::Kind::kAbortJob, job.job_id, Value()});
    }
    CleanupMsg cleanup;
    cleanup.job_id = job.job_id;
    for (const auto& [key, w] : workers) SendToWorker(key, cleanup.ToValue());
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

  void FailJob(Job& job, const std::string& error, int64_t now_ms) {
    job.error = error;
    Finish(job, JobState::kFailed, now_ms);
  }

  void Commit(Job& job, const Task& task, const std::string& from) {
    char name[32];
    std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(task.index));
    Value body;
    body.Set("task_id", task.task_id);
    body.Set("from", from);
    body.Set("to", job.spec.output_dir + "/" + name);
    out.push_back({Outgoing::Kind::kCommitTask, job.job_id, std::move(body)});
  }

  void MapsDone(Job& job, int64_t now_ms) {
    if (job.map_only()) {
      out.push_back({Outgoing::Kind::kCommitJob, job.job_id, Value()});
    } else if (job.reduces.empty()) {
      StartReduces(job, now_ms);
    } else {
      // Maps re-run after a reduce found their output bad: the waiting reduces may go again.
      for (int64_t r : job.blocked_reduces) Enqueue(job, job.reduces[r]);
      job.blocked_reduces.clear();
    }
  }

  void StartReduces(Job& job, int64_t now_ms) {
    job.reduces.resize(job.spec.num_reduces);
    for (int64_t r = 0; r < job.spec.num_reduces; ++r) {
      Task& t = job.reduces[r];
      t.kind = TaskKind::kReduce;
      t.index = r;
      t.task_id = TaskIdFor(TaskKind::kReduce, r);
      Enqueue(job, t);
    }
    SetState(job, JobState::kReducing, now_ms);
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
    Value v;
    v.Set("type", msg::kRefused);
    v.Set("error", "protocol version " + std::to_string(ready.proto) +
                       " not supported (coordinator speaks " +
                       std::to_string(kProtocolVersion) + ")");
    s.SendToWorker(worker_key, std::move(v));
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
  w.slots = ready.slots;
  w.work_dir = ready.work_dir;
  w.joined_ms = now_ms;
  w.last_seen_ms = now_ms;
  s.key_by_name[w.name] = worker_key;
  Value extra;
  extra.Set("host", w.host);
  extra.Set("slots", w.slots);
  s.PublishWorker(w, "worker_joined", now_ms, std::move(extra));
  s.workers.emplace(worker_key, std::move(w));

  WelcomeMsg welcome;
  welcome.worker = ready.name;
  welcome.heartbeat_ms = s.options.heartbeat_ms;
  welcome.liveness = s.options.liveness;
  s.SendToWorker(worker_key, welcome.ToValue());
}

bool Scheduler::IsRegistered(const std::string& worker_key) const {
  return impl_->workers.count(worker_key) != 0;
}

void Scheduler::WorkerSeen(const std::string& worker_key, int64_t now_ms) {
  auto it = impl_->workers.find(worker_key);
  if (it != impl_->workers.end()) it->second.last_seen_ms = now_ms;
}

void Scheduler::WorkerHeartbeat(const std::string& worker_key, const HeartbeatMsg& heartbeat,
                                int64_t now_ms) {
  auto it = impl_->workers.find(worker_key);
  if (it == impl_->workers.end()) return;
  it->second.last_seen_ms = now_ms;
  it->second.reported_running = heartbeat.running;
}

void Scheduler::WorkerDisconnected(const std::string& worker_key, int64_t now_ms) {
  impl_->LoseWorker(worker_key, "disconnected", now_ms);
}

void Scheduler::TaskProgress(const std::string& worker_key, const TaskProgressMsg& msg,
                             int64_t now_ms) {
  Job* job = nullptr;
  Task* task = impl_->RunningAttempt(worker_key, msg.ref, &job);
  if (task == nullptr) return;
  task->progress = std::clamp(msg.progress, 0.0, 1.0);
  Value extra;
  extra.Set("progress", task->progress);
  impl_->PublishTask(*job, *task, "task_progress", now_ms, std::move(extra));
}

void Scheduler::TaskDone(const std::string& worker_key, const TaskDoneMsg& msg, int64_t now_ms) {
  Impl& s = *impl_;
  Job* job = nullptr;
  Task* task = s.RunningAttempt(worker_key, msg.ref, &job);
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
  s.ReleaseSlot(*job, *task);
  task->state = TaskState::kDone;
  task->progress = 1.0;
  for (const auto& [name, amount] : msg.counters) {
    // Peak memory is a maximum over attempts, not a sum; every other counter adds up.
    int64_t& total = job->counters[name];
    total = name == "peak_rss_kb" ? std::max(total, amount) : total + amount;
  }
  auto w = s.workers.find(worker_key);
  if (w != s.workers.end()) ++w->second.tasks_done;
  Value extra;
  Map counters;
  for (const auto& [name, amount] : msg.counters) counters.emplace_back(name, Value(amount));
  extra.Set("counters", Value(std::move(counters)));
  s.PublishTask(*job, *task, "task_completed", now_ms, std::move(extra));
  if (commits) s.Commit(*job, *task, msg.outputs[0].location);

  if (task->kind == TaskKind::kMap) {
    if (++job->maps_done == static_cast<int64_t>(job->maps.size())) s.MapsDone(*job, now_ms);
  } else if (++job->reduces_done == static_cast<int64_t>(job->reduces.size())) {
    s.out.push_back({Outgoing::Kind::kCommitJob, job->job_id, Value()});
  }
}

void Scheduler::TaskFailed(const std::string& worker_key, const TaskFailedMsg& msg,
                           int64_t now_ms) {
  Impl& s = *impl_;
  Job* job = nullptr;
  Task* task = s.RunningAttempt(worker_key, msg.ref, &job);
  if (task == nullptr) return;
  s.ReleaseSlot(*job, *task);
  auto w = s.workers.find(worker_key);
  if (w != s.workers.end()) ++w->second.tasks_failed;
  Value extra;
  extra.Set("error", msg.error);
  s.PublishTask(*job, *task, "task_failed", now_ms, std::move(extra));

  // A reduce that found map output missing or corrupt is not at fault: re-run the maps that
  // produced it and let the reduce wait for them.
  std::set<int64_t> bad_maps;
  if (task->kind == TaskKind::kReduce) {
    for (const std::string& location : msg.bad_inputs) {
      for (Task& m : job->maps) {
        for (const MapOutput& o : m.outputs) {
          if (o.location == location && m.state == TaskState::kDone) bad_maps.insert(m.index);
        }
      }
    }
  }
  bool maps_rerunning = job->maps_done < static_cast<int64_t>(job->maps.size());
  if (!bad_maps.empty() || (!msg.bad_inputs.empty() && maps_rerunning)) {
    for (int64_t index : bad_maps) {
      Task& m = job->maps[index];
      m.outputs.clear();
      --job->maps_done;
      m.history.push_back("output of attempt " + std::to_string(m.attempt) +
                          " found bad by " + task->task_id);
      s.Enqueue(*job, m);
    }
    task->state = TaskState::kPending;
    task->worker_key.clear();
    task->progress = 0;
    job->blocked_reduces.push_back(task->index);
    return;
  }

  ++task->failures;
  task->last_failed_worker = task->worker_name;
  task->last_error = msg.error;
  task->history.push_back("attempt " + std::to_string(task->attempt) + " on " +
                          task->worker_name + ": " + msg.error);
  if (task->failures >= job->max_attempts(s.options.max_attempts)) {
    task->state = TaskState::kFailed;
    task->worker_key.clear();
    std::string stage = task->kind == TaskKind::kMap ? "map" : "reduce";
    std::string error = stage + " task " + task->task_id + " failed " +
                        std::to_string(task->failures) + " attempts: ";
    for (std::size_t i = 0; i < task->history.size(); ++i) {
      error += (i == 0 ? "" : "; ") + task->history[i];
    }
    s.FailJob(*job, error, now_ms);
    return;
  }
  s.Enqueue(*job, *task);
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
  job->maps.resize(spec.splits.size());
  for (std::size_t i = 0; i < job->maps.size(); ++i) {
    Task& t = job->maps[i];
    t.kind = TaskKind::kMap;
    t.index = static_cast<int64_t>(i);
    t.task_id = TaskIdFor(TaskKind::kMap, t.index);
  }
  job->spec = std::move(spec);
  Job& j = *job;
  s.jobs_by_order[j.order] = &j;
  s.jobs.emplace(j.job_id, std::move(job));
  j.state = JobState::kSubmitted;
  s.SetState(j, JobState::kSubmitted, now_ms);
  for (Task& t : j.maps) s.Enqueue(j, t);
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
    impl_->FailJob(*job, "commit failed: " + error, now_ms);
  }
}

void Scheduler::Tick(int64_t now_ms) {
  Impl& s = *impl_;
  int64_t deadline = s.options.liveness * s.options.heartbeat_ms;
  std::vector<std::string> expired;
  for (const auto& [key, w] : s.workers) {
    if (now_ms - w.last_seen_ms > deadline) expired.push_back(key);
  }
  for (const std::string& key : expired) s.LoseWorker(key, "heartbeat expired", now_ms);
  s.Schedule(now_ms);
}

std::vector<Outgoing> Scheduler::TakeOutgoing() {
  std::vector<Outgoing> result;
  result.swap(impl_->out);
  return result;
}

std::optional<Value> Scheduler::JobInfo(const std::string& job_id, int64_t now_ms) const {
  auto it = impl_->jobs.find(job_id);
  if (it == impl_->jobs.end()) return std::nullopt;
  const Job& job = *it->second;
  Value v;
  v.Set("job_id", job.job_id);
  v.Set("name", job.spec.name);
  v.Set("app", job.spec.app);
  v.Set("state", JobStateName(job.state));
  v.Set("error", job.error);
  v.Set("output", job.spec.output_dir);
  v.Set("input_files", job.spec.input_files);
  v.Set("input_bytes", job.spec.input_bytes);
  v.Set("submitted_ms", job.submitted_ms);
  v.Set("finished_ms", job.finished_ms);
  v.Set("elapsed_ms", (job.finished_ms != 0 ? job.finished_ms : now_ms) - job.submitted_ms);
  int64_t num_maps = static_cast<int64_t>(job.maps.size());
  v.Set("maps", CountsValue(job.maps, num_maps));
  v.Set("reduces", CountsValue(job.reduces, job.spec.num_reduces));
  v.Set("map_progress", PhaseProgress(job.maps, num_maps));
  v.Set("reduce_progress", PhaseProgress(job.reduces, job.spec.num_reduces));
  bool waiting = !IsTerminal(job.state) && impl_->workers.empty();
  v.Set("waiting_for_workers", waiting);
  Map counters;
  for (const auto& [name, amount] : job.counters) counters.emplace_back(name, Value(amount));
  v.Set("counters", Value(std::move(counters)));
  v.Set("last_seq", job.seq);
  return v;
}

Value Scheduler::JobList(int64_t now_ms) const {
  Array jobs;
  for (const auto& [order, job] : impl_->jobs_by_order) {
    jobs.push_back(*JobInfo(job->job_id, now_ms));
  }
  return Value(std::move(jobs));
}

Value Scheduler::WorkerList(int64_t now_ms) const {
  std::vector<const Worker*> sorted;
  for (const auto& [key, w] : impl_->workers) sorted.push_back(&w);
  std::sort(sorted.begin(), sorted.end(),
            [](const Worker* a, const Worker* b) { return a->name < b->name; });
  Array list;
  for (const Worker* w : sorted) {
    Value v;
    v.Set("name", w->name);
    v.Set("host", w->host);
    v.Set("pid", w->pid);
    v.Set("slots", w->slots);
    v.Set("running", static_cast<int64_t>(w->running.size()));
    v.Set("heartbeat_age_ms", now_ms - w->last_seen_ms);
    v.Set("tasks_done", w->tasks_done);
    v.Set("tasks_failed", w->tasks_failed);
    v.Set("joined_ms", w->joined_ms);
    list.push_back(std::move(v));
  }
  return Value(std::move(list));
}

std::vector<std::string> Scheduler::WorkerKeys() const {
  std::vector<std::string> keys;
  for (const auto& [key, w] : impl_->workers) keys.push_back(key);
  return keys;
}

std::size_t Scheduler::worker_count() const { return impl_->workers.size(); }

std::size_t Scheduler::active_job_count() const {
  std::size_t n = 0;
  for (const auto& [id, job] : impl_->jobs) n += IsTerminal(job->state) ? 0 : 1;
  return n;
}

std::string Scheduler::OutputDir(const std::string& job_id) const {
  auto it = impl_->jobs.find(job_id);
  return it == impl_->jobs.end() ? std::string() : it->second->spec.output_dir;
}

}  // namespace zmr
