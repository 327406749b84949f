// Simulated workers: many lightweight fake zmr workers in one process and on one thread, each with
// its own DEALER socket speaking the real worker protocol (PROTOCOL.md: ready/welcome, Paranoid
// Pirate heartbeats both ways, reregister, assign, task_progress/task_done, cancel). They run no
// user code: an assigned attempt "runs" for --task-ms and then reports made-up map outputs, or, for
// reduces and map-only maps, an empty part file really created under OUTPUT/_temporary/ so the
// coordinator can commit it. Used by tests/scale/ to load a real coordinator with a thousand
// workers, and by benchmarks.
//
// Differences from worker/worker.cc: the first heartbeats are staggered randomly over one interval;
// the coordinator's silence is checked when a heartbeat is due (so it is noticed between liveness
// and liveness+1 intervals); job_files and cleanup are ignored. The measurements (SimReport) show
// whether the coordinator kept up: the gaps between its heartbeats to each worker, how long it took
// to answer a heartbeat (an optional probe, SimOptions::probe_ms), and how late this process
// itself ran (timer lag), which must be small for the other figures to mean anything.
//
// SimWorkers is single-threaded: Create, Run and Report must be called from one thread (Run owns
// all sockets). The stop flag may be set from a signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/protocol.h"

namespace zmr::sim {

struct SimOptions {
  std::string coordinator = "tcp://127.0.0.1:5555";  // the coordinator's workers endpoint
  int workers = 1;                                   // simulated workers (1..100000)
  int slots = 1;                                     // per worker, as sent in `ready`
  int task_ms = 0;              // how long an attempt "runs"; 0: it finishes at once
  int heartbeat_ms = kDefaultHeartbeatMs;
  int liveness = kDefaultLiveness;
  std::string name_prefix;      // workers are named <prefix>-00000, ...; "" = "sim-<pid>"
  std::string events;           // the coordinator's PUB endpoint, "" = do not subscribe
  int64_t run_ms = 0;           // stop after this long; 0 = only when the stop flag is set
  uint32_t seed = 1;            // for the heartbeat stagger
  // Every this many ms, one extra socket that never registers (the probe) sends a heartbeat and
  // times the coordinator's answer (`reregister`, sent as soon as the coordinator reads it): the
  // round trip of a worker's heartbeat through the coordinator's loop. 0: no probe.
  int probe_ms = 0;
};

// What a run measured. Counters are totals over the run; `registered` is a snapshot at its end.
struct SimReport {
  int64_t workers = 0;               // the options this run used
  int64_t slots = 0;
  int64_t task_ms = 0;
  int64_t heartbeat_ms = 0;
  int64_t liveness = 0;
  int64_t registered = 0;            // workers whose current registration was welcomed
  int64_t welcomes = 0;              // `welcome` messages received (>= registered)
  int64_t all_registered_ms = -1;    // from connecting until all were welcomed; -1: never
  int64_t reregisters = 0;           // `reregister` messages received
  int64_t coordinator_silences = 0;  // a worker heard nothing for liveness x heartbeat
  int64_t refused = 0;               // `refused` messages received (that worker then stops)
  int64_t worker_lost_events = 0;    // `worker/*/worker_lost` events seen (needs --events)
  int64_t worker_joined_events = 0;  // `worker/*/worker_joined` events seen (needs --events)
  bool events_live = false;          // the events subscription delivered something
  int64_t attempts_started = 0;      // `assign` messages accepted
  int64_t attempts_done = 0;         // task_done sent
  int64_t attempts_failed = 0;       // task_failed sent (e.g. a part file could not be created)
  int64_t attempts_cancelled = 0;    // dropped on `cancel`
  int64_t attempts_abandoned = 0;    // dropped on reregister or silence
  int64_t bad_messages = 0;          // undecodable or invalid messages from the coordinator
  int64_t send_failures = 0;         // sends refused (queue full) or failed
  int64_t heartbeats_sent = 0;
  int64_t heartbeats_received = 0;   // coordinator -> worker heartbeats
  // Gap between consecutive coordinator heartbeats to the same worker registration, in ms.
  int64_t heartbeat_gap_p50_ms = 0;
  int64_t heartbeat_gap_p99_ms = 0;
  int64_t heartbeat_gap_max_ms = 0;
  // The probe's round trips (see SimOptions::probe_ms), in microseconds; a probe unanswered for
  // a second is lost (and not in the percentiles).
  int64_t probes_answered = 0;
  int64_t probes_lost = 0;
  int64_t probe_rtt_p50_us = 0;
  int64_t probe_rtt_p99_us = 0;
  int64_t probe_rtt_max_us = 0;
  // How late this process ran its own timers (heartbeats, attempt ends), in ms: if these are
  // large, the gaps above measure this harness, not the coordinator.
  int64_t timer_lag_p99_ms = 0;
  int64_t timer_lag_max_ms = 0;
  int64_t loop_iterations = 0;
  int64_t loop_turn_max_ms = 0;      // longest stretch between two waits for input
  int64_t elapsed_ms = 0;
  double cpu_seconds = 0;            // user + system CPU of this process over the run

  // One JSON object (one line, no trailing newline).
  std::string ToJson() const;
};

class SimWorkers {
 public:
  // Validates the options and creates the context (raising RLIMIT_NOFILE's soft limit to the hard
  // limit: each worker needs about two descriptors). Returns nullptr with a one-line *error.
  static std::unique_ptr<SimWorkers> Create(const SimOptions& options, std::string* error);
  ~SimWorkers();
  SimWorkers(const SimWorkers&) = delete;
  SimWorkers& operator=(const SimWorkers&) = delete;

  // Connects every worker and serves until *stop becomes true (checked at least every 100 ms) or
  // run_ms has passed, then says `disconnect` for each registered worker. Returns the exit code
  // (0). Call once.
  int Run(const std::atomic<bool>& stop);

  // The measurements so far (complete once Run has returned).
  SimReport Report() const;

 private:
  SimWorkers();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr::sim
