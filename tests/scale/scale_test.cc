// Scale test: the real zmr-coordinator (default 1 s heartbeat, default liveness) against a thousand
// simulated workers (tests/sim/, one zmr-sim-workers process speaking the real wire protocol) and
// a job of 20,000 map tasks. It checks what a user would: the job COMPLETES with every map done and
// its output committed, and no worker was ever lost or asked to register again, i.e. the
// coordinator's loop kept up with 1,000 heartbeats a second while it scheduled the job. It asserts
// no timing; the time and coordinator CPU of each phase are printed to stderr for the record.
//
// Runs alone (ctest RUN_SERIAL): the coordinator and the harness need both cores.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;
using Clock = std::chrono::steady_clock;

constexpr int kWorkers = 1000;
constexpr int kSlots = 2;
constexpr int kTaskMs = 20;
constexpr int kMaps = 20000;
// Two input lines per map, so that most splits own a line.
constexpr int kInputLines = 2 * kMaps;
// Hang guard for the job itself (20,000 maps is far more coordinator work than anything the
// integration tests do); not a timing check.
constexpr milliseconds kJobPatience{300000};
// How often the job's status is polled, and how long one status request may take.
constexpr milliseconds kStatusPollInterval{1000};
constexpr const char* kStatusTimeoutMs = "20000";

fs::path SimWorkersBinary() { return fs::path(ZMR_SIM_WORKERS); }

// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; -1 if unreadable.
double ProcessCpuSeconds(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string field; fields >> field;) f.push_back(field);
  // After "pid (comm) ", fields start at #3 (state): utime is #14, stime #15.
  if (f.size() < 13) return -1;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(f[11]) + std::stod(f[12])) / ticks;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The job's JobInfo from `zmr status --json`, or nullopt when the request failed.
std::optional<Json> JobStatus(const Cluster& cluster, const std::string& job_id) {
  ClientResult r =
      cluster.RunClient({"--timeout-ms", kStatusTimeoutMs, "status", job_id, "--json"});
  if (r.exit_code != 0) return std::nullopt;
  return Json::Parse(r.out);
}

// Number of entries of `zmr workers --json`, or -1 when the request failed.
int64_t RegisteredWorkers(const Cluster& cluster) {
  ClientResult r = cluster.RunClient({"--timeout-ms", kStatusTimeoutMs, "workers", "--json"});
  if (r.exit_code != 0) return -1;
  std::optional<Json> doc = Json::Parse(r.out);
  return doc && doc->AsArray() ? static_cast<int64_t>(doc->AsArray()->size()) : -1;
}

int64_t Count(const Json& job, const char* phase, const char* field) {
  const Json* counts = job.Get(phase);
  return counts ? counts->Int(field) : -1;
}

}  // namespace

