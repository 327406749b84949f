// End-to-end tests of scheduling under stress: jobs that must come out right while workers are
// killed, replaced and frozen at random; speculative backup attempts for a straggler (and none
// when there is no straggler); cancellation in the map and in the reduce phase, which must leave
// no process, no intermediate data and no output behind. Real zmr-coordinator, zmr-worker and zmr
// binaries on loopback ports bound at run time (tests/support/cluster.h); outputs are compared
// with a fault-free run and with independent references, events are read with `zmr watch --json`.
// Nothing here asserts on timing: every wait is bounded by kPatience only as a hang guard.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;
using Clock = std::chrono::steady_clock;

const fs::path kScripts = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "streaming_scripts";

// Set in the environment of the worker a test slows down; slow_wordcount_mapper.py sleeps this
// long before it emits anything. Far beyond kPatience on purpose: a job with a map stuck there can
// only finish within the test's patience if a backup attempt elsewhere commits it, and the
// sleeper can only disappear that soon if it was killed.
constexpr const char* kSlowMapVariable = "ZMR_TEST_SLOW_MAP_S";
constexpr const char* kSlowMapSeconds = "3600";

std::string TaskName(char kind, int index) {
  char name[32];
  std::snprintf(name, sizeof name, "%c-%05d", kind, index);
  return name;
}

