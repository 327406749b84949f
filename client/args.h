// What one `zmr` invocation asks for: the subcommand and its options, parsed from the command line,
// and the --help text that documents them. Pure (no sockets, no clock, no global state; the
// environment comes in as an argument), any thread. Callers: Main (client/client.cc), the commands
// (which read Options), and tests through client/client.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"

namespace zmr::client {

// Where the coordinator's client socket is when neither --coordinator nor the environment says.
inline constexpr const char* kDefaultCoordinator = "tcp://127.0.0.1:5556";
// Environment variable naming the coordinator when --coordinator is not given.
inline constexpr const char* kCoordinatorEnv = "ZMR_COORDINATOR";

enum class Command {
  kHelp, kVersion, kSubmit, kStatus, kJobs, kTasks, kWorkers, kWatch, kWait, kCancel, kLogs
};

// Everything one invocation needs, after parsing. Defaults are the documented ones.
struct Options {
  Command command = Command::kHelp;
  std::string coordinator = kDefaultCoordinator;  // client endpoint, e.g. tcp://host:5556
  int timeout_ms = kDefaultTimeoutMs;             // per request
  std::string log_level = "warn";                 // spdlog level name
  bool json = false;                              // --json
  bool all = false;                               // jobs --all: finished jobs too
  bool progress = true;                           // false with --no-progress: plain lines
  bool stdout_is_tty = false;                     // set by Main (not a flag): live display
  std::string job_id;                             // status/cancel/wait/watch argument ("" = none)
  std::string task_id;                            // logs: the task
  int64_t attempt = 0;                            // logs --attempt (0: the latest)
  // submit
  std::vector<std::string> inputs;  // as given: files, directories, globs
  std::string output;
  std::string app;
  Params params;
  int64_t maps = 0;  // 0: let the coordinator choose
  int64_t reduces = 1;  // 0: map-only
  int64_t max_attempts = 4;
  int64_t priority = 0;      // --priority: higher runs first
  bool speculation = true;   // false with --no-speculation
  std::string name;
  bool wait = false;  // submit --wait
  std::string plugin;                // --plugin: shared library to ship
  std::string mapper, combiner, reducer;  // streaming commands (--reducer NONE: map-only)
  std::vector<std::string> files;    // --file: shipped into each attempt's directory
  Params cmdenv;                     // --cmdenv NAME=VALUE
};

// Either options or a one-line error starting with "zmr: " (exit code kExitUsage).
struct ParseResult {
  bool ok = false;
  Options options;
  std::string error;
};

// Parses the arguments after argv[0]. Global flags (--coordinator, --timeout-ms, --log-level,
// --help, --version) may come before or after the subcommand; flags accept `--flag value` and
// `--flag=value`; --input takes one or more paths up to the next `--flag`. `env_coordinator` is
// the value of ZMR_COORDINATOR ("" when unset); --coordinator wins over it.
ParseResult ParseArgs(const std::vector<std::string>& args, std::string_view env_coordinator);

// The --help text (ends with a newline).
std::string UsageText();

}  // namespace zmr::client
