#include "coordinator/job.h"

#include <cstdio>

namespace zmr {

AttemptRecord* Task::FindRecord(int64_t number) {
  for (auto it = tried.rbegin(); it != tried.rend(); ++it) {
    if (it->number == number) return &*it;
  }
  return nullptr;
}

void RunningMedian::Add(int64_t x) {
  if (low_.empty() || x <= low_.top()) {
    low_.push(x);
  } else {
    high_.push(x);
  }
  if (low_.size() > high_.size() + 1) {
    high_.push(low_.top());
    low_.pop();
  } else if (high_.size() > low_.size()) {
    low_.push(high_.top());
    high_.pop();
  }
}

Task* Job::FindTask(TaskKind kind, int64_t index) {
  std::vector<Task>& tasks = phase(kind).tasks;
  if (index < 0 || index >= static_cast<int64_t>(tasks.size())) return nullptr;
  return &tasks[index];
}

const Task* Job::FindTask(TaskKind kind, int64_t index) const {
  return const_cast<Job*>(this)->FindTask(kind, index);
}

JobEvent Job::RecordEvent(int64_t now_ms, JobEvent::Detail detail) {
  JobEvent event{now_ms, job_id, ++seq, std::move(detail)};
  events.push_back(event);
  if (events.size() > kEventHistory) events.pop_front();
  return event;
}



const char* StageOf(const Job& job) {
  switch (job.state) {
    case JobState::kSubmitted: return "SUBMITTED";
    case JobState::kMapping: return "MAPPING";
    case JobState::kReducing: return "REDUCING";
    default: return JobStateName(job.state);
  }
}


}  // namespace zmr