// The arguments of a streaming job whose commands are scripts of kScripts run by Debian's python.
std::vector<std::string> StreamingArgs(const std::string& mapper, const std::string& reducer) {
  return {"--mapper", "/usr/bin/python3 " + mapper, "--reducer", "/usr/bin/python3 " + reducer,
          "--file", (kScripts / mapper.substr(0, mapper.find(' '))).string(),
          "--file", (kScripts / reducer.substr(0, reducer.find(' '))).string()};
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Polls until the job ended; returns its final status.
Json AwaitEnd(const Cluster& cluster, const std::string& job_id) {
  return PollStatus(cluster, job_id, [](const Json&) { return false; });
}

// job id -> state of every job the coordinator knows (`zmr jobs --all --json`: one client run).
std::map<std::string, std::string> JobStates(const Cluster& cluster) {
  ClientResult r = cluster.RunClient({"jobs", "--all", "--json"});
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  std::optional<Json> jobs = Json::Parse(r.out);
  REQUIRE(jobs.has_value());
  REQUIRE(jobs->AsArray() != nullptr);
  std::map<std::string, std::string> states;
  for (const Json& job : *jobs->AsArray()) states[job.String("job_id")] = job.String("state");
  return states;
}

// A COMPLETED job's output directory holds exactly part-00000..part-(R-1) and an empty _SUCCESS
// (no _temporary), each part sorted by key, and all lines together equal `expected`.
void CheckCompletedOutput(const fs::path& output, int reduces, const std::string& expected) {
  std::vector<std::string> want = {"_SUCCESS"};
  for (int r = 0; r < reduces; ++r) want.push_back(PartName(r));
  std::sort(want.begin(), want.end());
  CHECK(Join(ListDir(output)) == Join(want));
  CHECK(!fs::exists(output / "_temporary"));
  CHECK(fs::exists(output / "_SUCCESS"));
  for (int r = 0; r < reduces; ++r) {
    INFO(PartName(r));
    CHECK(KeysStrictlyIncreasing(ReadFile(output / PartName(r))));
  }
  const std::string actual = ReadSortedOutput(output);
  CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
}

// The descendant processes of every worker process still running, with the worker they belong to,
// but for idle runners (which belong to no job).
std::vector<ProcessInfo> WorkerDescendants(Cluster& cluster) {
  std::vector<ProcessInfo> all;
  for (int i = 0; i < cluster.worker_count(); ++i) {
    if (!cluster.worker(i).Running()) continue;
    for (ProcessInfo& p : DescendantProcesses(cluster.worker(i).pid())) {
      if (IsIdleRunner(p)) continue;
      p.command = cluster.WorkerName(i) + ": " + p.command;
      all.push_back(std::move(p));
    }
  }
  return all;
}

int CountCommands(const std::vector<ProcessInfo>& processes, const std::string& needle) {
  int n = 0;
  for (const ProcessInfo& p : processes) {
    // Only the interpreter running the script, not the `sh -c` that started it. (The command is
    // prefixed with its worker's name by WorkerDescendants.)
    const size_t colon = p.command.find(": ");
    const std::string command =
        colon == std::string::npos ? p.command : p.command.substr(colon + 2);
    if (command.rfind("/usr/bin/python3 ", 0) == 0 && command.find(needle) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

// The work dirs of all workers that hold data of the job in WORK_DIR/jobs/<job_id>: anything but
// the attempt logs a cleaned-up job keeps for `zmr logs` (logs/ and the .cleaned marker).
std::vector<std::string> JobDataLeft(const Cluster& cluster, const std::string& job_id) {
  std::vector<std::string> left;
  for (int i = 0; i < cluster.worker_count(); ++i) {
    const fs::path dir = cluster.WorkDir(i) / "jobs" / job_id;
    if (!fs::exists(dir)) continue;
    const std::vector<std::string> entries = ListDir(dir);
    if (entries == std::vector<std::string>{".cleaned", "logs/"}) continue;
    left.push_back(dir.string() + " [" + Join(entries) + "]");
  }
  return left;
}

// What of a cancelled job's output is left that must not be: part files, _temporary, _SUCCESS.
std::vector<std::string> OutputLeft(const fs::path& output) {
  std::vector<std::string> left;
  for (const std::string& name : ListDir(output)) {
    if (name.rfind("part-", 0) == 0 || name == "_temporary/" || name == "_SUCCESS") {
      left.push_back(name);
    }
  }
  return left;
}

std::string EventLines(const std::vector<Json>& events, const EventWatch& watch,
                       const std::string& job_id) {
  // The raw lines of this job, for failure messages (the Json values do not print themselves).
  std::string text;
  std::istringstream lines(watch.Text());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"" + job_id + "\"") != std::string::npos &&
        line.find("\"task_progress\"") == std::string::npos) {
      text += line + "\n";
    }
  }
  return std::to_string(events.size()) + " events (task_progress not shown):\n" + text;
}

// Files of exactly `bytes` bytes each of lower-case words and spaces, one line per ~60 bytes:
// equal inputs, so equal map tasks.
std::vector<fs::path> WriteEqualFiles(const fs::path& dir, int files, size_t bytes, uint32_t seed) {
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> length(1, 8), letter(0, 25);
  std::vector<fs::path> written;
  for (int f = 0; f < files; ++f) {
    std::string text;
    size_t line = 0;
    while (text.size() < bytes) {
      std::string word;
      for (int n = length(rng); n > 0; --n) word += static_cast<char>('a' + letter(rng));
      line += word.size() + 1;
      text += word;
      text += line > 60 ? '\n' : ' ';
      if (line > 60) line = 0;
    }
    text.resize(bytes);
    text.back() = '\n';
    char name[32];
    std::snprintf(name, sizeof name, "equal-%02d.txt", f);
    WriteFile(dir / name, text);
    written.push_back(dir / name);
  }
  return written;
}

// ---------------------------------------------------------------------------------------------
// Chaos

// The seed of the fault schedule (which worker, which fault, how long a freeze, the pauses). Fixed
// so a failure can be replayed; ZMR_TEST_CHAOS_SEED overrides it to explore other schedules.
constexpr uint32_t kChaosSeed = 20240611;
// Faults injected at most (kills and freezes together); after that the jobs finish undisturbed.
constexpr int kMaxFaults = 10;
// Big enough that the jobs run for several fault pauses even on a fast, quiet machine (at 8 MiB
// they ended in 1.7 s under ASan, before the second fault was due), so the faults hit running jobs.
constexpr int64_t kChaosCorpusBytes = 16 << 20;
const std::string kGrepPattern = "[A-Z][a-z]*on|th[aeiou]+[a-z]?";

struct ChaosJob {
  std::string label;               // names the output directory
  std::vector<std::string> args;   // app, params, maps, reduces
  int reduces = 1;
};

std::vector<ChaosJob> ChaosJobs() {
  return {
      {"wordcount", {"--app", "wordcount", "--maps", "16", "--reduces", "3"}, 3},
      {"invertedindex", {"--app", "invertedindex", "--maps", "12", "--reduces", "2"}, 2},
      {"grep",
       {"--app", "grep", "--param", "pattern=" + kGrepPattern, "--maps", "12", "--reduces", "3"},
       3},
  };
}

// Submits every job (outputs out_root/<label>) one right after the other; ids in the same order.
std::vector<std::string> SubmitAll(const Cluster& cluster, const std::vector<ChaosJob>& jobs,
                                   const fs::path& input, const fs::path& out_root) {
  fs::create_directories(out_root);
  std::vector<std::string> ids;
  for (const ChaosJob& job : jobs) {
    ids.push_back(Submit(cluster, Concat({"--input", input.string(), "--output",
                                          (out_root / job.label).string()},
                                         job.args)));
  }
  return ids;
}

// Polls `zmr jobs --json` until every one of `ids` ended, calling `between` after each look.
// Returns the final states by id. Fails the test after kPatience.
std::map<std::string, std::string> AwaitAll(const Cluster& cluster,
                                            const std::vector<std::string>& ids,
                                            const std::function<void()>& between) {
  const auto deadline = Clock::now() + kPatience;
  for (;;) {
    std::map<std::string, std::string> states = JobStates(cluster);
    std::string pending;
    for (const std::string& id : ids) {
      if (!IsTerminal(states[id])) pending += " " + id + "=" + states[id];
    }
    if (pending.empty()) return states;
    REQUIRE_MESSAGE(Clock::now() < deadline,
                    "jobs not finished after " << kPatience.count() << " ms:" << pending << "\n"
                                               << cluster.Logs());
    between();
    std::this_thread::sleep_for(milliseconds(200));
  }
}

}  // namespace

