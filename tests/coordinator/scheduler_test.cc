// Drives the Scheduler with a fake clock (plain integers) and checks the actions it queues.
#include "coordinator/scheduler.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace zmr {
namespace {

struct Harness {
  explicit Harness(SchedulerOptions o = {}) : s(o) {}

  Scheduler s;
  int64_t now = 1000000;
  std::vector<Outgoing> log;  // everything ever queued, in order

  std::vector<Outgoing> Take() {
    std::vector<Outgoing> out = s.TakeOutgoing();
    log.insert(log.end(), out.begin(), out.end());
    return out;
  }

  void Ready(const std::string& key, const std::string& name, int64_t slots) {
    ReadyMsg r;
    r.name = name;
    r.host = "test";
    r.pid = 1;
    r.slots = slots;
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
  std::vector<std::pair<std::string, AssignMsg>> Assigns(const std::vector<Outgoing>& out) {
    std::vector<std::pair<std::string, AssignMsg>> result;
    for (const Outgoing& o : out) {
      if (o.kind != Outgoing::Kind::kToWorker) continue;
      if (o.body.Find("type")->as_string() != msg::kAssign) continue;
      std::string error;
      std::optional<AssignMsg> a = AssignMsg::FromValue(o.body, &error);
      REQUIRE(a);
      result.emplace_back(o.target, *a);
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

  std::string State(const std::string& job_id) {
    return s.JobInfo(job_id, now)->Find("state")->as_string();
  }

  // seq values of every event of a job, in publish order.
  std::vector<int64_t> Seqs(const std::string& job_id) {
    std::vector<int64_t> seqs;
    for (const Outgoing& o : log) {
      if (o.kind == Outgoing::Kind::kPublish && o.target.rfind("job/" + job_id + "/", 0) == 0) {
        seqs.push_back(o.body.Find("seq")->as_int());
      }
    }
    return seqs;
  }

  int CountPublished(const std::string& topic_suffix) {
    int n = 0;
    for (const Outgoing& o : log) {
      if (o.kind == Outgoing::Kind::kPublish && o.target.size() >= topic_suffix.size() &&
          o.target.compare(o.target.size() - topic_suffix.size(), topic_suffix.size(),
                           topic_suffix) == 0) {
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
  for (const Outgoing& o : out) commit |= o.kind == Outgoing::Kind::kCommitJob && o.target == job;
  REQUIRE(commit);
  h.s.JobCommitted(job, true, "", h.now);
  h.Take();
  CHECK(h.State(job) == "COMPLETED");
  auto info = *h.s.JobInfo(job, h.now);
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
  CHECK(h.s.JobInfo(job, h.now)->Find("maps")->Find("done")->as_int() == 0);
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
  CHECK(h.s.JobInfo(job, h.now)->Find("counters")->Find("records")->as_int() == 1);
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
  CHECK(h.s.JobInfo(job, h.now)->Find("waiting_for_workers")->as_bool());
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
  std::string error = h.s.JobInfo(job, h.now)->Find("error")->as_string();
  CHECK(error.find("m-00000") != std::string::npos);
  // Every attempt's worker and error is named.
  CHECK(error.find("attempt 1 on w") != std::string::npos);
  CHECK(error.find("boom 1") != std::string::npos);
  CHECK(error.find("boom 2") != std::string::npos);
  CHECK(error.find("boom 3") != std::string::npos);
  bool abort = false;
  for (const Outgoing& x : h.Take()) abort |= x.kind == Outgoing::Kind::kAbortJob;
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
  int cancels = 0;
  for (const Outgoing& o : h.Take()) {
    if (o.kind == Outgoing::Kind::kToWorker && o.body.Find("type")->as_string() == msg::kCancel) {
      ++cancels;
    }
  }
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
  CHECK(out[0].body.Find("type")->as_string() == msg::kRefused);
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
  CHECK(h.s.JobInfo(job, h.now)->Find("maps")->Find("done")->as_int() == 0);
  h.s.Tick(h.now);
  auto retry = h.Assigns(h.Take());
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].second.attempt == 2);
}

std::vector<Outgoing> OfKind(const std::vector<Outgoing>& out, Outgoing::Kind kind) {
  std::vector<Outgoing> result;
  for (const Outgoing& o : out) {
    if (o.kind == kind) result.push_back(o);
  }
  return result;
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
  auto commits = OfKind(out, Outgoing::Kind::kCommitTask);
  REQUIRE(commits.size() == 1);
  CHECK(commits[0].body.Find("to")->as_string() == "/tmp/out/part-00000");
  CHECK(commits[0].body.Find("from")->as_string().find("/tmp/out/_temporary/r-00000.a1/") == 0);
  CHECK(OfKind(out, Outgoing::Kind::kCommitJob).size() == 1);
  // The same attempt reporting again commits nothing more and is not counted twice.
  h.Done(reduces[0].first, reduces[0].second, 1);
  CHECK(OfKind(h.Take(), Outgoing::Kind::kCommitTask).empty());
  CHECK(h.s.JobInfo(job, h.now)->Find("counters")->Find("records")->as_int() == 2);
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
  auto commits = OfKind(out, Outgoing::Kind::kCommitTask);
  REQUIRE(commits.size() == 3);
  std::set<std::string> targets;
  for (const Outgoing& c : commits) targets.insert(c.body.Find("to")->as_string());
  CHECK(targets == std::set<std::string>{"/tmp/out/part-00000", "/tmp/out/part-00001",
                                         "/tmp/out/part-00002"});
  CHECK(OfKind(out, Outgoing::Kind::kCommitJob).size() == 1);
  h.s.JobCommitted(job, true, "", h.now);
  CHECK(h.State(job) == "COMPLETED");
  CHECK(h.s.JobInfo(job, h.now)->Find("reduces")->Find("total")->as_int() == 0);
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
  for (const Outgoing& o : out) {
    if (o.kind == Outgoing::Kind::kToWorker) types.push_back(o.body.Find("type")->as_string());
  }
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
  int job_files = 0;
  for (const Outgoing& o : again) {
    if (o.kind == Outgoing::Kind::kToWorker && o.body.Find("type")->as_string() == "job_files") {
      ++job_files;
    }
  }
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

}  // namespace
}  // namespace zmr
