// The live progress display of `zmr wait JOB` and `zmr submit --wait`. A ProgressTracker is fed the
// JobInfo snapshots the client polls, each with the time it was taken, and works out what the
// display shows: the phase, done/total and percent per phase, the overall fraction, the time left,
// the input read per second, and the failed attempts not shown yet. It renders a block of lines for
// a terminal (redrawn in place by the caller) or a one-line update for a log.
//
// A pure class: no sockets, no clock (the caller passes now_ms, from one monotonic clock), no
// terminal I/O. It reads the typed JobInfo (common/views.h); fields an older coordinator does not
// send (recent_failures, failed_attempts) decode as empty and simply show nothing. One thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/value.h"
#include "common/views.h"

namespace zmr::client {

// Columns assumed when the terminal does not say (TIOCGWINSZ fails or reports 0).
inline constexpr int kDefaultTerminalWidth = 80;
// Below this overall fraction an extrapolated time left is noise: it shows as unknown.
inline constexpr double kEtaMinFraction = 0.01;
// The same for the first seconds after the first attempt started.
inline constexpr int64_t kEtaMinRunMs = 2000;
// No progress for this long: the time left shows as unknown and the display says since when.
inline constexpr int64_t kStallMs = 30000;
// Input bytes/s is measured over the snapshots of this last window (a current rate, not the
// average since the start, yet steady enough not to jump with every poll).
inline constexpr int64_t kRateWindowMs = 10000;
// ... once the snapshots in the window span at least this long; unknown before.
inline constexpr int64_t kMinRateSpanMs = 1000;
// Lines of a failed attempt's stderr shown under its failure line.
inline constexpr int kFailureStderrLines = 3;
// Lines the running attempts may take in the live block.
inline constexpr int kRunningLines = 2;

// One phase as the display shows it.
struct PhaseView {
  int64_t done = 0;      // tasks done
  int64_t total = 0;     // tasks planned (reduces: from the submission on)
  double fraction = 0;   // 0..1, the coordinator's map_progress/reduce_progress (running tasks'
                         // progress counts too, so it moves before a task completes)
};

class ProgressTracker {
 public:
  // Takes one JobInfo snapshot, taken at now_ms. now_ms must not go backwards between calls.
  // Failed attempts in its recent_failures that were not seen before are queued for
  // TakeFailureLines.
  void Update(const JobInfo& job, int64_t now_ms);
  // The same for a snapshot in its wire form, decoded as the client reads views
  // (Missing::kDefault). False, and nothing changes, when it does not decode as a JobInfo.
  bool Update(const Value& job, int64_t now_ms);

  // Whether Update was called at least once; everything below describes the latest snapshot.
  bool has_snapshot() const { return has_snapshot_; }
  const std::string& state() const { return state_; }
  const PhaseView& map() const { return map_; }
  const PhaseView& reduce() const { return reduce_; }

  // 0..1 over the whole job: maps and reduces weighted by their task counts (each task weighs
  // the same, as in the PROGRESS column of `zmr jobs`). 1 once COMPLETED.
  double overall() const;

  // Time the job has been running, from the coordinator's own fields (elapsed_ms minus the wait
  // between submission and the first attempt), so a skewed client clock does not matter. nullopt
  // before the first attempt started.
  std::optional<int64_t> run_ms() const;

  // Estimated time left in ms, never negative: run_ms() * (1 - f) / f for the overall fraction f
  // (the average pace so far; it grows while progress stalls). 0 once the job ended. nullopt
  // (unknown) before the first attempt, while f < kEtaMinFraction or run_ms() < kEtaMinRunMs, and
  // once no progress was seen for kStallMs.
  std::optional<int64_t> eta_ms() const;

  // How long (by now_ms) the overall fraction has not grown: 0 right after it grew, the state
  // changed or the first snapshot.
  int64_t stalled_ms() const { return has_snapshot_ ? last_now_ms_ - last_advance_ms_ : 0; }

  // Estimated input bytes read: input_bytes x map_progress (a map's progress mostly tracks the
  // input it read).
  int64_t input_bytes_read() const;
  // Input bytes/s while maps run: the growth of input_bytes_read() over the snapshots of the last
  // kRateWindowMs, never negative; nullopt until they span kMinRateSpanMs, and once every map is
  // done.
  std::optional<double> input_bytes_per_s() const;
  // Once every map is done: the whole input over the time the map phase took, when this tracker
  // saw the map phase unfinished (so it knows roughly when it ended); else nullopt.
  std::optional<double> map_phase_bytes_per_s() const;

  // The lines for failed attempts not returned before, oldest first, each once (an attempt is
  // known by task_id and attempt number). A failure line reads
  // "attempt m-00003.a1 failed on worker-a: mapper exited with status 3", followed by up to
  // kFailureStderrLines of its stderr, indented "  | ". When failed_attempts says more attempts
  // failed than recent_failures holds, one line says how many are not shown. Peer text is made
  // safe for a terminal (control characters replaced).
  std::vector<std::string> TakeFailureLines();

  // The block for a terminal, one string per line without newline, each at most width - 1
  // columns (so the cursor never wraps and the caller can move up exactly as many lines):
  //   job_x "name"  MAPPING  elapsed 00:42  eta 01:13
  //   map     [##########----------]  18/32   57%
  //   reduce  [--------------------]   0/2     0%     (no reduce bar for a map-only job)
  //   running 4: m-00012@worker-a 63%, m-00013.a2@worker-b 10% backup, +2 more
  //   input   30.1M of 52.9M read  4.2M/s
  //   2 failed attempts  waiting: every worker slot is busy   (only when there is something)
  // The running attempts take at most kRunningLines lines. width <= 0 means
  // kDefaultTerminalWidth. Requires has_snapshot().
  std::vector<std::string> RenderLive(int width) const;

  // One line without control codes and without newline for logs: FormatProgressLine of the
  // snapshot, then the time left, the input rate while maps run, the running attempts and the
  // failed attempts when there are any, e.g.
  //   job_x MAPPING  map 18/32 (41%)  reduce 0/2 (0%)  00:07  eta 00:10  input 1.2M/s  running 4
  // Requires has_snapshot().
  std::string RenderPlainLine() const;

 private:
  struct Sample {
    int64_t now_ms;
    int64_t bytes_read;
  };

  void TakeFailures(const JobInfo& job);

  bool has_snapshot_ = false;
  JobInfo job_;                     // the latest snapshot
  std::string state_;
  PhaseView map_, reduce_;
  int64_t last_now_ms_ = 0;         // now_ms of the latest snapshot
  int64_t last_advance_ms_ = 0;     // now_ms when overall() last grew (or the state changed)
  double prev_overall_ = 0;         // overall() of the snapshot before
  std::deque<Sample> samples_;      // input bytes read over the last kRateWindowMs
  bool saw_maps_unfinished_ = false;        // a snapshot had map_progress < 1
  std::optional<int64_t> map_phase_ms_;     // run_ms() when maps were first seen all done
  std::set<std::string> failures_seen_;     // "task_id.aN" of recent_failures already shown
  int64_t failures_accounted_ = 0;          // failed attempts shown or said to be not shown
  std::vector<std::string> pending_failure_lines_;  // for TakeFailureLines
};

}  // namespace zmr::client
