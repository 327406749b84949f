// The views and events codecs (common/views.h): what ToValue writes comes back unchanged through
// the bytes, in the key order PROTOCOL.md lists, and malformed maps are refused naming the field.
#include "common/views.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace zmr {
namespace {

// Through the wire as zmr sends it: ToValue, Pack, Unpack, FromValue.
template <typename T>
T ThroughTheWire(const T& original) {
  std::string error;
  std::optional<Value> unpacked = Unpack(Pack(original.ToValue()), &error);
  REQUIRE_MESSAGE(unpacked.has_value(), error);
  std::optional<T> back = T::FromValue(*unpacked, &error);
  REQUIRE_MESSAGE(back.has_value(), error);
  return *back;
}

// The error FromValue gives for `v`, which it must refuse.
template <typename T>
std::string Refusal(const Value& v) {
  std::string error;
  std::optional<T> decoded = T::FromValue(v, &error);
  CHECK_FALSE(decoded.has_value());
  return error;
}

Value Replaced(Value v, const std::string& key, Value field) {
  v.Set(key, std::move(field));
  return v;
}

std::vector<std::string> Keys(const Value& v) {
  std::vector<std::string> keys;
  for (const auto& [key, item] : v.as_map()) keys.push_back(key);
  return keys;
}

JobInfo SampleJob() {
  JobInfo j;
  j.job_id = "job_20261128023200_0001";
  j.name = "count";
  j.app = "wordcount";
  j.state = JobState::kFailed;
  j.error = "MAPPING: map task m-00001 failed 2 attempts: ...";
  j.failure = FailureInfo{"MAPPING", "m-00001",
                          {{1, "w1", "FAILED", 10, 20, "boom", {"a", "b", "c"}},
                           {2, "w2", "LOST", 30, 40, "worker w2 lost", {}}}};
  j.output = "/out";
  j.input_files = 3;
  j.input_bytes = 12345;
  j.priority = -5;
  j.speculation = false;
  j.submitted_ms = 1000;
  j.started_ms = 1100;
  j.finished_ms = 1200;
  j.elapsed_ms = 200;
  j.age_ms = 300;
  j.maps = {4, 1, 1, 1, 1};
  j.reduces = {2, 2, 0, 0, 0};
  j.map_progress = 0.625;
  j.reduce_progress = 0;
  j.waiting_for_workers = true;
  j.waiting = "no workers connected";
  j.running_attempts = 2;
  j.speculative_attempts = 1;
  j.backups_launched = 3;
  j.blacklisted_workers = {"w3"};
  j.attempts = {{"m-00002", 1, "w1", 0.5, 70, false}, {"m-00002", 2, "w2", 0.25, 10, true}};
  j.failed_attempts = 2;
  j.recent_failures = {{"m-00001", TaskKind::kMap, 1, "w1", "boom", {"x", "y", "z"}, 15},
                       {"r-00000", TaskKind::kReduce, 1, "w2", "bad", {}, 16}};
  j.counters = {{"map_input_records", 10}, {"peak_rss_kb", 2048}};
  j.last_seq = 9;
  return j;
}

TaskInfo SampleTask() {
  TaskInfo t;
  t.task_id = "r-00001";
  t.kind = TaskKind::kReduce;
  t.state = TaskState::kRunning;
  t.attempts = 2;
  t.failures = 1;
  t.worker = "w1,w2";
  t.progress = 0.75;
  t.input_bytes = -1;
  t.records = 0;
  t.duration_ms = 5000;
  t.speculative = true;
  t.straggler = true;
  return t;
}

WorkerInfo SampleWorker() {
  WorkerInfo w;
  w.name = "w1";
  w.host = "node1";
  w.pid = 42;
  w.slots = 4;
  w.queue = 4;
  w.running = 5;
  w.capacity = 3;
  w.saturated = true;
  w.cpu = 2.5;
  w.host_cpu = 0.95;
  w.cores = 4;
  w.load1 = 3.25;
  w.rss_kb = 1000;
  w.disk_free_bytes = 1ll << 40;
  w.heartbeat_age_ms = 12;
  w.tasks_done = 7;
  w.tasks_failed = 1;
  w.joined_ms = 99;
  w.attempts = {"job_x_0001/m-00000.a1"};
  return w;
}

std::vector<JobEvent> SampleJobEvents() {
  TaskEventHead head{"m-00003", TaskKind::kMap, 2, "w2"};
  std::vector<JobEvent> events;
  int64_t seq = 0;
  for (const JobEvent::Detail& detail : std::vector<JobEvent::Detail>{
           JobStateEvent{JobState::kSubmitted, std::nullopt, "", "", ""},
           JobStateEvent{JobState::kFailed, JobState::kMapping, "MAPPING: boom", "MAPPING",
                         "m-00003"},
           TaskAssignedEvent{head, true},
           TaskSpeculatedEvent{head, 1, "w1", 9000, 12000, 3000},
           TaskProgressEvent{head, 0.5},
           TaskCompletedEvent{head, {{"records", 3}}, 4000, false},
           TaskFailedEvent{head, "boom", {"line 1", "line 2"}},
           TaskFailedEvent{head, "worker w2 lost (heartbeat expired)", {}},
           TaskKilledEvent{head, "attempt 1 finished first"},
           WorkerBlacklistedEvent{"w2", 3}}) {
    events.push_back(JobEvent{1000 + seq, "job_x_0001", ++seq, detail});
  }
  return events;
}

TEST_CASE("a job's info survives the wire unchanged, failure and lists included") {
  JobInfo failed = SampleJob();
  CHECK(ThroughTheWire(failed) == failed);
  JobInfo running = SampleJob();
  running.state = JobState::kMapping;
  running.failure.reset();
  running.error.clear();
  CHECK(ThroughTheWire(running) == running);
  CHECK(running.ToValue().Find("failure") == nullptr);
}

TEST_CASE("a job's info lists its fields in the order PROTOCOL.md's JobInfo table has them") {
  std::vector<std::string> want = {
      "job_id",      "name",           "app",          "state",
      "error",       "failure",        "output",       "input_files",
      "input_bytes", "priority",       "speculation",  "submitted_ms",
      "started_ms",  "finished_ms",    "elapsed_ms",   "age_ms",
      "maps",        "reduces",        "map_progress", "reduce_progress",
      "waiting_for_workers",           "waiting",      "running_attempts",
      "speculative_attempts",          "backups_launched", "blacklisted_workers",
      "attempts",    "failed_attempts", "recent_failures", "counters",
      "last_seq"};
  Value v = SampleJob().ToValue();
  CHECK(Keys(v) == want);
  CHECK(Keys(*v.Find("maps")) == std::vector<std::string>{"total", "pending", "running", "done",
                                                          "failed"});
  CHECK(v.Find("map_progress")->is_double());
  CHECK(v.Find("reduce_progress")->is_double());
}

TEST_CASE("a job's info refuses wrongly typed fields, naming them") {
  const Value good = SampleJob().ToValue();
  CHECK(Refusal<JobInfo>(Replaced(good, "state", Value("DONE"))).find("'state'") !=
        std::string::npos);
  CHECK(Refusal<JobInfo>(Replaced(good, "maps", Value(3))).find("'maps'") != std::string::npos);
  CHECK(Refusal<JobInfo>(Replaced(good, "priority", Value("high"))).find("'priority'") !=
        std::string::npos);
  CHECK(Refusal<JobInfo>(Replaced(good, "attempts", Value(Array{Value(1)}))).find("'attempts'") !=
        std::string::npos);
  CHECK(Refusal<JobInfo>(Replaced(good, "failure", Value("x"))).find("'failure'") !=
        std::string::npos);
  Value bad_kind = good;
  Value failures = *good.Find("recent_failures");
  failures.as_array()[0].Set("kind", "combine");
  bad_kind.Set("recent_failures", failures);
  CHECK(Refusal<JobInfo>(bad_kind).find("'kind'") != std::string::npos);
  Value no_seq = good;
  std::erase_if(no_seq.as_map(), [](const auto& kv) { return kv.first == "last_seq"; });
  CHECK(Refusal<JobInfo>(no_seq).find("missing field 'last_seq'") != std::string::npos);
  CHECK_FALSE(Refusal<JobInfo>(Value(Array{})).empty());
}

TEST_CASE("a listed job keeps only its latest failure and the last two stderr lines of each") {
  JobInfo info = SampleJob();
  TrimForList(info);
  REQUIRE(info.recent_failures.size() == 1);
  CHECK(info.recent_failures[0].task_id == "r-00000");
  CHECK(info.failure->attempts[0].stderr_tail == std::vector<std::string>{"b", "c"});
  CHECK(info.failure->attempts[1].stderr_tail.empty());
  JobInfo one = SampleJob();
  one.recent_failures.erase(one.recent_failures.begin() + 1);
  TrimForList(one);
  CHECK(one.recent_failures[0].stderr_tail == std::vector<std::string>{"y", "z"});
}

TEST_CASE("task and worker infos survive the wire unchanged and refuse wrong types") {
  for (TaskState state :
       {TaskState::kPending, TaskState::kRunning, TaskState::kDone, TaskState::kFailed}) {
    TaskInfo t = SampleTask();
    t.state = state;
    CHECK(ThroughTheWire(t) == t);
    CHECK(ParseTaskState(TaskStateName(state)) == state);
  }
  CHECK(ThroughTheWire(SampleWorker()) == SampleWorker());
  const Value task = SampleTask().ToValue();
  CHECK(Refusal<TaskInfo>(Replaced(task, "state", Value("SLEEPING"))).find("'state'") !=
        std::string::npos);
  CHECK(Refusal<TaskInfo>(Replaced(task, "straggler", Value(1))).find("'straggler'") !=
        std::string::npos);
  const Value worker = SampleWorker().ToValue();
  CHECK(Refusal<WorkerInfo>(Replaced(worker, "cpu", Value("busy"))).find("'cpu'") !=
        std::string::npos);
  CHECK(Refusal<WorkerInfo>(Replaced(worker, "attempts", Value(Array{Value(1)})))
            .find("'attempts'") != std::string::npos);
  // Integral figures from another encoder are still numbers.
  std::string error;
  std::optional<WorkerInfo> w = WorkerInfo::FromValue(Replaced(worker, "cpu", Value(2)), &error);
  REQUIRE(w);
  CHECK(w->cpu == 2.0);
}

TEST_CASE("every job event survives the wire unchanged and is published on its topic") {
  for (const JobEvent& e : SampleJobEvents()) {
    CAPTURE(e.type());
    CHECK(ThroughTheWire(e) == e);
    CHECK(e.Topic() == std::string("job/job_x_0001/") + e.type());
    Value v = e.ToValue();
    CHECK(Keys(v)[0] == "type");
    CHECK(v.Find("type")->as_string() == e.type());
  }
}

TEST_CASE("job events carry the fields PROTOCOL.md lists, the optional ones only when due") {
  std::vector<JobEvent> events = SampleJobEvents();
  CHECK(Keys(events[0].ToValue()) ==
        std::vector<std::string>{"type", "ts_ms", "job_id", "seq", "state", "prev_state"});
  CHECK(events[0].ToValue().Find("prev_state")->as_string().empty());
  CHECK(Keys(events[1].ToValue()) ==
        std::vector<std::string>{"type", "ts_ms", "job_id", "seq", "state", "prev_state", "error",
                                 "stage", "task_id"});
  CHECK(Keys(events[3].ToValue()) ==
        std::vector<std::string>{"type", "ts_ms", "job_id", "seq", "task_id", "kind", "attempt",
                                 "worker", "original_attempt", "original_worker", "elapsed_ms",
                                 "estimated_ms", "typical_ms"});
  CHECK(events[6].ToValue().Find("stderr_tail") != nullptr);
  CHECK(events[7].ToValue().Find("stderr_tail") == nullptr);
  CHECK(Keys(events[9].ToValue()) ==
        std::vector<std::string>{"type", "ts_ms", "job_id", "seq", "worker", "failures"});
}

TEST_CASE("job events refuse an unknown type, a wrong kind and a missing seq") {
  const Value good = SampleJobEvents()[2].ToValue();
  CHECK(Refusal<JobEvent>(Replaced(good, "type", Value("task_exploded"))).find("task_exploded") !=
        std::string::npos);
  CHECK(Refusal<JobEvent>(Replaced(good, "kind", Value("shuffle"))).find("'kind'") !=
        std::string::npos);
  CHECK(Refusal<JobEvent>(Replaced(good, "seq", Value("1"))).find("'seq'") != std::string::npos);
  const Value state = SampleJobEvents()[1].ToValue();
  CHECK(Refusal<JobEvent>(Replaced(state, "prev_state", Value("NAPPING"))).find("'prev_state'") !=
        std::string::npos);
  CHECK_FALSE(Refusal<JobEvent>(Value("job_state")).empty());
}

TEST_CASE("worker and cluster events survive the wire unchanged") {
  WorkerEvent joined{5, "w1", WorkerJoinedEvent{"node1", 4}};
  WorkerEvent lost{6, "w1", WorkerLostEvent{"heartbeat expired"}};
  CHECK(ThroughTheWire(joined) == joined);
  CHECK(ThroughTheWire(lost) == lost);
  CHECK(joined.Topic() == "worker/w1/worker_joined");
  CHECK(lost.Topic() == "worker/w1/worker_lost");
  CHECK(Keys(joined.ToValue()) ==
        std::vector<std::string>{"type", "ts_ms", "worker", "host", "slots"});
  CHECK(Refusal<WorkerEvent>(Replaced(lost.ToValue(), "reason", Value(1))).find("'reason'") !=
        std::string::npos);
  CHECK(Refusal<WorkerEvent>(Replaced(lost.ToValue(), "type", Value("task_killed")))
            .find("task_killed") != std::string::npos);
  ClusterHeartbeatEvent beat{7, 1000, 2};
  CHECK(ThroughTheWire(beat) == beat);
  CHECK(Keys(beat.ToValue()) == std::vector<std::string>{"type", "ts_ms", "workers", "jobs"});
}

TEST_CASE("the replies that carry views survive the wire unchanged") {
  CHECK(ThroughTheWire(JobReply{SampleJob()}) == JobReply{SampleJob()});
  JobsReply jobs{{SampleJob(), SampleJob()}};
  jobs.jobs[1].job_id = "job_20261128023200_0002";
  CHECK(ThroughTheWire(jobs) == jobs);
  CHECK(ThroughTheWire(JobsReply{}) == JobsReply{});
  TasksReply tasks{"job_x_0001", {SampleTask(), SampleTask()}};
  CHECK(ThroughTheWire(tasks) == tasks);
  WorkersReply workers{{SampleWorker()}};
  CHECK(ThroughTheWire(workers) == workers);
  EventsReply events{"job_x_0001", {SampleJobEvents(), false, 12}};
  CHECK(ThroughTheWire(events) == events);
  CHECK(Keys(events.ToValue()) ==
        std::vector<std::string>{"events", "complete", "last_seq", "type", "job_id"});
  CHECK(Refusal<TasksReply>(Replaced(tasks.ToValue(), "tasks", Value(Map{})))
            .find("'tasks'") != std::string::npos);
  CHECK(Refusal<EventsReply>(Replaced(events.ToValue(), "complete", Value(0)))
            .find("'complete'") != std::string::npos);
}


// `v` without the fields `keys`.
Value Without(Value v, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    std::erase_if(v.as_map(), [key](const auto& kv) { return kv.first == key; });
  }
  return v;
}

