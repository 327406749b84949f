#include "coordinator/job_views.h"

#include <algorithm>

#include "common/layout.h"
#include "coordinator/speculation.h"

namespace zmr {

namespace {

TaskCounts CountsOf(const Phase& phase, int64_t planned_total) {
  int64_t total = std::max<int64_t>(planned_total, static_cast<int64_t>(phase.tasks.size()));
  int64_t pending = 0, running = 0, done = 0, failed = 0;
  for (const Task& t : phase.tasks) {
    switch (t.state) {
      case TaskState::kPending: ++pending; break;
      case TaskState::kRunning: ++running; break;
      case TaskState::kDone: ++done; break;
      case TaskState::kFailed: ++failed; break;
    }
  }
  // Reduce tasks not created yet count as pending.
  pending += total - static_cast<int64_t>(phase.tasks.size());
  return {total, pending, running, done, failed};
}

double PhaseProgress(const Phase& phase, int64_t total) {
  if (total <= 0) return 0;
  double sum = static_cast<double>(phase.done);
  for (int64_t index : phase.running) {
    double best = 0;
    for (const LiveAttempt& a : phase.tasks[index].live) best = std::max(best, a.progress);
    sum += best;
  }
  return std::min(1.0, sum / static_cast<double>(total));
}

AttemptRecordInfo InfoOf(const AttemptRecord& r) {
  return {r.number, r.worker_name, r.state, r.start_ms, r.end_ms, r.error, r.stderr_tail};
}


}  // namespace

JobInfo JobInfoOf(const Job& job, int64_t now_ms, bool no_workers, std::string waiting) {
  JobInfo v;
  v.job_id = job.job_id;
  v.name = job.spec.name;
  v.app = job.spec.app;
  v.state = job.state;
  v.error = job.error;
  if (job.state == JobState::kFailed) {
    FailureInfo failure{job.failure.stage, job.failure.task_id, {}};
    // Every attempt of the task to blame: where it ran and how it ended.
    TaskKind kind;
    int64_t index = 0;
    const Task* blamed = nullptr;
    if (layout::ParseTaskId(job.failure.task_id, &kind, &index)) blamed = job.FindTask(kind, index);
    if (blamed != nullptr) {
      for (const AttemptRecord& r : blamed->tried) failure.attempts.push_back(InfoOf(r));
    }
    v.failure = std::move(failure);
  }
  v.output = job.spec.output_dir;
  v.input_files = job.spec.input_files;
  v.input_bytes = job.spec.input_bytes;
  v.priority = job.spec.priority;
  v.speculation = job.spec.speculation;
  v.submitted_ms = job.submitted_ms;
  v.started_ms = job.started_ms;
  v.finished_ms = job.finished_ms;
  v.elapsed_ms = (job.finished_ms != 0 ? job.finished_ms : now_ms) - job.submitted_ms;
  v.age_ms = now_ms - job.submitted_ms;
  int64_t num_maps = static_cast<int64_t>(job.maps.tasks.size());
  v.maps = CountsOf(job.maps, num_maps);
  v.reduces = CountsOf(job.reduces, job.spec.num_reduces);
  v.map_progress = PhaseProgress(job.maps, num_maps);
  v.reduce_progress = PhaseProgress(job.reduces, job.spec.num_reduces);
  v.waiting_for_workers = !IsTerminal(job.state) && no_workers;
  v.waiting = std::move(waiting);
  v.running_attempts = job.live_attempts;
  v.speculative_attempts = job.live_backups;
  v.backups_launched = job.backups_launched;
  v.blacklisted_workers.assign(job.blacklist.begin(), job.blacklist.end());
  for (const Phase* phase : {&job.maps, &job.reduces}) {
    for (int64_t index : phase->running) {
      const Task& t = phase->tasks[index];
      for (const LiveAttempt& a : t.live) {
        if (v.attempts.size() >= kMaxListedAttempts) break;
        v.attempts.push_back({t.task_id, a.number, a.worker_name, a.progress,
                              now_ms - a.start_ms, a.speculative});
      }
    }
  }
  v.failed_attempts = job.failed_attempts;
  for (const FailureRecord& f : job.recent_failures) {
    v.recent_failures.push_back(
        {f.task_id, f.kind, f.attempt, f.worker_name, f.error, f.stderr_tail, f.ts_ms});
  }
  v.counters = job.counters;
  v.last_seq = job.seq;
  return v;
}

JobEventsView EventsOf(const Job& job, int64_t after_seq) {
  JobEventsView v;
  for (const JobEvent& event : job.events) {
    if (event.seq > after_seq) v.events.push_back(event);
  }
  // Complete when nothing between after_seq and the first event returned was dropped.
  int64_t first = v.events.empty() ? job.seq + 1 : v.events.front().seq;
  v.complete = first <= after_seq + 1 || after_seq >= job.seq;
  v.last_seq = job.seq;
  return v;
}

std::vector<TaskInfo> TaskInfosOf(const Job& job, int64_t now_ms) {
  std::vector<TaskInfo> list;
  list.reserve(job.maps.tasks.size() + job.reduces.tasks.size());
  for (const Phase* phase : {&job.maps, &job.reduces}) {
    // A running attempt is a straggler once it is expected to take more than twice the phase's
    // median (the speculation threshold without its slack).
    int64_t typical = phase->durations.size() > 0 ? phase->durations.Median() : -1;
    for (const Task& t : phase->tasks) {
      TaskInfo v;
      v.task_id = t.task_id;
      v.kind = t.kind;
      v.state = t.state;
      v.attempts = t.attempt;
      v.failures = t.failures;
      std::string workers;
      v.progress = t.state == TaskState::kDone ? 1.0 : 0.0;
      v.duration_ms = t.duration_ms;
      for (const LiveAttempt& a : t.live) {
        workers += (workers.empty() ? "" : ",") + a.worker_name;
        v.progress = std::max(v.progress, a.progress);
        v.duration_ms = std::max(v.duration_ms, now_ms - a.start_ms);
        v.straggler = v.straggler || LooksStraggling(a, typical, now_ms);
      }
      v.worker = t.state == TaskState::kDone ? t.done_worker : workers;
      v.input_bytes = t.input_bytes;
      if (t.kind == TaskKind::kMap) {
        v.input_bytes = 0;
        for (const FileRange& r : job.spec.splits[t.index]) v.input_bytes += r.end - r.start;
      }
      v.records = t.records;
      v.speculative = t.speculated;
      list.push_back(std::move(v));
    }
  }
  return list;
}

WorkerInfo WorkerInfoOf(const Worker& w, int64_t now_ms) {
  WorkerInfo v;
  v.name = w.name;
  v.host = w.host;
  v.pid = w.pid;
  v.slots = w.slots;
  v.queue = w.queue;
  v.running = static_cast<int64_t>(w.running.size());
  v.capacity = w.capacity();
  v.saturated = w.saturated();
  v.cpu = w.load.cpu;
  v.host_cpu = w.load.host_cpu;
  v.cores = w.load.cores;
  v.load1 = w.load.load1;
  v.rss_kb = w.load.rss_kb;
  v.disk_free_bytes = w.load.disk_free_bytes;
  v.heartbeat_age_ms = now_ms - w.last_seen_ms;
  v.tasks_done = w.tasks_done;
  v.tasks_failed = w.tasks_failed;
  v.joined_ms = w.joined_ms;
  for (const auto& [job_id, kind, index, number] : w.running) {
    v.attempts.push_back(job_id + "/" + layout::AttemptName(layout::TaskId(kind, index), number));
    if (v.attempts.size() >= kMaxListedAttempts) break;
  }
  return v;
}

}  // namespace zmr
