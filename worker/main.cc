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
  int64_t sort_buffer_mb = zmr::kDefaultSortBufferBytes >> 20;
  int64_t task_timeout_s = zmr::kDefaultTaskTimeoutMs / 1000;
  int64_t memory_limit_mb = 0;
  o.slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cxxopts::Options options(program, "zmr worker: runs map and reduce attempts for a coordinator");
  options.add_options()
      ("coordinator", "the coordinator's workers endpoint",
       cxxopts::value<std::string>(o.coordinator))
      ("slots", "attempts run at once (default: number of CPUs)", cxxopts::value<int>(o.slots))
      ("queue", "assignments of short tasks accepted beyond --slots, each started as a slot "
       "frees (0..4096, default: as many as --slots; 0: none)", cxxopts::value<int>(o.queue))
      ("work-dir", "directory for intermediate data (default: $TMPDIR/zmr-NAME)",
       cxxopts::value<std::string>(o.work_dir))
      ("name", "worker name, unique in the cluster (default: HOST-PID)",
       cxxopts::value<std::string>(o.name))
      ("heartbeat-ms", "heartbeat interval in milliseconds", cxxopts::value<int>(o.heartbeat_ms))
      ("liveness", "missed heartbeats before the coordinator is presumed lost",
       cxxopts::value<int>(o.liveness))
      ("sort-buffer-mb", "map output buffered per attempt before it is sorted and spilled "
       "(1..65536, default 64)", cxxopts::value<int64_t>(sort_buffer_mb))
      ("task-timeout", "seconds an attempt may go without progress before it is killed "
       "(1..86400, default 600)", cxxopts::value<int64_t>(task_timeout_s))
      ("memory-limit-mb", "address-space limit of each attempt's process in MiB "
       "(default 0: none)", cxxopts::value<int64_t>(memory_limit_mb))
      ("attempts-per-runner", "attempts one task process runs before it is replaced "
       "(1..1000000, default 1000; 1: a fresh process for every attempt)",
       cxxopts::value<int>(o.attempts_per_runner))
      ("log-retention-s", "seconds a finished job's attempt logs are kept for `zmr logs` "
       "(0..31536000, default 10800; 0: removed with the job's data)",
       cxxopts::value<int64_t>(o.log_retention_s))
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
  if (flags.count("queue") && (o.queue < 0 || o.queue > 4096)) {
    return UsageError(program, "--queue must be between 0 and 4096");
  }
  if (o.heartbeat_ms < 10 || o.heartbeat_ms > 600000) {
    return UsageError(program, "--heartbeat-ms must be between 10 and 600000");
  }
  if (o.liveness < 1 || o.liveness > 1000) {
    return UsageError(program, "--liveness must be between 1 and 1000");
  }
  if (flags.count("name") && o.name.empty()) return UsageError(program, "--name must not be empty");
  if (sort_buffer_mb < 1 || sort_buffer_mb > 65536) {
    return UsageError(program, "--sort-buffer-mb must be between 1 and 65536");
  }
  if (task_timeout_s < 1 || task_timeout_s > 86400) {
    return UsageError(program, "--task-timeout must be between 1 and 86400 seconds");
  }
  if (memory_limit_mb < 0 || memory_limit_mb > (int64_t{1} << 30)) {
    return UsageError(program, "--memory-limit-mb must be 0 (no limit) or a positive size in MiB");
  }
  if (o.attempts_per_runner < 1 || o.attempts_per_runner > 1000000) {
    return UsageError(program, "--attempts-per-runner must be between 1 and 1000000");
  }
  if (o.log_retention_s < 0 || o.log_retention_s > 31536000) {
    return UsageError(program, "--log-retention-s must be between 0 and 31536000");
  }
  o.sort_buffer_bytes = sort_buffer_mb << 20;
  o.task_timeout_ms = task_timeout_s * 1000;
  o.memory_limit_bytes = memory_limit_mb << 20;
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