TEST_CASE("three jobs under random worker kills and freezes complete with the same part files as "
          "a fault-free run") {
  TempDir tmp("chaos");
  const fs::path input = tmp / "in";
  GenerateCorpus(input, {.seed = 31, .total_bytes = kChaosCorpusBytes, .files = 6});
  const std::vector<ChaosJob> jobs = ChaosJobs();
  const auto test_start = Clock::now();
  auto since_start = [&] {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - test_start).count();
  };

  // The fault-free reference: the same submissions on a fresh cluster of the same shape.
  const fs::path reference_out = tmp / "reference";
  {
    Cluster cluster({.workers = 3, .slots = 2});
    REQUIRE_MESSAGE(cluster.WaitForWorkers(3), cluster.Logs());
    const std::vector<std::string> ids = SubmitAll(cluster, jobs, input, reference_out);
    for (size_t j = 0; j < jobs.size(); ++j) {
      // `zmr wait` exits 0 once the job COMPLETED (and is cheaper than polling).
      ClientResult wait = cluster.RunClient({"wait", ids[j], "--no-progress"});
      INFO("reference " << jobs[j].label << " " << ids[j] << "\n"
                        << wait.Describe() << "\n" << cluster.Logs());
      REQUIRE(wait.exit_code == 0);
    }
  }
  MESSAGE("reference run done after " << since_start() << " ms");

  uint32_t seed = kChaosSeed;
  if (const char* env = std::getenv("ZMR_TEST_CHAOS_SEED")) {
    seed = static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  MESSAGE("chaos seed " << seed << " (set ZMR_TEST_CHAOS_SEED to replay another)");
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  const fs::path chaos_out = tmp / "chaos";
  Cluster cluster({.workers = 3, .slots = 2, .heartbeat_ms = 200, .liveness = 3});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(3), cluster.Logs());
  EventWatch watch(cluster);
  const std::vector<std::string> ids = SubmitAll(cluster, jobs, input, chaos_out);

  // The driver: at random pauses, SIGKILL a random worker and start a replacement, or SIGSTOP one
  // for longer than liveness x heartbeat (600 ms: it is declared lost) and SIGCONT it later, when
  // it comes back with stale attempts. The first fault is a kill, the second a freeze.
  std::vector<int> live;
  for (int i = 0; i < cluster.worker_count(); ++i) live.push_back(i);
  std::optional<int> frozen;
  std::optional<int> thawed;  // the worker last thawed: not frozen again right away
  Clock::time_point thaw_at;
  int kills = 0, freezes = 0;
  std::string fault_log;
  const auto start = Clock::now();
  // The first two faults (a kill, then a freeze) come early, within about a second of the
  // submissions, wherever the jobs are; later ones at longer pauses.
  auto next_fault = start + milliseconds(uniform(150, 400));
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  };
  auto drive = [&] {
    const auto now = Clock::now();
    if (frozen && now >= thaw_at) {
      cluster.worker(*frozen).Kill(SIGCONT);
      fault_log += "  +" + std::to_string(elapsed_ms()) + " ms SIGCONT " +
                   cluster.WorkerName(*frozen) + "\n";
      thawed = frozen;
      frozen.reset();
      return;
    }
    if (now < next_fault || kills + freezes >= kMaxFaults) return;
    const int faults = kills + freezes;
    const bool freeze = !frozen && (faults == 1 || (faults > 1 && uniform(0, 99) < 40));
    std::vector<int> candidates;
    for (int i : live) {
      if (i != frozen.value_or(-1) && !(freeze && i == thawed.value_or(-1))) {
        candidates.push_back(i);
      }
    }
    const int last = static_cast<int>(candidates.size()) - 1;
    const int victim = candidates[static_cast<size_t>(uniform(0, last))];
    if (freeze) {
      cluster.worker(victim).Kill(SIGSTOP);
      frozen = victim;
      const int pause = uniform(1000, 2500);
      thaw_at = now + milliseconds(pause);
      ++freezes;
      fault_log += "  +" + std::to_string(elapsed_ms()) + " ms SIGSTOP " +
                   cluster.WorkerName(victim) + " for " + std::to_string(pause) + " ms\n";
    } else {
      cluster.KillWorker(victim, SIGKILL);
      live.erase(std::find(live.begin(), live.end(), victim));
      const int replacement = cluster.AddWorker();
      live.push_back(replacement);
      ++kills;
      fault_log += "  +" + std::to_string(elapsed_ms()) + " ms SIGKILL " +
                   cluster.WorkerName(victim) + ", started " + cluster.WorkerName(replacement) +
                   "\n";
    }
    next_fault = now + milliseconds(faults == 0 ? uniform(200, 500) : uniform(400, 1500));
  };
  const std::map<std::string, std::string> states = AwaitAll(cluster, ids, drive);
  if (frozen) cluster.worker(*frozen).Kill(SIGCONT);
  MESSAGE("faults (jobs ended " << elapsed_ms() << " ms after the submissions, "
                                 << since_start() << " ms into the test):\n"
                                 << fault_log);

  // The faults hit the jobs while they ran (otherwise this run proved nothing: make the jobs
  // longer): a kill and a freeze happened, and some attempt was lost with its worker.
  CHECK(kills >= 1);
  CHECK(freezes >= 1);
  int lost_attempts = 0;
  for (const std::string& id : ids) {
    for (const Json& event : watch.JobEvents(id)) {
      const std::string type = event.String("type");
      const std::string why = event.String("error") + event.String("reason");
      if ((type == "task_failed" || type == "task_killed") &&
          why.find("lost") != std::string::npos) {
        ++lost_attempts;
      }
    }
  }
  MESSAGE(lost_attempts << " attempts lost with their workers");
  CHECK_MESSAGE(lost_attempts >= 1, "no attempt was lost: the faults missed the jobs");

  const std::vector<fs::path> files = CorpusFiles(input);
  for (size_t j = 0; j < jobs.size(); ++j) {
    const ChaosJob& job = jobs[j];
    INFO(job.label << " " << ids[j]);
    CHECK(states.at(ids[j]) == "COMPLETED");
    CHECK(watch.SeqProblem(ids[j]) == "");
    const fs::path out = chaos_out / job.label;
    std::vector<std::string> want = {"_SUCCESS"};
    for (int r = 0; r < job.reduces; ++r) want.push_back(PartName(r));
    std::sort(want.begin(), want.end());
    CHECK(Join(ListDir(out)) == Join(want));
    CHECK(!fs::exists(out / "_temporary"));
    CHECK(fs::exists(out / "_SUCCESS"));
    for (int r = 0; r < job.reduces; ++r) {
      INFO(PartName(r));
      const std::string expected = ReadFile(reference_out / job.label / PartName(r));
      const std::string actual = ReadFile(out / PartName(r));
      CHECK(!expected.empty());
      CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
    }
    if (job.label == "wordcount") {
      const std::string actual = ReadSortedOutput(out);
      const std::string expected = ReferenceWordCount(files);
      CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
    } else if (job.label == "invertedindex") {
      const std::string actual = ReadSortedOutput(out);
      const std::string expected = ReferenceInvertedIndex(files);
      CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
    }
  }
  CHECK(cluster.coordinator().Running());
  MESSAGE("checks done after " << since_start() << " ms");
}

