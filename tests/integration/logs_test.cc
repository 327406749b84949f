// Attempt logs and failure detail from the client alone: `zmr logs` fetches an attempt's stderr
// from the worker that ran it (through the coordinator), during and after the job; `zmr status`
// of a FAILED job lists every attempt of the task to blame with its worker and last stderr lines;
// a worker that is gone, or that no longer keeps the log, is reported as such. Real binaries on
// loopback ports (tests/support/cluster.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

const fs::path kScripts = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "streaming_scripts";

bool Contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// `zmr submit ARGS --wait --no-progress`; returns the job id (the first line of stdout).
std::string SubmitAndWait(const Cluster& cluster, std::vector<std::string> args,
                          int expected_exit) {
  args.insert(args.begin(), "submit");
  args.push_back("--wait");
  args.push_back("--no-progress");
  ClientResult r = cluster.RunClient(args);
  INFO(r.Describe() << "\n" << cluster.Logs());
  REQUIRE(r.exit_code == expected_exit);
  return r.out.substr(0, r.out.find('\n'));
}

// What WORK_DIR/jobs/<job> holds, once the worker has handled the job's cleanup (waits for it).
std::vector<std::string> JobDirAfterCleanup(const Cluster& cluster, int worker,
                                            const std::string& job_id) {
  const fs::path dir = cluster.WorkDir(worker) / "jobs" / job_id;
  WaitUntil([&] { return !fs::exists(dir) || fs::exists(dir / ".cleaned"); });
  return fs::exists(dir) ? ListDir(dir) : std::vector<std::string>{};
}

