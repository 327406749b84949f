// The view and event codecs. Over 600 lines because it is one codec per struct of views.h, each
// encoder next to its decoder so the two are read (and changed) together.
#include "common/views.h"

#include <iterator>
#include <type_traits>

namespace zmr {

using wire::IntMapValue;
using wire::ReadIntMap;
using wire::ReadJobState;
using wire::ReadTaskKind;
using wire::ReadStringList;
using wire::RequireMap;
using wire::RequireMapIn;
using wire::StringListValue;
using wire::Typed;

const char* TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kPending: return "PENDING";
    case TaskState::kRunning: return "RUNNING";
    case TaskState::kDone: return "DONE";
    case TaskState::kFailed: return "FAILED";
  }
  return "?";
}

std::optional<TaskState> ParseTaskState(const std::string& name) {
  for (TaskState s : {TaskState::kPending, TaskState::kRunning, TaskState::kDone,
                      TaskState::kFailed}) {
    if (name == TaskStateName(s)) return s;
  }
  return std::nullopt;
}

namespace {

// The parts of the views that are lists of maps: Encode and Decode per item type, and one
// reader and writer for every such list.

Value Encode(const AttemptRecordInfo& a) {
  Value v;
  v.Set("attempt", a.attempt);
  v.Set("worker", a.worker);
  v.Set("state", a.state);
  v.Set("start_ms", a.start_ms);
  v.Set("end_ms", a.end_ms);
  v.Set("error", a.error);
  v.Set("stderr_tail", StringListValue(a.stderr_tail));
  return v;
}

bool Decode(const Value& v, AttemptRecordInfo* a, std::string* error) {
  return ReadInt(v, "attempt", &a->attempt, error) && ReadString(v, "worker", &a->worker, error) &&
         ReadString(v, "state", &a->state, error) &&
         ReadInt(v, "start_ms", &a->start_ms, error) && ReadInt(v, "end_ms", &a->end_ms, error) &&
         ReadString(v, "error", &a->error, error) &&
         ReadStringList(v, "stderr_tail", &a->stderr_tail, error);
}

Value Encode(const RunningAttemptInfo& a) {
  Value v;
  v.Set("task_id", a.task_id);
  v.Set("attempt", a.attempt);
  v.Set("worker", a.worker);
  v.Set("progress", a.progress);
  v.Set("elapsed_ms", a.elapsed_ms);
  v.Set("speculative", a.speculative);
  return v;
}

bool Decode(const Value& v, RunningAttemptInfo* a, std::string* error) {
  return ReadString(v, "task_id", &a->task_id, error) &&
         ReadInt(v, "attempt", &a->attempt, error) && ReadString(v, "worker", &a->worker, error) &&
         ReadDouble(v, "progress", &a->progress, error) &&
         ReadInt(v, "elapsed_ms", &a->elapsed_ms, error) &&
         ReadBool(v, "speculative", &a->speculative, error);
}

Value Encode(const FailedAttemptInfo& f) {
  Value v;
  v.Set("task_id", f.task_id);
  v.Set("kind", TaskKindName(f.kind));
  v.Set("attempt", f.attempt);
  v.Set("worker", f.worker);
  v.Set("error", f.error);
  v.Set("stderr_tail", StringListValue(f.stderr_tail));
  v.Set("ts_ms", f.ts_ms);
  return v;
}

bool Decode(const Value& v, FailedAttemptInfo* f, std::string* error) {
  return ReadString(v, "task_id", &f->task_id, error) && ReadTaskKind(v, "kind", &f->kind, error) &&
         ReadInt(v, "attempt", &f->attempt, error) && ReadString(v, "worker", &f->worker, error) &&
         ReadString(v, "error", &f->error, error) &&
         ReadStringList(v, "stderr_tail", &f->stderr_tail, error) &&
         ReadInt(v, "ts_ms", &f->ts_ms, error);
}

Value Encode(const TaskCounts& c) {
  Value v;
  v.Set("total", c.total);
  v.Set("pending", c.pending);
  v.Set("running", c.running);
  v.Set("done", c.done);
  v.Set("failed", c.failed);
  return v;
}

bool Decode(const Value& v, TaskCounts* c, std::string* error) {
  return ReadInt(v, "total", &c->total, error) && ReadInt(v, "pending", &c->pending, error) &&
         ReadInt(v, "running", &c->running, error) && ReadInt(v, "done", &c->done, error) &&
         ReadInt(v, "failed", &c->failed, error);
}

// The views with a codec of their own.
template <typename T>
Value Encode(const T& item) requires requires { item.ToValue(); } {
  return item.ToValue();
}

template <typename T>
bool Decode(const Value& v, T* item, std::string* error) requires requires {
  T::FromValue(v, error);
} {
  std::optional<T> decoded = T::FromValue(v, error);
  if (decoded) *item = std::move(*decoded);
  return decoded.has_value();
}

template <typename T>
Value ListValue(const std::vector<T>& items) {
  Array out;
  out.reserve(items.size());
  for (const T& item : items) out.push_back(Encode(item));
  return Value(std::move(out));
}

// A list of maps in field `key`: required unless `optional`.
enum class Presence { kRequired, kOptional };
template <typename T>
bool ReadList(const Value& v, std::string_view key, std::vector<T>* out, std::string* error,
              Presence presence = Presence::kRequired) {
  const Value* list = v.Find(key);
  if ((list == nullptr || list->is_nil()) && presence == Presence::kOptional) return true;
  if (list == nullptr || !list->is_array()) {
    *error = "field '" + std::string(key) + "' is not an array";
    return false;
  }
  out->reserve(list->as_array().size());
  for (const Value& item : list->as_array()) {
    T decoded;
    if (!RequireMapIn(item, key, error) || !Decode(item, &decoded, error)) return false;
    out->push_back(std::move(decoded));
  }
  return true;
}

// A map in field `key`, decoded by Decode.
template <typename T>
bool ReadNested(const Value& v, std::string_view key, T* out, std::string* error) {
  const Value* nested = v.Find(key);
  if (nested == nullptr) {
    *error = "missing field '" + std::string(key) + "'";
    return false;
  }
  return RequireMapIn(*nested, key, error) && Decode(*nested, out, error);
}

}  // namespace

