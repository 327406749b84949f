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

// The fields of one map as a decoder reads them. A field of the wrong type is always an error; a
// missing (or nil) one is an error under Missing::kRefuse and keeps its default under
// Missing::kDefault. Each reader returns false with *error() filled on an error.
class Fields {
 public:
  Fields(const Value& v, Missing missing, std::string* error)
      : v_(v), missing_(missing), error_(error) {}
  const Value& value() const { return v_; }
  Missing missing() const { return missing_; }
  std::string* error() const { return error_; }
  // The same map, for the fields PROTOCOL.md lists as optional (absent in either mode).
  Fields Optional() const { return Fields(v_, Missing::kDefault, error_); }

  bool String(std::string_view key, std::string* out) const {
    return Absent(key) || ReadString(v_, key, out, error_);
  }
  bool Int(std::string_view key, int64_t* out) const {
    return Absent(key) || ReadInt(v_, key, out, error_);
  }
  bool Double(std::string_view key, double* out) const {
    return Absent(key) || ReadDouble(v_, key, out, error_);
  }
  bool Bool(std::string_view key, bool* out) const {
    return Absent(key) || ReadBool(v_, key, out, error_);
  }
  bool Kind(std::string_view key, TaskKind* out) const {
    return Absent(key) || ReadTaskKind(v_, key, out, error_);
  }
  // Lists of strings and maps of counters: absent means empty in either mode.
  bool Strings(std::string_view key, std::vector<std::string>* out) const {
    return ReadStringList(v_, key, out, error_);
  }
  bool Ints(std::string_view key, Counters* out) const {
    return ReadIntMap(v_, key, out, error_);
  }
  // A list of maps, and a map, each decoded by the Decode for T (defined below) in this mode. A
  // nested map the reader cannot do without is required in either mode.
  enum class Need { kAsMissing, kAlways };
  template <typename T>
  bool List(std::string_view key, std::vector<T>* out) const;
  template <typename T>
  bool Nested(std::string_view key, T* out, Need need = Need::kAsMissing) const;

 private:
  bool Absent(std::string_view key) const {
    if (missing_ == Missing::kRefuse) return false;
    const Value* field = v_.Find(key);
    return field == nullptr || field->is_nil();
  }

  const Value& v_;
  Missing missing_;
  std::string* error_;
};

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

