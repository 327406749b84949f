// The views of the scheduler's model that replies carry (common/views.h): a Job's JobInfo,
// TaskInfos and kept events, a Worker's WorkerInfo. Pure functions; the Scheduler calls them on
// the coordinator's thread, where the model lives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/views.h"
#include "coordinator/job.h"
#include "coordinator/placement.h"

namespace zmr {

// Most running attempts listed in one JobInfo (a big job has thousands; `zmr tasks` is for those).
inline constexpr std::size_t kMaxListedAttempts = 64;

// The job's JobInfo at now_ms. `no_workers`: no worker is registered; `waiting`: why its pending
// tasks are not running ("" if they are, or it has none).
JobInfo JobInfoOf(const Job& job, int64_t now_ms, bool no_workers, std::string waiting);

// Every task of the job, maps then reduces.
std::vector<TaskInfo> TaskInfosOf(const Job& job, int64_t now_ms);

WorkerInfo WorkerInfoOf(const Worker& w, int64_t now_ms);

// The job's kept events with seq > after_seq, oldest first; complete when none after after_seq
// was dropped from the history.
JobEventsView EventsOf(const Job& job, int64_t after_seq);

}  // namespace zmr
