#include "client/format.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "client/views_read.h"
#include "common/layout.h"

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

std::string FormatJobsTable(const std::vector<JobInfo>& jobs) {
  std::vector<std::vector<std::string>> rows;
  for (const JobInfo& job : jobs) {
    // Overall progress: every task weighs the same.
    const double m = static_cast<double>(job.maps.total);
    const double r = static_cast<double>(job.reduces.total);
    const double progress =
        m + r > 0 ? (job.map_progress * m + job.reduce_progress * r) / (m + r) : 0.0;
    rows.push_back({job.job_id, job.name, job.app, JobStateName(job.state),
                    std::to_string(Percent(progress)) + "%",
                    std::to_string(job.maps.done) + "/" + std::to_string(job.maps.total),
                    std::to_string(job.reduces.done) + "/" + std::to_string(job.reduces.total),
                    FormatDuration(job.elapsed_ms), FormatAge(job.age_ms)});
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

std::string FormatWorkersTable(const std::vector<WorkerInfo>& workers) {
  std::vector<std::vector<std::string>> rows;
  for (const WorkerInfo& w : workers) {
    // Assignments beyond the slots wait in the worker's queue (short tasks only).
    const int64_t running = std::min(w.running, w.slots);
    std::string slots = std::to_string(running) + "/" + std::to_string(w.slots);
    if (w.running > running) slots += " +" + std::to_string(w.running - running) + " queued";
    if (w.capacity < w.slots) slots += " (cap " + std::to_string(w.capacity) + ")";
    std::string host_cpu = FormatPercent(w.host_cpu);
    if (w.saturated) host_cpu += " saturated";
    char load_text[32] = "-";
    if (w.load1 >= 0) std::snprintf(load_text, sizeof load_text, "%.2f", w.load1);
    rows.push_back({w.name, w.host, std::to_string(w.pid), slots, FormatPercent(w.cpu), host_cpu,
                    load_text, FormatBytes(w.rss_kb >= 0 ? w.rss_kb * 1024 : -1),
                    FormatBytes(w.disk_free_bytes), std::to_string(w.tasks_done),
                    std::to_string(w.tasks_failed), FormatAge(w.heartbeat_age_ms)});
  }
  return FormatTable({"NAME", "HOST", "PID", "SLOTS", "CPU", "HOST CPU", "LOAD", "RSS",
                      "DISK FREE", "TASKS DONE", "FAILED", "LAST HEARTBEAT"},
                     rows);
}

std::string FormatTasksTable(const std::vector<TaskInfo>& tasks) {
  std::vector<std::vector<std::string>> rows;
  for (const TaskInfo& t : tasks) {
    std::string state = TaskStateName(t.state);
    if (t.straggler) state += "*";
    if (t.speculative) state += " +backup";
    rows.push_back({t.task_id, TaskKindName(t.kind), state, std::to_string(t.attempts), t.worker,
                    std::to_string(Percent(t.progress)) + "%", FormatBytes(t.input_bytes),
                    std::to_string(t.records), FormatDuration(t.duration_ms)});
  }
  return FormatTable({"TASK", "KIND", "STATE", "ATTEMPTS", "WORKER", "PROGRESS", "INPUT",
                      "RECORDS", "DURATION"},
                     rows);
}

namespace {

std::string TaskCountsLine(const TaskCounts& counts, double progress) {
  std::ostringstream s;
  s << counts.total << " total, " << counts.pending << " pending, " << counts.running
    << " running, " << counts.done << " done, " << counts.failed << " failed ("
    << Percent(progress) << "%)";
  return s.str();
}

// Rows after the first line of a headerless table: aligned "key  value" lines.
std::string AlignedRows(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  const std::string table = FormatTable(header, rows);
  return table.substr(table.find('\n') + 1);
}

}  // namespace

std::string FormatStatus(const JobInfo& job) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"job", job.job_id});
  rows.push_back({"name", job.name});
  rows.push_back({"app", job.app});
  rows.push_back({"state", JobStateName(job.state)});
  rows.push_back({"inputs", std::to_string(job.input_files) + " files, " +
                                std::to_string(job.input_bytes) + " bytes"});
  rows.push_back({"maps", TaskCountsLine(job.maps, job.map_progress)});
  rows.push_back({"reduces", TaskCountsLine(job.reduces, job.reduce_progress)});
  rows.push_back({"elapsed", FormatDuration(job.elapsed_ms)});
  rows.push_back({"output", job.output});
  if (job.priority != 0) rows.push_back({"priority", std::to_string(job.priority)});
  if (!job.waiting.empty()) rows.push_back({"waiting", job.waiting});
  for (const RunningAttemptInfo& a : job.attempts) {
    std::string line = layout::AttemptName(a.task_id, a.attempt) + " on " + a.worker + "  " +
                       std::to_string(Percent(a.progress)) + "%  " + FormatDuration(a.elapsed_ms);
    if (a.speculative) line += "  (speculative backup)";
    rows.push_back({"running", line});
  }
  if (job.backups_launched > 0) {
    rows.push_back(
        {"backups", std::to_string(job.backups_launched) + " launched for stragglers"});
  }
  if (!job.blacklisted_workers.empty()) {
    std::string names;
    for (const std::string& name : job.blacklisted_workers) {
      names += (names.empty() ? "" : ", ") + name;
    }
    rows.push_back({"blacklisted", names + " (too many failed attempts of this job)"});
  }
  if (!job.error.empty()) rows.push_back({"error", OneLine(job.error)});
  if (job.failure && !job.failure->task_id.empty()) {
    // Each attempt of the task to blame: where it ran, how it ended, its last stderr lines.
    const std::string& failed_task = job.failure->task_id;
    for (const AttemptRecordInfo& a : job.failure->attempts) {
      std::string line =
          layout::AttemptName(failed_task, a.attempt) + " on " + a.worker + "  " + a.state;
      if (!a.error.empty()) line += ": " + OneLine(a.error);
      rows.push_back({"attempt", line});
      for (const std::string& l : a.stderr_tail) rows.push_back({"", "  stderr| " + OneLine(l)});
    }
    rows.push_back({"logs", "zmr logs " + job.job_id + " " + failed_task + " [--attempt N]"});
  } else if (job.failed_attempts > 0) {
    std::string line = std::to_string(job.failed_attempts) + " failed attempt" +
                       (job.failed_attempts == 1 ? "" : "s");
    if (!job.recent_failures.empty()) {
      const FailedAttemptInfo& last = job.recent_failures.back();
      line += "; latest " + layout::AttemptName(last.task_id, last.attempt) + " on " +
              last.worker + ": " + OneLine(last.error);
    }
    rows.push_back({"failures", line});
  }
  std::string text = AlignedRows({"", ""}, rows);
  // Non-zero counters, by name.
  std::vector<std::vector<std::string>> counter_rows;
  for (const auto& [name, value] : job.counters) {
    if (value != 0) counter_rows.push_back({"", name, std::to_string(value)});
  }
  if (!counter_rows.empty()) text += "counters\n" + AlignedRows({"", "", ""}, counter_rows);
  return text;
}

