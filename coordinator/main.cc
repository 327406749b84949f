// zmr-coordinator: parses flags and runs the coordinator until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"
#include "coordinator/coordinator.h"

int main(int argc, char** argv) {
  using zmr::UsageError;
  const std::string program = "zmr-coordinator";
  zmr::CoordinatorOptions o;
  cxxopts::Options options(program, "zmr coordinator: schedules MapReduce jobs onto workers");
  options.add_options()
      ("workers", "ROUTER endpoint for workers", cxxopts::value<std::string>(o.workers_endpoint))
      ("clients", "ROUTER endpoint for clients", cxxopts::value<std::string>(o.clients_endpoint))
      ("events", "PUB endpoint for job and worker events",
       cxxopts::value<std::string>(o.events_endpoint))
      ("heartbeat-ms", "heartbeat interval in milliseconds",
       cxxopts::value<int>(o.heartbeat_ms))
      ("liveness", "missed heartbeats before a worker is declared lost",
       cxxopts::value<int>(o.liveness))
      ("max-attempts", "failed attempts per task before its job fails",
       cxxopts::value<int>(o.max_attempts))
      ("speculation-slack-ms",
       "launch a backup for a straggler only if it would finish this much after a typical task",
       cxxopts::value<int>(o.speculation_slack_ms))
      ("ready-file", "write the bound endpoints to this file once listening",
       cxxopts::value<std::string>(o.ready_file))
      ("log-level", "trace, debug, info, warn, error, critical or off",
       cxxopts::value<std::string>()->default_value("info"))
      ("version", "print the version and exit")
      ("h,help", "print this help and exit");
  cxxopts::ParseResult flags;
  if (!zmr::ParseFlags(options, argc, argv, &flags)) return zmr::kExitUsage;
  if (flags.count("help")) {
    std::cout << options.help() << "\nEndpoints may use port * to bind any free port "
              << "(see --ready-file).\n";
    return 0;
  }
  if (flags.count("version")) {
    std::cout << program << " " << ZMR_VERSION << "\n";
    return 0;
  }
  if (o.heartbeat_ms < 10 || o.heartbeat_ms > 600000) {
    return UsageError(program, "--heartbeat-ms must be between 10 and 600000");
  }
  if (o.liveness < 1 || o.liveness > 1000) {
    return UsageError(program, "--liveness must be between 1 and 1000");
  }
  if (o.max_attempts < 1 || o.max_attempts > 100) {
    return UsageError(program, "--max-attempts must be between 1 and 100");
  }
  if (o.speculation_slack_ms < 0 || o.speculation_slack_ms > 86400000) {
    return UsageError(program, "--speculation-slack-ms must be between 0 and 86400000");
  }
  if (!zmr::SetupLogging(program, flags["log-level"].as<std::string>())) {
    return UsageError(program, "unknown --log-level '" + flags["log-level"].as<std::string>() + "'");
  }
  // Every worker and client is a TCP connection: allow as many as the hard limit does (a soft
  // limit of 1024 would cap a cluster below a thousand workers).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 1 << 20);
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) spdlog::warn("cannot raise the open files limit");
  }
  zmr::InstallStopHandlers();
  std::string error;
  std::unique_ptr<zmr::Coordinator> coordinator = zmr::Coordinator::Create(o, &error);
  if (!coordinator) {
    std::cerr << program << ": " << error << std::endl;
    return 1;
  }
  return coordinator->Run(zmr::StopFlag());
}
