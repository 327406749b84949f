#include "client/format.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <string_view>
#include <utility>

#include "client/views_read.h"

namespace zmr::client {

namespace {

using std::chrono::milliseconds;

// A fraction as a whole percent, rounded down; 0 for NaN or below 0, 100 from 1 on.
int Percent(double fraction) {
  if (!(fraction > 0)) return 0;
  if (fraction >= 1) return 100;
  return static_cast<int>(fraction * 100);
}

// How long ago, for a person: "1.2s ago" below 10 s, "42s ago" below a minute, then
// FormatDuration's "MM:SS ago".
std::string FormatAge(int64_t ms) {
  if (ms < 0) ms = 0;
  char buf[32];
  if (ms < 10000) {
    std::snprintf(buf, sizeof buf, "%.1fs ago", static_cast<double>(ms) / 1000.0);
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%llds ago", static_cast<long long>(ms / 1000));
  } else {
    return FormatDuration(ms) + " ago";
  }
  return buf;
}

}  // namespace

std::string FormatDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  const int64_t total_s = ms / 1000;
  const long long h = total_s / 3600;
  const long long m = (total_s / 60) % 60;
  const long long s = total_s % 60;
  char buf[48];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, s);
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", m, s);
  }
  return buf;
}

std::string FormatClock(int64_t ts_ms) {
  if (ts_ms < 0) ts_ms = 0;
  const std::time_t secs = static_cast<std::time_t>(ts_ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ts_ms % 1000));
  return buf;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) widths[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  std::string text;
  auto append_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : std::string();
      line += cell;
      if (c + 1 < widths.size()) line += std::string(widths[c] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line;
    text += '\n';
  };
  append_row(header);
  for (const auto& row : rows) append_row(row);
  return text;
}

std::string FormatJobsTable(const Value& jobs) {
  std::vector<std::vector<std::string>> rows;
  if (jobs.is_array()) {
    for (const Value& job : jobs.as_array()) {
      const Value& maps = GetField(job, "maps");
      const Value& reduces = GetField(job, "reduces");
      // Overall progress: every task weighs the same.
      const double m = static_cast<double>(GetInt(maps, "total"));
      const double r = static_cast<double>(GetInt(reduces, "total"));
      const double progress =
          m + r > 0 ? (GetDouble(job, "map_progress") * m + GetDouble(job, "reduce_progress") * r) /
                          (m + r)
                    : 0.0;
      rows.push_back(
          {GetString(job, "job_id"), GetString(job, "name"), GetString(job, "app"),
           GetString(job, "state"), std::to_string(Percent(progress)) + "%",
           std::to_string(GetInt(maps, "done")) + "/" + std::to_string(GetInt(maps, "total")),
           std::to_string(GetInt(reduces, "done")) + "/" + std::to_string(GetInt(reduces, "total")),
           FormatDuration(GetInt(job, "elapsed_ms")),
           job.Find("age_ms") != nullptr ? FormatAge(GetInt(job, "age_ms")) : ""});
    }
  }
  return FormatTable(
      {"JOB ID", "NAME", "APP", "STATE", "PROGRESS", "MAPS", "REDUCES", "ELAPSED", "SUBMITTED"},
      rows);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 0) return "-";
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes < (1 << 20)) {
    std::snprintf(buf, sizeof buf, "%lldK", static_cast<long long>((bytes + 1023) / 1024));
  } else if (bytes < (1ll << 30)) {
    std::snprintf(buf, sizeof buf, "%.1fM", b / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.1fG", b / (1ll << 30));
  }
  return buf;
}

namespace {

// A fraction as a whole percent, "-" when unknown (< 0).
std::string FormatPercent(double fraction) {
  if (fraction < 0) return "-";
  return std::to_string(static_cast<int64_t>(std::lround(fraction * 100))) + "%";
}

}  // namespace