std::string FormatProgressLine(const JobInfo& job) {
  std::ostringstream s;
  s << job.job_id << ' ' << JobStateName(job.state) << "  map " << job.maps.done << '/'
    << job.maps.total << " (" << Percent(job.map_progress) << "%)  reduce " << job.reduces.done
    << '/' << job.reduces.total << " (" << Percent(job.reduce_progress) << "%)  "
    << FormatDuration(job.elapsed_ms);
  return s.str();
}

std::string FormatSummary(const JobInfo& job) {
  const bool completed = job.state == JobState::kCompleted;
  std::string text = job.job_id + " " + JobStateName(job.state) +
                     (completed ? " in " : " after ") + FormatDuration(job.elapsed_ms);
  const int64_t queued = job.started_ms > 0 ? job.started_ms - job.submitted_ms : 0;
  if (queued >= 1000) text += " (" + FormatDuration(queued) + " before the first attempt)";
  text += "\n";
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"", "output", job.output});
  const TaskCounts& maps = job.maps;
  const TaskCounts& reduces = job.reduces;
  std::string tasks = completed ? std::to_string(maps.total) + " maps, " +
                                      std::to_string(reduces.total) + " reduces"
                                : std::to_string(maps.done) + "/" + std::to_string(maps.total) +
                                      " maps, " + std::to_string(reduces.done) + "/" +
                                      std::to_string(reduces.total) + " reduces done";
  rows.push_back({"", "tasks", tasks});
  rows.push_back({"", "input", std::to_string(job.input_files) + " files, " +
                                   FormatBytes(std::max<int64_t>(0, job.input_bytes))});
  if (job.failed_attempts > 0) {
    rows.push_back({"", "failed attempts", std::to_string(job.failed_attempts)});
  }
  if (job.backups_launched > 0) {
    rows.push_back({"", "backups", std::to_string(job.backups_launched) + " launched"});
  }
  if (job.state == JobState::kFailed) rows.push_back({"", "error", OneLine(job.error)});
  if (completed) {
    static constexpr const char* kKeyCounters[] = {
        "map_input_records", "map_output_records", "reduce_input_groups", "reduce_output_records",
        "reduce_output_bytes"};
    for (const char* name : kKeyCounters) {
      if (auto it = job.counters.find(name); it != job.counters.end()) {
        rows.push_back({"", name, std::to_string(it->second)});
      }
    }
  }
  return text + AlignedRows({"", "", ""}, rows);
}