// --- JobInfo ---

Value JobInfo::ToValue() const {
  Value v;
  v.Set("job_id", job_id);
  v.Set("name", name);
  v.Set("app", app);
  v.Set("state", JobStateName(state));
  v.Set("error", error);
  if (failure) {
    Value f;
    f.Set("stage", failure->stage);
    f.Set("task_id", failure->task_id);
    f.Set("attempts", ListValue(failure->attempts));
    v.Set("failure", std::move(f));
  }
  v.Set("output", output);
  v.Set("input_files", input_files);
  v.Set("input_bytes", input_bytes);
  v.Set("priority", priority);
  v.Set("speculation", speculation);
  v.Set("submitted_ms", submitted_ms);
  v.Set("started_ms", started_ms);
  v.Set("finished_ms", finished_ms);
  v.Set("elapsed_ms", elapsed_ms);
  v.Set("age_ms", age_ms);
  v.Set("maps", Encode(maps));
  v.Set("reduces", Encode(reduces));
  v.Set("map_progress", map_progress);
  v.Set("reduce_progress", reduce_progress);
  v.Set("waiting_for_workers", waiting_for_workers);
  v.Set("waiting", waiting);
  v.Set("running_attempts", running_attempts);
  v.Set("speculative_attempts", speculative_attempts);
  v.Set("backups_launched", backups_launched);
  v.Set("blacklisted_workers", StringListValue(blacklisted_workers));
  v.Set("attempts", ListValue(attempts));
  v.Set("failed_attempts", failed_attempts);
  v.Set("recent_failures", ListValue(recent_failures));
  v.Set("counters", IntMapValue(counters));
  v.Set("last_seq", last_seq);
  return v;
}