TEST_CASE("a map stuck on a slowed worker gets a backup attempt on the other worker, which "
          "commits while the stuck attempt is killed") {
  TempDir tmp("straggler");
  GenerateCorpus(tmp / "in", {.seed = 32, .total_bytes = 1 << 20, .files = 4});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));

  Cluster cluster({.workers = 0, .slots = 1});
  EventWatch watch(cluster);
  const int fast = cluster.AddWorker();
  const int slow = cluster.AddWorker({.env = {{kSlowMapVariable, kSlowMapSeconds}}});
  const std::string fast_name = cluster.WorkerName(fast), slow_name = cluster.WorkerName(slow);
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, Concat(StreamingArgs("slow_wordcount_mapper.py", "wordcount_reducer.py"),
                             {"--input", (tmp / "in").string(), "--output", output.string(),
                              "--maps", "8", "--reduces", "2"}));
  // The job can only end this soon if the map stuck on the slow worker was backed up elsewhere.
  const Json job = AwaitEnd(cluster, job_id);
  INFO("events: " << EventLines(watch.JobEvents(job_id), watch, job_id) << "\n" << cluster.Logs());
  REQUIRE(job.String("state") == "COMPLETED");
  CheckCompletedOutput(output, 2, expected);

  REQUIRE_MESSAGE(watch.WaitForJobEnd(job_id), watch.SeqProblem(job_id));
  const std::vector<Json> events = watch.JobEvents(job_id);
  const std::vector<Json> assigned = EventsOfType(events, "task_assigned");
  // The slow worker got a map (its first attempt), so there was a straggler at all.
  std::optional<Json> stuck;
  for (const Json& a : assigned) {
    if (a.String("kind") == "map" && a.String("worker") == slow_name && a.Int("attempt") == 1) {
      stuck = a;
    }
  }
  REQUIRE_MESSAGE(stuck.has_value(), "no map ran on the slowed worker " << slow_name);
  const std::string task_id = stuck->String("task_id");
  CHECK(stuck->Bool("speculative") != std::optional<bool>(true));

  const std::vector<Json> speculated = EventsOfType(events, "task_speculated");
  REQUIRE_MESSAGE(!speculated.empty(), "no task_speculated event");
  for (const Json& s : speculated) {
    INFO("task_speculated of " << s.String("task_id"));
    CHECK(s.String("worker") != s.String("original_worker"));
    CHECK(s.Int("attempt") != s.Int("original_attempt"));
  }
  std::optional<Json> backup;
  for (const Json& s : speculated) {
    if (s.String("task_id") == task_id) backup = s;
  }
  REQUIRE_MESSAGE(backup.has_value(), "the stuck task " << task_id << " got no backup");
  CHECK(backup->String("original_worker") == slow_name);
  CHECK(backup->Int("original_attempt") == stuck->Int("attempt"));
  CHECK(backup->String("worker") == fast_name);
  const int64_t backup_attempt = backup->Int("attempt");

  // The backup was assigned as a speculative attempt on the fast worker ...
  int backup_assignments = 0;
  for (const Json& a : assigned) {
    if (a.String("task_id") != task_id || a.Int("attempt") != backup_attempt) continue;
    ++backup_assignments;
    CHECK(a.String("worker") == fast_name);
    CHECK(a.Bool("speculative") == std::optional<bool>(true));
  }
  CHECK(backup_assignments == 1);
  // ... it is the one attempt of the task that completed ...
  int completions = 0;
  for (const Json& c : EventsOfType(events, "task_completed")) {
    if (c.String("task_id") != task_id) continue;
    ++completions;
    CHECK(c.Int("attempt") == backup_attempt);
    CHECK(c.String("worker") == fast_name);
  }
  CHECK(completions == 1);
  // ... and the stuck original was killed.
  int killed = 0;
  for (const Json& k : EventsOfType(events, "task_killed")) {
    if (k.String("task_id") != task_id || k.Int("attempt") != stuck->Int("attempt")) continue;
    ++killed;
    CHECK(k.String("worker") == slow_name);
    CHECK(!k.String("reason").empty());
  }
  CHECK_MESSAGE(killed == 1, "no task_killed for the original attempt " << stuck->Int("attempt"));

  // The sleeper is really gone (it would sleep for an hour), the slowed worker is still serving
  // and the job's intermediate data is gone from both workers.
  CHECK_MESSAGE(WaitUntil([&] { return WorkerDescendants(cluster).empty(); }),
                "left running:\n" << DescribeProcesses(WorkerDescendants(cluster)));
  CHECK_MESSAGE(WaitUntil([&] { return JobDataLeft(cluster, job_id).empty(); }),
                Join(JobDataLeft(cluster, job_id)));
  CHECK(cluster.worker(slow).Running());
  CHECK(cluster.worker(fast).Running());
}

