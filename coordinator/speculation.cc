#include "coordinator/speculation.h"

#include <algorithm>
#include <cmath>

namespace zmr {

int64_t EstimatedTotalMs(const LiveAttempt& a, int64_t now_ms) {
  int64_t estimate = now_ms - a.start_ms;
  if (a.progress > 0) {
    auto by_rate =
        static_cast<int64_t>(static_cast<double>(a.progress_ms - a.start_ms) / a.progress);
    estimate = std::max(estimate, by_rate);
  }
  return estimate;
}

Phase* SpeculationPhase(Job& job) {
  if (!job.spec.speculation) return nullptr;
  Phase* phase = nullptr;
  if (job.state == JobState::kMapping) phase = &job.maps;
  if (job.state == JobState::kReducing && job.all_maps_done()) phase = &job.reduces;
  if (phase == nullptr || phase->running.empty()) return nullptr;
  auto total = static_cast<double>(phase->tasks.size());
  auto needed = static_cast<int64_t>(std::ceil(kSpeculationMinDoneFraction * total));
  if (phase->done < std::max<int64_t>(1, needed)) return nullptr;
  return phase;
}

int64_t BackupCap(const Job& job) {
  return std::max<int64_t>(1, job.running_tasks() / kSpeculationCapDivisor);
}

std::optional<Straggler> PickStraggler(Phase& phase, int64_t typical_ms, int64_t slack_ms,
                                       int64_t now_ms) {
  std::optional<Straggler> best;
  int64_t best_finish = 0;
  for (int64_t index : phase.running) {
    Task& t = phase.tasks[index];
    if (t.speculated || t.live.size() != 1) continue;
    const LiveAttempt& a = t.live[0];
    if (now_ms - a.start_ms < typical_ms) continue;
    int64_t estimate = EstimatedTotalMs(a, now_ms);
    if (static_cast<double>(estimate) <= kSpeculationFactor * static_cast<double>(typical_ms) ||
        estimate - typical_ms < slack_ms) {
      continue;
    }
    int64_t finish = a.start_ms + estimate;
    if (!best || finish > best_finish) {
      best = Straggler{&t, estimate};
      best_finish = finish;
    }
  }
  return best;
}

bool LooksStraggling(const LiveAttempt& a, int64_t typical_ms, int64_t now_ms) {
  return typical_ms > 0 && !a.speculative &&
         static_cast<double>(EstimatedTotalMs(a, now_ms)) >
             kSpeculationFactor * static_cast<double>(typical_ms);
}

}  // namespace zmr