std::string FormatWorkersTable(const Value& workers) {
  std::vector<std::vector<std::string>> rows;
  if (workers.is_array()) {
    for (const Value& w : workers.as_array()) {
      // Assignments beyond the slots wait in the worker's queue (short tasks only).
      const int64_t assigned = GetInt(w, "running");
      const int64_t slot_count = GetInt(w, "slots");
      const int64_t running = std::min(assigned, slot_count);
      std::string slots = std::to_string(running) + "/" + std::to_string(slot_count);
      if (assigned > running) slots += " +" + std::to_string(assigned - running) + " queued";
      const Value* capacity = w.Find("capacity");
      if (capacity != nullptr && capacity->is_int() && capacity->as_int() < GetInt(w, "slots")) {
        slots += " (cap " + std::to_string(capacity->as_int()) + ")";
      }
      const Value* saturated = w.Find("saturated");
      std::string host_cpu = FormatPercent(w.Find("host_cpu") ? GetDouble(w, "host_cpu") : -1);
      if (saturated != nullptr && saturated->is_bool() && saturated->as_bool()) {
        host_cpu += " saturated";
      }
      const Value* load = w.Find("load1");
      char load_text[32] = "-";
      if (load != nullptr && load->is_number() && load->as_double() >= 0) {
        std::snprintf(load_text, sizeof load_text, "%.2f", load->as_double());
      }
      const Value* rss = w.Find("rss_kb");
      int64_t rss_bytes = rss != nullptr && rss->is_int() && rss->as_int() >= 0
                              ? rss->as_int() * 1024 : -1;
      const Value* disk = w.Find("disk_free_bytes");
      int64_t disk_bytes = disk != nullptr && disk->is_int() ? disk->as_int() : -1;
      rows.push_back({GetString(w, "name"), GetString(w, "host"), std::to_string(GetInt(w, "pid")),
                      slots, FormatPercent(w.Find("cpu") ? GetDouble(w, "cpu") : -1), host_cpu,
                      load_text, FormatBytes(rss_bytes), FormatBytes(disk_bytes),
                      std::to_string(GetInt(w, "tasks_done")),
                      std::to_string(GetInt(w, "tasks_failed")),
                      FormatAge(GetInt(w, "heartbeat_age_ms"))});
    }
  }
  return FormatTable({"NAME", "HOST", "PID", "SLOTS", "CPU", "HOST CPU", "LOAD", "RSS",
                      "DISK FREE", "TASKS DONE", "FAILED", "LAST HEARTBEAT"},
                     rows);
}

std::string FormatTasksTable(const Value& tasks) {
  std::vector<std::vector<std::string>> rows;
  if (tasks.is_array()) {
    for (const Value& t : tasks.as_array()) {
      std::string state = GetString(t, "state");
      const Value* straggler = t.Find("straggler");
      if (straggler != nullptr && straggler->is_bool() && straggler->as_bool()) state += "*";
      const Value* backup = t.Find("speculative");
      if (backup != nullptr && backup->is_bool() && backup->as_bool()) state += " +backup";
      const Value* bytes = t.Find("input_bytes");
      rows.push_back({GetString(t, "task_id"), GetString(t, "kind"), state,
                      std::to_string(GetInt(t, "attempts")), GetString(t, "worker"),
                      std::to_string(Percent(GetDouble(t, "progress"))) + "%",
                      FormatBytes(bytes != nullptr && bytes->is_int() ? bytes->as_int() : -1),
                      std::to_string(GetInt(t, "records")),
                      FormatDuration(GetInt(t, "duration_ms"))});
    }
  }
  return FormatTable({"TASK", "KIND", "STATE", "ATTEMPTS", "WORKER", "PROGRESS", "INPUT",
                      "RECORDS", "DURATION"},
                     rows);
}

