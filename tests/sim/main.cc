// zmr-sim-workers: many simulated workers against a real coordinator (tests/sim/sim_workers.h),
// until SIGINT/SIGTERM or --run-ms; writes a JSON report at exit.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"
#include "tests/sim/sim_workers.h"

// Under AddressSanitizer (the test suite's -DZMR_SANITIZE=ON), this load generator would spend
// about a fifth of its CPU filling and faulting in fresh memory: every msgpack Pack/Unpack
// allocates an 8 KiB buffer, which ASan fills (max_malloc_fill_size) and keeps in a 256 MiB
// quarantine, so memory is never reused. Both only help find bugs in this tool, not in the
// coordinator it loads; a smaller quarantine still catches use-after-free of recent frees.
// ASAN_OPTIONS in the environment still wins.
extern "C" __attribute__((used)) const char* __asan_default_options() {
  return "max_malloc_fill_size=0:quarantine_size_mb=16";
}

namespace {

// Writes `text` to `path` atomically (a temporary file renamed over it), so a reader never sees
// half a report.
bool WriteReport(const std::string& path, const std::string& text, std::string* error) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    *error = "cannot write " + tmp;
    return false;
  }
  const bool written = std::fprintf(f, "%s\n", text.c_str()) > 0;
  if (std::fclose(f) != 0 || !written) {
    *error = "cannot write " + tmp;
    return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    *error = "cannot write " + path + ": " + ec.message();
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using zmr::UsageError;
  const std::string program = "zmr-sim-workers";
  zmr::sim::SimOptions o;
  std::string report_path;
  cxxopts::Options options(
      program, "simulated zmr workers: N fake workers on one thread, speaking the real protocol");
  options.add_options()
      ("coordinator", "the coordinator's workers endpoint",
       cxxopts::value<std::string>(o.coordinator))
      ("workers", "number of simulated workers", cxxopts::value<int>(o.workers))
      ("slots", "slots per worker", cxxopts::value<int>(o.slots))
      ("task-ms", "how long an attempt runs before it reports done (0: at once)",
       cxxopts::value<int>(o.task_ms))
      ("heartbeat-ms", "heartbeat interval in milliseconds", cxxopts::value<int>(o.heartbeat_ms))
      ("liveness", "missed heartbeats before the coordinator is presumed lost",
       cxxopts::value<int>(o.liveness))
      ("name-prefix", "workers are named PREFIX-00000, PREFIX-00001, ... (default: sim-PID)",
       cxxopts::value<std::string>(o.name_prefix))
      ("events", "the coordinator's PUB endpoint: count worker_lost events of these workers",
       cxxopts::value<std::string>(o.events))
      ("report", "write a JSON report to this file at exit",
       cxxopts::value<std::string>(report_path))
      ("run-ms", "stop after this many milliseconds (0: at SIGINT/SIGTERM)",
       cxxopts::value<int64_t>(o.run_ms))
      ("seed", "seed of the heartbeat stagger", cxxopts::value<uint32_t>(o.seed))
      ("probe-ms", "every this many ms, time a heartbeat's round trip through the coordinator "
       "from a socket that never registers (0: off)", cxxopts::value<int>(o.probe_ms))
      ("log-level", "trace, debug, info, warn, error, critical or off",
       cxxopts::value<std::string>()->default_value("info"))
      ("h,help", "print this help and exit");
  cxxopts::ParseResult flags;
  if (!zmr::ParseFlags(options, argc, argv, &flags)) return zmr::kExitUsage;
  if (flags.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  if (o.workers < 1 || o.workers > 100000) {
    return UsageError(program, "--workers must be between 1 and 100000");
  }
  if (o.slots < 1 || o.slots > 4096) {
    return UsageError(program, "--slots must be between 1 and 4096");
  }
  if (o.task_ms < 0) return UsageError(program, "--task-ms must be >= 0");
  if (o.heartbeat_ms < 10 || o.heartbeat_ms > 600000) {
    return UsageError(program, "--heartbeat-ms must be between 10 and 600000");
  }
  if (o.liveness < 1 || o.liveness > 1000) {
    return UsageError(program, "--liveness must be between 1 and 1000");
  }
  if (o.run_ms < 0) return UsageError(program, "--run-ms must be >= 0");
  if (o.probe_ms < 0 || o.probe_ms > 600000) {
    return UsageError(program, "--probe-ms must be between 0 and 600000");
  }
  if (flags.count("name-prefix") && o.name_prefix.empty()) {
    return UsageError(program, "--name-prefix must not be empty");
  }
  if (!zmr::SetupLogging(program, flags["log-level"].as<std::string>())) {
    return UsageError(program,
                      "unknown --log-level '" + flags["log-level"].as<std::string>() + "'");
  }
  zmr::InstallStopHandlers();
  std::string error;
  std::unique_ptr<zmr::sim::SimWorkers> sim = zmr::sim::SimWorkers::Create(o, &error);
  if (!sim) {
    std::cerr << program << ": " << error << std::endl;
    return 1;
  }
  int code = sim->Run(zmr::StopFlag());
  const std::string report = sim->Report().ToJson();
  spdlog::info("report: {}", report);
  if (!report_path.empty() && !WriteReport(report_path, report, &error)) {
    std::cerr << program << ": " << error << std::endl;
    return 1;
  }
  return code;
}