TEST_CASE("equal maps on equal workers run every task exactly once with no backup attempts") {
  TempDir tmp("no-straggler");
  const std::vector<fs::path> files = WriteEqualFiles(tmp / "in", 8, 96 << 10, 33);
  const std::string expected = ReferenceWordCount(files);

  Cluster cluster({.workers = 0, .slots = 2});
  EventWatch watch(cluster);
  cluster.AddWorker();
  cluster.AddWorker();
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(), "--output",
                       output.string(), "--maps", "8", "--reduces", "2"});
  const Json job = AwaitEnd(cluster, job_id);
  INFO(cluster.Logs());
  REQUIRE(job.String("state") == "COMPLETED");
  CheckCompletedOutput(output, 2, expected);

  REQUIRE_MESSAGE(watch.WaitForJobEnd(job_id), watch.SeqProblem(job_id));
  const std::vector<Json> events = watch.JobEvents(job_id);
  INFO("events: " << EventLines(events, watch, job_id));
  std::map<std::string, int> assignments;
  for (const Json& a : EventsOfType(events, "task_assigned")) {
    ++assignments[a.String("task_id")];
    CHECK(a.Bool("speculative") != std::optional<bool>(true));
  }
  std::map<std::string, int> once;
  for (int m = 0; m < 8; ++m) once[TaskName('m', m)] = 1;
  for (int r = 0; r < 2; ++r) once[TaskName('r', r)] = 1;
  CHECK(assignments == once);
  CHECK(EventsOfType(events, "task_speculated").size() == 0);
  CHECK(EventsOfType(events, "task_killed").size() == 0);
  CHECK(EventsOfType(events, "task_failed").size() == 0);
  CHECK(EventsOfType(events, "task_completed").size() == 10);

  // `zmr tasks` tells the same story: every task DONE after one attempt, none a straggler.
  ClientResult tasks = cluster.RunClient({"tasks", job_id, "--json"});
  REQUIRE_MESSAGE(tasks.exit_code == 0, tasks.Describe());
  std::optional<Json> list = Json::Parse(tasks.out);
  REQUIRE(list.has_value());
  REQUIRE(list->AsArray() != nullptr);
  std::map<std::string, int> listed;
  int64_t map_bytes = 0;
  for (const Json& t : *list->AsArray()) {
    listed[t.String("task_id")] = static_cast<int>(t.Int("attempts"));
    CHECK(t.String("state") == "DONE");
    CHECK(t.Bool("straggler") == std::optional<bool>(false));
    CHECK(t.Bool("speculative") == std::optional<bool>(false));
    CHECK(t.Int("records") > 0);
    if (t.String("kind") == "map") map_bytes += t.Int("input_bytes");
  }
  CHECK(listed == once);
  CHECK(map_bytes == 8 * (96 << 10));
  ClientResult table = cluster.RunClient({"tasks", job_id});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("m-00007") != std::string::npos);
  // Finished, it leaves the default `zmr jobs` list but stays in `--all`.
  const std::vector<std::string> active = ListedJobs(cluster);
  CHECK(std::find(active.begin(), active.end(), job_id) == active.end());
  const std::vector<std::string> all = ListedJobs(cluster, {"--all"});
  CHECK(std::find(all.begin(), all.end(), job_id) != all.end());
  ClientResult unknown = cluster.RunClient({"tasks", "job_nope"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("no such job") != std::string::npos);
}

