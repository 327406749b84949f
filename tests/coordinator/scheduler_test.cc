// Drives the Scheduler with a fake clock (plain integers) and checks the actions it queues.
// Messages, events and views are checked in their wire form (ToValue), as peers receive them.
#include "coordinator/scheduler.h"

#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace zmr {
namespace {

// The wire type of a message to a worker.
std::string TypeOf(const ToWorker& to) { return MessageValue(to.message).Find("type")->as_string(); }

// The actions of one kind.
template <typename T>
std::vector<T> OfKind(const std::vector<Action>& out) {
  std::vector<T> result;
  for (const Action& a : out) {
    if (const T* t = std::get_if<T>(&a)) result.push_back(*t);
  }
  return result;
}

// Messages of a type sent to workers, as (worker key, body).
std::vector<std::pair<std::string, Value>> ToWorkers(const std::vector<Action>& out,
                                                     const std::string& type) {
  std::vector<std::pair<std::string, Value>> result;
  for (const ToWorker& o : OfKind<ToWorker>(out)) {
    if (TypeOf(o) == type) result.emplace_back(o.worker_key, MessageValue(o.message));
  }
  return result;
}

// A published event's topic and body.
std::pair<std::string, Value> Published(const Publish& p) {
  return std::visit([](const auto& e) { return std::make_pair(e.Topic(), e.ToValue()); },
                    p.event);
}

struct Harness {
  explicit Harness(SchedulerOptions o = {}) : s(o) {}

  Scheduler s;
  int64_t now = 1000000;
  std::vector<Action> log;  // everything ever queued, in order

  std::vector<Action> Take() {
    std::vector<Action> out = s.TakeActions();
    log.insert(log.end(), out.begin(), out.end());
    return out;
  }

  // The views, as a client receives them.
  std::optional<Value> JobInfo(const std::string& job_id, int64_t at) {
    std::optional<zmr::JobInfo> info = s.GetJobInfo(job_id, at);
    return info ? std::optional<Value>(info->ToValue()) : std::nullopt;
  }
  std::optional<Value> TaskList(const std::string& job_id, int64_t at) {
    std::optional<std::vector<TaskInfo>> tasks = s.ListTasks(job_id, at);
    if (!tasks) return std::nullopt;
    return *TasksReply{job_id, *tasks}.ToValue().Find("tasks");
  }
  Value JobList(int64_t at, Scheduler::Finished finished) {
    return *JobsReply{s.ListJobs(at, finished)}.ToValue().Find("jobs");
  }
  Value WorkerList(int64_t at) { return *WorkersReply{s.ListWorkers(at)}.ToValue().Find("workers"); }
  std::optional<Value> JobEvents(const std::string& job_id, int64_t after_seq) {
    std::optional<JobEventsView> view = s.EventsAfter(job_id, after_seq);
    return view ? std::optional<Value>(EventsReply{job_id, *view}.ToValue()) : std::nullopt;
  }

  void Ready(const std::string& key, const std::string& name, int64_t slots, int64_t queue = 0) {
    ReadyMsg r;
    r.name = name;
    r.host = "test";
    r.pid = 1;
    r.slots = slots;
    r.queue = queue;
    s.WorkerReady(key, r, now);
  }

  std::string Submit(int maps, int reduces, JobSpec spec = {}) {
    spec.app = "wordcount";
    spec.output_dir = "/tmp/out";
    spec.num_reduces = reduces;
    for (int i = 0; i < maps; ++i) spec.splits.push_back({{"/in/f", i * 10, i * 10 + 10}});
    return s.AddJob(spec, now);
  }

  // Assignments queued since the last Take(), as (worker key, message).
  std::vector<std::pair<std::string, AssignMsg>> Assigns(const std::vector<Action>& out) {
    std::vector<std::pair<std::string, AssignMsg>> result;
    for (const auto& [key, body] : ToWorkers(out, msg::kAssign)) {
      std::string error;
      std::optional<AssignMsg> a = AssignMsg::FromValue(body, &error);
      REQUIRE(a);
      result.emplace_back(key, *a);
    }
    return result;
  }

  void Done(const std::string& key, const AssignMsg& a, int64_t reduces) {
    TaskDoneMsg d;
    d.ref = {a.job_id, a.task_id, a.attempt};
    if (a.kind == TaskKind::kMap && reduces > 0) {
      for (int64_t p = 0; p < reduces; ++p) {
        d.outputs.push_back({p, "/w/" + a.task_id + "/" + std::to_string(p), 10, 1});
      }
    } else {
      // Reduces and map-only maps report their finished part file under _temporary.
      d.outputs.push_back({a.partition,
                           "/tmp/out/_temporary/" + a.task_id + ".a" + std::to_string(a.attempt) +
                               "/part",
                           10, 1});
    }
    d.counters["records"] = 1;
    s.TaskDone(key, d, now);
  }

  void Progress(const std::string& key, const AssignMsg& a, double progress) {
    TaskProgressMsg p;
    p.ref = {a.job_id, a.task_id, a.attempt};
    p.progress = progress;
    s.TaskProgress(key, p, now);
  }

  void Fail(const std::string& key, const AssignMsg& a, const std::string& error) {
    TaskFailedMsg f;
    f.ref = {a.job_id, a.task_id, a.attempt};
    f.error = error;
    s.TaskFailed(key, f, now);
  }

  // A heartbeat carrying load figures.
  void Load(const std::string& key, double host_cpu, double cpu, int64_t cores) {
    HeartbeatMsg hb;
    hb.host_cpu = host_cpu;
    hb.cpu = cpu;
    hb.cores = cores;
    s.WorkerHeartbeat(key, hb, now);
  }

  // Published events of a type (e.g. "task_speculated"), in order.
  std::vector<Value> Events(const std::string& type) {
    std::vector<Value> events;
    for (const Publish& p : OfKind<Publish>(log)) {
      Value body = Published(p).second;
      if (body.Find("type") != nullptr && body.Find("type")->as_string() == type) {
        events.push_back(body);
      }
    }
    return events;
  }

  std::string State(const std::string& job_id) {
    return JobInfo(job_id, now)->Find("state")->as_string();
  }

  // seq values of every event of a job, in publish order.
  std::vector<int64_t> Seqs(const std::string& job_id) {
    std::vector<int64_t> seqs;
    for (const Publish& p : OfKind<Publish>(log)) {
      auto [topic, body] = Published(p);
      if (topic.rfind("job/" + job_id + "/", 0) == 0) seqs.push_back(body.Find("seq")->as_int());
    }
    return seqs;
  }