TEST_CASE("read as clients read them, views take a missing field as its default") {
  std::string error;
  Value job = Without(SampleJob().ToValue(), {"priority", "attempts", "maps", "age_ms", "failure",
                                              "last_seq", "speculation"});
  CHECK_FALSE(JobInfo::FromValue(job, &error).has_value());
  std::optional<JobInfo> read = JobInfo::FromValue(job, &error, Missing::kDefault);
  REQUIRE_MESSAGE(read, error);
  JobInfo expected = SampleJob();
  expected.priority = 0;
  expected.attempts.clear();
  expected.maps = {};
  expected.age_ms = 0;
  expected.failure.reset();
  expected.last_seq = 0;
  expected.speculation = true;
  CHECK(*read == expected);
  // Nested maps too: a recent failure without its kind and time.
  Value failures = *job.Find("recent_failures");
  failures.as_array()[0] = Without(failures.as_array()[0], {"kind", "ts_ms"});
  job.Set("recent_failures", failures);
  read = JobInfo::FromValue(job, &error, Missing::kDefault);
  REQUIRE_MESSAGE(read, error);
  CHECK(read->recent_failures[0].kind == TaskKind::kMap);
  CHECK(read->recent_failures[0].ts_ms == 0);

  Value task = Without(SampleTask().ToValue(), {"state", "input_bytes", "straggler"});
  std::optional<TaskInfo> t = TaskInfo::FromValue(task, &error, Missing::kDefault);
  REQUIRE_MESSAGE(t, error);
  CHECK(t->state == TaskState::kPending);
  CHECK(t->input_bytes == 0);
  CHECK_FALSE(t->straggler);
  Value worker = Without(SampleWorker().ToValue(), {"cpu", "capacity"});
  std::optional<WorkerInfo> w = WorkerInfo::FromValue(worker, &error, Missing::kDefault);
  REQUIRE_MESSAGE(w, error);
  CHECK(w->cpu == -1);
  CHECK(w->capacity == WorkerInfo{}.capacity);

  Value event = Without(SampleJobEvents()[2].ToValue(), {"ts_ms", "speculative", "worker"});
  std::optional<JobEvent> e = JobEvent::FromValue(event, &error, Missing::kDefault);
  REQUIRE_MESSAGE(e, error);
  CHECK(e->seq == 3);
  CHECK(std::get<TaskAssignedEvent>(e->detail).task.worker.empty());
}

