// The `zmr` command-line client, the one door main.cc and tests use: Run one parsed invocation,
// or Main for the whole program; the exit codes, the timing of `wait` and `watch`, and the signal
// flag the waiting loops look at. It includes client/args.h (ParseArgs, Options, UsageText) and
// client/format.h (the Format* renderings) so callers need nothing else. Behind it:
// client/session.h and client/connection.h talk to the coordinator, client/commands.h holds one
// function per subcommand, client/progress.h and client/live_block.h work out and draw what `wait`
// shows, and client/follow.h follows one job's events for `watch JOB`. Everything runs on the one thread of
// the `zmr` process; the pure helpers (ParseArgs, Format*, ExitCodeForState, ...) touch no sockets,
// no clock except where stated, and no global state, so tests call them directly.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/args.h"
#include "client/format.h"
#include "common/protocol.h"
#include "common/value.h"

namespace zmr::client {

// `wait` asks for status this often (and redraws its display on a terminal): a finished job
// returns promptly, the coordinator barely notices.
inline constexpr int kWaitPollMs = 250;
// `wait` also wakes up on the job's job_state and task_failed events, but asks for status at most
// this often.
inline constexpr int kWaitMinPollMs = 10;
// `wait` asks for status this soon after its first look, then twice as late each time up to
// kWaitPollMs: a job of a few milliseconds is seen to end within about as long again, even when its
// job_state event was published before the client's subscription reached the coordinator.
inline constexpr int kWaitFirstPollMs = 4;
// `watch JOB` also asks for status this often, so a dropped (or not yet subscribed) job_state
// event cannot make it hang.
inline constexpr int kWatchStatusPollMs = 1000;
// `watch JOB` waits at most this long for the coordinator's heartbeat, which shows that its
// subscription is live, before it takes the job's snapshot.
inline constexpr int kWatchLiveWaitMs = 3000;
// After status reports the end, `watch JOB` waits this long for the real job_state event.
inline constexpr int kWatchEndGraceMs = 300;
// Without a terminal (or with --no-progress), `wait` prints a plain progress line at most this
// often (and on state changes).
inline constexpr int kPlainProgressIntervalMs = 5000;

// Process exit codes; the integration tests and scripts depend on them.
enum ExitCode : int {
  kExitOk = 0,             // success; `wait`/`watch JOB`: the job COMPLETED
  kExitJobFailed = 1,      // the job FAILED; `logs`: the log cannot be fetched (worker gone)
  kExitUsage = 2,          // bad arguments, refused submission, unknown job, protocol version
  kExitUnreachable = 3,    // the coordinator did not answer in time (or answered nonsense)
  kExitCancelled = 4,      // the job was CANCELLED
  kExitInterrupted = 130,  // SIGINT while waiting (128 + SIGINT)
};

// 0 COMPLETED, 1 FAILED, 4 CANCELLED; nullopt for a non-terminal or unknown state.
std::optional<int> ExitCodeForState(std::string_view state);

// (EndpointHost and ResolveEventsEndpoint are defined in client/connection.cc.)
// The host part of a tcp endpoint ("tcp://h:1" -> "h", "tcp://[::1]:1" -> "[::1]").
std::string EndpointHost(std::string_view endpoint);

// The events endpoint to connect to: `events` as the coordinator announced it, with a wildcard
// host ("*", "0.0.0.0", "[::]", "::") replaced by the host of `coordinator` (the address we used).
std::string ResolveEventsEndpoint(std::string_view events, std::string_view coordinator);

// Runs one parsed invocation, writing results to `out` and diagnostics to `err`, and returns the
// process exit code. Help and version are handled too. Blocks until done; SIGINT/SIGTERM caught
// by InstallSignalHandlers() end waiting and watching (the job keeps running).
// `wait` and `submit --wait` poll the job's status kWaitFirstPollMs, 2x, 4x ... that after the
// first look, then every kWaitPollMs, and at once (at most every kWaitMinPollMs) when its
// job_state or task_failed event arrives. With options.stdout_is_tty
// (and neither --no-progress nor --json) they draw the ProgressTracker block on `out` and redraw it
// in place (the cursor moves up over it and clears to the end of the screen; each line fits the
// width TIOCGWINSZ reports for stdout), with each failed attempt as a permanent line above it, and
// replace it by FormatSummary at the end. Otherwise they write ProgressTracker plain lines and the
// failure lines to `err`, then the summary to `out` (to `err` with --json, so `out` holds only the
// JSON document).
int Run(const Options& options, std::ostream& out, std::ostream& err);

// Installs SIGINT/SIGTERM handlers that only record the signal (no SA_RESTART), for Run to notice.
void InstallSignalHandlers();
// The last signal recorded by those handlers, 0 if none; ClearPendingSignal() resets it.
int PendingSignal();
void ClearPendingSignal();

// The whole program: parses argv and the environment, sets up logging on stderr, installs the
// signal handlers and calls Run with std::cout/std::cerr.
int Main(int argc, char** argv);

}  // namespace zmr::client