namespace {

// What a task event says after its attempt: the percent, the error, why it was killed, ...
std::string TaskEventTail(const TaskProgressEvent& e) {
  return " " + std::to_string(Percent(e.progress)) + "%";
}
std::string TaskEventTail(const TaskFailedEvent& e) { return ": " + OneLine(e.error); }
std::string TaskEventTail(const TaskKilledEvent& e) { return ": " + OneLine(e.reason); }
std::string TaskEventTail(const TaskSpeculatedEvent& e) {
  return ": backup for attempt " + std::to_string(e.original_attempt) + " on " +
         e.original_worker + " (running " + FormatDuration(e.elapsed_ms) + ", expected " +
         FormatDuration(e.estimated_ms) + ", typical " + FormatDuration(e.typical_ms) + ")";
}
std::string TaskEventTail(const TaskAssignedEvent&) { return ""; }
std::string TaskEventTail(const TaskCompletedEvent&) { return ""; }

// The line of a job event after "TIME JOB TYPE".
std::string JobEventTail(const JobStateEvent& e) {
  std::string tail = std::string(" ") + JobStateName(e.state);
  if (e.prev_state) tail += std::string(" (was ") + JobStateName(*e.prev_state) + ")";
  if (!e.error.empty()) tail += ": " + OneLine(e.error);
  return tail;
}
std::string JobEventTail(const WorkerBlacklistedEvent& e) {
  return " " + e.worker + " after " + std::to_string(e.failures) + " failed attempts";
}
template <typename TaskEvent>
std::string JobEventTail(const TaskEvent& e) {
  std::string tail;
  if (!e.task.task_id.empty()) {
    tail = " " + e.task.task_id + " attempt " + std::to_string(e.task.attempt);
    if (!e.task.worker.empty()) tail += " on " + e.task.worker;
  }
  return tail + TaskEventTail(e);
}

// The worker a job event names ("" for job_state).
std::string EventWorker(const JobStateEvent&) { return ""; }
std::string EventWorker(const WorkerBlacklistedEvent& e) { return e.worker; }
template <typename TaskEvent>
std::string EventWorker(const TaskEvent& e) {
  return e.task.worker;
}

// An event without a job id reads as the worker it names (if any) and its type.
std::string NamelessEventLine(int64_t ts_ms, const std::string& worker, const char* type) {
  return FormatClock(ts_ms) + (worker.empty() ? "" : " " + worker) + " " + type;
}

}  // namespace

