// End-to-end tests of the execution engine: C++ plugins shipped with a job, streaming (Hadoop
// Streaming) commands, map-only jobs, user code that fails, crashes or hangs, and map output far
// larger than the sort buffer. Real zmr-coordinator, zmr-worker and zmr binaries on loopback ports,
// checked against the built-in apps or an independent reference (tests/support/cluster.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

const fs::path kApps = fs::path(ZMR_BINARY_DIR) / "apps";
const fs::path kScripts = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "streaming_scripts";

std::string FirstLine(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

struct Submitted {
  ClientResult result;
  std::string job_id;
};

// `zmr submit ARGS --wait`: the job id is the first line of stdout.
Submitted SubmitWait(const Cluster& cluster, std::vector<std::string> args) {
  args.insert(args.begin(), "submit");
  args.push_back("--wait");
  args.push_back("--no-progress");
  ClientResult r = cluster.RunClient(args);
  return {r, FirstLine(r.out)};
}

std::optional<Json> Status(const Cluster& cluster, const std::string& job_id) {
  ClientResult r = cluster.RunClient({"status", job_id, "--json"});
  if (r.exit_code != 0) return std::nullopt;
  return Json::Parse(r.out);
}

int64_t Counter(const Json& job, std::string_view name) {
  const Json* counters = job.Get("counters");
  return counters ? counters->Int(name, -1) : -1;
}

// Text of lower-case ASCII words separated by single spaces, one line at a time: on it the
// built-in wordcount and a whitespace-splitting streaming word count must agree.
void WriteWordFiles(const fs::path& dir, int files, int lines_per_file, uint32_t seed) {
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> letters(1, 8), letter(0, 25), words(1, 12), vocab(0, 499);
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 500; ++i) {
    std::string w;
    for (int n = letters(rng); n > 0; --n) w += static_cast<char>('a' + letter(rng));
    vocabulary.push_back(w);
  }
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int l = 0; l < lines_per_file; ++l) {
      for (int n = words(rng); n > 0; --n) {
        text += vocabulary[static_cast<size_t>(vocab(rng))];
        text += n > 1 ? " " : "\n";
      }
    }
    char name[32];
    std::snprintf(name, sizeof name, "words-%02d.txt", f);
    WriteFile(dir / name, text);
  }
}

// A worker started by the test with extra flags (ClusterOptions has no way to pass them).
Process StartWorker(const Cluster& cluster, const std::string& name,
                    const std::vector<std::string>& extra, int slots = 2) {
  const fs::path work_dir = cluster.dir() / ("work-" + name);
  fs::create_directories(work_dir);
  std::vector<std::string> argv = {Cluster::WorkerBinary().string(), "--coordinator",
                                   cluster.workers_endpoint(),       "--slots",
                                   std::to_string(slots),            "--name",
                                   name,                             "--work-dir",
                                   work_dir.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process(argv, cluster.dir() / (name + ".out"), cluster.dir() / (name + ".err"));
}

}  // namespace

TEST_CASE("a wordcount plugin job writes the same part files as the built-in wordcount") {
  TempDir tmp("engine-plugin");
  GenerateCorpus(tmp / "in", {.seed = 11, .total_bytes = 1 << 20, .files = 3});
  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  const std::vector<std::string> common = {"--input", (tmp / "in").string(), "--maps", "3",
                                           "--reduces", "2"};
  std::vector<std::string> builtin = {"--app", "wordcount", "--output", (tmp / "builtin").string()};
  builtin.insert(builtin.end(), common.begin(), common.end());
  std::vector<std::string> plugin = {"--plugin", (kApps / "libzmr_wordcount.so").string(), "--app",
                                     "wordcount", "--output", (tmp / "plugin").string()};
  plugin.insert(plugin.end(), common.begin(), common.end());

  Submitted a = SubmitWait(cluster, builtin);
  INFO(a.result.Describe() << "\n" << cluster.Logs());
  REQUIRE(a.result.exit_code == 0);
  Submitted b = SubmitWait(cluster, plugin);
  INFO(b.result.Describe());
  REQUIRE(b.result.exit_code == 0);

  for (int r = 0; r < 2; ++r) {
    INFO(PartName(r));
    REQUIRE(fs::exists(tmp / "plugin" / PartName(r)));
    CHECK(ReadFile(tmp / "plugin" / PartName(r)) == ReadFile(tmp / "builtin" / PartName(r)));
  }
  CHECK(ReadSortedOutput(tmp / "plugin") == ReferenceWordCount(CorpusFiles(tmp / "in")));
}

