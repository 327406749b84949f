#include "worker/attempt_threads.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/posix/io.h"
#include "common/value.h"
#include "runner/protocol.h"
#include "worker/attempt_process.h"

namespace zmr {

namespace {

// Runs an attempt in a zmr-task runner and reports progress and the outcome to the loop.
void RunAttempt(ReportQueue* reports, AttemptProcess* runner, Attempt* attempt) {
  const AssignMsg& task = attempt->task;
  AttemptRef ref{task.job_id, task.task_id, task.attempt};
  AttemptCallbacks callbacks;
  callbacks.progress = [&](double fraction, const std::string& status) {
    TaskProgressMsg p;
    p.ref = ref;
    p.progress = std::clamp(fraction, 0.0, 1.0);
    p.status = status;
    reports->Push({ref, Report::Kind::kProgress, "", Pack(p.ToValue())});
  };
  TaskResult result;
  std::string error;
  bool ok = false;
  try {
    ok = runner->Run(task, attempt->cancelled, callbacks, &result, &error);
  } catch (const std::exception& e) {
    error = std::string("attempt threw: ") + e.what();
  }
  if (ok) {
    TaskDoneMsg done;
    done.ref = ref;
    done.outputs = std::move(result.outputs);
    done.counters = std::move(result.counters);
    reports->Push({ref, Report::Kind::kDone, "", Pack(done.ToValue())});
  } else {
    TaskFailedMsg failed;
    failed.ref = ref;
    failed.error = error.empty() ? "unknown error" : error;
    failed.bad_inputs = std::move(result.bad_inputs);
    failed.stderr_tail = std::move(result.stderr_tail);
    reports->Push({ref, Report::Kind::kFailed, failed.error, Pack(failed.ToValue())});
  }
}

}  // namespace

ReportQueue::ReportQueue() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_.valid()) throw std::system_error(errno, std::generic_category(), "eventfd");
}

void ReportQueue::Push(Report report) {
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = reports_.empty();
    reports_.push_back(std::move(report));
  }
  if (!was_empty) return;  // the loop has not taken the earlier ones yet: it will take this too
  const uint64_t one = 1;
  WriteAll(fd_.get(), std::string_view(reinterpret_cast<const char*>(&one), sizeof(one)));
}

std::deque<Report> ReportQueue::TakeAll() {
  uint64_t count = 0;
  int err = 0;
  ReadSome(fd_.get(), reinterpret_cast<char*>(&count), sizeof(count), &err);
  std::deque<Report> taken;
  std::lock_guard<std::mutex> lock(mu_);
  taken.swap(reports_);
  return taken;
}

AttemptThreads::~AttemptThreads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool AttemptThreads::Start(Attempt* attempt) {
  bool now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(attempt);
    now = holding_ + static_cast<int>(queue_.size()) <= slots_;
  }
  Wake();
  return now;
}

bool AttemptThreads::Abandon(Attempt* attempt) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(queue_.begin(), queue_.end(), attempt);
    if (it != queue_.end()) {
      queue_.erase(it);
      return true;
    }
    if (attempt->holding) {
      attempt->holding = false;
      --holding_;
    }
  }
  Wake();
  return false;
}

void AttemptThreads::Wake() {
  int startable = 0, idle = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    startable = std::min(static_cast<int>(queue_.size()), slots_ - holding_);
    idle = idle_;
  }
  if (startable <= 0) return;
  for (int i = idle; i < startable; ++i) threads_.emplace_back([this] { Loop(); });
  if (idle > 1 && startable > 1) {
    cv_.notify_all();
  } else if (idle > 0) {
    cv_.notify_one();
  }
}

void AttemptThreads::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stop_ || (!queue_.empty() && holding_ < slots_); });
    --idle_;
    if (stop_) return;
    Attempt* attempt = queue_.front();
    queue_.pop_front();
    attempt->holding = true;
    ++holding_;
    lock.unlock();
    RunAttempt(reports_, runner_, attempt);
    lock.lock();
    if (attempt->holding) {
      attempt->holding = false;
      --holding_;
    }
    // Its reports are queued already; from here on the loop may delete it.
    attempt->finished.store(true);
  }
}

}  // namespace zmr
