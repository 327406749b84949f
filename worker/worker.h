// The worker process: one DEALER socket to the coordinator, the Paranoid Pirate heartbeat and
// reconnect logic, and one thread per running attempt (each attempt reports back to the loop over
// an inproc PUSH socket). Run() owns the socket and must be called from one thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace zmr {

struct WorkerOptions {
  std::string coordinator = "tcp://127.0.0.1:5555";
  int slots = 1;
  std::string work_dir;   // intermediate data and attempt scratch space; created if missing
  std::string name;       // unique in the cluster
  int heartbeat_ms = 1000;
  int liveness = 3;
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
