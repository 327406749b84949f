// zmr-worker: parses flags and runs a worker until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  using zmr::UsageError;
  const std::string program = "zmr-worker";
  zmr::WorkerOptions o;
  o.slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cxxopts::Options options(program, "zmr worker: runs map and reduce attempts for a coordinator");
  options.add_options()
      ("coordinator", "the coordinator's workers endpoint",
       cxxopts::value<std::string>(o.coordinator))
      ("slots", "attempts run at once (default: number of CPUs)", cxxopts::value<int>(o.slots))
      ("work-dir", "directory for intermediate data (default: $TMPDIR/zmr-NAME)",
       cxxopts::value<std::string>(o.work_dir))
      ("name", "worker name, unique in the cluster (default: HOST-PID)",
       cxxopts::value<std::string>(o.name))
      ("heartbeat-ms", "heartbeat interval in milliseconds", cxxopts::value<int>(o.heartbeat_ms))
      ("liveness", "missed heartbeats before the coordinator is presumed lost",
       cxxopts::value<int>(o.liveness))
      ("log-level", "trace, debug, info, warn, error, critical or off",
       cxxopts::value<std::string>()->default_value("info"))
      ("version", "print the version and exit")
      ("h,help", "print this help and exit");
  cxxopts::ParseResult flags;
  if (!zmr::ParseFlags(options, argc, argv, &flags)) return zmr::kExitUsage;
  if (flags.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  if (flags.count("version")) {
    std::cout << program << " " << ZMR_VERSION << "\n";
    return 0;
  }
  if (o.slots < 1 || o.slots > 4096) return UsageError(program, "--slots must be between 1 and 4096");
  if (o.heartbeat_ms < 10 || o.heartbeat_ms > 600000) {
    return UsageError(program, "--heartbeat-ms must be between 10 and 600000");
  }
  if (o.liveness < 1 || o.liveness > 1000) {
    return UsageError(program, "--liveness must be between 1 and 1000");
  }
  if (flags.count("name") && o.name.empty()) return UsageError(program, "--name must not be empty");
  if (!zmr::SetupLogging(program, flags["log-level"].as<std::string>())) {
    return UsageError(program, "unknown --log-level '" + flags["log-level"].as<std::string>() + "'");
  }
  zmr::InstallStopHandlers();
  std::string error;
  std::unique_ptr<zmr::Worker> worker = zmr::Worker::Create(o, &error);
  if (!worker) {
    std::cerr << program << ": " << error << std::endl;
    return 1;
  }
  return worker->Run(zmr::StopFlag());
}
