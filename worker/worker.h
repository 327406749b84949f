// The worker process: one DEALER socket to the coordinator, the Paranoid Pirate heartbeat and
// reconnect logic, a cache of shipped job files, and threads that run attempts (one per slot, kept
// between attempts). Each attempt thread babysits a `zmr-task` child process
// (worker/attempt_process.h) that runs the user code, and reports back to the loop through a
// queue with an eventfd the loop polls. Run() owns the socket and must be called
// from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "runner/protocol.h"
#include "worker/attempt_process.h"

namespace zmr {

struct WorkerOptions {
  std::string coordinator = "tcp://127.0.0.1:5555";
  int slots = 1;
  // Assignments beyond its slots it accepts and holds, starting each when a slot frees (the
  // coordinator sends them only for short tasks); -1: as many as slots, 0: none.
  int queue = -1;
  std::string work_dir;   // intermediate data and attempt scratch space; created if missing
  std::string name;       // unique in the cluster
  int heartbeat_ms = 1000;
  int liveness = 3;
  int64_t sort_buffer_bytes = kDefaultSortBufferBytes;  // map-side sort buffer per attempt
  int64_t task_timeout_ms = kDefaultTaskTimeoutMs;     // no progress this long kills an attempt
  int64_t memory_limit_bytes = 0;                      // address space per attempt; 0 = none
  std::string task_binary;  // the zmr-task executable; "" = next to this program
  // Attempts one zmr-task runner process takes before it is replaced (1: one per attempt).
  int attempts_per_runner = kDefaultAttemptsPerRunner;
  // A finished job's attempt logs stay this long after its cleanup (for `zmr logs`); 0: removed
  // with the rest of its data.
  int64_t log_retention_s = kDefaultLogRetentionS;
};

class Worker {
 public:
  // Prepares the work dir. Returns nullptr with a one-line *error if it cannot be created.
  static std::unique_ptr<Worker> Create(const WorkerOptions& options, std::string* error);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until *stop becomes true or the coordinator refuses this worker. On stop it tells the
  // coordinator, cancels running attempts and joins their threads. Returns the exit code.
  int Run(const std::atomic<bool>& stop);

 private:
  Worker();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
