#include "client/progress.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "client/client.h"
#include "common/layout.h"

namespace zmr::client {

namespace {

double Clamp01(double f) {
  if (!(f > 0)) return 0;  // also NaN
  return f < 1 ? f : 1;
}

// Whole percent, rounded down: 100% only when done.
int Percent(double fraction) { return static_cast<int>(Clamp01(fraction) * 100); }

PhaseView ReadPhase(const TaskCounts& counts, double progress) {
  return PhaseView{std::max<int64_t>(0, counts.done), std::max<int64_t>(0, counts.total),
                   Clamp01(progress)};
}

// Peer text (job names, errors, a task's stderr) made safe to print on a terminal and kept on
// one line: line breaks and tabs become spaces, other control characters (C0, DEL and the UTF-8
// encoded C1 range, which could start escape sequences) become '?'.
std::string Printable(std::string_view text) {
  std::string s;
  s.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\r' || c == '\t') {
      s += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      s += '?';
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      s += '?';
      ++i;
    } else {
      s += static_cast<char>(c);
    }
  }
  return s;
}

// Columns a line takes, counting each UTF-8 code point as one (wide characters are rare in what
// is shown here: ids, worker names, numbers).
int Columns(std::string_view line) {
  int n = 0;
  for (char ch : line) {
    if ((static_cast<unsigned char>(ch) & 0xc0) != 0x80) ++n;
  }
  return n;
}

// The line cut to at most `columns` columns, at a code point boundary.
std::string Truncate(std::string line, int columns) {
  int n = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xc0) == 0x80) continue;
    if (n == columns) {
      line.resize(i);
      break;
    }
    ++n;
  }
  return line;
}

std::string EtaText(const std::optional<int64_t>& eta_ms) {
  // Rounded up: a job about to finish shows 00:01, not 00:00.
  return eta_ms ? FormatDuration(*eta_ms + 999) : std::string("--");
}

std::string RateText(double bytes_per_s) {
  return FormatBytes(static_cast<int64_t>(bytes_per_s)) + "/s";
}

std::string Plural(int64_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

// "map     [########------------]  18/32   57%"
std::string BarLine(std::string_view label, const PhaseView& phase, int count_width, int columns) {
  // Attempts that read all their input report 100% before they commit: not done yet.
  const int percent =
      phase.done < phase.total ? std::min(99, Percent(phase.fraction)) : Percent(phase.fraction);
  char counts[64];
  std::snprintf(counts, sizeof counts, "  %*lld/%-*lld  %3d%%", count_width,
                static_cast<long long>(phase.done), count_width,
                static_cast<long long>(phase.total), percent);
  std::string head(label);
  head.resize(8, ' ');
  const int bar_width =
      std::clamp(columns - Columns(head) - 2 - Columns(counts), 10, 40);
  const int filled = static_cast<int>(Clamp01(phase.fraction) * bar_width);
  return head + "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(bar_width - filled), '-') + "]" + counts;
}

// "running 4: m-00012@worker-a 63%, m-00013.a2@worker-b 10% backup, +2 more" on at most
// `max_lines` lines of `columns` columns; later lines are indented.
std::vector<std::string> RunningLines(const JobInfo& job, int columns, int max_lines) {
  std::vector<std::string> items;
  for (const RunningAttemptInfo& a : job.attempts) {
    std::string item =
        Printable(a.attempt > 1 ? layout::AttemptName(a.task_id, a.attempt) : a.task_id);
    item += "@" + Printable(a.worker) + " " + std::to_string(Percent(a.progress)) + "%";
    if (a.speculative) item += " backup";
    items.push_back(std::move(item));
  }
  // The list holds at most 64 attempts; running_attempts counts them all.
  const int64_t total =
      std::max<int64_t>(job.running_attempts, static_cast<int64_t>(items.size()));
  std::vector<std::string> lines;
  std::string line = "running " + std::to_string(total);
  if (total == 0) return {line};
  line += ":";
  bool line_has_item = false;
  size_t shown = 0;
  while (shown < items.size()) {
    const bool last_line = static_cast<int>(lines.size()) + 1 >= max_lines;
    const int64_t left_after = total - static_cast<int64_t>(shown) - 1;
    const std::string candidate = line + (line_has_item ? ", " : " ") + items[shown];
    const std::string reserve =
        last_line && left_after > 0 ? ", +" + std::to_string(left_after) + " more" : "";
    if (Columns(candidate) + Columns(reserve) <= columns) {
      line = candidate;
      line_has_item = true;
      ++shown;
    } else if (!last_line && line_has_item) {
      lines.push_back(line + ",");
      line = "       ";  // the next item starts under the first one
      line_has_item = false;
    } else {
      break;
    }
  }
  if (static_cast<int64_t>(shown) < total) {
    line += std::string(line_has_item ? ", " : " ") + "+" +
            std::to_string(total - static_cast<int64_t>(shown)) + " more";
  }
  lines.push_back(line);
  return lines;
}

}  // namespace

