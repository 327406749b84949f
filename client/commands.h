// The subcommands of `zmr` that talk to the coordinator, one function each. Each prints its result
// on session.out() and its diagnostics on session.err(), and returns the process exit code
// (ExitCode, client/client.h). Run (client/client.cc) is their caller: RunSubmit connects by itself
// after its local checks, the others require session.Connect() to have succeeded. Blocking; one
// thread. Implemented in cmd_submit.cc, cmd_query.cc, cmd_wait.cc and cmd_watch.cc.
#pragma once

#include <string>

#include "client/session.h"

namespace zmr::client {

// `submit`: expands and checks the inputs and the output directory, plans and checks a built-in
// app's params, reads the files to ship, all before connecting; then submits and prints the job id
// (with --json: {"job_id", "maps", "reduces"}). With --wait, then WaitForJob.
int RunSubmit(Session& session);

// `status JOB`: FormatStatus of the JobInfo, or the JobInfo as one JSON document.
int RunStatus(Session& session);
// `jobs [--all]`, `tasks JOB`, `workers`: the table (FormatJobsTable, FormatTasksTable,
// FormatWorkersTable), or the array as one JSON document.
int RunJobs(Session& session);
int RunTasks(Session& session);
int RunWorkers(Session& session);
// `cancel JOB`: says whether the job was cancelled or had already finished (both exit 0); with
// --json the coordinator's reply.
int RunCancel(Session& session);
// `logs JOB TASK [--attempt N]`: an attempt's log bytes as the worker kept them (a newline added
// when the last line lacks one), a note on stderr when they were cut; with --json one document
// with the log in "log".
int RunLogs(Session& session);

// `wait JOB` and `submit --wait`: polls status until the job ends, showing progress
// (client/progress.h). On a terminal (and without --no-progress or --json) a block redrawn in place
// on stdout, failed attempts as permanent lines above it; otherwise plain lines on stderr, on
// state changes and at most every kPlainProgressIntervalMs, failed attempts as they are seen.
// Then the summary (on stderr with --json, whose stdout holds only the JSON document). Returns
// ExitCodeForState of the end state, or the exit code of what stopped it.
int WaitForJob(Session& session, const std::string& job_id);

// `watch [JOB]`: follows the event stream, one line (or JSON object) per event. Without JOB every
// job and worker event until a signal (exit 0). With JOB: subscribes, takes a snapshot, then shows
// the job's events in seq order (a gap filled from the coordinator's kept events, else a fresh
// snapshot), polling status every kWatchStatusPollMs, until the job ends; returns its exit code.
int RunWatch(Session& session);

}  // namespace zmr::client