std::optional<JobInfo> JobInfo::FromValue(const Value& v, std::string* error) {
  JobInfo j;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &j.job_id, error) ||
      !ReadString(v, "name", &j.name, error) || !ReadString(v, "app", &j.app, error) ||
      !ReadJobState(v, "state", &j.state, error) || !ReadString(v, "error", &j.error, error) ||
      !ReadString(v, "output", &j.output, error) ||
      !ReadInt(v, "input_files", &j.input_files, error) ||
      !ReadInt(v, "input_bytes", &j.input_bytes, error) ||
      !ReadInt(v, "priority", &j.priority, error) ||
      !ReadBool(v, "speculation", &j.speculation, error) ||
      !ReadInt(v, "submitted_ms", &j.submitted_ms, error) ||
      !ReadInt(v, "started_ms", &j.started_ms, error) ||
      !ReadInt(v, "finished_ms", &j.finished_ms, error) ||
      !ReadInt(v, "elapsed_ms", &j.elapsed_ms, error) || !ReadInt(v, "age_ms", &j.age_ms, error) ||
      !ReadNested(v, "maps", &j.maps, error) || !ReadNested(v, "reduces", &j.reduces, error) ||
      !ReadDouble(v, "map_progress", &j.map_progress, error) ||
      !ReadDouble(v, "reduce_progress", &j.reduce_progress, error) ||
      !ReadBool(v, "waiting_for_workers", &j.waiting_for_workers, error) ||
      !ReadString(v, "waiting", &j.waiting, error) ||
      !ReadInt(v, "running_attempts", &j.running_attempts, error) ||
      !ReadInt(v, "speculative_attempts", &j.speculative_attempts, error) ||
      !ReadInt(v, "backups_launched", &j.backups_launched, error) ||
      !ReadStringList(v, "blacklisted_workers", &j.blacklisted_workers, error) ||
      !ReadList(v, "attempts", &j.attempts, error) ||
      !ReadInt(v, "failed_attempts", &j.failed_attempts, error) ||
      !ReadList(v, "recent_failures", &j.recent_failures, error) ||
      !ReadIntMap(v, "counters", &j.counters, error) ||
      !ReadInt(v, "last_seq", &j.last_seq, error)) {
    return std::nullopt;
  }
  if (const Value* f = v.Find("failure"); f != nullptr && !f->is_nil()) {
    FailureInfo failure;
    if (!RequireMapIn(*f, "failure", error) || !ReadString(*f, "stage", &failure.stage, error) ||
        !ReadString(*f, "task_id", &failure.task_id, error) ||
        !ReadList(*f, "attempts", &failure.attempts, error)) {
      return std::nullopt;
    }
    j.failure = std::move(failure);
  }
  return j;
}

void TrimForList(JobInfo& info) {
  auto trim_tail = [](std::vector<std::string>& lines) {
    if (lines.size() > kListedStderrLines) {
      lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(kListedStderrLines));
    }
  };
  std::vector<FailedAttemptInfo>& failures = info.recent_failures;
  if (failures.size() > 1) failures.erase(failures.begin(), failures.end() - 1);
  for (FailedAttemptInfo& f : failures) trim_tail(f.stderr_tail);
  if (info.failure) {
    for (AttemptRecordInfo& a : info.failure->attempts) trim_tail(a.stderr_tail);
  }
}

// --- TaskInfo, WorkerInfo ---

Value TaskInfo::ToValue() const {
  Value v;
  v.Set("task_id", task_id);
  v.Set("kind", TaskKindName(kind));
  v.Set("state", TaskStateName(state));
  v.Set("attempts", attempts);
  v.Set("failures", failures);
  v.Set("worker", worker);
  v.Set("progress", progress);
  v.Set("input_bytes", input_bytes);
  v.Set("records", records);
  v.Set("duration_ms", duration_ms);
  v.Set("speculative", speculative);
  v.Set("straggler", straggler);
  return v;
}

