// What a job keeps on this worker, and what its attempts may leave in its output: removing a
// finished job's data (keeping its attempt logs for --log-retention), sweeping logs past their
// retention, answering a fetch_log from the logs, and removing what an attempt that will never
// be committed left in OUTPUT/_temporary. Every path comes from common/layout.h.
//
// Threads: the worker loop calls these (plain functions sharing nothing). They touch only files
// no running attempt writes: call RemoveJobData once the job's attempts are gone, and
// RemoveUncommittedOutput once the attempt's runner is reaped.
#pragma once

#include <cstdint>
#include <string>

#include "common/protocol.h"

namespace zmr {

// Removes a finished job's data from WORK_DIR/jobs/<job>: intermediate runs and attempt
// directories. With keep_logs, logs/ stays and a marker file starts its retention; without, or
// when there are no logs, the whole directory goes. Nothing for an unsafe job id.
void RemoveJobData(const std::string& work_dir, const std::string& job_id, bool keep_logs);

// Removes the directories of finished jobs (those with the marker RemoveJobData left) whose
// marker is older than retention_s.
void SweepExpiredLogs(const std::string& work_dir, int64_t retention_s);

// The answer to a fetch_log: this worker's log of the attempt, its last kLogFetchMaxBytes
// (`found` false when there is none, or the ids are unsafe). An attempt that succeeded without
// writing to stderr has its lines in the job's succeeded.log (worker/attempt_log.h).
LogMsg ReadAttemptLog(const std::string& work_dir, const FetchLogMsg& fetch);

// Removes what an attempt whose task_done was not forwarded (failed, cancelled, abandoned) left in
// OUTPUT/_temporary: its own directory, then _temporary itself if that is now empty (other
// attempts and the coordinator's commit own whatever else is there). Call only after the attempt's
// zmr-task is reaped, so that nothing writes there any more. A killed attempt can have (re)created
// _temporary after the coordinator removed it at the end of the job; this is what cleans that up.
void RemoveUncommittedOutput(const AssignMsg& task);

}  // namespace zmr