TEST_CASE("cancelling a job in its map phase kills its attempts and leaves no process, "
          "intermediate data or output behind") {
  TempDir tmp("cancel-map");
  GenerateCorpus(tmp / "in", {.seed = 34, .total_bytes = 256 << 10, .files = 2});
  Cluster cluster({.workers = 2, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, Concat(StreamingArgs("sleep_mapper.py", "wordcount_reducer.py"),
                             {"--input", (tmp / "in").string(), "--output", output.string(),
                              "--maps", "4", "--reduces", "2"}));
  // All four slots run a mapper that never ends: the job is surely in its map phase.
  const Json mapping = PollStatus(cluster, job_id, [](const Json& job) {
    return job.String("state") == "MAPPING" && TaskCount(job, "maps", "running") == 4;
  });
  REQUIRE(mapping.String("state") == "MAPPING");
  REQUIRE_MESSAGE(
      WaitUntil([&] { return CountCommands(WorkerDescendants(cluster), "sleep_mapper.py") == 4; }),
      DescribeProcesses(WorkerDescendants(cluster)) << cluster.Logs());
  REQUIRE(!JobDataLeft(cluster, job_id).empty());

  ClientResult cancel = cluster.RunClient({"cancel", job_id});
  INFO(cancel.Describe());
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out.find("cancelled") != std::string::npos);
  CHECK(cancel.out.find("already") == std::string::npos);
  std::optional<Json> status = Status(cluster, job_id);
  REQUIRE(status.has_value());
  CHECK(status->String("state") == "CANCELLED");
  CHECK(TaskCount(*status, "maps", "running") == 0);
  ClientResult wait = cluster.RunClient({"wait", job_id, "--no-progress"});
  CHECK(wait.exit_code == 4);

  // One bounded wait for everything, then each condition on its own for the message.
  WaitUntil([&] {
    return WorkerDescendants(cluster).empty() && JobDataLeft(cluster, job_id).empty() &&
           OutputLeft(output).empty();
  });
  CHECK_MESSAGE(WorkerDescendants(cluster).empty(),
                "left running:\n" << DescribeProcesses(WorkerDescendants(cluster)));
  CHECK_MESSAGE(JobDataLeft(cluster, job_id).empty(), Join(JobDataLeft(cluster, job_id)));
  CHECK_MESSAGE(OutputLeft(output).empty(), "left in " << output << ": "
                                                       << Join(OutputLeft(output)));

  ClientResult again = cluster.RunClient({"cancel", job_id});
  INFO(again.Describe());
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("already finished") != std::string::npos);
  CHECK(again.out.find("CANCELLED") != std::string::npos);
  CHECK(cluster.worker(0).Running());
  CHECK(cluster.worker(1).Running());
}