  int CountPublished(const std::string& topic_suffix) {
    int n = 0;
    for (const Publish& p : OfKind<Publish>(log)) {
      const std::string topic = Published(p).first;
      if (topic.size() >= topic_suffix.size() &&
          topic.compare(topic.size() - topic_suffix.size(), topic_suffix.size(), topic_suffix) ==
              0) {
        ++n;
      }
    }
    return n;
  }
};

TEST_CASE("tasks are assigned to free slots and never beyond a worker's slots") {
  Harness h;
  h.Ready("k1", "w1", 1);
  h.Ready("k2", "w2", 2);
  h.Take();
  std::string job = h.Submit(5, 1);
  h.s.Tick(h.now);
  auto assigns = h.Assigns(h.Take());
  REQUIRE(assigns.size() == 3);
  std::map<std::string, int> per_worker;
  for (auto& [key, a] : assigns) ++per_worker[key];
  CHECK(per_worker["k1"] == 1);
  CHECK(per_worker["k2"] == 2);
  CHECK(h.State(job) == "MAPPING");
  // Nothing more until a slot frees up.
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).empty());
  h.Done(assigns[0].first, assigns[0].second, 1);
  h.s.Tick(h.now);
  auto next = h.Assigns(h.Take());
  REQUIRE(next.size() == 1);
  CHECK(next[0].first == assigns[0].first);
}

// Runs a job of `maps` maps (1 reduce) on worker k1 (1 slot, queue 1), each attempt taking
// task_ms from its assignment to its done, the oldest outstanding attempt finishing first (as
// the worker runs them). Returns the most attempts k1 held at once in each round: one entry per
// map done.
std::vector<int> OutstandingPerRound(int maps, int64_t task_ms) {
  Harness h;
  h.Ready("k1", "w1", 1, /*queue=*/1);
  h.Submit(maps, 1);
  std::deque<AssignMsg> outstanding;
  std::vector<int> rounds;
  h.s.Tick(h.now);
  for (int done = 0; done < maps; ++done) {
    for (auto& [key, a] : h.Assigns(h.Take())) {
      CHECK(key == "k1");
      if (a.kind == TaskKind::kMap) outstanding.push_back(a);
    }
    rounds.push_back(static_cast<int>(outstanding.size()));
    REQUIRE_FALSE(outstanding.empty());
    h.now += task_ms;
    h.Done("k1", outstanding.front(), 1);
    outstanding.pop_front();
    h.s.Tick(h.now);
  }
  return rounds;
}

TEST_CASE("a worker's queue gets short tasks beyond its slots once a few of the phase are done") {
  std::vector<int> rounds = OutstandingPerRound(12, 5);
  REQUIRE(rounds.size() == 12);
  // Until kQueueMinDone maps are done the phase's task time is unknown: one attempt at a time.
  for (int i = 0; i < kQueueMinDone; ++i) CHECK(rounds[i] == 1);
  // Then slots + queue are filled, never more, until the phase runs out of maps.
  for (int i = kQueueMinDone; i < 11; ++i) CHECK(rounds[i] == 2);
  CHECK(rounds[11] == 1);
}

TEST_CASE("tasks longer than the queueing limit wait for a free slot") {
  std::vector<int> rounds = OutstandingPerRound(8, kQueueTaskMaxMs + 1);
  for (int n : rounds) CHECK(n == 1);
}

TEST_CASE("a job advances MAPPING to REDUCING to COMPLETED with gapless event seq") {
  Harness h;
  h.Ready("k1", "w1", 4);
  std::string job = h.Submit(3, 2);
  CHECK(h.State(job) == "SUBMITTED");
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  REQUIRE(maps.size() == 3);
  CHECK(h.State(job) == "MAPPING");
  for (auto& [key, a] : maps) h.Done(key, a, 2);
  CHECK(h.State(job) == "REDUCING");
  h.s.Tick(h.now);
  auto reduces = h.Assigns(h.Take());
  REQUIRE(reduces.size() == 2);
  for (auto& [key, a] : reduces) {
    CHECK(a.kind == TaskKind::kReduce);
    // The reduce reads its partition from every map output.
    REQUIRE(a.inputs.size() == 3);
    for (const std::string& loc : a.inputs) {
      CHECK(loc.substr(loc.size() - 2) == "/" + std::to_string(a.partition));
    }
  }
  h.Done(reduces[0].first, reduces[0].second, 2);
  CHECK(h.State(job) == "REDUCING");
  h.Done(reduces[1].first, reduces[1].second, 2);
  auto out = h.Take();
  bool commit = false;
  for (const CommitJob& o : OfKind<CommitJob>(out)) commit |= o.job_id == job;
  REQUIRE(commit);
  h.s.JobCommitted(job, true, "", h.now);
  h.Take();
  CHECK(h.State(job) == "COMPLETED");
  auto info = *h.JobInfo(job, h.now);
  CHECK(info.Find("counters")->Find("records")->as_int() == 5);
  std::vector<int64_t> seqs = h.Seqs(job);
  REQUIRE(!seqs.empty());
  for (std::size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i] == static_cast<int64_t>(i + 1));
}

TEST_CASE("a worker silent for liveness intervals loses its tasks to the queue") {
  SchedulerOptions o;
  o.heartbeat_ms = 1000;
  o.liveness = 3;
  Harness h(o);
  h.Ready("k1", "w1", 2);
  std::string job = h.Submit(2, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 2);
  h.Ready("k2", "w2", 2);
  // w2 keeps heartbeating, w1 goes silent.
  for (int i = 0; i < 3; ++i) {
    h.now += 1000;
    h.s.WorkerHeartbeat("k2", HeartbeatMsg{}, h.now);
    h.s.Tick(h.now);
    CHECK(h.s.IsRegistered("k1"));
  }
  h.now += 1000;
  h.s.WorkerHeartbeat("k2", HeartbeatMsg{}, h.now);
  h.s.Tick(h.now);
  CHECK_FALSE(h.s.IsRegistered("k1"));
  auto again = h.Assigns(h.Take());
  REQUIRE(again.size() == 2);
  for (auto& [key, a] : again) {
    CHECK(key == "k2");
    CHECK(a.attempt == 2);
  }
  CHECK(h.CountPublished("/worker_lost") == 1);
  // A late result from the lost registration is ignored.
  h.Done("k1", first[0].second, 1);
  CHECK(h.JobInfo(job, h.now)->Find("maps")->Find("done")->as_int() == 0);
}

TEST_CASE("counters add up over accepted attempts only, never failed or stale ones") {
  Harness h;
  h.Ready("k1", "w1", 1);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 1);
  TaskFailedMsg f;
  f.ref = {job, "m-00000", 1};
  f.error = "boom";
  h.s.TaskFailed("k1", f, h.now);
  h.s.Tick(h.now);
  auto second = h.Assigns(h.Take());
  REQUIRE(second.size() == 1);
  h.Done("k1", first[0].second, 1);   // the failed attempt reporting success later: ignored
  h.Done("k1", second[0].second, 1);  // accepted
  h.Done("k1", second[0].second, 1);  // duplicate: ignored
  CHECK(h.JobInfo(job, h.now)->Find("counters")->Find("records")->as_int() == 1);
}

