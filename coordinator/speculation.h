// Speculative execution: which straggling attempt gets a backup (ARCHITECTURE.md, Scheduling,
// "Stragglers"). Pure functions over the job model; the Scheduler decides when to look (free
// slots, nothing pending, at most every speculation_interval_ms) and starts the backup.
// Coordinator thread only, like the Jobs they read.
#pragma once

#include <cstdint>
#include <optional>

#include "coordinator/job.h"

namespace zmr {

// The estimated total run time of a live attempt: the larger of its elapsed time and what its
// progress rate at its last report implies (so an attempt that stopped reporting looks at least
// as slow as its age).
int64_t EstimatedTotalMs(const LiveAttempt& a, int64_t now_ms);

// The phase of `job` whose stragglers may get backups now, or nullptr: speculation is on, the job
// is MAPPING (or REDUCING with every map done), the phase has running tasks, and at least
// max(1, kSpeculationMinDoneFraction) of its tasks are done (so its median time means something).
Phase* SpeculationPhase(Job& job);

// Backups of `job` that may run at once: max(1, running tasks / kSpeculationCapDivisor).
int64_t BackupCap(const Job& job);

// A task that deserves a backup, and its only attempt's estimated total time.
struct Straggler {
  Task* task = nullptr;
  int64_t estimate_ms = 0;
};

// Among the phase's running tasks with one attempt and no backup yet, the one expected to finish
// last whose attempt has run at least typical_ms and is expected to take more than
// kSpeculationFactor x typical_ms and at least slack_ms beyond it; nullopt when none is.
std::optional<Straggler> PickStraggler(Phase& phase, int64_t typical_ms, int64_t slack_ms,
                                       int64_t now_ms);

// What TaskInfo calls a straggler: a non-backup attempt expected to take more than
// kSpeculationFactor x the phase's median (typical_ms; <= 0: unknown, never a straggler).
bool LooksStraggling(const LiveAttempt& a, int64_t typical_ms, int64_t now_ms);

}  // namespace zmr