TEST_CASE("a plugin built for another API version fails the job and status names the library") {
  TempDir tmp("engine-badversion");
  WriteWordFiles(tmp / "in", 1, 50, 3);
  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  Submitted s = SubmitWait(
      cluster, {"--plugin", (kApps / "libzmr_test_bad_version.so").string(), "--app", "badversion",
                "--input", (tmp / "in").string(), "--output", (tmp / "out").string(),
                "--max-attempts", "2"});
  INFO(s.result.Describe() << "\n" << cluster.Logs());
  REQUIRE(s.result.exit_code == 1);
  ClientResult status = cluster.RunClient({"status", s.job_id});
  INFO(status.Describe());
  REQUIRE(status.exit_code == 0);
  CHECK(status.out.find("FAILED") != std::string::npos);
  CHECK(status.out.find("API") != std::string::npos);
  CHECK(status.out.find("libzmr_test_bad_version.so") != std::string::npos);
  CHECK(cluster.worker(0).Running());
}

TEST_CASE("a streaming word count with python scripts equals the built-in wordcount") {
  TempDir tmp("engine-streaming");
  WriteWordFiles(tmp / "in", 3, 2000, 5);
  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  Submitted builtin =
      SubmitWait(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(), "--output",
                           (tmp / "builtin").string(), "--maps", "3", "--reduces", "2"});
  INFO(builtin.result.Describe() << "\n" << cluster.Logs());
  REQUIRE(builtin.result.exit_code == 0);

  Submitted streaming = SubmitWait(
      cluster,
      {"--mapper", "/usr/bin/python3 wordcount_mapper.py", "--reducer",
       "/usr/bin/python3 wordcount_reducer.py", "--file", (kScripts / "wordcount_mapper.py").string(),
       "--file", (kScripts / "wordcount_reducer.py").string(), "--input", (tmp / "in").string(),
       "--output", (tmp / "streaming").string(), "--maps", "3", "--reduces", "2"});
  INFO(streaming.result.Describe());
  REQUIRE(streaming.result.exit_code == 0);

  const std::string expected = ReadSortedOutput(tmp / "builtin");
  REQUIRE(!expected.empty());
  CHECK(expected == ReferenceWordCount(CorpusFiles(tmp / "in")));
  CHECK(ReadSortedOutput(tmp / "streaming") == expected);
  for (int r = 0; r < 2; ++r) CHECK(KeysStrictlyIncreasing(ReadFile(tmp / "streaming" / PartName(r))));
}

TEST_CASE("a map-only cat job writes one part per map whose concatenation is the input") {
  TempDir tmp("engine-maponly");
  WriteWordFiles(tmp / "in", 3, 400, 9);
  const std::vector<fs::path> files = CorpusFiles(tmp / "in");
  std::string input;
  for (const fs::path& f : files) input += ReadFile(f);

  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  Submitted s = SubmitWait(cluster, {"--mapper", "cat", "--reducer", "NONE", "--input",
                                     (tmp / "in").string(), "--output", (tmp / "out").string(),
                                     "--maps", "3"});
  INFO(s.result.Describe() << "\n" << cluster.Logs());
  REQUIRE(s.result.exit_code == 0);
  std::optional<Json> job = Status(cluster, s.job_id);
  REQUIRE(job.has_value());
  const Json* maps = job->Get("maps");
  REQUIRE(maps != nullptr);
  const int64_t m = maps->Int("total");
  REQUIRE(m >= 1);

  std::vector<std::string> want = {"_SUCCESS"};
  for (int i = 0; i < m; ++i) want.push_back(PartName(i));
  std::sort(want.begin(), want.end());
  CHECK(ListDir(tmp / "out") == want);

  std::string concatenated;
  for (int i = 0; i < m; ++i) concatenated += ReadFile(tmp / "out" / PartName(i));
  CHECK(concatenated == input);
}

