// The runner proper: the body of zmr-task, a process started by zmr-worker that runs task attempts
// one at a time (worker/attempt_process.h has the reuse rules; runner/protocol.h the pipe
// protocol). For each TaskRequest frame read from stdin it moves into the attempt directory,
// applies the memory limit to itself, creates the attempt's App (streaming commands, a plugin, or
// a built-in app), runs the map or reduce with the task runner (runner/task_runner.h) and reports
// on fd kTaskControlFd: "progress" frames (fraction and status text), then exactly one of "done"
// (then it waits for the next request) or "failed" (then it exits with status 1). EOF on stdin
// ends it (status 0). Its stderr (and stdout) goes to the log of the attempt it runs. It is
// killed, never asked, when the worker wants an attempt gone, so it holds nothing that needs an
// orderly shutdown: map output appears only by rename.
//
// Called once, from main, on the process's main thread.
#pragma once

namespace zmr {

// Runs the runner until stdin closes (0), an attempt fails (1) or it was not started by a worker
// (2: fd kTaskControlFd is not open). argv[1], if any, is the process title that is rewritten in
// place ("idle" or JOB/TASK.aN, padded by the worker to kRunnerTitleBytes). Installs the signal
// handlers (SIGTERM ends the attempt's streaming process groups first) and a new-handler.
int RunTaskRunner(int argc, char** argv);

}  // namespace zmr