TEST_CASE("cancelling a job in its reduce phase removes the part files it already committed and "
          "leaves no process or intermediate data behind") {
  TempDir tmp("cancel-reduce");
  GenerateCorpus(tmp / "in", {.seed = 35, .total_bytes = 256 << 10, .files = 2});
  Cluster cluster({.workers = 2, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  // Partition 0 reduces and commits part-00000; partitions 1 and 2 sleep until killed.
  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, Concat(StreamingArgs("slow_wordcount_mapper.py", "sleep_reducer.py 0"),
                             {"--input", (tmp / "in").string(), "--output", output.string(),
                              "--maps", "2", "--reduces", "3"}));
  const Json reducing = PollStatus(cluster, job_id, [&](const Json& job) {
    return job.String("state") == "REDUCING" && TaskCount(job, "reduces", "done") == 1 &&
           TaskCount(job, "reduces", "running") == 2 && fs::exists(output / PartName(0));
  });
  REQUIRE(reducing.String("state") == "REDUCING");
  REQUIRE(fs::exists(output / PartName(0)));
  REQUIRE_MESSAGE(
      WaitUntil([&] { return CountCommands(WorkerDescendants(cluster), "sleep_reducer.py") == 2; }),
      DescribeProcesses(WorkerDescendants(cluster)) << cluster.Logs());
  REQUIRE(!JobDataLeft(cluster, job_id).empty());

  ClientResult cancel = cluster.RunClient({"cancel", job_id});
  INFO(cancel.Describe());
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out.find("cancelled") != std::string::npos);
  CHECK(cancel.out.find("already") == std::string::npos);
  std::optional<Json> status = Status(cluster, job_id);
  REQUIRE(status.has_value());
  CHECK(status->String("state") == "CANCELLED");
  CHECK(TaskCount(*status, "reduces", "running") == 0);

  WaitUntil([&] {
    return WorkerDescendants(cluster).empty() && JobDataLeft(cluster, job_id).empty() &&
           OutputLeft(output).empty();
  });
  CHECK_MESSAGE(WorkerDescendants(cluster).empty(),
                "left running:\n" << DescribeProcesses(WorkerDescendants(cluster)));
  CHECK_MESSAGE(JobDataLeft(cluster, job_id).empty(), Join(JobDataLeft(cluster, job_id)));
  CHECK_MESSAGE(OutputLeft(output).empty(), "left in " << output << ": "
                                                       << Join(OutputLeft(output)));

  ClientResult again = cluster.RunClient({"cancel", job_id});
  INFO(again.Describe());
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("already finished") != std::string::npos);
  CHECK(again.out.find("CANCELLED") != std::string::npos);
  CHECK(cluster.worker(0).Running());
  CHECK(cluster.worker(1).Running());
}