void ProgressTracker::Update(const JobInfo& job, int64_t now_ms) {
  const std::string state = JobStateName(job.state);
  const bool state_changed = !has_snapshot_ || state != state_;
  job_ = job;
  state_ = state;
  map_ = ReadPhase(job.maps, job.map_progress);
  reduce_ = ReadPhase(job.reduces, job.reduce_progress);
  const double overall_now = overall();
  if (state_changed || overall_now > prev_overall_) last_advance_ms_ = now_ms;
  prev_overall_ = overall_now;
  last_now_ms_ = now_ms;
  has_snapshot_ = true;

  // Input read: a window of samples, keeping one at or before the window's start so the rate
  // covers the whole window.
  samples_.push_back({now_ms, input_bytes_read()});
  while (samples_.size() > 2 && samples_[1].now_ms <= now_ms - kRateWindowMs) samples_.pop_front();
  if (map_.fraction < 1) {
    saw_maps_unfinished_ = true;
    map_phase_ms_.reset();  // maps re-run (their output was lost): the phase is not over
  } else if (saw_maps_unfinished_ && !map_phase_ms_) {
    map_phase_ms_ = run_ms();
  }
  TakeFailures(job);
}

bool ProgressTracker::Update(const Value& job, int64_t now_ms) {
  std::string error;
  std::optional<JobInfo> info = JobInfo::FromValue(job, &error, Missing::kDefault);
  if (info) Update(*info, now_ms);
  return info.has_value();
}

double ProgressTracker::overall() const {
  if (state_ == "COMPLETED") return 1;
  const double m = static_cast<double>(map_.total);
  const double r = static_cast<double>(reduce_.total);
  if (m + r <= 0) return 0;
  return Clamp01((map_.fraction * m + reduce_.fraction * r) / (m + r));
}

std::optional<int64_t> ProgressTracker::run_ms() const {
  if (job_.started_ms <= 0) return std::nullopt;
  const int64_t queued = std::max<int64_t>(0, job_.started_ms - job_.submitted_ms);
  return std::max<int64_t>(0, job_.elapsed_ms - queued);
}

std::optional<int64_t> ProgressTracker::eta_ms() const {
  if (ExitCodeForState(state_)) return 0;
  const std::optional<int64_t> run = run_ms();
  const double f = overall();
  if (!run || *run < kEtaMinRunMs || f < kEtaMinFraction || stalled_ms() >= kStallMs) {
    return std::nullopt;
  }
  if (f >= 1) return 0;
  return static_cast<int64_t>(static_cast<double>(*run) * (1 - f) / f);
}

int64_t ProgressTracker::input_bytes_read() const {
  const int64_t total = std::max<int64_t>(0, job_.input_bytes);
  return static_cast<int64_t>(static_cast<double>(total) * map_.fraction);
}

std::optional<double> ProgressTracker::input_bytes_per_s() const {
  if (map_.fraction >= 1 || ExitCodeForState(state_) || samples_.size() < 2) return std::nullopt;
  const Sample& first = samples_.front();
  const Sample& last = samples_.back();
  const int64_t span = last.now_ms - first.now_ms;
  if (span < kMinRateSpanMs) return std::nullopt;
  const double grown =
      static_cast<double>(std::max<int64_t>(0, last.bytes_read - first.bytes_read));
  return grown * 1000.0 / static_cast<double>(span);
}

std::optional<double> ProgressTracker::map_phase_bytes_per_s() const {
  if (!map_phase_ms_ || *map_phase_ms_ <= 0) return std::nullopt;
  return static_cast<double>(std::max<int64_t>(0, job_.input_bytes)) * 1000.0 /
         static_cast<double>(*map_phase_ms_);
}