std::optional<TaskInfo> TaskInfo::FromValue(const Value& v, std::string* error) {
  TaskInfo t;
  std::string state;
  if (!RequireMap(v, error) || !ReadString(v, "task_id", &t.task_id, error) ||
      !ReadTaskKind(v, "kind", &t.kind, error) || !ReadString(v, "state", &state, error) ||
      !ReadInt(v, "attempts", &t.attempts, error) || !ReadInt(v, "failures", &t.failures, error) ||
      !ReadString(v, "worker", &t.worker, error) ||
      !ReadDouble(v, "progress", &t.progress, error) ||
      !ReadInt(v, "input_bytes", &t.input_bytes, error) ||
      !ReadInt(v, "records", &t.records, error) ||
      !ReadInt(v, "duration_ms", &t.duration_ms, error) ||
      !ReadBool(v, "speculative", &t.speculative, error) ||
      !ReadBool(v, "straggler", &t.straggler, error)) {
    return std::nullopt;
  }
  std::optional<TaskState> parsed = ParseTaskState(state);
  if (!parsed) {
    *error = "field 'state' is not a task state: '" + state + "'";
    return std::nullopt;
  }
  t.state = *parsed;
  return t;
}

Value WorkerInfo::ToValue() const {
  Value v;
  v.Set("name", name);
  v.Set("host", host);
  v.Set("pid", pid);
  v.Set("slots", slots);
  v.Set("queue", queue);
  v.Set("running", running);
  v.Set("capacity", capacity);
  v.Set("saturated", saturated);
  v.Set("cpu", cpu);
  v.Set("host_cpu", host_cpu);
  v.Set("cores", cores);
  v.Set("load1", load1);
  v.Set("rss_kb", rss_kb);
  v.Set("disk_free_bytes", disk_free_bytes);
  v.Set("heartbeat_age_ms", heartbeat_age_ms);
  v.Set("tasks_done", tasks_done);
  v.Set("tasks_failed", tasks_failed);
  v.Set("joined_ms", joined_ms);
  v.Set("attempts", StringListValue(attempts));
  return v;
}

std::optional<WorkerInfo> WorkerInfo::FromValue(const Value& v, std::string* error) {
  WorkerInfo w;
  if (!RequireMap(v, error) || !ReadString(v, "name", &w.name, error) ||
      !ReadString(v, "host", &w.host, error) || !ReadInt(v, "pid", &w.pid, error) ||
      !ReadInt(v, "slots", &w.slots, error) || !ReadInt(v, "queue", &w.queue, error) ||
      !ReadInt(v, "running", &w.running, error) || !ReadInt(v, "capacity", &w.capacity, error) ||
      !ReadBool(v, "saturated", &w.saturated, error) || !ReadDouble(v, "cpu", &w.cpu, error) ||
      !ReadDouble(v, "host_cpu", &w.host_cpu, error) || !ReadInt(v, "cores", &w.cores, error) ||
      !ReadDouble(v, "load1", &w.load1, error) || !ReadInt(v, "rss_kb", &w.rss_kb, error) ||
      !ReadInt(v, "disk_free_bytes", &w.disk_free_bytes, error) ||
      !ReadInt(v, "heartbeat_age_ms", &w.heartbeat_age_ms, error) ||
      !ReadInt(v, "tasks_done", &w.tasks_done, error) ||
      !ReadInt(v, "tasks_failed", &w.tasks_failed, error) ||
      !ReadInt(v, "joined_ms", &w.joined_ms, error) ||
      !ReadStringList(v, "attempts", &w.attempts, error)) {
    return std::nullopt;
  }
  return w;
}

// --- events ---

