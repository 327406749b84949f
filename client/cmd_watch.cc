// `zmr watch [JOB]` (RunWatch, client/commands.h): the event stream, and for one job the
// late-join-safe following of client/follow.h with status polls and fresh snapshots after gaps.
#include "client/commands.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "client/client.h"
#include "client/follow.h"
#include "client/views_read.h"
#include "common/protocol.h"

namespace zmr::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool IsTerminalState(std::string_view state) { return ExitCodeForState(state).has_value(); }

// Follows the event stream on behalf of RunWatch.
class Watcher {
 public:
  explicit Watcher(Session& session)
      : session_(session),
        options_(session.options()),
        out_(session.out()),
        err_(session.err()),
        context_(session.context()),
        events_endpoint_(session.events_endpoint()) {}

  // What RunWatch does (client/commands.h).
  int Run() {
    if (events_endpoint_.empty()) {
      err_ << "zmr: coordinator at " << options_.coordinator
           << " did not say where its events are published\n";
      return kExitUnreachable;
    }
    zmq::socket_t sub(context_, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    try {
      sub.connect(events_endpoint_);
    } catch (const zmq::error_t& e) {
      err_ << "zmr: cannot connect to events at " << events_endpoint_ << ": " << e.what() << "\n";
      return kExitUnreachable;
    }
    const std::string& job_id = options_.job_id;
    if (!job_id.empty()) {
      sub.set(zmq::sockopt::subscribe, "job/" + job_id + "/");
      // The coordinator's heartbeat tells when the subscription is live (see below).
      sub.set(zmq::sockopt::subscribe, "cluster/heartbeat");
    } else {
      sub.set(zmq::sockopt::subscribe, "job/");
      sub.set(zmq::sockopt::subscribe, "worker/");
    }
    spdlog::debug("watching {} on {}", job_id.empty() ? "everything" : job_id, events_endpoint_);

    JobFollower follower(job_id);
    if (!job_id.empty()) {
      // Subscribed first, then asked: every event after this snapshot reaches the subscription,
      // and an end after it is either seen as an event or found by the status poll below.
      // A SUB connects in the background: events published before it is live would be missed
      // and look like a gap. The cluster heartbeat (every heartbeat interval) says it is live;
      // job events that come first are kept and offered after the snapshot.
      std::vector<Value> early;
      const auto live_deadline = Clock::now() + milliseconds(kWatchLiveWaitMs);
      for (;;) {
        if (PendingSignal() != 0) return session_.Interrupted();
        if (Clock::now() >= live_deadline) break;  // no heartbeat: a gap will resnapshot
        std::optional<Value> event = ReceiveEvent(sub, kSignalCheckSlice);
        if (!event) continue;
        if (GetString(*event, "type") == "heartbeat" && event->Find("job_id") == nullptr) break;
        early.push_back(std::move(*event));
      }
      Value job;
      if (int rc = session_.QueryStatus(job_id, &job); rc != kExitOk) return rc;
      if (IsTerminalState(GetString(job, "state"))) return *PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, /*missed=*/0);
      for (const Value& event : early) {
        if (std::optional<int> code = Follow(follower, event)) return *code;
      }
    }
    auto next_status = Clock::now() + milliseconds(kWatchStatusPollMs);
    for (;;) {
      if (PendingSignal() != 0) return session_.Interrupted();
      const auto now = Clock::now();
      milliseconds wait = kSignalCheckSlice * 2;
      if (!job_id.empty()) {
        wait = std::clamp(std::chrono::duration_cast<milliseconds>(next_status - now),
                          milliseconds(0), wait);
      }
      if (std::optional<Value> event = ReceiveEvent(sub, wait)) {
        if (job_id.empty()) {
          PrintEvent(*event);
          continue;
        }
        if (std::optional<int> code = Follow(follower, *event)) return *code;
      }
      if (job_id.empty() || Clock::now() < next_status) continue;
      Value job;
      if (int rc = session_.QueryStatus(job_id, &job); rc != kExitOk) return rc;
      next_status = Clock::now() + milliseconds(kWatchStatusPollMs);
      if (!IsTerminalState(GetString(job, "state"))) continue;
      // The job ended but its job_state event has not arrived (yet): give it a moment, then
      // report the end from the status.
      const auto grace_end = Clock::now() + milliseconds(kWatchEndGraceMs);
      while (Clock::now() < grace_end) {
        if (PendingSignal() != 0) return session_.Interrupted();
        if (std::optional<Value> event = ReceiveEvent(sub, kSignalCheckSlice)) {
          if (std::optional<int> code = Follow(follower, *event)) return *code;
        }
      }
      return *PrintFinalFromStatus(job);
    }
  }