bool Decode(const Fields& in, AttemptRecordInfo* a) {
  return in.Int("attempt", &a->attempt) && in.String("worker", &a->worker) &&
         in.String("state", &a->state) && in.Int("start_ms", &a->start_ms) &&
         in.Int("end_ms", &a->end_ms) && in.String("error", &a->error) &&
         in.Strings("stderr_tail", &a->stderr_tail);
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

bool Decode(const Fields& in, RunningAttemptInfo* a) {
  return in.String("task_id", &a->task_id) && in.Int("attempt", &a->attempt) &&
         in.String("worker", &a->worker) && in.Double("progress", &a->progress) &&
         in.Int("elapsed_ms", &a->elapsed_ms) && in.Bool("speculative", &a->speculative);
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

bool Decode(const Fields& in, FailedAttemptInfo* f) {
  return in.String("task_id", &f->task_id) && in.Kind("kind", &f->kind) &&
         in.Int("attempt", &f->attempt) && in.String("worker", &f->worker) &&
         in.String("error", &f->error) && in.Strings("stderr_tail", &f->stderr_tail) &&
         in.Int("ts_ms", &f->ts_ms);
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

bool Decode(const Fields& in, TaskCounts* c) {
  return in.Int("total", &c->total) && in.Int("pending", &c->pending) &&
         in.Int("running", &c->running) && in.Int("done", &c->done) &&
         in.Int("failed", &c->failed);
}

// The views with a codec of their own.
template <typename T>
Value Encode(const T& item) requires requires { item.ToValue(); } {
  return item.ToValue();
}

template <typename T>
bool Decode(const Fields& in, T* item) requires requires {
  T::FromValue(in.value(), in.error(), in.missing());
} {
  std::optional<T> decoded = T::FromValue(in.value(), in.error(), in.missing());
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

template <typename T>
bool Fields::List(std::string_view key, std::vector<T>* out) const {
  if (Absent(key)) return true;
  const Value* list = v_.Find(key);
  if (list == nullptr || !list->is_array()) {
    *error_ = "field '" + std::string(key) + "' is not an array";
    return false;
  }
  out->reserve(list->as_array().size());
  for (const Value& item : list->as_array()) {
    T decoded;
    if (!RequireMapIn(item, key, error_) || !Decode(Fields(item, missing_, error_), &decoded)) {
      return false;
    }
    out->push_back(std::move(decoded));
  }
  return true;
}

template <typename T>
bool Fields::Nested(std::string_view key, T* out, Need need) const {
  if (need == Need::kAsMissing && Absent(key)) return true;
  const Value* nested = v_.Find(key);
  if (nested == nullptr) {
    *error_ = "missing field '" + std::string(key) + "'";
    return false;
  }
  return RequireMapIn(*nested, key, error_) && Decode(Fields(*nested, missing_, error_), out);
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

std::optional<JobInfo> JobInfo::FromValue(const Value& v, std::string* error, Missing missing) {
  JobInfo j;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.String("job_id", &j.job_id) || !in.String("name", &j.name) ||
      !in.String("app", &j.app) || !ReadJobState(v, "state", &j.state, error) ||
      !in.String("error", &j.error) || !in.String("output", &j.output) ||
      !in.Int("input_files", &j.input_files) || !in.Int("input_bytes", &j.input_bytes) ||
      !in.Int("priority", &j.priority) || !in.Bool("speculation", &j.speculation) ||
      !in.Int("submitted_ms", &j.submitted_ms) || !in.Int("started_ms", &j.started_ms) ||
      !in.Int("finished_ms", &j.finished_ms) || !in.Int("elapsed_ms", &j.elapsed_ms) ||
      !in.Int("age_ms", &j.age_ms) || !in.Nested("maps", &j.maps) ||
      !in.Nested("reduces", &j.reduces) || !in.Double("map_progress", &j.map_progress) ||
      !in.Double("reduce_progress", &j.reduce_progress) ||
      !in.Bool("waiting_for_workers", &j.waiting_for_workers) ||
      !in.String("waiting", &j.waiting) || !in.Int("running_attempts", &j.running_attempts) ||
      !in.Int("speculative_attempts", &j.speculative_attempts) ||
      !in.Int("backups_launched", &j.backups_launched) ||
      !in.Strings("blacklisted_workers", &j.blacklisted_workers) ||
      !in.List("attempts", &j.attempts) || !in.Int("failed_attempts", &j.failed_attempts) ||
      !in.List("recent_failures", &j.recent_failures) || !in.Ints("counters", &j.counters) ||
      !in.Int("last_seq", &j.last_seq)) {
    return std::nullopt;
  }
  if (const Value* f = v.Find("failure"); f != nullptr && !f->is_nil()) {
    FailureInfo failure;
    const Fields of(*f, missing, error);
    if (!RequireMapIn(*f, "failure", error) || !of.String("stage", &failure.stage) ||
        !of.String("task_id", &failure.task_id) || !of.List("attempts", &failure.attempts)) {
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

std::optional<TaskInfo> TaskInfo::FromValue(const Value& v, std::string* error, Missing missing) {
  TaskInfo t;
  std::string state = TaskStateName(t.state);
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.String("task_id", &t.task_id) || !in.Kind("kind", &t.kind) ||
      !in.String("state", &state) || !in.Int("attempts", &t.attempts) ||
      !in.Int("failures", &t.failures) || !in.String("worker", &t.worker) ||
      !in.Double("progress", &t.progress) || !in.Int("input_bytes", &t.input_bytes) ||
      !in.Int("records", &t.records) || !in.Int("duration_ms", &t.duration_ms) ||
      !in.Bool("speculative", &t.speculative) || !in.Bool("straggler", &t.straggler)) {
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

std::optional<WorkerInfo> WorkerInfo::FromValue(const Value& v, std::string* error,
                                                Missing missing) {
  WorkerInfo w;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.String("name", &w.name) || !in.String("host", &w.host) ||
      !in.Int("pid", &w.pid) || !in.Int("slots", &w.slots) || !in.Int("queue", &w.queue) ||
      !in.Int("running", &w.running) || !in.Int("capacity", &w.capacity) ||
      !in.Bool("saturated", &w.saturated) || !in.Double("cpu", &w.cpu) ||
      !in.Double("host_cpu", &w.host_cpu) || !in.Int("cores", &w.cores) ||
      !in.Double("load1", &w.load1) || !in.Int("rss_kb", &w.rss_kb) ||
      !in.Int("disk_free_bytes", &w.disk_free_bytes) ||
      !in.Int("heartbeat_age_ms", &w.heartbeat_age_ms) ||
      !in.Int("tasks_done", &w.tasks_done) || !in.Int("tasks_failed", &w.tasks_failed) ||
      !in.Int("joined_ms", &w.joined_ms) || !in.Strings("attempts", &w.attempts)) {
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

bool ReadHead(const Fields& in, TaskEventHead* head) {
  return in.String("task_id", &head->task_id) && in.Kind("kind", &head->kind) &&
         in.Int("attempt", &head->attempt) && in.String("worker", &head->worker);
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

bool ReadFields(const Fields& in, JobStateEvent* e) {
  std::string prev;
  std::string* error = in.error();
  if (!ReadJobState(in.value(), "state", &e->state, error) ||
      !in.String("prev_state", &prev) || !in.Optional().String("error", &e->error) ||
      !in.Optional().String("stage", &e->stage) ||
      !in.Optional().String("task_id", &e->task_id)) {
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

bool ReadFields(const Fields& in, TaskAssignedEvent* e) {
  return ReadHead(in, &e->task) && in.Bool("speculative", &e->speculative);
}

void SetFields(Value& v, const TaskSpeculatedEvent& e) {
  SetHead(v, e.task);
  v.Set("original_attempt", e.original_attempt);
  v.Set("original_worker", e.original_worker);
  v.Set("elapsed_ms", e.elapsed_ms);
  v.Set("estimated_ms", e.estimated_ms);
  v.Set("typical_ms", e.typical_ms);
}

bool ReadFields(const Fields& in, TaskSpeculatedEvent* e) {
  return ReadHead(in, &e->task) && in.Int("original_attempt", &e->original_attempt) &&
         in.String("original_worker", &e->original_worker) &&
         in.Int("elapsed_ms", &e->elapsed_ms) && in.Int("estimated_ms", &e->estimated_ms) &&
         in.Int("typical_ms", &e->typical_ms);
}

void SetFields(Value& v, const TaskProgressEvent& e) {
  SetHead(v, e.task);
  v.Set("progress", e.progress);
}

bool ReadFields(const Fields& in, TaskProgressEvent* e) {
  return ReadHead(in, &e->task) && in.Double("progress", &e->progress);
}

void SetFields(Value& v, const TaskCompletedEvent& e) {
  SetHead(v, e.task);
  v.Set("counters", IntMapValue(e.counters));
  v.Set("duration_ms", e.duration_ms);
  v.Set("speculative", e.speculative);
}

bool ReadFields(const Fields& in, TaskCompletedEvent* e) {
  return ReadHead(in, &e->task) && in.Ints("counters", &e->counters) &&
         in.Int("duration_ms", &e->duration_ms) && in.Bool("speculative", &e->speculative);
}

void SetFields(Value& v, const TaskFailedEvent& e) {
  SetHead(v, e.task);
  v.Set("error", e.error);
  if (!e.stderr_tail.empty()) v.Set("stderr_tail", StringListValue(e.stderr_tail));
}

bool ReadFields(const Fields& in, TaskFailedEvent* e) {
  return ReadHead(in, &e->task) && in.String("error", &e->error) &&
         in.Strings("stderr_tail", &e->stderr_tail);
}

void SetFields(Value& v, const TaskKilledEvent& e) {
  SetHead(v, e.task);
  v.Set("reason", e.reason);
}

bool ReadFields(const Fields& in, TaskKilledEvent* e) {
  return ReadHead(in, &e->task) && in.String("reason", &e->reason);
}

void SetFields(Value& v, const WorkerBlacklistedEvent& e) {
  v.Set("worker", e.worker);
  v.Set("failures", e.failures);
}

bool ReadFields(const Fields& in, WorkerBlacklistedEvent* e) {
  return in.String("worker", &e->worker) && in.Int("failures", &e->failures);
}

void SetFields(Value& v, const WorkerJoinedEvent& e) {
  v.Set("host", e.host);
  v.Set("slots", e.slots);
}

bool ReadFields(const Fields& in, WorkerJoinedEvent* e) {
  return in.String("host", &e->host) && in.Int("slots", &e->slots);
}

void SetFields(Value& v, const WorkerLostEvent& e) { v.Set("reason", e.reason); }

bool ReadFields(const Fields& in, WorkerLostEvent* e) { return in.String("reason", &e->reason); }

// Reads `detail` as the alternative of Variant whose type name is `type`.
template <typename Variant, std::size_t I = 0>
bool ReadDetail(const Fields& in, const std::string& type, Variant* detail) {
  if constexpr (I == std::variant_size_v<Variant>) {
    *in.error() = "unknown event type '" + type + "'";
    return false;
  } else {
    using Alternative = std::variant_alternative_t<I, Variant>;
    Alternative e;
    if (type != TypeOf(e)) return ReadDetail<Variant, I + 1>(in, type, detail);
    if (!ReadFields(in, &e)) return false;
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

std::optional<JobEvent> JobEvent::FromValue(const Value& v, std::string* error, Missing missing) {
  JobEvent e;
  std::string type;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !ReadString(v, "type", &type, error) ||
      !in.Int("ts_ms", &e.ts_ms) || !in.String("job_id", &e.job_id) || !in.Int("seq", &e.seq) ||
      !ReadDetail(in, type, &e.detail)) {
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

std::optional<WorkerEvent> WorkerEvent::FromValue(const Value& v, std::string* error,
                                                  Missing missing) {
  WorkerEvent e;
  std::string type;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !ReadString(v, "type", &type, error) ||
      !in.Int("ts_ms", &e.ts_ms) || !in.String("worker", &e.worker) ||
      !ReadDetail(in, type, &e.detail)) {
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
                                                                      std::string* error,
                                                                      Missing missing) {
  ClusterHeartbeatEvent e;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.Int("ts_ms", &e.ts_ms) || !in.Int("workers", &e.workers) ||
      !in.Int("jobs", &e.jobs)) {
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

std::optional<JobReply> JobReply::FromValue(const Value& v, std::string* error, Missing missing) {
  JobReply r;
  if (!RequireMap(v, error) ||
      !Fields(v, missing, error).Nested("job", &r.job, Fields::Need::kAlways)) {
    return std::nullopt;
  }
  return r;
}

Value JobsReply::ToValue() const {
  Value v = Typed(msg::kJobs);
  v.Set("jobs", ListValue(jobs));
  return v;
}

std::optional<JobsReply> JobsReply::FromValue(const Value& v, std::string* error,
                                              Missing missing) {
  JobsReply r;
  if (!RequireMap(v, error) || !Fields(v, missing, error).List("jobs", &r.jobs)) {
    return std::nullopt;
  }
  return r;
}

Value TasksReply::ToValue() const {
  Value v = Typed(msg::kTasks);
  v.Set("job_id", job_id);
  v.Set("tasks", ListValue(tasks));
  return v;
}

std::optional<TasksReply> TasksReply::FromValue(const Value& v, std::string* error,
                                                Missing missing) {
  TasksReply r;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.String("job_id", &r.job_id) || !in.List("tasks", &r.tasks)) {
    return std::nullopt;
  }
  return r;
}

Value WorkersReply::ToValue() const {
  Value v = Typed(msg::kWorkers);
  v.Set("workers", ListValue(workers));
  return v;
}

std::optional<WorkersReply> WorkersReply::FromValue(const Value& v, std::string* error,
                                                    Missing missing) {
  WorkersReply r;
  if (!RequireMap(v, error) || !Fields(v, missing, error).List("workers", &r.workers)) {
    return std::nullopt;
  }
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

std::optional<EventsReply> EventsReply::FromValue(const Value& v, std::string* error,
                                                  Missing missing) {
  EventsReply r;
  const Fields in(v, missing, error);
  if (!RequireMap(v, error) || !in.String("job_id", &r.job_id) ||
      !in.List("events", &r.view.events) || !ReadBool(v, "complete", &r.view.complete, error) ||
      !in.Int("last_seq", &r.view.last_seq)) {
    return std::nullopt;
  }
  return r;
}

}  // namespace zmr