std::string FormatEvent(const JobEvent& event) {
  if (event.job_id.empty()) {
    return NamelessEventLine(
        event.ts_ms, std::visit([](const auto& e) { return EventWorker(e); }, event.detail),
        event.type());
  }
  return FormatClock(event.ts_ms) + " " + event.job_id + " " + event.type() +
         std::visit([](const auto& e) { return JobEventTail(e); }, event.detail);
}

std::string FormatEvent(const WorkerEvent& event) {
  std::string line = NamelessEventLine(event.ts_ms, event.worker, event.type());
  if (event.worker.empty()) return line;
  if (const auto* joined = std::get_if<WorkerJoinedEvent>(&event.detail)) {
    line += " host " + joined->host + ", " + std::to_string(joined->slots) + " slots";
  } else if (const auto* lost = std::get_if<WorkerLostEvent>(&event.detail)) {
    line += " (" + lost->reason + ")";
  }
  return line;
}

Value FinalStateEvent(const JobInfo& job) {
  int64_t ts_ms = job.finished_ms;
  if (ts_ms <= 0) {
    ts_ms = std::chrono::duration_cast<milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  }
  Value line;
  line.Set("type", event::kJobState);
  line.Set("ts_ms", ts_ms);
  line.Set("job_id", job.job_id);
  line.Set("seq", job.last_seq);
  line.Set("state", JobStateName(job.state));
  if (job.state == JobState::kFailed) line.Set("error", job.error);
  line.Set("from_status", true);
  return line;
}

// --- views in their wire form ---

namespace {

// `view` decoded as View the way the client reads views, rendered by `render`; a line naming the
// error when it does not decode.
template <typename View, typename Render>
std::string RenderReceived(const Value& view, const char* what, Render render) {
  std::string error;
  std::optional<View> decoded = View::FromValue(view, &error, Missing::kDefault);
  if (!decoded) return std::string("(malformed ") + what + ": " + OneLine(error) + ")\n";
  return render(*decoded);
}

// A list of views as the reply carrying it holds them under `key`.
Value InReply(const char* key, const Value& list) {
  Value reply;
  reply.Set(key, list);
  return reply;
}

}  // namespace

std::string FormatJobsTable(const Value& jobs) {
  return RenderReceived<JobsReply>(InReply("jobs", jobs), "JobInfo list",
                                   [](const JobsReply& r) { return FormatJobsTable(r.jobs); });
}

std::string FormatWorkersTable(const Value& workers) {
  return RenderReceived<WorkersReply>(
      InReply("workers", workers), "WorkerInfo list",
      [](const WorkersReply& r) { return FormatWorkersTable(r.workers); });
}

std::string FormatTasksTable(const Value& tasks) {
  return RenderReceived<TasksReply>(InReply("tasks", tasks), "TaskInfo list",
                                    [](const TasksReply& r) { return FormatTasksTable(r.tasks); });
}

std::string FormatStatus(const Value& job) {
  return RenderReceived<JobInfo>(job, "JobInfo",
                                 [](const JobInfo& j) { return FormatStatus(j); });
}

std::string FormatProgressLine(const Value& job) {
  return RenderReceived<JobInfo>(job, "JobInfo",
                                 [](const JobInfo& j) { return FormatProgressLine(j); });
}

std::string FormatSummary(const Value& job) {
  return RenderReceived<JobInfo>(job, "JobInfo",
                                 [](const JobInfo& j) { return FormatSummary(j); });
}

std::string FormatEvent(const Value& event) {
  const Value* type = event.Find("type");
  if (type != nullptr && type->is_string() && type->as_string() == event::kHeartbeat) return "";
  std::string error;
  if (event.Find("job_id") != nullptr) {
    std::optional<JobEvent> e = JobEvent::FromValue(event, &error, Missing::kDefault);
    return e ? FormatEvent(*e) : "";
  }
  std::optional<WorkerEvent> e = WorkerEvent::FromValue(event, &error, Missing::kDefault);
  return e ? FormatEvent(*e) : "";
}

Value FinalStateEvent(const Value& job) {
  std::string error;
  std::optional<JobInfo> info = JobInfo::FromValue(job, &error, Missing::kDefault);
  return info ? FinalStateEvent(*info) : Value();
}

}  // namespace zmr::client
