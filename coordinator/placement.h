// Placement: which worker gets an attempt. The Worker model (slots, queue, load figures smoothed
// from heartbeats, capacity and score), the ordered sets of workers with a free slot or room in
// their queue, and the choice among them (ARCHITECTURE.md, Scheduling: "Which worker", "Queueing
// short tasks"). Used by the Scheduler only, on the coordinator's thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "common/protocol.h"
#include "coordinator/job.h"

namespace zmr {

// Smoothing of the heartbeat load figures: weight of the newest sample.
inline constexpr double kLoadSmoothing = 0.3;
// Heartbeats with load figures needed before a host can count as saturated.
inline constexpr int64_t kSaturationSamples = 3;

// (job_id, kind, index, attempt) of an attempt running on a worker.
using AttemptKey = std::tuple<std::string, TaskKind, int64_t, int64_t>;

// One registration of a worker, as the scheduler sees it.
struct Worker {
  std::string key;
  std::string name;
  std::string host;
  int64_t pid = 0;
  int64_t slots = 1;
  int64_t queue = 0;               // assignments beyond its slots it holds until a slot frees
  std::string work_dir;
  int64_t joined_ms = 0;
  int64_t last_seen_ms = 0;
  int64_t tasks_done = 0;
  int64_t tasks_failed = 0;
  std::set<std::string> jobs_with_files;  // jobs whose shipped files this registration has
  std::set<AttemptKey> running;
  HeartbeatMsg load;               // the last heartbeat's figures
  int64_t load_samples = 0;        // heartbeats that carried host_cpu
  double host_cpu_avg = 0;         // smoothed host_cpu
  double other_cores_avg = 0;      // smoothed CPU of the host's other processes, in cores
  std::optional<std::pair<double, std::string>> free_as;   // key in Placement's free set
  std::optional<std::pair<double, std::string>> queue_as;  // key in Placement's queue set

  bool saturated() const {
    return load_samples >= kSaturationSamples && host_cpu_avg >= kSaturatedHostCpu;
  }
  // Slots this worker may fill now: all of them, unless its host stays saturated; then only as
  // many as the cores the host's other processes leave (at least one).
  int64_t capacity() const {
    if (!saturated() || load.cores <= 0) return slots;
    int64_t left = std::llround(static_cast<double>(load.cores) - other_cores_avg);
    return std::clamp<int64_t>(left, 1, slots);
  }
  // Lower is preferred: the share of its capacity in use, then how busy its host is.
  double score() const {
    double used = static_cast<double>(running.size()) / static_cast<double>(capacity());
    return used + (load_samples > 0 ? 0.25 * host_cpu_avg : 0.0);
  }
};


// Folds a heartbeat's figures into the worker's load (smoothed host CPU, others' cores).
void RecordLoad(Worker& w, const HeartbeatMsg& heartbeat);

// Whether the phase's tasks are short enough to be queued on a worker behind a running attempt
// (ready.queue): a few are done and their median time is at most kQueueTaskMaxMs. A longer task
// would be better off waiting for whichever slot frees first.
bool QueueAllowed(const Phase& phase);

using Workers = std::unordered_map<std::string, Worker>;  // by routing key

// The workers with room, ordered by score (least loaded first). Costs O(log workers) per change.
class Placement {
 public:
  // Files the worker among the free ones (a slot is free) or the queueing ones (its slots are
  // full, its queue is not), or neither, under its current score. Call after anything that
  // changes its running attempts or load. Does nothing when neither changed.
  void Update(Worker& w);
  // Forgets the worker (it is being removed).
  void Remove(Worker& w);

  bool has_free_slot() const { return !free_.empty(); }
  bool has_room() const { return !free_.empty() || !queue_.empty(); }

  // Where an attempt of `task` may go: a free slot, or with Room::kSlotOrQueue and no such slot
  // a worker whose queue has room. The least loaded one that is not on the job's blacklist
  // (unless `blacklist_covers_all`), not already running an attempt of the task, and preferably
  // not where the task last failed. nullptr when there is none. `workers` must hold every worker
  // filed here.
  enum class Room { kSlot, kSlotOrQueue };
  Worker* Pick(const Job& job, const Task& task, Room room, bool blacklist_covers_all,
               Workers& workers) const;
  // Whether a free slot is on a worker the job has not blacklisted.
  bool FreeSlotOutsideBlacklist(const Job& job, const Workers& workers) const;

 private:
  using Key = std::pair<double, std::string>;  // (score, routing key)
  static void File(std::set<Key>& set, std::optional<Key>& as, bool in, const Worker& w);
  Worker* PickAmong(const std::set<Key>& candidates, const Job& job, const Task& task,
                    bool use_blacklist, Workers& workers) const;

  std::set<Key> free_;    // workers with a free slot
  std::set<Key> queue_;   // workers whose slots are full but whose queue has room
};

}  // namespace zmr