namespace {

void SetHead(Value& v, const TaskEventHead& head) {
  v.Set("task_id", head.task_id);
  v.Set("kind", TaskKindName(head.kind));
  v.Set("attempt", head.attempt);
  v.Set("worker", head.worker);
}

bool ReadHead(const Value& v, TaskEventHead* head, std::string* error) {
  return ReadString(v, "task_id", &head->task_id, error) &&
         ReadTaskKind(v, "kind", &head->kind, error) &&
         ReadInt(v, "attempt", &head->attempt, error) &&
         ReadString(v, "worker", &head->worker, error);
}

// Type name, encoder and decoder of each job event's own fields.
const char* TypeOf(const JobStateEvent&) { return event::kJobState; }
const char* TypeOf(const TaskAssignedEvent&) { return event::kTaskAssigned; }
const char* TypeOf(const TaskSpeculatedEvent&) { return event::kTaskSpeculated; }
const char* TypeOf(const TaskProgressEvent&) { return event::kTaskProgress; }
const char* TypeOf(const TaskCompletedEvent&) { return event::kTaskCompleted; }
const char* TypeOf(const TaskFailedEvent&) { return event::kTaskFailed; }
const char* TypeOf(const TaskKilledEvent&) { return event::kTaskKilled; }
const char* TypeOf(const WorkerBlacklistedEvent&) { return event::kWorkerBlacklisted; }
const char* TypeOf(const WorkerJoinedEvent&) { return event::kWorkerJoined; }
const char* TypeOf(const WorkerLostEvent&) { return event::kWorkerLost; }

void SetFields(Value& v, const JobStateEvent& e) {
  v.Set("state", JobStateName(e.state));
  v.Set("prev_state", e.prev_state ? JobStateName(*e.prev_state) : "");
  if (e.state == JobState::kFailed) {
    v.Set("error", e.error);
    v.Set("stage", e.stage);
    v.Set("task_id", e.task_id);
  }
}

bool ReadFields(const Value& v, JobStateEvent* e, std::string* error) {
  std::string prev;
  if (!ReadJobState(v, "state", &e->state, error) ||
      !ReadString(v, "prev_state", &prev, error) || !ReadOptString(v, "error", &e->error, error) ||
      !ReadOptString(v, "stage", &e->stage, error) ||
      !ReadOptString(v, "task_id", &e->task_id, error)) {
    return false;
  }
  if (!prev.empty()) {
    e->prev_state = ParseJobState(prev);
    if (!e->prev_state) {
      *error = "field 'prev_state' is not a job state: '" + prev + "'";
      return false;
    }
  }
  return true;
}

void SetFields(Value& v, const TaskAssignedEvent& e) {
  SetHead(v, e.task);
  v.Set("speculative", e.speculative);
}

bool ReadFields(const Value& v, TaskAssignedEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) && ReadBool(v, "speculative", &e->speculative, error);
}

void SetFields(Value& v, const TaskSpeculatedEvent& e) {
  SetHead(v, e.task);
  v.Set("original_attempt", e.original_attempt);
  v.Set("original_worker", e.original_worker);
  v.Set("elapsed_ms", e.elapsed_ms);
  v.Set("estimated_ms", e.estimated_ms);
  v.Set("typical_ms", e.typical_ms);
}

bool ReadFields(const Value& v, TaskSpeculatedEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) &&
         ReadInt(v, "original_attempt", &e->original_attempt, error) &&
         ReadString(v, "original_worker", &e->original_worker, error) &&
         ReadInt(v, "elapsed_ms", &e->elapsed_ms, error) &&
         ReadInt(v, "estimated_ms", &e->estimated_ms, error) &&
         ReadInt(v, "typical_ms", &e->typical_ms, error);
}

void SetFields(Value& v, const TaskProgressEvent& e) {
  SetHead(v, e.task);
  v.Set("progress", e.progress);
}

bool ReadFields(const Value& v, TaskProgressEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) && ReadDouble(v, "progress", &e->progress, error);
}

void SetFields(Value& v, const TaskCompletedEvent& e) {
  SetHead(v, e.task);
  v.Set("counters", IntMapValue(e.counters));
  v.Set("duration_ms", e.duration_ms);
  v.Set("speculative", e.speculative);
}

