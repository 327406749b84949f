// `zmr wait JOB` and `zmr submit --wait` (WaitForJob, client/commands.h): status polls sped up by
// the job's events, and the progress display, live (client/live_block.h) or plain.
#include "client/commands.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "client/client.h"
#include "client/progress.h"
#include "client/views_read.h"

namespace zmr::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits for one job on behalf of WaitForJob.
class Waiter {
 public:
  explicit Waiter(Session& session)
      : session_(session), options_(session.options()), out_(session.out()), err_(session.err()) {}

  // What WaitForJob does (client/commands.h).
  int Run(const std::string& job_id) {
    session_.set_current_job(job_id);
    std::ostream& result = options_.json ? err_ : out_;
    live_ = options_.stdout_is_tty && options_.progress && !options_.json;
    ProgressTracker tracker;
    std::string last_state;
    auto last_plain = Clock::now();
    // The job's state changes and failures wake the loop at once (a short job ends long before
    // the next poll); the poll stays, so a dropped event only costs time, and it starts fast
    // (kWaitFirstPollMs, doubling up to kWaitPollMs) for a job that ends before the subscription
    // is in place.
    std::optional<zmq::socket_t> wake;
    const std::string& events_endpoint = session_.events_endpoint();
    if (!events_endpoint.empty()) {
      try {
        wake.emplace(session_.context(), zmq::socket_type::sub);
        wake->set(zmq::sockopt::linger, 0);
        wake->set(zmq::sockopt::subscribe, "job/" + job_id + "/job_state");
        wake->set(zmq::sockopt::subscribe, "job/" + job_id + "/task_failed");
        wake->connect(events_endpoint);
      } catch (const zmq::error_t& e) {
        spdlog::debug("no event wake-ups for wait: {}", e.what());
        wake.reset();
      }
    }
    int poll_ms = kWaitFirstPollMs;
    for (;;) {
      JobInfo job;
      // On an error the block stays on screen and the message goes below it.
      if (int rc = session_.QueryStatus(job_id, &job); rc != kExitOk) return rc;
      const auto now = Clock::now();
      tracker.Update(job, std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count());
      const std::string state = JobStateName(job.state);
      if (std::optional<int> code = ExitCodeForState(state)) {
        session_.live_block().Erase();
        ShowFailureLines(tracker);
        result << FormatSummary(job);
        result.flush();
        if (job.state == JobState::kFailed) {
          err_ << "zmr: job " << job_id << " failed: " << OneLine(job.error) << "\n";
        }
        return *code;
      }
      if (live_) {
        session_.live_block().Draw(tracker);
      } else {
        ShowFailureLines(tracker);
        if (state != last_state || now - last_plain >= milliseconds(kPlainProgressIntervalMs)) {
          err_ << tracker.RenderPlainLine() << "\n" << std::flush;
          last_plain = now;
        }
      }
      last_state = state;
      if (!SleepUntilWoken(wake ? &*wake : nullptr, milliseconds(poll_ms))) {
        return session_.Interrupted();
      }
      poll_ms = std::min(poll_ms * 2, kWaitPollMs);
    }
  }

 private:
  // Sleeps for `duration`, or until an event arrives on `wake` (then drains it and returns early,
  // but not before kWaitMinPollMs). False when a signal arrived meanwhile.
  static bool SleepUntilWoken(zmq::socket_t* wake, milliseconds duration) {
    if (wake == nullptr) return SleepInterruptibly(duration);
    const auto start = Clock::now();
    const auto until = start + duration;
    bool woken = false;
    while (Clock::now() < until) {
      if (PendingSignal() != 0) return false;
      const auto slice = std::min<milliseconds>(
          kSignalCheckSlice,
          std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1));
      zmq::pollitem_t item{wake->handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, slice);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
      if (item.revents & ZMQ_POLLIN) {
        zmq::message_t frame;
        while (wake->recv(frame, zmq::recv_flags::dontwait)) {
        }
        woken = true;
      }
      if (woken && Clock::now() - start >= milliseconds(kWaitMinPollMs)) break;
    }
    return PendingSignal() == 0;
  }

  // Failure lines of the tracker not shown yet: above the block on a terminal, else on stderr.
  void ShowFailureLines(ProgressTracker& tracker) {
    std::ostream& where = live_ ? out_ : err_;
    for (const std::string& line : tracker.TakeFailureLines()) where << line << "\n";
    where.flush();
  }

  // Sleeps; false when a signal arrived meanwhile.
  static bool SleepInterruptibly(milliseconds duration) {
    const auto until = Clock::now() + duration;
    while (Clock::now() < until) {
      if (PendingSignal() != 0) return false;
      std::this_thread::sleep_for(std::min<milliseconds>(
          kSignalCheckSlice,
          std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1)));
    }
    return PendingSignal() == 0;
  }

  Session& session_;
  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  bool live_ = false;  // progress redrawn in place on a terminal
};

}  // namespace

int WaitForJob(Session& session, const std::string& job_id) {
  return Waiter(session).Run(job_id);
}

}  // namespace zmr::client
