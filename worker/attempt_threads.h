// The worker's attempt threads and the way they report back. AttemptThreads holds the worker's
// slots and runs each assigned Attempt on a thread of its own (kept between attempts), through
// AttemptProcess::Run (worker/attempt_process.h); an attempt assigned while every slot is held
// waits in its queue. Each thread reports progress and the outcome through a ReportQueue, whose
// eventfd the worker loop polls beside its DEALER, so only the loop touches the socket.
//
// Threads: the worker loop owns the Attempts, the ReportQueue and the AttemptThreads, and is the
// only caller of AttemptThreads::Start and Abandon and of ReportQueue::TakeAll. The attempt
// threads call ReportQueue::Push. AttemptThreads' mutex guards its queue, its slot count and each
// Attempt's `holding`; ReportQueue's mutex guards its reports.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/posix/fd.h"
#include "common/protocol.h"

namespace zmr {

class AttemptProcess;

// One attempt, run by a thread of AttemptThreads. Owned by the worker loop.
struct Attempt {
  AssignMsg task;
  std::atomic<bool> cancelled{false};
  // Set by its thread after its last report; from then on the thread no longer touches it.
  std::atomic<bool> finished{false};
  bool abandoned = false;   // results are dropped (cancelled, or from before a re-registration)
  bool holding = false;     // it holds one of the worker's slots; guarded by AttemptThreads::mu_
  bool done_forwarded = false;  // its task_done went to the coordinator, which may commit it
};

// What an attempt thread reports to the worker loop: a message for the coordinator, packed.
struct Report {
  enum class Kind { kProgress, kDone, kFailed };
  AttemptRef ref;
  Kind kind = Kind::kProgress;
  std::string error;  // kFailed: the attempt's error, for the loop's log line
  std::string bytes;  // the task_progress, task_done or task_failed message
};

// Attempt threads -> the worker loop: a queue behind a mutex, and an eventfd that is readable
// while reports may be waiting (the loop polls it beside the DEALER). A thread costs one
// eventfd write per report that finds the queue empty; the loop takes everything at once and
// forwards the bytes as they are.
class ReportQueue {
 public:
  // Throws std::system_error (at start-up) when no eventfd can be made.
  ReportQueue();
  ReportQueue(const ReportQueue&) = delete;
  ReportQueue& operator=(const ReportQueue&) = delete;

  // The eventfd for the loop's poll.
  int fd() const { return fd_.get(); }

  // Queues a report. Any thread.
  void Push(Report report);

  // The loop thread: every report pushed so far, oldest first. Clears the eventfd before taking
  // them, so a report pushed after the take wakes the loop again.
  std::deque<Report> TakeAll();

 private:
  const UniqueFd fd_;
  std::mutex mu_;
  std::deque<Report> reports_;  // guarded by mu_
};

// The threads that run attempts, and the worker's slots. At most `slots` attempts hold a slot at
// once; an attempt assigned while every slot is held waits in a queue (the coordinator sends such
// assignments only for short tasks, up to WorkerOptions::queue) and the thread whose attempt just
// ended takes it at once, without a round trip through the worker loop or the coordinator.
// An abandoned attempt gives its slot back at once, though its process may still be ending, so
// there can be more threads than slots. Threads are kept between attempts (a tiny task costs no
// thread start). Start and Abandon are called by the worker loop only.
class AttemptThreads {
 public:
  // `reports` and `runner` must outlive this.
  AttemptThreads(ReportQueue* reports, AttemptProcess* runner, int slots)
      : reports_(reports), runner_(runner), slots_(slots) {}
  // Joins every thread; their attempts must have been cancelled (they finish quickly then).
  ~AttemptThreads();
  AttemptThreads(const AttemptThreads&) = delete;
  AttemptThreads& operator=(const AttemptThreads&) = delete;

  // Runs `attempt` on a slot: at once when one is free (returns true), else when one frees
  // (returns false). It must stay alive until its `finished` is set.
  bool Start(Attempt* attempt);

  // Gives back the slot of an abandoned attempt. An attempt still queued is taken out of the
  // queue: then true is returned and no thread will touch it (the caller marks it finished).
  bool Abandon(Attempt* attempt);

 private:
  // Makes sure a thread takes each queued attempt that may start now: notifies an idle thread,
  // or starts one when none is idle.
  void Wake();
  // A thread's life: take a queued attempt when a slot is free, run it, give the slot back.
  void Loop();

  ReportQueue* reports_;
  AttemptProcess* runner_;
  const int slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Attempt*> queue_;   // assigned, not started; guarded by mu_
  int holding_ = 0;              // attempts holding a slot; guarded by mu_
  int idle_ = 0;                 // threads waiting for an attempt; guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::vector<std::thread> threads_;  // touched by the worker loop only
};

}  // namespace zmr