bool ReadFields(const Value& v, TaskCompletedEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) && ReadIntMap(v, "counters", &e->counters, error) &&
         ReadInt(v, "duration_ms", &e->duration_ms, error) &&
         ReadBool(v, "speculative", &e->speculative, error);
}

void SetFields(Value& v, const TaskFailedEvent& e) {
  SetHead(v, e.task);
  v.Set("error", e.error);
  if (!e.stderr_tail.empty()) v.Set("stderr_tail", StringListValue(e.stderr_tail));
}

bool ReadFields(const Value& v, TaskFailedEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) && ReadString(v, "error", &e->error, error) &&
         ReadStringList(v, "stderr_tail", &e->stderr_tail, error);
}

void SetFields(Value& v, const TaskKilledEvent& e) {
  SetHead(v, e.task);
  v.Set("reason", e.reason);
}

bool ReadFields(const Value& v, TaskKilledEvent* e, std::string* error) {
  return ReadHead(v, &e->task, error) && ReadString(v, "reason", &e->reason, error);
}

void SetFields(Value& v, const WorkerBlacklistedEvent& e) {
  v.Set("worker", e.worker);
  v.Set("failures", e.failures);
}

bool ReadFields(const Value& v, WorkerBlacklistedEvent* e, std::string* error) {
  return ReadString(v, "worker", &e->worker, error) &&
         ReadInt(v, "failures", &e->failures, error);
}

void SetFields(Value& v, const WorkerJoinedEvent& e) {
  v.Set("host", e.host);
  v.Set("slots", e.slots);
}

bool ReadFields(const Value& v, WorkerJoinedEvent* e, std::string* error) {
  return ReadString(v, "host", &e->host, error) && ReadInt(v, "slots", &e->slots, error);
}

void SetFields(Value& v, const WorkerLostEvent& e) { v.Set("reason", e.reason); }

bool ReadFields(const Value& v, WorkerLostEvent* e, std::string* error) {
  return ReadString(v, "reason", &e->reason, error);
}

// Reads `detail` as the alternative of Variant whose type name is `type`.
template <typename Variant, std::size_t I = 0>
bool ReadDetail(const Value& v, const std::string& type, Variant* detail, std::string* error) {
  if constexpr (I == std::variant_size_v<Variant>) {
    *error = "unknown event type '" + type + "'";
    return false;
  } else {
    using Alternative = std::variant_alternative_t<I, Variant>;
    Alternative e;
    if (type != TypeOf(e)) return ReadDetail<Variant, I + 1>(v, type, detail, error);
    if (!ReadFields(v, &e, error)) return false;
    *detail = std::move(e);
    return true;
  }
}

}  // namespace

const char* JobEvent::type() const {
  return std::visit([](const auto& e) { return TypeOf(e); }, detail);
}

std::string JobEvent::Topic() const { return "job/" + job_id + "/" + type(); }

Value JobEvent::ToValue() const {
  Value v = Typed(type());
  v.Set("ts_ms", ts_ms);
  v.Set("job_id", job_id);
  v.Set("seq", seq);
  std::visit([&v](const auto& e) { SetFields(v, e); }, detail);
  return v;
}

std::optional<JobEvent> JobEvent::FromValue(const Value& v, std::string* error) {
  JobEvent e;
  std::string type;
  if (!RequireMap(v, error) || !ReadString(v, "type", &type, error) ||
      !ReadInt(v, "ts_ms", &e.ts_ms, error) || !ReadString(v, "job_id", &e.job_id, error) ||
      !ReadInt(v, "seq", &e.seq, error) || !ReadDetail(v, type, &e.detail, error)) {
    return std::nullopt;
  }
  return e;
}

const char* WorkerEvent::type() const {
  return std::visit([](const auto& e) { return TypeOf(e); }, detail);
}