TEST_CASE("results from a replaced registration of the same worker name are ignored") {
  Harness h;
  h.Ready("old", "w1", 1);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 1);
  h.Ready("new", "w1", 1);  // the worker reconnected with a new socket
  CHECK_FALSE(h.s.IsRegistered("old"));
  h.s.Tick(h.now);
  auto second = h.Assigns(h.Take());
  REQUIRE(second.size() == 1);
  CHECK(second[0].first == "new");
  CHECK(second[0].second.attempt == 2);
  h.Done("old", first[0].second, 1);  // stale attempt 1
  CHECK(h.State(job) == "MAPPING");
  h.Done("new", first[0].second, 1);  // right worker, wrong attempt
  CHECK(h.State(job) == "MAPPING");
  h.Done("new", second[0].second, 1);
  CHECK(h.State(job) == "REDUCING");
}

TEST_CASE("a job stays SUBMITTED without workers and starts when one joins") {
  Harness h;
  std::string job = h.Submit(2, 1);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).empty());
  CHECK(h.State(job) == "SUBMITTED");
  CHECK(h.JobInfo(job, h.now)->Find("waiting_for_workers")->as_bool());
  h.Ready("k1", "w1", 2);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).size() == 2);
  CHECK(h.State(job) == "MAPPING");
}

TEST_CASE("a task that fails max-attempts times fails its job with the task named") {
  SchedulerOptions o;
  o.max_attempts = 3;
  Harness h(o);
  h.Ready("k1", "w1", 1);
  h.Ready("k2", "w2", 1);
  std::string job = h.Submit(1, 1);
  std::string last_worker;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    h.s.Tick(h.now);
    auto a = h.Assigns(h.Take());
    REQUIRE(a.size() == 1);
    CHECK(a[0].second.attempt == attempt);
    // A retry prefers a worker other than the one that just failed.
    if (!last_worker.empty()) CHECK(a[0].first != last_worker);
    last_worker = a[0].first;
    TaskFailedMsg f;
    f.ref = {job, a[0].second.task_id, a[0].second.attempt};
    f.error = "boom " + std::to_string(attempt);
    h.s.TaskFailed(a[0].first, f, h.now);
  }
  CHECK(h.State(job) == "FAILED");
  std::string error = h.JobInfo(job, h.now)->Find("error")->as_string();
  CHECK(error.find("m-00000") != std::string::npos);
  // Every attempt's worker and error is named.
  CHECK(error.find("attempt 1 on w") != std::string::npos);
  CHECK(error.find("boom 1") != std::string::npos);
  CHECK(error.find("boom 2") != std::string::npos);
  CHECK(error.find("boom 3") != std::string::npos);
  bool abort = false;
  abort = !OfKind<AbortJob>(h.Take()).empty();
  CHECK(abort);
}

TEST_CASE("cancelling a job stops its running attempts and a finished job is left alone") {
  Harness h;
  h.Ready("k1", "w1", 2);
  std::string job = h.Submit(3, 1);
  h.s.Tick(h.now);
  auto running = h.Assigns(h.Take());
  REQUIRE(running.size() == 2);
  auto result = h.s.CancelJob(job, h.now);
  REQUIRE(result);
  CHECK(result->changed);
  CHECK(result->state == JobState::kCancelled);
  int cancels = static_cast<int>(ToWorkers(h.Take(), msg::kCancel).size());
  CHECK(cancels == 2);
  // The third task is never assigned, and the slots are free for other jobs.
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).empty());
  std::string other = h.Submit(1, 1);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).size() == 1);
  auto again = h.s.CancelJob(job, h.now);
  REQUIRE(again);
  CHECK_FALSE(again->changed);
  CHECK_FALSE(h.s.CancelJob("job_nope", h.now));
  CHECK(h.State(other) == "MAPPING");
}

TEST_CASE("a worker speaking another protocol version is refused and not registered") {
  Harness h;
  ReadyMsg r;
  r.proto = kProtocolVersion + 1;
  r.name = "w1";
  r.slots = 1;
  h.s.WorkerReady("k1", r, h.now);
  auto out = h.Take();
  REQUIRE(out.size() == 1);
  CHECK(TypeOf(std::get<ToWorker>(out[0])) == msg::kRefused);
  CHECK_FALSE(h.s.IsRegistered("k1"));
}

TEST_CASE("a map result missing partitions fails that attempt instead of completing it") {
  Harness h;
  h.Ready("k1", "w1", 1);
  std::string job = h.Submit(1, 3);
  h.s.Tick(h.now);
  auto a = h.Assigns(h.Take());
  REQUIRE(a.size() == 1);
  TaskDoneMsg d;
  d.ref = {job, a[0].second.task_id, 1};
  d.outputs.push_back({0, "/x", 1, 1});
  h.s.TaskDone("k1", d, h.now);
  CHECK(h.JobInfo(job, h.now)->Find("maps")->Find("done")->as_int() == 0);
  h.s.Tick(h.now);
  auto retry = h.Assigns(h.Take());
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].second.attempt == 2);
}

TEST_CASE("the first finished reduce attempt is committed and a later finisher is ignored") {
  Harness h;
  h.Ready("k1", "w1", 2);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  h.Done(maps[0].first, maps[0].second, 1);
  h.s.Tick(h.now);
  auto reduces = h.Assigns(h.Take());
  REQUIRE(reduces.size() == 1);
  h.Done(reduces[0].first, reduces[0].second, 1);
  auto out = h.Take();
  auto commits = OfKind<CommitTask>(out);
  REQUIRE(commits.size() == 1);
  CHECK(commits[0].to == "/tmp/out/part-00000");
  CHECK(commits[0].from.find("/tmp/out/_temporary/r-00000.a1/") == 0);
  CHECK(OfKind<CommitJob>(out).size() == 1);
  // The same attempt reporting again commits nothing more and is not counted twice.
  h.Done(reduces[0].first, reduces[0].second, 1);
  CHECK(OfKind<CommitTask>(h.Take()).empty());
  CHECK(h.JobInfo(job, h.now)->Find("counters")->Find("records")->as_int() == 2);
}

TEST_CASE("a map-only job commits one part file per map and never creates reduces") {
  Harness h;
  h.Ready("k1", "w1", 3);
  std::string job = h.Submit(3, 0);
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  REQUIRE(maps.size() == 3);
  for (auto& [key, a] : maps) {
    CHECK(a.num_reduces == 0);
    h.Done(key, a, 0);
  }
  auto out = h.Take();
  auto commits = OfKind<CommitTask>(out);
  REQUIRE(commits.size() == 3);
  std::set<std::string> targets;
  for (const CommitTask& c : commits) targets.insert(c.to);
  CHECK(targets == std::set<std::string>{"/tmp/out/part-00000", "/tmp/out/part-00001",
                                         "/tmp/out/part-00002"});
  CHECK(OfKind<CommitJob>(out).size() == 1);
  h.s.JobCommitted(job, true, "", h.now);
  CHECK(h.State(job) == "COMPLETED");
  CHECK(h.JobInfo(job, h.now)->Find("reduces")->Find("total")->as_int() == 0);
}