namespace {

std::string TaskCountsLine(const Value& counts, double progress) {
  std::ostringstream s;
  s << GetInt(counts, "total") << " total, " << GetInt(counts, "pending") << " pending, "
    << GetInt(counts, "running") << " running, " << GetInt(counts, "done") << " done, "
    << GetInt(counts, "failed") << " failed (" << Percent(progress) << "%)";
  return s.str();
}

// Non-zero integer counters sorted by name.
std::vector<std::pair<std::string, int64_t>> NonZeroCounters(const Value& job) {
  std::vector<std::pair<std::string, int64_t>> counters;
  const Value& map = GetField(job, "counters");
  if (map.is_map()) {
    for (const auto& [name, value] : map.as_map()) {
      if (value.is_int() && value.as_int() != 0) counters.emplace_back(name, value.as_int());
    }
  }
  std::sort(counters.begin(), counters.end());
  return counters;
}

}  // namespace

std::string FormatStatus(const Value& job) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"job", GetString(job, "job_id")});
  rows.push_back({"name", GetString(job, "name")});
  rows.push_back({"app", GetString(job, "app")});
  rows.push_back({"state", GetString(job, "state")});
  rows.push_back({"inputs", std::to_string(GetInt(job, "input_files")) + " files, " +
                                std::to_string(GetInt(job, "input_bytes")) + " bytes"});
  rows.push_back({"maps", TaskCountsLine(GetField(job, "maps"), GetDouble(job, "map_progress"))});
  rows.push_back(
      {"reduces", TaskCountsLine(GetField(job, "reduces"), GetDouble(job, "reduce_progress"))});
  rows.push_back({"elapsed", FormatDuration(GetInt(job, "elapsed_ms"))});
  rows.push_back({"output", GetString(job, "output")});
  if (GetInt(job, "priority") != 0) rows.push_back({"priority", std::to_string(GetInt(job, "priority"))});
  const std::string waiting = GetString(job, "waiting");
  if (!waiting.empty()) rows.push_back({"waiting", waiting});
  const Value& attempts = GetField(job, "attempts");
  if (attempts.is_array()) {
    for (const Value& a : attempts.as_array()) {
      std::string line = GetString(a, "task_id") + ".a" + std::to_string(GetInt(a, "attempt")) +
                         " on " + GetString(a, "worker") + "  " +
                         std::to_string(Percent(GetDouble(a, "progress"))) + "%  " +
                         FormatDuration(GetInt(a, "elapsed_ms"));
      const Value* speculative = a.Find("speculative");
      if (speculative != nullptr && speculative->is_bool() && speculative->as_bool()) {
        line += "  (speculative backup)";
      }
      rows.push_back({"running", line});
    }
  }
  if (GetInt(job, "backups_launched") > 0) {
    rows.push_back({"backups", std::to_string(GetInt(job, "backups_launched")) +
                                   " launched for stragglers"});
  }
  const Value& blacklist = GetField(job, "blacklisted_workers");
  if (blacklist.is_array() && !blacklist.as_array().empty()) {
    std::string names;
    for (const Value& name : blacklist.as_array()) {
      if (name.is_string()) names += (names.empty() ? "" : ", ") + name.as_string();
    }
    rows.push_back({"blacklisted", names + " (too many failed attempts of this job)"});
  }
  const std::string error = GetString(job, "error");
  if (!error.empty()) rows.push_back({"error", OneLine(error)});
  const Value& failure = GetField(job, "failure");
  const std::string failed_task = GetString(failure, "task_id");
  if (!failed_task.empty()) {
    // Each attempt of the task to blame: where it ran, how it ended, its last stderr lines.
    const Value& tried = GetField(failure, "attempts");
    if (tried.is_array()) {
      for (const Value& a : tried.as_array()) {
        std::string line = failed_task + ".a" + std::to_string(GetInt(a, "attempt")) + " on " +
                           GetString(a, "worker") + "  " + GetString(a, "state");
        const std::string why = GetString(a, "error");
        if (!why.empty()) line += ": " + OneLine(why);
        rows.push_back({"attempt", line});
        const Value& tail = GetField(a, "stderr_tail");
        if (tail.is_array()) {
          for (const Value& l : tail.as_array()) {
            if (l.is_string()) rows.push_back({"", "  stderr| " + OneLine(l.as_string())});
          }
        }
      }
    }
    rows.push_back({"logs", "zmr logs " + GetString(job, "job_id") + " " + failed_task +
                                " [--attempt N]"});
  } else if (GetInt(job, "failed_attempts") > 0) {
    std::string line = std::to_string(GetInt(job, "failed_attempts")) + " failed attempt" +
                       (GetInt(job, "failed_attempts") == 1 ? "" : "s");
    const Value& recent = GetField(job, "recent_failures");
    if (recent.is_array() && !recent.as_array().empty()) {
      const Value& last = recent.as_array().back();
      line += "; latest " + GetString(last, "task_id") + ".a" +
              std::to_string(GetInt(last, "attempt")) + " on " + GetString(last, "worker") +
              ": " + OneLine(GetString(last, "error"));
    }
    rows.push_back({"failures", line});
  }
  std::string text;
  // Reuse the table layout for aligned "key  value" lines, without a header line.
  std::string table = FormatTable({"", ""}, rows);
  text = table.substr(table.find('\n') + 1);
  const auto counters = NonZeroCounters(job);
  if (!counters.empty()) {
    text += "counters\n";
    std::vector<std::vector<std::string>> counter_rows;
    for (const auto& [name, value] : counters)
      counter_rows.push_back({"", name, std::to_string(value)});
    std::string ctable = FormatTable({"", "", ""}, counter_rows);
    text += ctable.substr(ctable.find('\n') + 1);
  }
  return text;
}

