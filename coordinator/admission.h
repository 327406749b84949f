// Submit admission: whether a `submit` may become a job, and the job it becomes. Checks what runs
// (a built-in app and its params, a shipped plugin, or streaming commands), the shipped files,
// the limits, the inputs and the output dir, and plans the splits. No sockets and no state of its
// own; it reads the filesystem (stats the inputs, looks at the output dir) but creates nothing, so
// a refused submission leaves no trace. Called on the coordinator loop's thread; any thread may.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "common/protocol.h"
#include "coordinator/scheduler.h"

namespace zmr {

// Upper bound on the map count of one job.
inline constexpr int64_t kMaxMaps = 1000000;
inline constexpr int64_t kMaxReduces = 100000;
// Upper bound on the bytes shipped with one job (--file and --plugin), kept in coordinator memory.
inline constexpr int64_t kMaxShippedBytes = 256ll << 20;
// Job priorities lie in [-kMaxPriority, kMaxPriority].
inline constexpr int64_t kMaxPriority = 1000000;
// Failed attempts per task a job may allow, at most.
inline constexpr int64_t kMaxAttemptsLimit = 100;

// An accepted submission.
struct Admission {
  JobSpec spec;        // for Scheduler::AddJob; spec.output_dir is absolute and does not exist
                       // yet or is an empty directory: the caller creates it
  int64_t maps = 0;    // the map count planned (the `submitted` reply's)
};

// The job `submit` asks for, or nullopt with a one-line *error saying why it is refused (the
// `invalid` reply's message). `outputs_in_use` holds the output dirs of unfinished jobs: another
// job may not write to one.
std::optional<Admission> AdmitSubmission(const SubmitMsg& submit,
                                         const std::set<std::string>& outputs_in_use,
                                         std::string* error);

}  // namespace zmr
