// The progress display of `zmr wait` (client/progress.h), driven with synthetic JobInfo values and
// a made-up clock: no sockets, no sleeps.
#include "client/progress.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace zmr::client {
namespace {

constexpr int64_t kSubmittedMs = 1700000000000LL;

struct JobShape {
  std::string state = "MAPPING";
  int64_t maps_done = 0;
  int64_t maps_total = 4;
  double map_progress = 0;
  int64_t reduces_done = 0;
  int64_t reduces_total = 1;
  double reduce_progress = 0;
  int64_t queued_ms = 1000;   // submission to first attempt; < 0: not started
  int64_t elapsed_ms = 5000;  // since submission
  int64_t input_bytes = 100 << 20;
};

Value Counts(int64_t done, int64_t total) {
  Value c;
  c.Set("total", total);
  c.Set("pending", total - done);
  c.Set("running", 0);
  c.Set("done", done);
  c.Set("failed", 0);
  return c;
}

Value Job(const JobShape& s) {
  Value job;
  job.Set("job_id", "job_p");
  job.Set("name", "counting");
  job.Set("state", s.state);
  job.Set("maps", Counts(s.maps_done, s.maps_total));
  job.Set("reduces", Counts(s.reduces_done, s.reduces_total));
  job.Set("map_progress", s.map_progress);
  job.Set("reduce_progress", s.reduce_progress);
  job.Set("submitted_ms", kSubmittedMs);
  job.Set("started_ms", s.queued_ms < 0 ? 0 : kSubmittedMs + s.queued_ms);
  job.Set("elapsed_ms", s.elapsed_ms);
  job.Set("input_bytes", s.input_bytes);
  job.Set("input_files", 2);
  job.Set("running_attempts", 0);
  job.Set("attempts", Array{});
  return job;
}

Value Failure(const std::string& task_id, int64_t attempt, const std::string& error,
              std::vector<std::string> stderr_tail = {}) {
  Value f;
  f.Set("task_id", task_id);
  f.Set("kind", task_id[0] == 'm' ? "map" : "reduce");
  f.Set("attempt", attempt);
  f.Set("worker", "worker-a");
  f.Set("error", error);
  Array tail;
  for (std::string& line : stderr_tail) tail.emplace_back(std::move(line));
  f.Set("stderr_tail", Value(std::move(tail)));
  f.Set("ts_ms", kSubmittedMs + 2000);
  return f;
}

Value WithFailures(Value job, Array failures, std::optional<int64_t> failed_attempts = {}) {
  job.Set("failed_attempts", failed_attempts ? *failed_attempts
                                             : static_cast<int64_t>(failures.size()));
  job.Set("recent_failures", Value(std::move(failures)));
  return job;
}

Value Attempt(const std::string& task_id, int64_t attempt, const std::string& worker,
              double progress, bool speculative = false) {
  Value a;
  a.Set("task_id", task_id);
  a.Set("attempt", attempt);
  a.Set("worker", worker);
  a.Set("progress", progress);
  a.Set("elapsed_ms", 1000);
  a.Set("speculative", speculative);
  return a;
}

// Columns a line takes on a terminal (one per UTF-8 code point).
int Columns(const std::string& line) {
  int n = 0;
  for (char c : line) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("phase percent comes from task progress, not only from completed tasks") {
  ProgressTracker t;
  t.Update(Job({.maps_done = 0, .maps_total = 4, .map_progress = 0.5}), 0);
  CHECK(t.map().done == 0);
  CHECK(t.map().total == 4);
  CHECK(t.map().fraction == doctest::Approx(0.5));
  const std::vector<std::string> lines = t.RenderLive(100);
  INFO(Joined(lines));
  REQUIRE(lines.size() >= 3);
  CHECK(lines[0].rfind("job_p \"counting\"  MAPPING  elapsed 00:05  eta ", 0) == 0);
  // The bar is half full although no map completed.
  CHECK(lines[1].rfind("map     [", 0) == 0);
  CHECK(Contains(lines[1], "]  0/4   50%"));
  const std::string bar = lines[1].substr(9, lines[1].find(']') - 9);
  CHECK(std::count(bar.begin(), bar.end(), '#') * 2 == static_cast<long>(bar.size()));
  CHECK(lines[2].rfind("reduce  [-", 0) == 0);
  CHECK(Contains(lines[2], "]  0/1    0%"));
}

TEST_CASE("a phase shows 100% only when all its tasks are done") {
  ProgressTracker t;
  t.Update(Job({.maps_done = 3, .maps_total = 4, .map_progress = 1}), 0);
  CHECK(Contains(Joined(t.RenderLive(80)), "]  3/4   99%"));
  t.Update(Job({.maps_done = 4, .maps_total = 4, .map_progress = 1}), 1);
  CHECK(Contains(Joined(t.RenderLive(80)), "]  4/4  100%"));
}

TEST_CASE("overall progress weighs maps and reduces by their task counts") {
  ProgressTracker t;
  t.Update(Job({.state = "REDUCING", .maps_done = 8, .maps_total = 8, .map_progress = 1,
                .reduces_total = 2, .reduce_progress = 0.5}),
           0);
  CHECK(t.overall() == doctest::Approx(0.9));
  t.Update(Job({.maps_total = 4, .map_progress = 0.25, .reduces_total = 0}), 1);
  CHECK(t.overall() == doctest::Approx(0.25));
  t.Update(Job({.state = "COMPLETED", .maps_total = 0, .reduces_total = 0}), 2);
  CHECK(t.overall() == 1);
}

TEST_CASE("the time left is unknown until the job has run a while and made some progress") {
  ProgressTracker t;
  t.Update(Job({.state = "SUBMITTED", .queued_ms = -1, .elapsed_ms = 9000}), 0);
  CHECK_FALSE(t.run_ms().has_value());
  CHECK_FALSE(t.eta_ms().has_value());
  CHECK(Contains(t.RenderLive(80).front(), "eta --"));
  CHECK(Contains(t.RenderPlainLine(), "eta --"));

  // Running, but hardly any progress yet.
  t.Update(Job({.map_progress = 0.004, .queued_ms = 1000, .elapsed_ms = 9000}), 100);
  CHECK(t.run_ms() == std::optional<int64_t>(8000));
  CHECK_FALSE(t.eta_ms().has_value());
  // Progress, but only just started.
  t.Update(Job({.map_progress = 0.5, .queued_ms = 1000, .elapsed_ms = 2500}), 200);
  CHECK_FALSE(t.eta_ms().has_value());
}

TEST_CASE("the time left extrapolates the pace so far and is never negative") {
  ProgressTracker t;
  // 5 maps + 1 reduce; overall 0.25 after 10 s of running: 30 s to go.
  t.Update(Job({.maps_total = 5, .map_progress = 0.3, .queued_ms = 2000, .elapsed_ms = 12000}),
           0);
  REQUIRE(t.eta_ms().has_value());
  CHECK(*t.eta_ms() == 30000);
  CHECK(Contains(t.RenderLive(80).front(), "elapsed 00:12  eta 00:30"));
  CHECK(Contains(t.RenderPlainLine(), "eta 00:30"));

  // Progress reported above 1 and a clock that makes elapsed_ms smaller than the queueing time:
  // clamped, never below zero.
  Value odd = Job({.map_progress = 7.5, .reduce_progress = 3, .queued_ms = 2000,
                   .elapsed_ms = 12000});
  t.Update(odd, 10);
  REQUIRE(t.eta_ms().has_value());
  CHECK(*t.eta_ms() == 0);
  t.Update(Job({.map_progress = 0.5, .queued_ms = 20000, .elapsed_ms = 12000}), 20);
  CHECK(t.run_ms() == std::optional<int64_t>(0));
  CHECK_FALSE(t.eta_ms().has_value());

  t.Update(Job({.state = "COMPLETED", .maps_done = 4, .map_progress = 1, .reduces_done = 1,
                .reduce_progress = 1}),
           30);
  CHECK(t.eta_ms() == std::optional<int64_t>(0));
}

TEST_CASE("when progress stalls the time left becomes unknown and the display says since when") {
  ProgressTracker t;
  int64_t now = 0;
  for (; now <= kStallMs + 1000; now += 250) {
    t.Update(Job({.map_progress = 0.4, .queued_ms = 0, .elapsed_ms = 10000 + now}), now);
    if (now == 5000) {
      // Not moving for a few seconds: the growing average still gives an estimate.
      REQUIRE(t.eta_ms().has_value());
      CHECK(*t.eta_ms() > 0);
    }
  }
  CHECK(t.stalled_ms() >= kStallMs);
  CHECK_FALSE(t.eta_ms().has_value());
  CHECK(Contains(Joined(t.RenderLive(80)), "no progress for 00:31"));
  // It moves again.
  t.Update(Job({.map_progress = 0.45, .queued_ms = 0, .elapsed_ms = 10000 + now}), now);
  CHECK(t.stalled_ms() == 0);
  CHECK(t.eta_ms().has_value());
  CHECK_FALSE(Contains(Joined(t.RenderLive(80)), "no progress"));
}

TEST_CASE("input bytes per second is the input read over the last seconds") {
  ProgressTracker t;
  const int64_t mib = 1 << 20;
  t.Update(Job({.map_progress = 0, .input_bytes = 100 * mib}), 0);
  CHECK_FALSE(t.input_bytes_per_s().has_value());
  t.Update(Job({.map_progress = 0.05, .input_bytes = 100 * mib}), 500);
  CHECK_FALSE(t.input_bytes_per_s().has_value());  // too short to say
  t.Update(Job({.map_progress = 0.2, .input_bytes = 100 * mib}), 2000);
  REQUIRE(t.input_bytes_per_s().has_value());
  CHECK(*t.input_bytes_per_s() == doctest::Approx(10.0 * mib).epsilon(0.001));
  CHECK(t.input_bytes_read() == 20 * mib);
  CHECK(Contains(Joined(t.RenderLive(80)), "input   20.0M of 100.0M read  10.0M/s"));
  CHECK(Contains(t.RenderPlainLine(), "input 10.0M/s"));

  // Nothing read for longer than the window: the rate falls to 0, it does not stick.
  t.Update(Job({.map_progress = 0.2, .input_bytes = 100 * mib}), 2000 + kRateWindowMs + 1000);
  t.Update(Job({.map_progress = 0.2, .input_bytes = 100 * mib}), 2000 + 2 * kRateWindowMs);
  REQUIRE(t.input_bytes_per_s().has_value());
  CHECK(*t.input_bytes_per_s() == 0);

  // A map re-run makes map_progress go back: not a negative rate.
  t.Update(Job({.map_progress = 0.1, .input_bytes = 100 * mib}), 3000 + 2 * kRateWindowMs);
  REQUIRE(t.input_bytes_per_s().has_value());
  CHECK(*t.input_bytes_per_s() >= 0);

  // Every map done: no current rate, the map phase's average instead.
  t.Update(Job({.state = "REDUCING", .maps_done = 4, .map_progress = 1, .queued_ms = 0,
                .elapsed_ms = 10000, .input_bytes = 100 * mib}),
           4000 + 2 * kRateWindowMs);
  CHECK_FALSE(t.input_bytes_per_s().has_value());
  REQUIRE(t.map_phase_bytes_per_s().has_value());
  CHECK(*t.map_phase_bytes_per_s() == doctest::Approx(10.0 * mib).epsilon(0.001));
  CHECK(Contains(Joined(t.RenderLive(80)), "input   100.0M read in 00:10  10.0M/s"));
}

TEST_CASE("joining after the maps finished shows no map phase rate it cannot know") {
  ProgressTracker t;
  t.Update(Job({.state = "REDUCING", .maps_done = 4, .map_progress = 1}), 0);
  CHECK_FALSE(t.map_phase_bytes_per_s().has_value());
  CHECK(Contains(Joined(t.RenderLive(80)), "input   100.0M read\n"));
}

TEST_CASE("each failed attempt is shown once, oldest first, with the end of its stderr") {
  ProgressTracker t;
  const Value first = Failure("m-00003", 1, "mapper exited with status 3",
                              {"one", "two", "Traceback", "ValueError: bad record"});
  const Value second = Failure("r-00000", 2, "reducer killed by signal 9");
  t.Update(WithFailures(Job({}), Array{first, second}), 0);
  const std::vector<std::string> lines = t.TakeFailureLines();
  CHECK(lines == std::vector<std::string>{
                     "attempt m-00003.a1 failed on worker-a: mapper exited with status 3",
                     "  | two", "  | Traceback", "  | ValueError: bad record",
                     "attempt r-00000.a2 failed on worker-a: reducer killed by signal 9"});
  CHECK(t.TakeFailureLines().empty());
  // The same failures in the next snapshot: nothing new.
  t.Update(WithFailures(Job({}), Array{first, second}), 250);
  CHECK(t.TakeFailureLines().empty());
  // One more; the first one dropped out of the coordinator's list meanwhile.
  t.Update(WithFailures(Job({}), Array{second, Failure("m-00003", 2, "again")}, 3), 500);
  CHECK(t.TakeFailureLines() ==
        std::vector<std::string>{"attempt m-00003.a2 failed on worker-a: again"});
  CHECK(Contains(Joined(t.RenderLive(80)), "3 failed attempts"));
  CHECK(Contains(t.RenderPlainLine(), "3 failed attempts"));
}

TEST_CASE("failed attempts beyond the coordinator's recent list are counted, not lost") {
  ProgressTracker t;
  Array recent;
  for (int i = 0; i < 16; ++i) recent.push_back(Failure("m-" + std::to_string(i), 1, "boom"));
  t.Update(WithFailures(Job({}), recent, 20), 0);
  std::vector<std::string> lines = t.TakeFailureLines();
  REQUIRE(lines.size() == 17);
  CHECK(lines.front() == "(4 earlier failed attempts not shown)");
  // 5 more failed between two polls, the list shows the last 16: one was never listed.
  for (int i = 16; i < 21; ++i) {
    recent.erase(recent.begin());
    recent.push_back(Failure("m-" + std::to_string(i), 1, "boom"));
  }
  t.Update(WithFailures(Job({}), recent, 26), 250);
  lines = t.TakeFailureLines();
  REQUIRE(lines.size() == 6);
  CHECK(lines.front() == "(1 earlier failed attempt not shown)");
  CHECK(lines.back() == "attempt m-20.a1 failed on worker-a: boom");
}

TEST_CASE("a coordinator that does not report recent failures shows no failure lines") {
  ProgressTracker t;
  t.Update(Job({}), 0);
  CHECK(t.TakeFailureLines().empty());
  CHECK_FALSE(Contains(Joined(t.RenderLive(80)), "failed"));
  CHECK_FALSE(Contains(t.RenderPlainLine(), "failed"));
}

TEST_CASE("control characters from jobs and tasks never reach the terminal") {
  ProgressTracker t;
  const std::vector<std::string> tail = {"\033]0;title\007", "caf\xc3\xa9 \xc2\x9b" "1m"};
  Value job = WithFailures(Job({}), Array{Failure("m-00001", 1, "bad\033[2J\nthing", tail)});
  job.Set("name", "evil\033[31m\r");
  t.Update(job, 0);
  std::string all = Joined(t.TakeFailureLines()) + Joined(t.RenderLive(80)) + t.RenderPlainLine();
  INFO(all);
  for (char c : all) {
    if (c == '\n') continue;
    CHECK(static_cast<unsigned char>(c) >= 0x20);
    CHECK(c != '\x7f');
  }
  CHECK_FALSE(Contains(all, "\xc2\x9b"));
  CHECK(Contains(all, "caf\xc3\xa9"));  // ordinary UTF-8 stays
  CHECK(Contains(all, "attempt m-00001.a1 failed on worker-a: bad?[2J thing"));
}

TEST_CASE("every live line fits the terminal width and the running attempts end in +N more") {
  Value job = Job({.maps_total = 1000, .map_progress = 0.123, .reduces_total = 12});
  job.Set("name", std::string(200, 'n'));
  job.Set("waiting", "free slots are only on workers blacklisted for this job");
  Array attempts;
  for (int i = 0; i < 64; ++i) {
    attempts.push_back(Attempt("m-000" + std::to_string(10 + i), i % 3 + 1,
                               "worker-" + std::to_string(i), 0.5, i == 1));
  }
  job.Set("attempts", Value(std::move(attempts)));
  job.Set("running_attempts", 70);  // the list stops at 64
  for (int width : {20, 40, 80, 132}) {
    CAPTURE(width);
    ProgressTracker t;
    t.Update(job, 0);
    const std::vector<std::string> lines = t.RenderLive(width);
    INFO(Joined(lines));
    int running_lines = 0;
    for (const std::string& line : lines) {
      CHECK(Columns(line) <= width - 1);
      if (line.rfind("running", 0) == 0 || line.rfind("   ", 0) == 0) ++running_lines;
    }
    CHECK(running_lines <= kRunningLines);
    CHECK(Contains(Joined(lines), "\nrunning 70:"));
    if (width >= 40) CHECK(Contains(Joined(lines), "\nrunning 70: m-00010@worker-0 50%"));
  }
  ProgressTracker t;
  t.Update(job, 0);
  const std::string wide = Joined(t.RenderLive(132));
  INFO(wide);
  CHECK(Contains(wide, "m-00011.a2@worker-1 50% backup"));
  CHECK(Contains(wide, " more\n"));
  CHECK(t.RenderLive(0).size() == t.RenderLive(kDefaultTerminalWidth).size());
  for (const std::string& line : t.RenderLive(0)) CHECK(Columns(line) < kDefaultTerminalWidth);
}

TEST_CASE("all running attempts are listed when they fit") {
  Value job = Job({});
  job.Set("attempts", Array{Attempt("m-00000", 1, "worker-a", 0.63),
                            Attempt("m-00001", 1, "worker-b", 0.1)});
  job.Set("running_attempts", 2);
  ProgressTracker t;
  t.Update(job, 0);
  const std::string block = Joined(t.RenderLive(80));
  INFO(block);
  CHECK(Contains(block, "\nrunning 2: m-00000@worker-a 63%, m-00001@worker-b 10%\n"));
  CHECK_FALSE(Contains(block, "more"));
  CHECK(Contains(t.RenderPlainLine(), "running 2"));
}

TEST_CASE("the plain line starts like the progress line and adds the time left, rate and "
          "running attempts, without control codes") {
  ProgressTracker t;
  Value job = Job({.maps_done = 1, .map_progress = 0.3, .queued_ms = 2000, .elapsed_ms = 12000});
  job.Set("running_attempts", 3);
  t.Update(job, 0);
  job.Set("map_progress", 0.4);
  job.Set("elapsed_ms", 14000);
  t.Update(job, 2000);
  const std::string line = t.RenderPlainLine();
  CHECK(line.rfind("job_p MAPPING  map 1/4 (40%)  reduce 0/1 (0%)  00:14  eta ", 0) == 0);
  CHECK(Contains(line, "  input 5.0M/s  running 3"));
  CHECK(line.find('\033') == std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("a map-only job has no reduce bar") {
  ProgressTracker t;
  t.Update(Job({.map_progress = 0.5, .reduces_total = 0}), 0);
  const std::string block = Joined(t.RenderLive(80));
  CHECK(Contains(block, "\nmap     ["));
  CHECK_FALSE(Contains(block, "reduce"));
}

}  // namespace
}  // namespace zmr::client
