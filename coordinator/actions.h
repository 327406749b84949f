// What the Scheduler decides, as typed actions: the coordinator loop takes them (in queue order)
// and carries them out with std::visit, never reading a decision back through string keys.
// Plain data, made and consumed on the coordinator's one thread.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "common/protocol.h"
#include "common/views.h"

namespace zmr {

// The messages the coordinator sends to workers, but for heartbeat and reregister (plain bytes the
// loop sends by itself).
using WorkerMessage = std::variant<WelcomeMsg, RefusedMsg, AssignMsg, CancelAttemptMsg,
                                   CleanupMsg, JobFilesMsg, FetchLogMsg>;

// Send `message` to the registration whose ROUTER routing id is worker_key.
struct ToWorker {
  std::string worker_key;
  WorkerMessage message;
};

// Publish `event` on its topic (JobEvent::Topic, WorkerEvent::Topic).
struct Publish {
  std::variant<JobEvent, WorkerEvent> event;
};

// A reduce (or a map of a map-only job) finished first: rename its part file `from` to `to`
// (OUTPUT/part-NNNNN). `from` came from a worker: only a file under OUTPUT/_temporary/ may be
// moved. On failure the loop calls Scheduler::JobCommitted(job_id, false, ...).
struct CommitTask {
  std::string job_id;
  std::string task_id;
  std::string output_dir;
  std::string from;
  std::string to;
};

// Every task is done: check OUTPUT holds part-00000 .. part-<parts - 1>, write _SUCCESS, then call
// Scheduler::JobCommitted. Skipped when the job has ended meanwhile (a CommitTask failed).
struct CommitJob {
  std::string job_id;
  std::string output_dir;
  int64_t parts = 0;   // reduces, or maps of a map-only job
};

// The job failed or was cancelled: remove what it left in its output dir.
struct AbortJob {
  std::string job_id;
  std::string output_dir;
};

// The job reached a terminal state (after its job_state event): its output dir is free again.
struct JobEnded {
  std::string job_id;
  JobState state = JobState::kCompleted;
  std::string output_dir;
};

using Action = std::variant<ToWorker, Publish, CommitTask, CommitJob, AbortJob, JobEnded>;

// The wire form of a message to a worker.
inline Value MessageValue(const WorkerMessage& message) {
  return std::visit([](const auto& m) { return m.ToValue(); }, message);
}

}  // namespace zmr