TEST_CASE("a reduce that finds corrupt map output re-runs that map without counting a failure") {
  SchedulerOptions o;
  o.max_attempts = 1;  // one counted failure would fail the job
  Harness h(o);
  h.Ready("k1", "w1", 2);
  std::string job = h.Submit(2, 1);
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  for (auto& [key, a] : maps) h.Done(key, a, 1);
  h.s.Tick(h.now);
  auto reduces = h.Assigns(h.Take());
  REQUIRE(reduces.size() == 1);
  REQUIRE(reduces[0].second.inputs.size() == 2);
  std::string bad = reduces[0].second.inputs[1];
  TaskFailedMsg f;
  f.ref = {job, "r-00000", 1};
  f.error = "corrupt intermediate file " + bad;
  f.bad_inputs = {bad};
  h.s.TaskFailed("k1", f, h.now);
  CHECK(h.State(job) == "REDUCING");
  h.s.Tick(h.now);
  auto rerun = h.Assigns(h.Take());
  // Only the map that produced the bad file runs again; the reduce waits for it.
  REQUIRE(rerun.size() == 1);
  CHECK(rerun[0].second.kind == TaskKind::kMap);
  CHECK(rerun[0].second.task_id == "m-00001");
  CHECK(rerun[0].second.attempt == 2);
  h.Done(rerun[0].first, rerun[0].second, 1);
  h.s.Tick(h.now);
  auto again = h.Assigns(h.Take());
  REQUIRE(again.size() == 1);
  CHECK(again[0].second.kind == TaskKind::kReduce);
  CHECK(again[0].second.attempt == 2);
  h.Done(again[0].first, again[0].second, 1);
  h.Take();
  h.s.JobCommitted(job, true, "", h.now);
  CHECK(h.State(job) == "COMPLETED");
}

TEST_CASE("shipped files go to a worker once, before its first attempt of the job") {
  Harness h;
  h.Ready("k1", "w1", 2);
  h.Take();  // the welcome
  JobSpec spec;
  spec.code.files.push_back({"map.py", "abc", 0755});
  spec.blobs["abc"] = "print(1)";
  std::string job = h.Submit(3, 1, spec);
  h.s.Tick(h.now);
  auto out = h.Take();
  std::vector<std::string> types;
  for (const ToWorker& o : OfKind<ToWorker>(out)) types.push_back(TypeOf(o));
  REQUIRE(types.size() == 3);
  CHECK(types[0] == "job_files");
  CHECK(types[1] == "assign");
  CHECK(types[2] == "assign");
  auto assigns = h.Assigns(out);
  CHECK(assigns[0].second.code.files.size() == 1);
  // A fresh registration of the same worker gets the files again.
  h.Ready("k2", "w1", 2);
  h.s.Tick(h.now);
  auto again = h.Take();
  int job_files = static_cast<int>(ToWorkers(again, "job_files").size());
  CHECK(job_files == 1);
}

TEST_CASE("a job's own max attempts overrides the coordinator default") {
  Harness h;  // default 4
  h.Ready("k1", "w1", 1);
  JobSpec spec;
  spec.max_attempts = 2;
  std::string job = h.Submit(1, 1, spec);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    h.s.Tick(h.now);
    auto a = h.Assigns(h.Take());
    REQUIRE(a.size() == 1);
    TaskFailedMsg f;
    f.ref = {job, a[0].second.task_id, a[0].second.attempt};
    f.error = "exit 1";
    h.s.TaskFailed(a[0].first, f, h.now);
  }
  CHECK(h.State(job) == "FAILED");
}


TEST_CASE("a higher-priority job gets free slots before an older job of lower priority") {
  Harness h;
  JobSpec low;
  std::string old_job = h.Submit(3, 1, low);
  JobSpec high;
  high.priority = 5;
  std::string urgent = h.Submit(3, 1, high);
  h.Ready("k1", "w1", 2);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 2);
  for (auto& [key, a] : first) CHECK(a.job_id == urgent);
  // Within the job, tasks go in order.
  CHECK(first[0].second.task_id == "m-00000");
  CHECK(first[1].second.task_id == "m-00001");
  h.Done(first[0].first, first[0].second, 1);
  h.s.Tick(h.now);
  auto next = h.Assigns(h.Take());
  REQUIRE(next.size() == 1);
  CHECK(next[0].second.job_id == urgent);
  CHECK(next[0].second.task_id == "m-00002");
  // Only when the urgent job has nothing pending does the older one run.
  h.Done(first[1].first, first[1].second, 1);
  h.s.Tick(h.now);
  auto later = h.Assigns(h.Take());
  REQUIRE(later.size() == 1);
  CHECK(later[0].second.job_id == old_job);
}

TEST_CASE("at equal priority a freed slot goes to the job with the fewest running tasks") {
  Harness h;
  h.Ready("k1", "w1", 4);
  std::string long_job = h.Submit(20, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 4);
  std::string short_job = h.Submit(2, 1);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).empty());  // no free slot yet
  // Two slots free up: the short job (0 running) gets both, not the older long job (2 running).
  h.Done(first[0].first, first[0].second, 1);
  h.Done(first[1].first, first[1].second, 1);
  h.s.Tick(h.now);
  auto freed = h.Assigns(h.Take());
  REQUIRE(freed.size() == 2);
  CHECK(freed[0].second.job_id == short_job);
  // With one running it still has fewer than the long job's two: the second slot too.
  CHECK(freed[1].second.job_id == short_job);
  // The short job has nothing left to start: freed slots go back to the long job.
  h.Done(first[2].first, first[2].second, 1);
  h.Done(freed[0].first, freed[0].second, 1);
  h.s.Tick(h.now);
  auto tie = h.Assigns(h.Take());
  REQUIRE(tie.size() == 2);
  CHECK(tie[0].second.job_id == long_job);
  CHECK(tie[1].second.job_id == long_job);  // the short job has nothing pending
}