 private:
  // Prints one event as a line (human or JSON). Returns the exit code if it is the terminal
  // job_state of the watched job.
  std::optional<int> PrintEvent(const Value& event) {
    if (options_.json) {
      out_ << ToJson(event) << "\n" << std::flush;
    } else if (std::string line = FormatEvent(event); !line.empty()) {
      out_ << line << "\n" << std::flush;
    }
    if (options_.job_id.empty() || GetString(event, "type") != "job_state" ||
        GetString(event, "job_id") != options_.job_id) {
      return std::nullopt;
    }
    std::optional<int> code = ExitCodeForState(GetString(event, "state"));
    if (code && *code == kExitJobFailed) {
      err_ << "zmr: job " << options_.job_id << " failed: " << OneLine(GetString(event, "error"))
           << "\n";
    }
    return code;
  }

  // Receives one [topic, body] event if one is ready within `wait`. nullopt on nothing or garbage.
  std::optional<Value> ReceiveEvent(zmq::socket_t& sub, milliseconds wait) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return std::nullopt;
    }
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t frame;
    std::string topic;
    int frames = 0;
    do {
      if (!sub.recv(frame, zmq::recv_flags::dontwait)) return std::nullopt;
      if (frames++ == 0) topic = frame.to_string();
    } while (frame.more());
    std::string type;
    std::string error;
    std::optional<Value> event = DecodeMessage(frame.to_string_view(), &type, &error);
    if (frames != 2 || !event) {
      spdlog::warn("dropped a malformed event on topic '{}': {}", topic,
                   frames != 2 ? "expected 2 frames" : error);
      return std::nullopt;
    }
    return event;
  }

  // Shows one event of the followed job if it is the next one; after a gap, a fresh snapshot
  // first (events were dropped on the way: show the job as it is now, not a wrong picture).
  // Returns the exit code once the job has ended.
  std::optional<int> Follow(JobFollower& follower, const Value& event) {
    JobFollower::Verdict verdict = follower.Offer(event);
    if (verdict == JobFollower::Verdict::kResnapshot) {
      // The coordinator keeps the job's recent events: fill the gap from them if it can.
      Value request;
      request.Set("type", msg::kEvents);
      request.Set("job_id", options_.job_id);
      request.Set("after_seq", follower.last_seq());
      Value reply;
      if (int rc = session_.Request(request, msg::kEvents, &reply); rc != kExitOk) return rc;
      if (std::optional<std::vector<Value>> missing = follower.CatchUp(reply)) {
        for (const Value& e : *missing) {
          if (std::optional<int> code = PrintEvent(e)) return code;
        }
        verdict = follower.Offer(event);
      }
    }
    if (verdict == JobFollower::Verdict::kResnapshot) {
      const int64_t missed = follower.missed();
      Value job;
      if (int rc = session_.QueryStatus(options_.job_id, &job); rc != kExitOk) return rc;
      if (IsTerminalState(GetString(job, "state"))) return PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, missed);
      verdict = follower.Offer(event);
    }
    if (verdict != JobFollower::Verdict::kApply) return std::nullopt;
    return PrintEvent(event);
  }

  // Shows where a followed job stands: at the start of `watch JOB`, and again after a gap in the
  // event stream (`missed` events were lost). JSON: one {"type":"job_snapshot", job_id, seq,
  // missed, job: JobInfo} line; text: the progress line.
  void PrintSnapshot(const Value& job, int64_t missed) {
    if (options_.json) {
      Value line;
      line.Set("type", "job_snapshot");
      line.Set("job_id", GetString(job, "job_id"));
      line.Set("seq", GetInt(job, "last_seq"));
      line.Set("missed", missed);
      line.Set("job", job);
      out_ << ToJson(line) << "\n" << std::flush;
      return;
    }
    if (missed > 0) {
      out_ << "(" << missed << " event" << (missed == 1 ? "" : "s")
           << " missed; status now) ";
    }
    out_ << FormatProgressLine(job) << "\n" << std::flush;
  }

  // Prints a terminal JobInfo as a job_state event line; returns its exit code.
  std::optional<int> PrintFinalFromStatus(const Value& job) {
    return PrintEvent(FinalStateEvent(job));
  }

  Session& session_;
  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  zmq::context_t& context_;
  const std::string& events_endpoint_;  // the Session's
};

}  // namespace

int RunWatch(Session& session) { return Watcher(session).Run(); }

}  // namespace zmr::client