std::string FormatProgressLine(const Value& job) {
  const Value& maps = GetField(job, "maps");
  const Value& reduces = GetField(job, "reduces");
  std::ostringstream s;
  s << GetString(job, "job_id") << ' ' << GetString(job, "state") << "  map "
    << GetInt(maps, "done") << '/' << GetInt(maps, "total") << " ("
    << Percent(GetDouble(job, "map_progress")) << "%)  reduce " << GetInt(reduces, "done") << '/'
    << GetInt(reduces, "total") << " (" << Percent(GetDouble(job, "reduce_progress")) << "%)  "
    << FormatDuration(GetInt(job, "elapsed_ms"));
  return s.str();
}

std::string FormatSummary(const Value& job) {
  const std::string state = GetString(job, "state");
  std::string text = GetString(job, "job_id") + " " + state +
                     (state == "COMPLETED" ? " in " : " after ") +
                     FormatDuration(GetInt(job, "elapsed_ms"));
  const int64_t started = GetInt(job, "started_ms");
  const int64_t queued = started > 0 ? started - GetInt(job, "submitted_ms") : 0;
  if (queued >= 1000) text += " (" + FormatDuration(queued) + " before the first attempt)";
  text += "\n";
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"", "output", GetString(job, "output")});
  const Value& maps = GetField(job, "maps");
  const Value& reduces = GetField(job, "reduces");
  std::string tasks = state == "COMPLETED"
                          ? std::to_string(GetInt(maps, "total")) + " maps, " +
                                std::to_string(GetInt(reduces, "total")) + " reduces"
                          : std::to_string(GetInt(maps, "done")) + "/" +
                                std::to_string(GetInt(maps, "total")) + " maps, " +
                                std::to_string(GetInt(reduces, "done")) + "/" +
                                std::to_string(GetInt(reduces, "total")) + " reduces done";
  rows.push_back({"", "tasks", tasks});
  rows.push_back({"", "input", std::to_string(GetInt(job, "input_files")) + " files, " +
                                   FormatBytes(std::max<int64_t>(0, GetInt(job, "input_bytes")))});
  if (GetInt(job, "failed_attempts") > 0) {
    rows.push_back({"", "failed attempts", std::to_string(GetInt(job, "failed_attempts"))});
  }
  if (GetInt(job, "backups_launched") > 0) {
    rows.push_back({"", "backups", std::to_string(GetInt(job, "backups_launched")) + " launched"});
  }
  if (state == "FAILED") rows.push_back({"", "error", OneLine(GetString(job, "error"))});
  if (state == "COMPLETED") {
    static constexpr std::string_view kKeyCounters[] = {
        "map_input_records", "map_output_records", "reduce_input_groups", "reduce_output_records",
        "reduce_output_bytes"};
    const Value& counters = GetField(job, "counters");
    for (std::string_view name : kKeyCounters) {
      const Value* v = counters.Find(name);
      if (v && v->is_int()) rows.push_back({"", std::string(name), std::to_string(v->as_int())});
    }
  }
  std::string table = FormatTable({"", "", ""}, rows);
  text += table.substr(table.find('\n') + 1);
  return text;
}