TEST_CASE("a thousand simulated workers heartbeating every second all stay registered while a "
          "job of 20,000 maps completes") {
  const Clock::time_point t0 = Clock::now();
  Cluster cluster(ClusterOptions{.workers = 0});  // default heartbeat and liveness
  TempDir dir("scale");
  const pid_t coordinator_pid = cluster.coordinator().pid();

  const fs::path input = dir / "input.txt";
  {
    std::string text;
    text.reserve(static_cast<size_t>(kInputLines) * 24);
    char line[64];
    for (int i = 0; i < kInputLines; ++i) {
      std::snprintf(line, sizeof(line), "line %05d alpha beta\n", i);
      text += line;
    }
    WriteFile(input, text);
  }
  const fs::path output = dir / "output";
  const fs::path report = dir / "sim-report.json";

  Process sim({SimWorkersBinary().string(),
               "--coordinator", cluster.workers_endpoint(),
               "--events", cluster.events_endpoint(),
               "--workers", std::to_string(kWorkers),
               "--slots", std::to_string(kSlots),
               "--task-ms", std::to_string(kTaskMs),
               "--name-prefix", "sim",
               "--probe-ms", "100",
               "--report", report.string()},
              dir / "sim.out", dir / "sim.err");
  auto logs = [&] {
    const std::string err = sim.Stderr();
    return cluster.Logs() + "\n--- zmr-sim-workers stderr:\n" +
           err.substr(err.size() > 6000 ? err.size() - 6000 : 0);
  };

  // Phase 1: every simulated worker registers.
  const Clock::time_point t_register = Clock::now();
  REQUIRE_MESSAGE(cluster.WaitForWorkers(kWorkers), logs());
  const double register_s = SecondsSince(t_register);
  const double cpu_registered = ProcessCpuSeconds(coordinator_pid);

  // Phase 2: submit 20,000 maps and one reduce.
  const Clock::time_point t_submit = Clock::now();
  ClientResult submitted = cluster.RunClient({"--timeout-ms", kStatusTimeoutMs, "submit", "--json",
                                              "--app", "wordcount", "--input", input.string(),
                                              "--output", output.string(), "--maps",
                                              std::to_string(kMaps), "--reduces", "1"});
  REQUIRE_MESSAGE(submitted.exit_code == 0, (submitted.Describe() + "\n" + logs()));
  std::optional<Json> submit_doc = Json::Parse(submitted.out);
  REQUIRE(submit_doc);
  const std::string job_id = submit_doc->String("job_id");
  REQUIRE(!job_id.empty());
  CHECK(submit_doc->Int("maps") == kMaps);
  CHECK(submit_doc->Int("reduces") == 1);

  // Phase 3: the job runs to its end.
  std::optional<Json> job;
  int failed_polls = 0;
  const auto deadline = Clock::now() + kJobPatience;
  for (;;) {
    job = JobStatus(cluster, job_id);
    if (!job) ++failed_polls;
    const std::string state = job ? job->String("state") : "";
    if (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED") break;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kStatusPollInterval);
  }
  const double job_s = SecondsSince(t_submit);
  const double cpu_job_done = ProcessCpuSeconds(coordinator_pid);
  REQUIRE_MESSAGE(job, logs());
  CHECK_MESSAGE(job->String("state") == "COMPLETED", (job->String("error") + "\n" + logs()));
  CHECK(Count(*job, "maps", "total") == kMaps);
  CHECK(Count(*job, "maps", "done") == kMaps);
  CHECK(Count(*job, "reduces", "done") == 1);
  CHECK(fs::is_regular_file(output / "_SUCCESS"));
  CHECK(fs::is_regular_file(output / "part-00000"));
  CHECK(!fs::exists(output / "_temporary"));

  // All workers are still there, and none was ever lost or told to register again.
  CHECK(RegisteredWorkers(cluster) == kWorkers);
  const double cpu_end = ProcessCpuSeconds(coordinator_pid);
  const double sim_cpu = ProcessCpuSeconds(sim.pid());
  CHECK(sim.Stop(SIGTERM, milliseconds(30000)) == 0);
  std::optional<Json> r = Json::Parse(ReadFile(report));
  REQUIRE_MESSAGE(r, ("no report from zmr-sim-workers\n" + logs()));
  CHECK(r->Int("registered") == kWorkers);
  CHECK(r->Int("coordinator_silences") == 0);
  CHECK(r->Int("reregisters") == 0);
  CHECK(r->Int("worker_lost_events") == 0);
  CHECK(r->Int("refused") == 0);
  CHECK(r->Int("bad_messages") == 0);
  CHECK(r->Int("attempts_failed") == 0);
  CHECK(r->Int("attempts_done") >= kMaps + 1);
  // A sender that never registered is told to register, however busy the coordinator is.
  CHECK(r->Int("probes_answered") > 0);
  // The count of worker_lost events means something only if the subscription was live.
  const Json* events_live = r->Get("events_live");
  CHECK((events_live != nullptr && std::get_if<bool>(&events_live->v) != nullptr &&
         *std::get_if<bool>(&events_live->v)));

  std::fprintf(stderr,
               "[scale] %d workers x %d slots, %d maps of %d ms: registration %.1f s "
               "(coordinator CPU %.1f s), job %.1f s (coordinator CPU %.1f s, %d failed status "
               "polls), test %.1f s; coordinator CPU total %.1f s, harness CPU %.1f s\n"
               "[scale] harness report: %s\n",
               kWorkers, kSlots, kMaps, kTaskMs, register_s, cpu_registered, job_s,
               cpu_job_done - cpu_registered, failed_polls, SecondsSince(t0), cpu_end, sim_cpu,
               ReadFile(report).c_str());
}