TEST_CASE("placement prefers the less loaded worker and never exceeds slots") {
  Harness h;
  h.Ready("busy", "w-busy", 2);
  h.Ready("idle", "w-idle", 2);
  h.Load("busy", 0.8, 0.5, 4);
  h.Load("idle", 0.1, 0.1, 4);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto one = h.Assigns(h.Take());
  REQUIRE(one.size() == 1);
  CHECK(one[0].first == "idle");
  // A somewhat busier host with an empty slot beats a calmer one that is half full.
  h.Load("busy", 0.3, 0.1, 4);
  h.Load("idle", 0.3, 0.1, 4);
  std::string job2 = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto two = h.Assigns(h.Take());
  REQUIRE(two.size() == 1);
  CHECK(two[0].first == "busy");
  // Plenty of work: exactly the 4 slots are used, whatever the load says.
  h.Submit(10, 1);
  h.s.Tick(h.now);
  auto rest = h.Assigns(h.Take());
  CHECK(rest.size() == 2);
  std::map<std::string, int> running;
  Value list = h.WorkerList(h.now);
  for (const Value& w : list.as_array()) {
    running[w.Find("name")->as_string()] = static_cast<int>(w.Find("running")->as_int());
  }
  CHECK(running["w-busy"] == 2);
  CHECK(running["w-idle"] == 2);
  (void)job;
  (void)job2;
}

TEST_CASE("a worker whose host stays saturated by other processes is given fewer attempts") {
  Harness h;
  h.Ready("k1", "w1", 4);
  // A 4-core host, 100% busy, of which the worker and its attempts use half a core: 3.5 cores
  // are taken by something else. One such heartbeat is not enough to call it saturated.
  h.Load("k1", 1.0, 0.5, 4);
  Value list = h.WorkerList(h.now);
  CHECK_FALSE(list.as_array()[0].Find("saturated")->as_bool());
  h.Load("k1", 1.0, 0.5, 4);
  h.Load("k1", 1.0, 0.5, 4);
  Value w = h.WorkerList(h.now).as_array()[0];
  CHECK(w.Find("saturated")->as_bool());
  CHECK(w.Find("capacity")->as_int() == 1);
  std::string job = h.Submit(8, 1);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).size() == 1);
  // The other load goes away: the worker gets its slots back.
  h.Load("k1", 0.1, 0.1, 4);
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).size() == 3);
  list = h.WorkerList(h.now);
  CHECK(list.as_array()[0].Find("capacity")->as_int() == 4);
  (void)job;
}

TEST_CASE("a worker that says goodbye has its attempts re-queued at once onto another worker") {
  Harness h;
  h.Ready("k1", "w1", 2);
  std::string job = h.Submit(2, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 2);
  h.Ready("k2", "w2", 2);
  h.s.WorkerDisconnected("k1", h.now);  // no time passes
  h.s.Tick(h.now);
  auto again = h.Assigns(h.Take());
  REQUIRE(again.size() == 2);
  for (auto& [key, a] : again) {
    CHECK(key == "k2");
    CHECK(a.attempt == 2);
  }
  // Neither the lost attempts nor the worker's loss count as task failures.
  Value info = *h.JobInfo(job, h.now);
  CHECK(info.Find("maps")->Find("failed")->as_int() == 0);
  CHECK(h.Events("task_failed").size() == 2);
  CHECK(h.Events("worker_blacklisted").empty());
}

TEST_CASE("a worker that failed three attempts of a job gets no more of its tasks") {
  Harness h;
  h.Ready("k1", "w1", 1);
  h.Ready("k2", "w2", 1);
  std::string job = h.Submit(6, 1);
  // w1 fails every attempt it gets until it is blacklisted; w2 holds on to its first task.
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 2);
  AssignMsg held;
  std::string current_key;
  AssignMsg current;
  for (auto& [key, a] : first) {
    if (key == "k2") held = a;
    if (key == "k1") current = a;
  }
  REQUIRE(!held.task_id.empty());
  REQUIRE(!current.task_id.empty());
  for (int i = 0; i < 3; ++i) {
    h.Fail("k1", current, "boom");
    h.s.Tick(h.now);
    auto next = h.Assigns(h.Take());
    if (i < 2) {
      // w2 is busy, so w1 gets work again (a retry elsewhere is only preferred).
      REQUIRE(next.size() == 1);
      CHECK(next[0].first == "k1");
      current = next[0].second;
    } else {
      CHECK(next.empty());  // blacklisted: the free slot on w1 stays empty
    }
  }
  auto listed = h.Events("worker_blacklisted");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].Find("worker")->as_string() == "w1");
  Value info = *h.JobInfo(job, h.now);
  REQUIRE(info.Find("blacklisted_workers")->as_array().size() == 1);
  CHECK(info.Find("state")->as_string() == "MAPPING");
  // Another job may still use w1.
  std::string other = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto others = h.Assigns(h.Take());
  REQUIRE(others.size() == 1);
  CHECK(others[0].first == "k1");
  CHECK(others[0].second.job_id == other);
  h.Done("k1", others[0].second, 1);
  // w2 goes away: w1 is the only worker left, so the blacklist no longer holds it back.
  h.s.WorkerDisconnected("k2", h.now);
  h.s.Tick(h.now);
  auto last = h.Assigns(h.Take());
  REQUIRE(last.size() == 1);
  CHECK(last[0].first == "k1");
  CHECK(last[0].second.job_id == job);
}

// Four single-slot workers and a job of four maps that all start at once; the fourth worker's
// map reports `slow_progress` when the others finish after one second.
struct SpeculationSetup {
  Harness h;
  std::string job;
  std::vector<std::pair<std::string, AssignMsg>> maps;
  std::pair<std::string, AssignMsg> slow;

  explicit SpeculationSetup(double slow_progress, JobSpec spec = {}) {
    for (int i = 1; i <= 4; ++i) h.Ready("k" + std::to_string(i), "w" + std::to_string(i), 1);
    job = h.Submit(4, 1, spec);
    h.s.Tick(h.now);
    maps = h.Assigns(h.Take());
    REQUIRE(maps.size() == 4);
    h.now += 500;
    for (auto& [key, a] : maps) h.Progress(key, a, 0.5);
    h.now += 500;
    for (std::size_t i = 0; i < 3; ++i) h.Done(maps[i].first, maps[i].second, 1);
    slow = maps[3];
    h.Progress(slow.first, slow.second, slow_progress);
  }
};

