// The user-facing examples and scripts run as a user runs them: examples/python/submit_and_follow.py
// against a real cluster (output checked against an independent reference, exit codes as
// documented) and scripts/zmr-completion.bash sourced by bash.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

fs::path SourcePath(const std::string& relative) { return fs::path(ZMR_SOURCE_DIR) / relative; }

// Runs examples/python/submit_and_follow.py with `args` against the cluster's clients endpoint.
ClientResult RunSubmitAndFollow(const Cluster& cluster, const fs::path& log_dir,
                                const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   SourcePath("examples/python/submit_and_follow.py").string(),
                                   "--coordinator", cluster.clients_endpoint()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, log_dir);
}

// Whether `text` has a line that starts with `prefix`.
bool HasLineStartingWith(const std::string& text, const std::string& prefix) {
  size_t start = 0;
  while (start < text.size()) {
    if (text.compare(start, prefix.size(), prefix) == 0) return true;
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

TEST_CASE("the python example submits a wordcount, follows it to COMPLETED and exits 0") {
  Cluster cluster({.workers = 2, .slots = 2, .heartbeat_ms = 200});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  TempDir tmp("py-example");
  GenerateCorpus(tmp / "in", {.seed = 7, .total_bytes = 256 << 10});
  const fs::path output = tmp / "out";

  ClientResult r = RunSubmitAndFollow(cluster, tmp.path(),
                                      {"--app", "wordcount", "--input", (tmp / "in").string(),
                                       "--output", output.string(), "--reduces", "2"});
  INFO(r.Describe() << "\n" << cluster.Logs());
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("job_id: job_", 0) == 0);  // the job id comes first, on its own line
  CHECK(HasLineStartingWith(r.out, "COMPLETED job_"));
  CHECK(r.out.find("job_state COMPLETED") != std::string::npos);
  CHECK(ReadSortedOutput(output) == ReferenceWordCount(CorpusFiles(tmp / "in")));
}

TEST_CASE("the python example exits 2 with the coordinator's reason when the output is not empty") {
  Cluster cluster({.workers = 1, .slots = 1, .heartbeat_ms = 200});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  TempDir tmp("py-example");
  GenerateCorpus(tmp / "in", {.seed = 3, .total_bytes = 32 << 10, .files = 2});
  const fs::path output = tmp / "out";
  fs::create_directory(output);
  WriteFile(output / "keep.txt", "not yours\n");

  ClientResult r = RunSubmitAndFollow(cluster, tmp.path(),
                                      {"--app", "wordcount", "--input", (tmp / "in").string(),
                                       "--output", output.string()});
  INFO(r.Describe() << "\n" << cluster.Logs());
  CHECK(r.exit_code == 2);
  CHECK((r.err + r.out).find("output already exists") != std::string::npos);
  CHECK(r.out.find("job_id:") == std::string::npos);
  CHECK(Join(ListDir(output)) == "keep.txt");
  CHECK(ReadFile(output / "keep.txt") == "not yours\n");
  CHECK(JobCount(cluster) == 0);
}

TEST_CASE("the bash completion script defines a completion for zmr") {
  TempDir tmp("completion");
  const std::string script = SourcePath("scripts/zmr-completion.bash").string();
  ClientResult r =
      RunCommand({"/bin/bash", "-c", "source '" + script + "' && complete -p zmr"}, tmp.path());
  INFO(r.Describe());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("zmr") != std::string::npos);
  CHECK(r.err.empty());
}

}  // namespace