TEST_CASE("read as clients read them, views still refuse wrong types and need what is acted on") {
  const Value job = SampleJob().ToValue();
  std::string error;
  CHECK_FALSE(JobInfo::FromValue(Replaced(job, "priority", Value("high")), &error,
                                 Missing::kDefault));
  CHECK(error.find("'priority'") != std::string::npos);
  CHECK_FALSE(JobInfo::FromValue(Without(job, {"state"}), &error, Missing::kDefault));
  CHECK(error.find("'state'") != std::string::npos);
  CHECK_FALSE(JobInfo::FromValue(Replaced(job, "maps", Value(3)), &error, Missing::kDefault));
  CHECK_FALSE(JobInfo::FromValue(Value(Array{}), &error, Missing::kDefault));
  CHECK_FALSE(JobReply::FromValue(Value(Map{}), &error, Missing::kDefault));
  CHECK(error.find("'job'") != std::string::npos);
  CHECK_FALSE(JobReply::FromValue(Replaced(Value(Map{}), "job", Value()), &error,
                                  Missing::kDefault));
  const Value state = SampleJobEvents()[1].ToValue();
  CHECK_FALSE(JobEvent::FromValue(Without(state, {"state"}), &error, Missing::kDefault));
  CHECK_FALSE(JobEvent::FromValue(Without(state, {"type"}), &error, Missing::kDefault));
  CHECK_FALSE(JobEvent::FromValue(Replaced(state, "seq", Value("1")), &error, Missing::kDefault));
  EventsReply events{"job_x_0001", {SampleJobEvents(), true, 12}};
  CHECK_FALSE(EventsReply::FromValue(Without(events.ToValue(), {"complete"}), &error,
                                     Missing::kDefault));
  CHECK(error.find("'complete'") != std::string::npos);
  std::optional<EventsReply> kept =
      EventsReply::FromValue(Without(events.ToValue(), {"job_id", "last_seq"}), &error,
                             Missing::kDefault);
  REQUIRE_MESSAGE(kept, error);
  CHECK(kept->view.events == events.view.events);
  const Value worker = SampleWorker().ToValue();
  CHECK_FALSE(WorkerInfo::FromValue(Replaced(worker, "rss_kb", Value(1.5)), &error,
                                    Missing::kDefault));
}

}  // namespace
}  // namespace zmr