TEST_CASE("a mapper that exits 1 on one line fails the job and status shows its stderr") {
  TempDir tmp("engine-failline");
  WriteWordFiles(tmp / "in", 2, 100, 13);
  WriteFile(tmp / "in" / "words-01.txt", "alpha beta\nFAIL\ngamma\n");
  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  Submitted s = SubmitWait(
      cluster, {"--mapper", "/usr/bin/python3 fail_on_line.py", "--reducer", "cat", "--file",
                (kScripts / "fail_on_line.py").string(), "--input", (tmp / "in").string(),
                "--output", (tmp / "out").string(), "--maps", "2", "--max-attempts", "2"});
  INFO(s.result.Describe() << "\n" << cluster.Logs());
  REQUIRE(s.result.exit_code == 1);
  ClientResult status = cluster.RunClient({"status", s.job_id});
  INFO(status.Describe());
  REQUIRE(status.exit_code == 0);
  CHECK(status.out.find("FAILED") != std::string::npos);
  CHECK(status.out.find("bad record: FAIL") != std::string::npos);
  CHECK(status.out.find("attempt") != std::string::npos);
  CHECK(status.out.find("worker-0") != std::string::npos);
  CHECK(!fs::exists(tmp / "out" / "_SUCCESS"));
}

TEST_CASE("a segfaulting mapper and a hanging mapper fail their jobs and the worker carries on") {
  TempDir tmp("engine-crash");
  WriteWordFiles(tmp / "in", 2, 200, 17);
  Cluster cluster({.workers = 0});
  Process worker = StartWorker(cluster, "w-timeout", {"--task-timeout", "2"});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs() << worker.Stderr());

  {
    Submitted s = SubmitWait(
        cluster, {"--mapper", "/usr/bin/python3 segfault_mapper.py", "--reducer", "cat", "--file",
                  (kScripts / "segfault_mapper.py").string(), "--input", (tmp / "in").string(),
                  "--output", (tmp / "out-segv").string(), "--max-attempts", "1"});
    INFO(s.result.Describe() << "\n" << worker.Stderr());
    CHECK(s.result.exit_code == 1);
    CHECK(worker.Running());
  }
  {
    Submitted s = SubmitWait(
        cluster, {"--mapper", "/usr/bin/python3 sleep_mapper.py", "--reducer", "cat", "--file",
                  (kScripts / "sleep_mapper.py").string(), "--input", (tmp / "in").string(),
                  "--output", (tmp / "out-sleep").string(), "--max-attempts", "1"});
    INFO(s.result.Describe() << "\n" << worker.Stderr());
    CHECK(s.result.exit_code == 1);
    CHECK(worker.Running());
  }
  Submitted ok = SubmitWait(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(),
                                      "--output", (tmp / "out-ok").string(), "--reduces", "2"});
  INFO(ok.result.Describe() << "\n" << worker.Stderr());
  REQUIRE(ok.result.exit_code == 0);
  CHECK(ReadSortedOutput(tmp / "out-ok") == ReferenceWordCount(CorpusFiles(tmp / "in")));
  CHECK(worker.Running());
}

TEST_CASE("an input twenty times the sort buffer spills, stays correct and bounded in memory") {
  TempDir tmp("engine-spill");
  GenerateCorpus(tmp / "in", {.seed = 21, .total_bytes = 21 << 20, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0});
  Process worker = StartWorker(cluster, "w-spill", {"--sort-buffer-mb", "1"});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs() << worker.Stderr());

  Submitted s = SubmitWait(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(),
                                     "--output", (tmp / "out").string(), "--maps", "2",
                                     "--reduces", "2"});
  INFO(s.result.Describe() << "\n" << worker.Stderr());
  REQUIRE(s.result.exit_code == 0);
  CHECK(ReadSortedOutput(tmp / "out") == expected);

  std::optional<Json> job = Status(cluster, s.job_id);
  REQUIRE(job.has_value());
  const int64_t spilled = Counter(*job, "spilled_records");
  const int64_t peak_rss_kb = Counter(*job, "peak_rss_kb");
  INFO("spilled_records " << spilled << ", peak_rss_kb " << peak_rss_kb);
  CHECK(spilled > 0);
  CHECK(peak_rss_kb > 0);
#if !defined(__SANITIZE_ADDRESS__)
  // Each attempt buffers at most 1 MiB of map output; 64 MiB leaves room for the process itself.
  CHECK(peak_rss_kb < 64 * 1024);
#endif
}
