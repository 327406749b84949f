// The door of the client library (client/client.h): Run dispatches one parsed invocation to its
// command (client/commands.h), Main is the whole program; also the signal flag every waiting loop
// looks at, and the exit code of a job's end state.
#include "client/client.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/commands.h"
#include "client/session.h"
#include "common/logging.h"
#include "common/posix/signals.h"

namespace zmr::client {

namespace {

// Signals: the handler only records; the waiting loops poll in short slices (kSignalCheckSlice)
// and look.
volatile std::sig_atomic_t g_signal = 0;

extern "C" void RecordSignal(int signal_number) { g_signal = signal_number; }

}  // namespace

std::optional<int> ExitCodeForState(std::string_view state) {
  if (state == "COMPLETED") return kExitOk;
  if (state == "FAILED") return kExitJobFailed;
  if (state == "CANCELLED") return kExitCancelled;
  return std::nullopt;
}

void InstallSignalHandlers() {
  // No SA_RESTART: blocking calls return EINTR and the loops look at once.
  SetSignalHandler(SIGINT, RecordSignal);
  SetSignalHandler(SIGTERM, RecordSignal);
}

int PendingSignal() { return g_signal; }
void ClearPendingSignal() { g_signal = 0; }

namespace {

// Runs the command `session` was made for.
int Dispatch(Session& session) {
  const Options& options = session.options();
  switch (options.command) {
    case Command::kHelp:
      session.out() << UsageText();
      return kExitOk;
    case Command::kVersion:
      session.out() << "zmr " << ZMR_VERSION << "\n";
      return kExitOk;
    case Command::kSubmit:
      return RunSubmit(session);
    default:
      break;
  }
  if (int rc = session.Connect(); rc != kExitOk) return rc;
  switch (options.command) {
    case Command::kStatus:
      return RunStatus(session);
    case Command::kJobs:
      return RunJobs(session);
    case Command::kTasks:
      return RunTasks(session);
    case Command::kWorkers:
      return RunWorkers(session);
    case Command::kWatch:
      return RunWatch(session);
    case Command::kWait:
      return WaitForJob(session, options.job_id);
    case Command::kCancel:
      return RunCancel(session);
    case Command::kLogs:
      return RunLogs(session);
    default:
      return kExitUsage;
  }
}

}  // namespace

int Run(const Options& options, std::ostream& out, std::ostream& err) {
  try {
    Session session(options, out, err);
    return Dispatch(session);
  } catch (const zmq::error_t& e) {
    err << "zmr: " << e.what() << "\n";
    return kExitUnreachable;
  }
}

int Main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  const char* env = std::getenv(kCoordinatorEnv);
  ParseResult parsed = ParseArgs(args, env ? env : "");
  if (!parsed.ok) {
    std::cerr << parsed.error << "\n";
    return kExitUsage;
  }
  Options& options = parsed.options;
  SetupLogging("zmr", options.log_level);  // the level was validated by ParseArgs
  options.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  InstallSignalHandlers();
  return Run(options, std::cout, std::cerr);
}

}  // namespace zmr::client