TEST_CASE("a job whose input vanished while it waited for workers fails at SUBMITTED and "
          "another job goes on") {
  TempDir tmp("sched-vanished");
  GenerateCorpus(tmp / "gone", {.seed = 31, .total_bytes = 64 << 10, .files = 2});
  GenerateCorpus(tmp / "kept", {.seed = 32, .total_bytes = 256 << 10, .files = 2});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "kept"));
  Cluster cluster({.workers = 0, .slots = 2});
  REQUIRE(cluster.WaitForWorkers(0));
  const fs::path gone_out = tmp / "out-gone";
  const fs::path kept_out = tmp / "out-kept";
  const std::string gone = Submit(cluster, {"--app", "wordcount", "--input",
                                            (tmp / "gone").string(), "--output",
                                            gone_out.string(), "--maps", "2"});
  const std::string kept = Submit(cluster, {"--app", "wordcount", "--input",
                                            (tmp / "kept").string(), "--output",
                                            kept_out.string(), "--maps", "3", "--reduces", "2"});
  std::optional<Json> waiting = Status(cluster, gone);
  REQUIRE(waiting.has_value());
  CHECK(waiting->String("state") == "SUBMITTED");
  CHECK(waiting->String("waiting") == "no workers connected");
  // The inputs disappear before any worker is there to read them.
  fs::remove_all(tmp / "gone");

  cluster.AddWorker();
  Json failed = AwaitEnd(cluster, gone);
  INFO(cluster.Logs());
  CHECK(failed.String("state") == "FAILED");
  CHECK(failed.String("error").rfind("SUBMITTED: input ", 0) == 0);
  CHECK(failed.String("error").find("vanished") != std::string::npos);
  const Json* failure = failed.Get("failure");
  REQUIRE(failure != nullptr);
  CHECK(failure->String("stage") == "SUBMITTED");
  CHECK(TaskCount(failed, "maps", "done") == 0);
  CHECK(OutputLeft(gone_out).empty());
  ClientResult wait_gone = cluster.RunClient({"wait", gone, "--no-progress"});
  CHECK(wait_gone.exit_code == 1);
  CHECK(wait_gone.err.find("SUBMITTED: input") != std::string::npos);

  Json done = AwaitEnd(cluster, kept);
  REQUIRE(done.String("state") == "COMPLETED");
  CHECK(ReadSortedOutput(kept_out) == expected);
}