TEST_CASE("a clearly slow map gets one backup on another worker and the first finisher wins") {
  SpeculationSetup setup(0.1);  // 10% in one second: about ten seconds in all
  Harness& h = setup.h;
  h.s.Tick(h.now);
  auto out = h.Take();
  auto backups = h.Assigns(out);
  REQUIRE(backups.size() == 1);
  CHECK(backups[0].first != setup.slow.first);
  CHECK(backups[0].second.task_id == setup.slow.second.task_id);
  CHECK(backups[0].second.attempt == 2);
  auto speculated = h.Events("task_speculated");
  REQUIRE(speculated.size() == 1);
  CHECK(speculated[0].Find("original_worker")->as_string() == "w4");
  CHECK(speculated[0].Find("attempt")->as_int() == 2);
  CHECK(h.JobInfo(setup.job, h.now)->Find("speculative_attempts")->as_int() == 1);
  // More ticks launch nothing more: one backup per task.
  h.now += 1000;
  h.s.Tick(h.now);
  CHECK(h.Assigns(h.Take()).empty());
  // The backup finishes first: the original is killed, its late result ignored.
  h.Done(backups[0].first, backups[0].second, 1);
  auto after = h.Take();
  auto cancels = ToWorkers(after, msg::kCancel);
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].first == setup.slow.first);
  CHECK(cancels[0].second.Find("attempt")->as_int() == 1);
  REQUIRE(h.Events("task_killed").size() == 1);
  CHECK(h.State(setup.job) == "REDUCING");
  h.Done(setup.slow.first, setup.slow.second, 1);
  Value info = *h.JobInfo(setup.job, h.now);
  CHECK(info.Find("counters")->Find("records")->as_int() == 4);
  CHECK(info.Find("running_attempts")->as_int() == 0);
}

TEST_CASE("tasks progressing evenly get no backup attempts") {
  SpeculationSetup setup(0.9);  // a little behind the others, nowhere near twice as slow
  Harness& h = setup.h;
  for (int i = 0; i < 20; ++i) {
    h.now += 50;
    h.s.Tick(h.now);
    CHECK(h.Assigns(h.Take()).empty());
  }
  h.Done(setup.slow.first, setup.slow.second, 1);
  CHECK(h.Events("task_speculated").empty());
  CHECK(h.State(setup.job) == "REDUCING");
}

TEST_CASE("a job submitted without speculation never gets backups") {
  JobSpec spec;
  spec.speculation = false;
  SpeculationSetup setup(0.01, spec);
  Harness& h = setup.h;
  for (int i = 0; i < 10; ++i) {
    h.now += 1000;
    h.s.Tick(h.now);
    CHECK(h.Assigns(h.Take()).empty());
  }
  CHECK(h.Events("task_speculated").empty());
}

TEST_CASE("no backup is launched while other work is waiting for slots") {
  SpeculationSetup setup(0.1);
  Harness& h = setup.h;
  // A second job fills the three free slots (and has more waiting): no speculation.
  std::string other = h.Submit(5, 1);
  h.s.Tick(h.now);
  auto assigns = h.Assigns(h.Take());
  CHECK(assigns.size() == 3);
  for (auto& [key, a] : assigns) CHECK(a.job_id == other);
  CHECK(h.Events("task_speculated").empty());
}

TEST_CASE("concurrent backups are capped at a tenth of the job's running tasks") {
  Harness h;
  for (int i = 0; i < 40; ++i) h.Ready("k" + std::to_string(i), "w" + std::to_string(i), 1);
  std::string job = h.Submit(30, 1);
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  REQUIRE(maps.size() == 30);
  h.now += 1000;
  for (std::size_t i = 0; i < 10; ++i) h.Done(maps[i].first, maps[i].second, 1);
  for (std::size_t i = 10; i < 30; ++i) h.Progress(maps[i].first, maps[i].second, 0.05);
  // 20 stragglers, 20 free slots: at most max(1, 20 / 10) = 2 backups at a time.
  for (int i = 0; i < 5; ++i) {
    h.now += 300;
    h.s.Tick(h.now);
  }
  auto backups = h.Assigns(h.Take());
  CHECK(backups.size() == 2);
  CHECK(h.Events("task_speculated").size() == 2);
  CHECK(h.JobInfo(job, h.now)->Find("speculative_attempts")->as_int() == 2);
}

TEST_CASE("cancelling a job kills every running attempt, backups included") {
  SpeculationSetup setup(0.1);
  Harness& h = setup.h;
  h.s.Tick(h.now);
  REQUIRE(h.Assigns(h.Take()).size() == 1);  // the backup
  auto result = h.s.CancelJob(setup.job, h.now);
  REQUIRE(result);
  CHECK(result->changed);
  auto out = h.Take();
  auto cancels = ToWorkers(out, msg::kCancel);
  CHECK(cancels.size() == 2);
  std::set<int64_t> attempts;
  for (auto& [key, body] : cancels) attempts.insert(body.Find("attempt")->as_int());
  CHECK(attempts == std::set<int64_t>{1, 2});
  CHECK(OfKind<AbortJob>(out).size() == 1);
  CHECK(ToWorkers(out, msg::kCleanup).size() == 4);
  CHECK(h.State(setup.job) == "CANCELLED");
  CHECK(h.JobInfo(setup.job, h.now)->Find("running_attempts")->as_int() == 0);
}

TEST_CASE("a failure names its stage: inputs gone before the start, a map, the commit") {
  SchedulerOptions o;
  o.max_attempts = 1;
  bool inputs_ok = false;
  o.start_check = [&](const JobSpec&, std::string* error) {
    if (!inputs_ok) *error = "input /in/f vanished before the job started";
    return inputs_ok;
  };
  Harness h(o);
  std::string gone = h.Submit(2, 1);
  h.s.Tick(h.now);  // no workers: nothing is checked yet
  CHECK(h.State(gone) == "SUBMITTED");
  h.Ready("k1", "w1", 2);
  h.s.Tick(h.now);
  CHECK(h.State(gone) == "FAILED");
  CHECK(h.JobInfo(gone, h.now)->Find("error")->as_string().rfind("SUBMITTED: input", 0) == 0);
  CHECK(h.JobInfo(gone, h.now)->Find("failure")->Find("stage")->as_string() == "SUBMITTED");
  CHECK(OfKind<AbortJob>(h.Take()).size() == 1);

  inputs_ok = true;
  std::string bad_map = h.Submit(2, 1);
  h.s.Tick(h.now);
  auto maps = h.Assigns(h.Take());
  REQUIRE(maps.size() == 2);
  h.Fail(maps[1].first, maps[1].second, "exit 1");
  Value info = *h.JobInfo(bad_map, h.now);
  CHECK(info.Find("state")->as_string() == "FAILED");
  CHECK(info.Find("error")->as_string().rfind("MAPPING: map task m-00001 failed 1 attempts", 0) ==
        0);
  CHECK(info.Find("failure")->Find("task_id")->as_string() == "m-00001");
  // The other map was killed with the job.
  CHECK(ToWorkers(h.Take(), msg::kCancel).size() == 1);

  std::string bad_commit = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto m = h.Assigns(h.Take());
  h.Done(m[0].first, m[0].second, 1);
  h.s.Tick(h.now);
  auto r = h.Assigns(h.Take());
  h.Done(r[0].first, r[0].second, 1);
  h.Take();
  h.s.JobCommitted(bad_commit, false, "missing /tmp/out/part-00000", h.now);
  CHECK(h.JobInfo(bad_commit, h.now)->Find("error")->as_string() ==
        "COMMITTING: missing /tmp/out/part-00000");
}

