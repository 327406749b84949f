// The coordinator process: binds the workers ROUTER, the clients ROUTER and the events PUB socket,
// and runs the single poll loop that feeds the Scheduler and carries out what it decides (sending
// to workers, publishing events, validating submissions, committing job output). Everything runs
// on the thread that calls Run().
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace zmr {

struct CoordinatorOptions {
  std::string workers_endpoint = "tcp://127.0.0.1:5555";
  std::string clients_endpoint = "tcp://127.0.0.1:5556";
  std::string events_endpoint = "tcp://127.0.0.1:5557";
  int heartbeat_ms = 1000;
  int liveness = 3;
  int max_attempts = 4;
  // A straggler gets a backup attempt only if it is expected to finish this much later than a
  // typical task of its phase (SchedulerOptions::speculation_slack_ms).
  int speculation_slack_ms = 2000;
  // When set, the resolved endpoints ("workers=...", "clients=...", "events=..." lines) are written
  // here once all sockets are bound (endpoints may use port "*" to bind any free port).
  std::string ready_file;
};

class Coordinator {
 public:
  // Binds the three sockets. Returns nullptr with a one-line *error if an endpoint is invalid or in
  // use.
  static std::unique_ptr<Coordinator> Create(const CoordinatorOptions& options,
                                             std::string* error);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Serves until *stop becomes true (checked at least every 100 ms). Returns the exit code.
  int Run(const std::atomic<bool>& stop);

 private:
  Coordinator();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