TEST_CASE("zmr logs prints the stderr a streaming mapper wrote, also after the job ended") {
  TempDir tmp("logs-ok");
  fs::create_directories(tmp / "in");
  WriteFile(tmp / "in" / "a.txt", "one\ntwo\nthree\n");
  Cluster cluster({.workers = 1, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  const std::string job = SubmitAndWait(
      cluster, {"--mapper", "/usr/bin/python3 reporter_mapper.py", "--reducer", "cat", "--file",
                (kScripts / "reporter_mapper.py").string(), "--input", (tmp / "in").string(),
                "--output", (tmp / "out").string(), "--maps", "1"},
      0);

  // The job is over and its data removed; the logs stay for the retention period.
  CHECK(JobDirAfterCleanup(cluster, 0, job) == std::vector<std::string>{".cleaned", "logs/"});

  ClientResult logs = cluster.RunClient({"logs", job, "m-00000"});
  INFO(logs.Describe());
  REQUIRE(logs.exit_code == 0);
  // The mapper's own stderr line, in full (its reporter: lines are protocol, not log).
  CHECK(Contains(logs.out, "reporter_mapper: processed 3 lines\n"));
  CHECK_FALSE(Contains(logs.out, "reporter:counter:"));
  // The worker's notes about the attempt.
  CHECK(Contains(logs.out, "[zmr-worker "));
  CHECK(Contains(logs.out, "attempt succeeded"));
  CHECK(logs.err.empty());

  ClientResult json = cluster.RunClient({"logs", job, "m-00000", "--attempt", "1", "--json"});
  INFO(json.Describe());
  REQUIRE(json.exit_code == 0);
  std::optional<Json> doc = Json::Parse(json.out);
  REQUIRE(doc.has_value());
  CHECK(doc->String("job_id") == job);
  CHECK(doc->String("task_id") == "m-00000");
  CHECK(doc->Int("attempt") == 1);
  CHECK(doc->String("worker") == cluster.WorkerName(0));
  CHECK(doc->String("state") == "SUCCEEDED");
  CHECK(doc->Bool("truncated") == false);
  CHECK(doc->String("log") == logs.out);
  CHECK(doc->Int("size") == static_cast<int64_t>(logs.out.size()));

  // The reduce has a log too (cat wrote nothing: only the worker's notes).
  ClientResult reduce = cluster.RunClient({"logs", job, "r-00000"});
  INFO(reduce.Describe());
  CHECK(reduce.exit_code == 0);
  CHECK(Contains(reduce.out, "attempt succeeded"));
  // (It succeeded quietly, so its lines live in the job's shared succeeded.log; they come back
  // without the "TASK.aN " prefix they have there.)
  CHECK_FALSE(Contains(reduce.out, "r-00000.a1 "));

  // Asking for what does not exist is a usage error with a clear line.
  ClientResult no_task = cluster.RunClient({"logs", job, "m-00007"});
  CHECK(no_task.exit_code == 2);
  CHECK(Contains(no_task.err, "zmr: job " + job + " has no task m-00007"));
  ClientResult no_attempt = cluster.RunClient({"logs", job, "m-00000", "--attempt", "5"});
  CHECK(no_attempt.exit_code == 2);
  CHECK(Contains(no_attempt.err, "has no attempt 5"));
  ClientResult no_job = cluster.RunClient({"logs", "job_nope", "m-00000"});
  CHECK(no_job.exit_code == 2);
  CHECK(Contains(no_job.err, "no such job"));
  ClientResult no_arg = cluster.RunClient({"logs", job});
  CHECK(no_arg.exit_code == 2);
  CHECK(Contains(no_arg.err, "needs JOB and TASK"));
}

TEST_CASE("a failed job's status lists each attempt's worker and stderr; a gone worker's log is "
          "unavailable") {
  TempDir tmp("logs-fail");
  fs::create_directories(tmp / "in");
  WriteFile(tmp / "in" / "a.txt", "alpha beta\nFAIL\ngamma\n");
  Cluster cluster({.workers = 2, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const std::string job = SubmitAndWait(
      cluster, {"--mapper", "/usr/bin/python3 fail_on_line.py", "--reducer", "cat", "--file",
                (kScripts / "fail_on_line.py").string(), "--input", (tmp / "in").string(),
                "--output", (tmp / "out").string(), "--maps", "1", "--max-attempts", "2"},
      1);

  std::optional<Json> status = Status(cluster, job);
  REQUIRE(status.has_value());
  CHECK(status->String("state") == "FAILED");
  CHECK(status->Int("failed_attempts") == 2);
  const Json* failure = status->Get("failure");
  REQUIRE(failure != nullptr);
  CHECK(failure->String("stage") == "MAPPING");
  CHECK(failure->String("task_id") == "m-00000");
  const Json* tried = failure->Get("attempts");
  REQUIRE(tried != nullptr);
  REQUIRE(tried->AsArray() != nullptr);
  REQUIRE(tried->AsArray()->size() == 2);
  std::vector<std::string> workers;
  for (const Json& a : *tried->AsArray()) {
    CHECK(a.String("state") == "FAILED");
    CHECK(Contains(a.String("error"), "exited with status 1"));
    const Json* tail = a.Get("stderr_tail");
    REQUIRE(tail != nullptr);
    REQUIRE(tail->AsArray() != nullptr);
    REQUIRE(!tail->AsArray()->empty());
    CHECK(std::get<std::string>(tail->AsArray()->back().v) == "bad record: FAIL");
    workers.push_back(a.String("worker"));
  }
  // The retry went to the other worker.
  std::sort(workers.begin(), workers.end());
  CHECK(workers == std::vector<std::string>{cluster.WorkerName(0), cluster.WorkerName(1)});

  ClientResult text = cluster.RunClient({"status", job});
  INFO(text.Describe());
  REQUIRE(text.exit_code == 0);
  CHECK(Contains(text.out, "m-00000.a1 on worker-"));
  CHECK(Contains(text.out, "m-00000.a2 on worker-"));
  CHECK(Contains(text.out, "stderr| bad record: FAIL"));
  CHECK(Contains(text.out, "zmr logs " + job + " m-00000"));

  ClientResult first = cluster.RunClient({"logs", job, "m-00000", "--attempt", "1", "--json"});
  INFO(first.Describe());
  REQUIRE(first.exit_code == 0);
  std::optional<Json> doc = Json::Parse(first.out);
  REQUIRE(doc.has_value());
  CHECK(doc->String("state") == "FAILED");
  CHECK(Contains(doc->String("log"), "bad record: FAIL\n"));
  CHECK(Contains(doc->String("log"), "attempt failed: "));

  // The worker that ran attempt 1 dies: its log cannot be fetched, and the client says why.
  const std::string gone = doc->String("worker");
  const int index = gone == cluster.WorkerName(0) ? 0 : 1;
  cluster.KillWorker(index);
  // (Until the coordinator declares it lost, the request waits for it and ends "not in time".)
  REQUIRE(WaitUntil([&] {
    ClientResult r = cluster.RunClient({"logs", job, "m-00000", "--attempt", "1"});
    return r.exit_code == 1 && Contains(r.err, "is gone");
  }));
  ClientResult unavailable = cluster.RunClient({"logs", job, "m-00000", "--attempt", "1"});
  CHECK(unavailable.exit_code == 1);
  CHECK(unavailable.out.empty());
  CHECK(Contains(unavailable.err, "zmr: worker " + gone));
  CHECK(Contains(unavailable.err, "is gone"));
  // The other attempt's worker is still there.
  ClientResult second = cluster.RunClient({"logs", job, "m-00000", "--attempt", "2"});
  INFO(second.Describe());
  CHECK(second.exit_code == 0);
  CHECK(Contains(second.out, "bad record: FAIL"));
}

TEST_CASE("a worker keeping no logs removes a finished job's directory and says it has none") {
  TempDir tmp("logs-none");
  fs::create_directories(tmp / "in");
  WriteFile(tmp / "in" / "a.txt", "one\ntwo\n");
  Cluster cluster({.workers = 0});
  cluster.AddWorker({.slots = 1, .flags = {"--log-retention-s", "0"}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  const std::string job = SubmitAndWait(
      cluster, {"--input", (tmp / "in").string(), "--output", (tmp / "out").string(), "--app",
                "wordcount"},
      0);
  CHECK(JobDirAfterCleanup(cluster, 0, job).empty());
  ClientResult logs = cluster.RunClient({"logs", job, "m-00000"});
  INFO(logs.Describe());
  CHECK(logs.exit_code == 1);
  CHECK(Contains(logs.err, "has no log of job " + job + " task m-00000 attempt 1"));
}

}  // namespace