std::string WorkerEvent::Topic() const { return "worker/" + worker + "/" + type(); }

Value WorkerEvent::ToValue() const {
  Value v = Typed(type());
  v.Set("ts_ms", ts_ms);
  v.Set("worker", worker);
  std::visit([&v](const auto& e) { SetFields(v, e); }, detail);
  return v;
}

std::optional<WorkerEvent> WorkerEvent::FromValue(const Value& v, std::string* error) {
  WorkerEvent e;
  std::string type;
  if (!RequireMap(v, error) || !ReadString(v, "type", &type, error) ||
      !ReadInt(v, "ts_ms", &e.ts_ms, error) || !ReadString(v, "worker", &e.worker, error) ||
      !ReadDetail(v, type, &e.detail, error)) {
    return std::nullopt;
  }
  return e;
}

Value ClusterHeartbeatEvent::ToValue() const {
  Value v = Typed(event::kHeartbeat);
  v.Set("ts_ms", ts_ms);
  v.Set("workers", workers);
  v.Set("jobs", jobs);
  return v;
}

std::optional<ClusterHeartbeatEvent> ClusterHeartbeatEvent::FromValue(const Value& v,
                                                                      std::string* error) {
  ClusterHeartbeatEvent e;
  if (!RequireMap(v, error) || !ReadInt(v, "ts_ms", &e.ts_ms, error) ||
      !ReadInt(v, "workers", &e.workers, error) || !ReadInt(v, "jobs", &e.jobs, error)) {
    return std::nullopt;
  }
  return e;
}

// --- replies ---

Value JobReply::ToValue() const {
  Value v = Typed(msg::kJob);
  v.Set("job", job.ToValue());
  return v;
}

std::optional<JobReply> JobReply::FromValue(const Value& v, std::string* error) {
  JobReply r;
  if (!RequireMap(v, error) || !ReadNested(v, "job", &r.job, error)) return std::nullopt;
  return r;
}

Value JobsReply::ToValue() const {
  Value v = Typed(msg::kJobs);
  v.Set("jobs", ListValue(jobs));
  return v;
}

std::optional<JobsReply> JobsReply::FromValue(const Value& v, std::string* error) {
  JobsReply r;
  if (!RequireMap(v, error) || !ReadList(v, "jobs", &r.jobs, error)) return std::nullopt;
  return r;
}

Value TasksReply::ToValue() const {
  Value v = Typed(msg::kTasks);
  v.Set("job_id", job_id);
  v.Set("tasks", ListValue(tasks));
  return v;
}

std::optional<TasksReply> TasksReply::FromValue(const Value& v, std::string* error) {
  TasksReply r;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &r.job_id, error) ||
      !ReadList(v, "tasks", &r.tasks, error)) {
    return std::nullopt;
  }
  return r;
}

Value WorkersReply::ToValue() const {
  Value v = Typed(msg::kWorkers);
  v.Set("workers", ListValue(workers));
  return v;
}

std::optional<WorkersReply> WorkersReply::FromValue(const Value& v, std::string* error) {
  WorkersReply r;
  if (!RequireMap(v, error) || !ReadList(v, "workers", &r.workers, error)) return std::nullopt;
  return r;
}

// The fields in the order the coordinator always wrote them: the view's, then type and job_id.
Value EventsReply::ToValue() const {
  Value v;
  v.Set("events", ListValue(view.events));
  v.Set("complete", view.complete);
  v.Set("last_seq", view.last_seq);
  v.Set("type", msg::kEvents);
  v.Set("job_id", job_id);
  return v;
}

std::optional<EventsReply> EventsReply::FromValue(const Value& v, std::string* error) {
  EventsReply r;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &r.job_id, error) ||
      !ReadList(v, "events", &r.view.events, error) ||
      !ReadBool(v, "complete", &r.view.complete, error) ||
      !ReadInt(v, "last_seq", &r.view.last_seq, error)) {
    return std::nullopt;
  }
  return r;
}

}  // namespace zmr