void ProgressTracker::TakeFailures(const JobInfo& job) {
  std::vector<const FailedAttemptInfo*> fresh;
  std::set<std::string> in_list;
  for (const FailedAttemptInfo& f : job.recent_failures) {
    std::string key = layout::AttemptName(f.task_id, f.attempt);
    if (!failures_seen_.count(key)) fresh.push_back(&f);
    in_list.insert(std::move(key));
  }
  // An attempt that left the list (it keeps the latest few) never comes back: forget it.
  failures_seen_ = std::move(in_list);
  const int64_t fresh_count = static_cast<int64_t>(fresh.size());
  const int64_t hidden = job.failed_attempts - failures_accounted_ - fresh_count;
  if (hidden > 0) {
    pending_failure_lines_.push_back("(" + Plural(hidden, "earlier failed attempt") +
                                     " not shown)");
  }
  failures_accounted_ = std::max(failures_accounted_ + fresh_count, job.failed_attempts);
  for (const FailedAttemptInfo* f : fresh) {
    std::string line =
        "attempt " + Printable(layout::AttemptName(f->task_id, f->attempt)) + " failed";
    if (!f->worker.empty()) line += " on " + Printable(f->worker);
    if (!f->error.empty()) line += ": " + Printable(f->error);
    pending_failure_lines_.push_back(std::move(line));
    const std::vector<std::string>& lines = f->stderr_tail;
    const size_t from = lines.size() > kFailureStderrLines ? lines.size() - kFailureStderrLines : 0;
    for (size_t i = from; i < lines.size(); ++i) {
      pending_failure_lines_.push_back("  | " + Printable(lines[i]));
    }
  }
}

std::vector<std::string> ProgressTracker::TakeFailureLines() {
  std::vector<std::string> lines;
  lines.swap(pending_failure_lines_);
  return lines;
}

std::vector<std::string> ProgressTracker::RenderLive(int width) const {
  const int columns = std::max(1, (width > 0 ? width : kDefaultTerminalWidth) - 1);
  std::vector<std::string> lines;

  std::string head = Printable(job_.job_id);
  if (!job_.name.empty()) head += " \"" + Printable(job_.name) + "\"";
  head += "  " + Printable(state_) + "  elapsed " + FormatDuration(job_.elapsed_ms) +
          "  eta " + EtaText(eta_ms());
  lines.push_back(std::move(head));

  const int count_width = static_cast<int>(
      std::to_string(std::max(map_.total, reduce_.total)).size());
  lines.push_back(BarLine("map", map_, count_width, columns));
  if (reduce_.total > 0) lines.push_back(BarLine("reduce", reduce_, count_width, columns));

  for (std::string& line : RunningLines(job_, columns, kRunningLines)) {
    lines.push_back(std::move(line));
  }

  const int64_t input_total = std::max<int64_t>(0, job_.input_bytes);
  std::string input = "input   ";
  if (map_.fraction < 1) {
    input += FormatBytes(input_bytes_read()) + " of " + FormatBytes(input_total) + " read";
    if (std::optional<double> rate = input_bytes_per_s()) input += "  " + RateText(*rate);
  } else {
    input += FormatBytes(input_total) + " read";
    if (map_phase_ms_) input += " in " + FormatDuration(*map_phase_ms_);
    if (std::optional<double> rate = map_phase_bytes_per_s()) input += "  " + RateText(*rate);
  }
  lines.push_back(std::move(input));

  std::vector<std::string> notes;
  const int64_t failed = std::max(job_.failed_attempts, failures_accounted_);
  if (failed > 0) notes.push_back(Plural(failed, "failed attempt"));
  if (!job_.waiting.empty()) {
    notes.push_back("waiting: " + Printable(job_.waiting));
  } else if (stalled_ms() >= kStallMs && !ExitCodeForState(state_)) {
    notes.push_back("no progress for " + FormatDuration(stalled_ms()));
  }
  if (!job_.blacklisted_workers.empty()) {
    std::string names;
    for (const std::string& w : job_.blacklisted_workers) {
      names += (names.empty() ? "" : ", ") + Printable(w);
    }
    notes.push_back("blacklisted: " + names);
  }
  if (!notes.empty()) {
    std::string line;
    for (const std::string& note : notes) line += (line.empty() ? "" : "  ") + note;
    lines.push_back(std::move(line));
  }

  for (std::string& line : lines) line = Truncate(std::move(line), columns);
  return lines;
}

std::string ProgressTracker::RenderPlainLine() const {
  std::string line = Printable(FormatProgressLine(job_)) + "  eta " + EtaText(eta_ms());
  if (std::optional<double> rate = input_bytes_per_s()) line += "  input " + RateText(*rate);
  line += "  running " + std::to_string(job_.running_attempts);
  const int64_t failed = std::max(job_.failed_attempts, failures_accounted_);
  if (failed > 0) line += "  " + Plural(failed, "failed attempt");
  if (!job_.waiting.empty()) line += "  waiting: " + Printable(job_.waiting);
  return line;
}

}  // namespace zmr::client