TEST_CASE("the task list shows each task's state, attempts, worker and marks stragglers") {
  SpeculationSetup setup(0.1);
  Harness& h = setup.h;
  CHECK_FALSE(h.TaskList("job_nope", h.now).has_value());
  std::optional<Value> before = h.TaskList(setup.job, h.now);
  REQUIRE(before.has_value());
  // Four maps; the reduce is not created until they are all done.
  REQUIRE(before->as_array().size() == 4);
  const Value& done = before->as_array()[0];
  CHECK(done.Find("state")->as_string() == "DONE");
  CHECK(done.Find("attempts")->as_int() == 1);
  CHECK(done.Find("duration_ms")->as_int() == 1000);
  CHECK(done.Find("input_bytes")->as_int() == 10);
  CHECK(done.Find("worker")->as_string() == "w" + setup.maps[0].first.substr(1));
  const Value& slow = before->as_array()[3];
  CHECK(slow.Find("state")->as_string() == "RUNNING");
  CHECK(slow.Find("worker")->as_string() == "w4");
  CHECK(slow.Find("straggler")->as_bool());
  CHECK_FALSE(slow.Find("speculative")->as_bool());
  CHECK(slow.Find("progress")->as_double() == doctest::Approx(0.1));
  h.s.Tick(h.now);  // launches the backup
  std::optional<Value> after = h.TaskList(setup.job, h.now);
  const Value& backed = after->as_array()[3];
  CHECK(backed.Find("attempts")->as_int() == 2);
  CHECK(backed.Find("speculative")->as_bool());
  CHECK(backed.Find("worker")->as_string().find("w4") != std::string::npos);
  CHECK(backed.Find("worker")->as_string().find(',') != std::string::npos);
}

TEST_CASE("the job list leaves finished jobs out unless asked for them") {
  Harness h;
  std::string running = h.Submit(1, 1);
  std::string cancelled = h.Submit(1, 1);
  h.s.CancelJob(cancelled, h.now);
  h.now += 5000;
  Value active = h.JobList(h.now, Scheduler::Finished::kExclude);
  REQUIRE(active.as_array().size() == 1);
  CHECK(active.as_array()[0].Find("job_id")->as_string() == running);
  CHECK(active.as_array()[0].Find("age_ms")->as_int() == 5000);
  Value all = h.JobList(h.now, Scheduler::Finished::kInclude);
  REQUIRE(all.as_array().size() == 2);
  CHECK(all.as_array()[1].Find("job_id")->as_string() == cancelled);
}

TEST_CASE("a waiting job says why: no workers, busy slots") {
  Harness h;
  std::string job = h.Submit(3, 1);
  CHECK(h.JobInfo(job, h.now)->Find("waiting")->as_string() == "no workers connected");
  h.Ready("k1", "w1", 1);
  h.s.Tick(h.now);
  h.Take();
  CHECK(h.JobInfo(job, h.now)->Find("waiting")->as_string() == "every worker slot is busy");
}

TEST_CASE("1,000 workers run a 20,000-task job to the end with every slot used and none exceeded") {
  Harness h;
  constexpr int kWorkers = 1000;
  for (int i = 0; i < kWorkers; ++i) h.Ready("k" + std::to_string(i), "w" + std::to_string(i), 2);
  std::string job = h.Submit(20000, 4);
  h.Take();
  std::map<std::string, int> live;  // per worker key
  int64_t started = 0;
  std::vector<std::pair<std::string, AssignMsg>> running;
  h.s.Tick(h.now);
  for (auto& a : h.Assigns(h.Take())) running.push_back(std::move(a));
  CHECK(running.size() == 2000);
  while (!running.empty()) {
    started += static_cast<int64_t>(running.size());
    std::vector<std::pair<std::string, AssignMsg>> next;
    h.now += 10;
    for (auto& [key, a] : running) {
      h.Done(key, a, 4);
      HeartbeatMsg hb;
      h.s.WorkerHeartbeat(key, hb, h.now);
    }
    h.s.Tick(h.now);
    for (auto& a : h.Assigns(h.Take())) next.push_back(std::move(a));
    live.clear();
    for (auto& [key, a] : next) CHECK(++live[key] <= 2);
    running.swap(next);
  }
  CHECK(started == 20004);  // every task exactly once: no worker lost, no backup
  CHECK(h.State(job) == "REDUCING");  // the commit is the loop's to do
  CHECK(h.s.worker_count() == kWorkers);
  CHECK(h.Events("task_speculated").empty());
}

}  // namespace
}  // namespace zmr

namespace zmr {
namespace {

TEST_CASE("a failed job reports every attempt of the task to blame with its worker and stderr") {
  SchedulerOptions o;
  o.max_attempts = 2;
  Harness h(o);
  h.Ready("k1", "w1", 1);
  h.Ready("k2", "w2", 1);
  std::string job = h.Submit(1, 1);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    h.s.Tick(h.now);
    auto a = h.Assigns(h.Take());
    REQUIRE(a.size() == 1);
    TaskFailedMsg f;
    f.ref = {job, a[0].second.task_id, a[0].second.attempt};
    f.error = "mapper exited with status " + std::to_string(attempt);
    f.stderr_tail = {"Traceback (most recent call last):", "ValueError: line " +
                                                               std::to_string(attempt)};
    h.s.TaskFailed(a[0].first, f, h.now);
  }
  Value info = *h.JobInfo(job, h.now);
  CHECK(info.Find("state")->as_string() == "FAILED");
  CHECK(info.Find("failed_attempts")->as_int() == 2);
  const Value& tried = *info.Find("failure")->Find("attempts");
  REQUIRE(tried.as_array().size() == 2);
  std::set<std::string> workers;
  for (std::size_t i = 0; i < 2; ++i) {
    const Value& a = tried.as_array()[i];
    CHECK(a.Find("attempt")->as_int() == static_cast<int64_t>(i + 1));
    CHECK(a.Find("state")->as_string() == "FAILED");
    CHECK(a.Find("error")->as_string() == "mapper exited with status " + std::to_string(i + 1));
    REQUIRE(a.Find("stderr_tail")->as_array().size() == 2);
    CHECK(a.Find("stderr_tail")->as_array()[1].as_string() ==
          "ValueError: line " + std::to_string(i + 1));
    workers.insert(a.Find("worker")->as_string());
  }
  CHECK(workers == std::set<std::string>{"w1", "w2"});
  // The task_failed events carry the stderr lines too.
  h.Take();
  auto failed = h.Events("task_failed");
  REQUIRE(failed.size() == 2);
  CHECK(failed[0].Find("stderr_tail")->as_array().size() == 2);
}

TEST_CASE("recent failures of a running job list the latest failed attempts, lost ones included") {
  SchedulerOptions o;
  o.max_attempts = 100;
  Harness h(o);
  h.Ready("k1", "w1", 1);
  std::string job = h.Submit(1, 1);
  for (int i = 0; i < 20; ++i) {
    h.s.Tick(h.now);
    auto a = h.Assigns(h.Take());
    REQUIRE(a.size() == 1);
    h.Fail("k1", a[0].second, "boom " + std::to_string(i + 1));
  }
  h.s.Tick(h.now);
  REQUIRE(h.Assigns(h.Take()).size() == 1);
  h.s.WorkerDisconnected("k1", h.now);
  Value info = *h.JobInfo(job, h.now);
  CHECK(info.Find("state")->as_string() == "MAPPING");
  CHECK(info.Find("failed_attempts")->as_int() == 21);
  const Array& recent = info.Find("recent_failures")->as_array();
  REQUIRE(recent.size() == 16);
  CHECK(recent.front().Find("error")->as_string() == "boom 6");
  CHECK(recent.back().Find("attempt")->as_int() == 21);
  CHECK(recent.back().Find("error")->as_string().find("w1 lost") != std::string::npos);
  // The job list, which may hold a thousand jobs, carries only the latest.
  Value list = h.JobList(h.now, Scheduler::Finished::kInclude);
  const Array& listed = list.as_array().at(0).Find("recent_failures")->as_array();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].Find("attempt")->as_int() == 21);
}

