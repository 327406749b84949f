// How `zmr` shows coordinator data to a person: durations, sizes, clock times, aligned tables,
// the jobs/workers/tasks tables, a job's status and summary, its one-line progress, and events,
// all from the typed views of common/views.h (and, for callers holding a view as received, from
// its wire form). --json output needs no help from here (ToJson of the reply, common/value.h).
// Pure functions: no sockets, no global state, and no clock except FinalStateEvent (and
// FormatClock's local time zone); any thread. Callers: the client's commands, client/progress.cc, and tests through
// client/client.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/value.h"
#include "common/views.h"

namespace zmr::client {

// "MM:SS" below an hour, "H:MM:SS" above; negative counts as 0.
std::string FormatDuration(int64_t ms);
// "512K", "12.3M", "4.0G": sizes from bytes (K rounded up below a mebibyte, one decimal above);
// "-" when unknown (< 0).
std::string FormatBytes(int64_t bytes);
// Local wall-clock time of an epoch-ms timestamp as "HH:MM:SS.mmm".
std::string FormatClock(int64_t ts_ms);
// Columns left-aligned, two spaces apart, no trailing spaces; one line per row plus the header.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Human renderings of the coordinator's views (common/views.h), from their typed fields.
std::string FormatJobsTable(const std::vector<JobInfo>& jobs);           // `jobs`
std::string FormatWorkersTable(const std::vector<WorkerInfo>& workers);  // `workers`
// `tasks`: a `*` after the state marks a straggler, `+backup` a task that got a speculative
// backup attempt.
std::string FormatTasksTable(const std::vector<TaskInfo>& tasks);
std::string FormatStatus(const JobInfo& job);  // `status`: several lines
// One line, e.g. "job_x MAPPING  map 12/32 (41%)  reduce 0/2 (0%)  00:07" (no newline). `watch JOB`
// shows it for a snapshot; the plain lines of `wait` start with it.
std::string FormatProgressLine(const JobInfo& job);
// The end-of-wait summary, with newline: "job_x COMPLETED in 00:07" (the time since submission,
// and how long it waited for a first attempt when that was a second or more), then aligned rows:
// output, tasks (done/total unless COMPLETED), input files and bytes, failed attempts and backups
// when there were any, the error when FAILED, key counters when COMPLETED.
std::string FormatSummary(const JobInfo& job);
// One event as a readable line without newline, e.g.
// "12:00:01.234 job_x task_assigned m-00003 attempt 1 on worker-a".
std::string FormatEvent(const JobEvent& event);
std::string FormatEvent(const WorkerEvent& event);  // "12:00:01.234 worker-a worker_lost (...)"
// A job_state event standing for a JobInfo that is already terminal (used by `watch JOB` when the
// end is learnt from `status` rather than from the event stream): type, ts_ms (finished_ms, or
// now when that is 0), job_id, seq (last_seq), state, error when FAILED, and "from_status": true.
Value FinalStateEvent(const JobInfo& job);

// The same renderings of a view still in its wire form (a JobInfo map, an array of them, ...), as
// the client reads views: decoded with Missing::kDefault (common/views.h). A view that does not
// decode renders as one line naming what is wrong ("(malformed JobInfo: ...)"); FormatEvent
// returns "" for it and for cluster heartbeats (the human view skips them), and FinalStateEvent a
// nil Value.
std::string FormatJobsTable(const Value& jobs);
std::string FormatWorkersTable(const Value& workers);
std::string FormatTasksTable(const Value& tasks);
std::string FormatStatus(const Value& job);
std::string FormatProgressLine(const Value& job);
std::string FormatSummary(const Value& job);
std::string FormatEvent(const Value& event);
Value FinalStateEvent(const Value& job);

}  // namespace zmr::client
