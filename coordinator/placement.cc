#include "coordinator/placement.h"

#include <algorithm>

namespace zmr {

void RecordLoad(Worker& w, const HeartbeatMsg& heartbeat) {
  w.load = heartbeat;
  if (heartbeat.host_cpu < 0) return;
  double host = std::clamp(heartbeat.host_cpu, 0.0, 1.0);
  double other = 0;
  if (heartbeat.cores > 0) {
    other = std::max(0.0, host * static_cast<double>(heartbeat.cores) -
                              std::max(0.0, heartbeat.cpu));
  }
  if (w.load_samples == 0) {
    w.host_cpu_avg = host;
    w.other_cores_avg = other;
  } else {
    w.host_cpu_avg += kLoadSmoothing * (host - w.host_cpu_avg);
    w.other_cores_avg += kLoadSmoothing * (other - w.other_cores_avg);
  }
  ++w.load_samples;
}

bool QueueAllowed(const Phase& phase) {
  return static_cast<int64_t>(phase.durations.size()) >= kQueueMinDone &&
         phase.durations.Median() <= kQueueTaskMaxMs;
}

// Puts the worker in (or takes it out of) `set` under its current score: in it when `in`.
// Does nothing when neither changed (the common case of a heartbeat).
void Placement::File(std::set<Key>& set, std::optional<Key>& as, bool in, const Worker& w) {
  if (in && as && as->first == w.score()) return;
  if (!in && !as) return;
  if (as) {
    set.erase(*as);
    as.reset();
  }
  if (in) {
    as = std::make_pair(w.score(), w.key);
    set.insert(*as);
  }
}

void Placement::Update(Worker& w) {
  const auto used = static_cast<int64_t>(w.running.size());
  const bool has_room = used < w.capacity();
  File(free_, w.free_as, has_room, w);
  File(queue_, w.queue_as, !has_room && used < w.capacity() + w.queue, w);
}

void Placement::Remove(Worker& w) {
  File(free_, w.free_as, false, w);
  File(queue_, w.queue_as, false, w);
}

Worker* Placement::Pick(const Job& job, const Task& task, Room room, bool blacklist_covers_all,
                        Workers& workers) const {
  const bool use_blacklist = !job.blacklist.empty() && !blacklist_covers_all;
  Worker* w = PickAmong(free_, job, task, use_blacklist, workers);
  if (w == nullptr && room == Room::kSlotOrQueue) {
    w = PickAmong(queue_, job, task, use_blacklist, workers);
  }
  return w;
}

Worker* Placement::PickAmong(const std::set<Key>& candidates, const Job& job, const Task& task,
                             bool use_blacklist, Workers& workers) const {
  Worker* fallback = nullptr;
  for (const auto& [score, key] : candidates) {
    Worker& w = workers.at(key);
    if (use_blacklist && job.blacklist.count(w.name) != 0) continue;
    bool runs_it = false;
    for (const LiveAttempt& a : task.live) runs_it = runs_it || a.worker_key == key;
    if (runs_it) continue;
    if (!task.last_failed_worker.empty() && w.name == task.last_failed_worker) {
      if (fallback == nullptr) fallback = &w;
      continue;
    }
    return &w;
  }
  return fallback;
}

bool Placement::FreeSlotOutsideBlacklist(const Job& job, const Workers& workers) const {
  for (const auto& [score, key] : free_) {
    if (job.blacklist.count(workers.at(key).name) == 0) return true;
  }
  return false;
}

}  // namespace zmr
