// End-to-end tests of following jobs: `zmr watch JOB` joining a job in the middle (a snapshot,
// then exactly the events after it). Real binaries on loopback ports bound at run time; the full
// event record to compare with comes from a `zmr watch --json` started before the job.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

const fs::path kScripts = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "streaming_scripts";

// The JSON objects of a command's output, one per line.
std::vector<Json> JsonLines(const std::string& text) {
  std::vector<Json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::optional<Json> j = Json::Parse(line);
    REQUIRE_MESSAGE(j.has_value(), "not one JSON object: " << line);
    lines.push_back(std::move(*j));
  }
  return lines;
}

TEST_CASE("zmr watch started in the middle of a job shows it as it is, then exactly the events "
          "that follow, and exits when it ends") {
  TempDir tmp("watch-late");
  GenerateCorpus(tmp / "in", {.seed = 41, .total_bytes = 256 << 10, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0, .slots = 1});
  EventWatch all(cluster);
  // Every map takes a second or more, so the job is surely still running when the watch joins.
  for (int i = 0; i < 2; ++i) cluster.AddWorker({.env = {{"ZMR_TEST_SLOW_MAP_S", "1"}}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";
  const std::string job_id = Submit(
      cluster, {"--mapper", "/usr/bin/python3 slow_wordcount_mapper.py", "--reducer",
                "/usr/bin/python3 wordcount_reducer.py", "--file",
                (kScripts / "slow_wordcount_mapper.py").string(), "--file",
                (kScripts / "wordcount_reducer.py").string(), "--input", (tmp / "in").string(),
                "--output", output.string(), "--maps", "6", "--reduces", "2",
                "--no-speculation"});
  const Json mid =
      PollStatus(cluster, job_id, [](const Json& j) { return TaskCount(j, "maps", "done") >= 1; });
  REQUIRE(mid.String("state") == "MAPPING");

  Process late = cluster.StartClient({"watch", job_id, "--json"});
  std::optional<int> code = late.Wait();
  INFO("late watch:\n" << late.Stdout() << late.Stderr() << "\n" << cluster.Logs());
  REQUIRE(code == std::optional<int>(0));
  const std::vector<Json> lines = JsonLines(late.Stdout());
  REQUIRE(lines.size() >= 2);
  // First the snapshot: where the job stood when the watch joined.
  const Json& snapshot = lines.front();
  REQUIRE(snapshot.String("type") == "job_snapshot");
  const int64_t joined_at = snapshot.Int("seq");
  CHECK(joined_at >= 1);
  CHECK(snapshot.Int("missed") == 0);
  const Json* job = snapshot.Get("job");
  REQUIRE(job != nullptr);
  CHECK(job->String("state") != "COMPLETED");

  REQUIRE_MESSAGE(all.WaitForJobEnd(job_id), all.SeqProblem(job_id));
  const std::vector<Json> record = all.JobEvents(job_id);
  // The snapshot agrees with the events up to its seq: as many maps done as completed by then.
  int64_t maps_done = 0;
  for (const Json& e : record) {
    if (e.Int("seq") <= joined_at && e.String("type") == "task_completed" &&
        e.String("kind") == "map") {
      ++maps_done;
    }
  }
  CHECK(TaskCount(*job, "maps", "done") == maps_done);
  // Then every later event exactly once, in order, ending with COMPLETED.
  std::vector<std::string> seen, wanted;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    seen.push_back(std::to_string(lines[i].Int("seq")) + " " + lines[i].String("type") + " " +
                   lines[i].String("task_id") + " " + std::to_string(lines[i].Int("attempt")));
  }
  for (const Json& e : record) {
    if (e.Int("seq") <= joined_at) continue;
    wanted.push_back(std::to_string(e.Int("seq")) + " " + e.String("type") + " " +
                     e.String("task_id") + " " + std::to_string(e.Int("attempt")));
  }
  CHECK(seen == wanted);
  CHECK(lines.back().String("type") == "job_state");
  CHECK(lines.back().String("state") == "COMPLETED");
  CHECK(ReadSortedOutput(output) == expected);
}

}  // namespace