std::string FormatEvent(const Value& event) {
  const std::string type = GetString(event, "type");
  if (type == "heartbeat") return "";
  std::string line = FormatClock(GetInt(event, "ts_ms"));
  const std::string job_id = GetString(event, "job_id");
  const std::string worker = GetString(event, "worker");
  if (!job_id.empty()) {
    line += " " + job_id + " " + type;
    if (type == "job_state") {
      line += " " + GetString(event, "state");
      const std::string prev = GetString(event, "prev_state");
      if (!prev.empty()) line += " (was " + prev + ")";
      const std::string error = GetString(event, "error");
      if (!error.empty()) line += ": " + OneLine(error);
      return line;
    }
    const std::string task_id = GetString(event, "task_id");
    if (!task_id.empty()) {
      line += " " + task_id + " attempt " + std::to_string(GetInt(event, "attempt"));
      if (!worker.empty()) line += " on " + worker;
    }
    if (type == "task_progress") {
      line += " " + std::to_string(Percent(GetDouble(event, "progress"))) + "%";
    } else if (type == "task_failed") {
      line += ": " + OneLine(GetString(event, "error"));
    } else if (type == "task_killed") {
      line += ": " + OneLine(GetString(event, "reason"));
    } else if (type == "task_speculated") {
      line += ": backup for attempt " + std::to_string(GetInt(event, "original_attempt")) +
              " on " + GetString(event, "original_worker") + " (running " +
              FormatDuration(GetInt(event, "elapsed_ms")) + ", expected " +
              FormatDuration(GetInt(event, "estimated_ms")) + ", typical " +
              FormatDuration(GetInt(event, "typical_ms")) + ")";
    } else if (type == "worker_blacklisted") {
      line += " " + worker + " after " + std::to_string(GetInt(event, "failures")) +
              " failed attempts";
    }
    return line;
  }
  if (!worker.empty()) {
    line += " " + worker + " " + type;
    if (type == "worker_joined") {
      line += " host " + GetString(event, "host") + ", " + std::to_string(GetInt(event, "slots")) +
              " slots";
    } else if (type == "worker_lost") {
      line += " (" + GetString(event, "reason") + ")";
    }
    return line;
  }
  return line + " " + type;
}

Value FinalStateEvent(const Value& job) {
  const std::string state = GetString(job, "state");
  int64_t ts_ms = GetInt(job, "finished_ms");
  if (ts_ms <= 0) {
    ts_ms = std::chrono::duration_cast<milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  }
  Value event;
  event.Set("type", "job_state");
  event.Set("ts_ms", ts_ms);
  event.Set("job_id", GetString(job, "job_id"));
  event.Set("seq", GetInt(job, "last_seq"));
  event.Set("state", state);
  if (state == "FAILED") event.Set("error", GetString(job, "error"));
  event.Set("from_status", true);
  return event;
}

}  // namespace zmr::client