TEST_CASE("an attempt is found by number or as the latest, with its worker's registration") {
  Harness h;
  h.Ready("k1", "w1", 1);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto first = h.Assigns(h.Take());
  REQUIRE(first.size() == 1);
  h.Fail("k1", first[0].second, "boom");
  h.Ready("k2", "w2", 1);
  h.s.Tick(h.now);
  auto second = h.Assigns(h.Take());
  REQUIRE(second.size() == 1);
  std::string error;
  auto latest = h.s.FindAttempt(job, "m-00000", 0, &error);
  REQUIRE(latest);
  CHECK(latest->attempt == 2);
  CHECK(latest->state == "RUNNING");
  CHECK(latest->worker_key == second[0].first);
  auto one = h.s.FindAttempt(job, "m-00000", 1, &error);
  REQUIRE(one);
  CHECK(one->worker_name == "w1");
  CHECK(one->state == "FAILED");
  CHECK(one->worker_key == "k1");
  // A worker that is gone has no registration to ask.
  h.s.WorkerDisconnected("k1", h.now);
  one = h.s.FindAttempt(job, "m-00000", 1, &error);
  REQUIRE(one);
  CHECK(one->worker_key.empty());
  CHECK_FALSE(h.s.FindAttempt(job, "m-00000", 3, &error));
  CHECK(error.find("no attempt 3") != std::string::npos);
  CHECK_FALSE(h.s.FindAttempt(job, "m-00009", 0, &error));
  CHECK(error.find("no task m-00009") != std::string::npos);
  CHECK_FALSE(h.s.FindAttempt(job, "r-00000", 0, &error));  // reduces not created yet
  CHECK_FALSE(h.s.FindAttempt("job_nope", "m-00000", 0, &error));
  CHECK(error.find("no such job") != std::string::npos);
}

TEST_CASE("a job's kept events fill a gap after any seq they still cover, and say when not") {
  Harness h;
  h.Ready("k1", "w1", 1);
  std::string job = h.Submit(1, 1);
  h.s.Tick(h.now);
  auto a = h.Assigns(h.Take());
  REQUIRE(a.size() == 1);
  Value events = *h.JobEvents(job, 1);
  CHECK(events.Find("complete")->as_bool());
  const int64_t last = events.Find("last_seq")->as_int();
  REQUIRE(static_cast<int64_t>(events.Find("events")->as_array().size()) == last - 1);
  int64_t expect = 2;
  for (const Value& e : events.Find("events")->as_array()) {
    CHECK(e.Find("seq")->as_int() == expect++);
  }
  // Nothing after the latest: complete and empty.
  Value none = *h.JobEvents(job, last);
  CHECK(none.Find("complete")->as_bool());
  CHECK(none.Find("events")->as_array().empty());
  // Many progress reports push the oldest events out of the history.
  for (int i = 0; i < 400; ++i) h.Progress("k1", a[0].second, i / 400.0);
  Value old = *h.JobEvents(job, 1);
  CHECK_FALSE(old.Find("complete")->as_bool());
  Value recent = *h.JobEvents(job, old.Find("last_seq")->as_int() - 10);
  CHECK(recent.Find("complete")->as_bool());
  CHECK(recent.Find("events")->as_array().size() == 10);
  CHECK_FALSE(h.JobEvents("job_nope", 0));
}

}  // namespace
}  // namespace zmr

namespace zmr {
namespace {

TEST_CASE("workers that fall silent one after another are each declared lost on time") {
  // The expiry scan only runs once the least recently heard worker may have expired; a scan
  // that finds nobody expired must still leave the next one due for the next silent worker.
  SchedulerOptions o;
  o.heartbeat_ms = 1000;
  o.liveness = 3;
  Harness h(o);
  h.Ready("k1", "w1", 1);
  h.Ready("k2", "w2", 1);
  h.Ready("k3", "w3", 1);
  const int64_t start = h.now;
  // w1 falls silent at once, w2 after 2.5 s, w3 heartbeats throughout.
  std::map<std::string, int64_t> lost_at;
  for (int64_t t = 100; t <= 9000; t += 100) {
    h.now = start + t;
    if (t % 500 == 0) {
      CHECK(h.s.WorkerHeartbeat("k3", HeartbeatMsg{}, h.now));
      if (t <= 2500) CHECK(h.s.WorkerHeartbeat("k2", HeartbeatMsg{}, h.now));
    }
    h.s.Tick(h.now);
    h.Take();
    for (const char* key : {"k1", "k2", "k3"}) {
      if (!h.s.IsRegistered(key) && lost_at.count(key) == 0) lost_at[key] = t;
    }
  }
  REQUIRE(lost_at.count("k1") == 1);
  REQUIRE(lost_at.count("k2") == 1);
  CHECK(lost_at.count("k3") == 0);
  // Lost within one expiry check (heartbeat / 10) of liveness x heartbeat of silence.
  CHECK(lost_at["k1"] > 3000);
  CHECK(lost_at["k1"] <= 3100);
  CHECK(lost_at["k2"] > 2500 + 3000);
  CHECK(lost_at["k2"] <= 2500 + 3100);
  CHECK(h.CountPublished("/worker_lost") == 2);
  // Messages from the lost registrations are not taken as theirs any more.
  CHECK_FALSE(h.s.WorkerSeen("k1", h.now));
  CHECK_FALSE(h.s.WorkerHeartbeat("k2", HeartbeatMsg{}, h.now));
  CHECK(h.s.WorkerSeen("k3", h.now));
}

}  // namespace
}  // namespace zmr
