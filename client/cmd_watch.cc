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
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "client/client.h"
#include "client/follow.h"
#include "client/views_read.h"
#include "common/protocol.h"
#include "common/views.h"

namespace zmr::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An event as it came (printed with --json) and as what it decodes to (by its topic).
struct Received {
  Value body;
  std::variant<JobEvent, WorkerEvent, ClusterHeartbeatEvent> event;
};

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
      sub.set(zmq::sockopt::subscribe, event::kClusterHeartbeatTopic);
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
      std::vector<Received> early;
      const auto live_deadline = Clock::now() + milliseconds(kWatchLiveWaitMs);
      for (;;) {
        if (PendingSignal() != 0) return session_.Interrupted();
        if (Clock::now() >= live_deadline) break;  // no heartbeat: a gap will resnapshot
        std::optional<Received> received = ReceiveEvent(sub, kSignalCheckSlice);
        if (!received) continue;
        if (std::holds_alternative<ClusterHeartbeatEvent>(received->event)) break;
        early.push_back(std::move(*received));
      }
      JobInfo job;
      Value as_received;
      if (int rc = session_.QueryStatus(job_id, &job, &as_received); rc != kExitOk) return rc;
      if (IsTerminal(job.state)) return PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, as_received, /*missed=*/0);
      for (const Received& received : early) {
        if (std::optional<int> code = Follow(follower, received)) return *code;
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
      if (std::optional<Received> received = ReceiveEvent(sub, wait)) {
        if (job_id.empty()) {
          PrintEvent(*received);
          continue;
        }
        if (std::optional<int> code = Follow(follower, *received)) return *code;
      }
      if (job_id.empty() || Clock::now() < next_status) continue;
      JobInfo job;
      if (int rc = session_.QueryStatus(job_id, &job); rc != kExitOk) return rc;
      next_status = Clock::now() + milliseconds(kWatchStatusPollMs);
      if (!IsTerminal(job.state)) continue;
      // The job ended but its job_state event has not arrived (yet): give it a moment, then
      // report the end from the status.
      const auto grace_end = Clock::now() + milliseconds(kWatchEndGraceMs);
      while (Clock::now() < grace_end) {
        if (PendingSignal() != 0) return session_.Interrupted();
        if (std::optional<Received> received = ReceiveEvent(sub, kSignalCheckSlice)) {
          if (std::optional<int> code = Follow(follower, *received)) return *code;
        }
      }
      return PrintFinalFromStatus(job);
    }
  }

 private:
  // Prints one event as a line (human or JSON; the human view skips cluster heartbeats). Returns
  // the exit code if it is the terminal job_state of the watched job.
  std::optional<int> PrintEvent(const Received& received) {
    PrintLine(received);
    const auto* job_event = std::get_if<JobEvent>(&received.event);
    if (options_.job_id.empty() || job_event == nullptr || job_event->job_id != options_.job_id) {
      return std::nullopt;
    }
    const auto* change = std::get_if<JobStateEvent>(&job_event->detail);
    if (change == nullptr) return std::nullopt;
    return EndOf(change->state, change->error);
  }

  void PrintLine(const Received& received) {
    std::string line;
    if (options_.json) {
      line = ToJson(received.body);
    } else if (const auto* job_event = std::get_if<JobEvent>(&received.event)) {
      line = FormatEvent(*job_event);
    } else if (const auto* worker_event = std::get_if<WorkerEvent>(&received.event)) {
      line = FormatEvent(*worker_event);
    }
    if (!line.empty()) out_ << line << "\n" << std::flush;
  }

  // The exit code when the watched job has reached `state`, after saying why when it FAILED.
  std::optional<int> EndOf(JobState state, const std::string& error) {
    std::optional<int> code = ExitCodeForState(JobStateName(state));
    if (state == JobState::kFailed) {
      err_ << "zmr: job " << options_.job_id << " failed: " << OneLine(error) << "\n";
    }
    return code;
  }

  // Receives one [topic, body] event if one is ready within `wait`, decoded by its topic as the
  // client reads views (Missing::kDefault). nullopt on nothing; garbage, and events that do not
  // decode, are logged and dropped.
  std::optional<Received> ReceiveEvent(zmq::socket_t& sub, milliseconds wait) {
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
    std::string error = "expected 2 frames";
    std::optional<Value> body;
    std::optional<Received> received;
    if (frames == 2 && (body = DecodeMessage(frame.to_string_view(), &type, &error))) {
      received = Decode(topic, std::move(*body), &error);
    }
    if (!received) spdlog::warn("dropped a malformed event on topic '{}': {}", topic, error);
    return received;
  }

  // `body` as the event its topic names: job/..., worker/... or the cluster heartbeat.
  static std::optional<Received> Decode(std::string_view topic, Value body, std::string* error) {
    auto as = [&](auto decoded) -> std::optional<Received> {
      if (!decoded) return std::nullopt;
      return Received{std::move(body), std::move(*decoded)};
    };
    if (topic.starts_with("job/")) {
      return as(JobEvent::FromValue(body, error, Missing::kDefault));
    }
    if (topic.starts_with("worker/")) {
      return as(WorkerEvent::FromValue(body, error, Missing::kDefault));
    }
    if (topic == event::kClusterHeartbeatTopic) {
      return as(ClusterHeartbeatEvent::FromValue(body, error, Missing::kDefault));
    }
    *error = "not a topic zmr publishes";
    return std::nullopt;
  }

  // Shows one event of the followed job if it is the next one; after a gap, a fresh snapshot
  // first (events were dropped on the way: show the job as it is now, not a wrong picture).
  // Returns the exit code once the job has ended.
  std::optional<int> Follow(JobFollower& follower, const Received& received) {
    const auto* event = std::get_if<JobEvent>(&received.event);
    if (event == nullptr) return std::nullopt;  // the cluster heartbeat
    JobFollower::Verdict verdict = follower.Offer(*event);
    if (verdict == JobFollower::Verdict::kResnapshot) {
      // The coordinator keeps the job's recent events: fill the gap from them if it can.
      Value reply;
      if (int rc = session_.Request(EventsRequest{options_.job_id, follower.last_seq()}.ToValue(),
                                    msg::kEvents, &reply);
          rc != kExitOk) {
        return rc;
      }
      if (std::optional<std::vector<Value>> missing = follower.CatchUp(reply)) {
        for (Value& body : *missing) {
          // CatchUp decoded each of them already.
          std::string error;
          std::optional<Received> caught = Decode("job/", std::move(body), &error);
          if (!caught) continue;
          if (std::optional<int> code = PrintEvent(*caught)) return code;
        }
        verdict = follower.Offer(*event);
      }
    }
    if (verdict == JobFollower::Verdict::kResnapshot) {
      const int64_t missed = follower.missed();
      JobInfo job;
      Value as_received;
      if (int rc = session_.QueryStatus(options_.job_id, &job, &as_received); rc != kExitOk) {
        return rc;
      }
      if (IsTerminal(job.state)) return PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, as_received, missed);
      verdict = follower.Offer(*event);
    }
    if (verdict != JobFollower::Verdict::kApply) return std::nullopt;
    return PrintEvent(received);
  }

  // Shows where a followed job stands: at the start of `watch JOB`, and again after a gap in the
  // event stream (`missed` events were lost). JSON: one {"type":"job_snapshot", job_id, seq,
  // missed, job: JobInfo as received} line; text: the progress line.
  void PrintSnapshot(const JobInfo& job, const Value& received, int64_t missed) {
    if (options_.json) {
      Value line;
      line.Set("type", "job_snapshot");
      line.Set("job_id", job.job_id);
      line.Set("seq", job.last_seq);
      line.Set("missed", missed);
      line.Set("job", received);
      out_ << ToJson(line) << "\n" << std::flush;
      return;
    }
    if (missed > 0) {
      out_ << "(" << missed << " event" << (missed == 1 ? "" : "s")
           << " missed; status now) ";
    }
    out_ << FormatProgressLine(job) << "\n" << std::flush;
  }

  // Prints a terminal JobInfo as a job_state event line (FinalStateEvent); returns its exit code.
  // Requires a terminal job.state.
  int PrintFinalFromStatus(const JobInfo& job) {
    std::string error;
    if (std::optional<Received> final_state = Decode("job/", FinalStateEvent(job), &error)) {
      PrintLine(*final_state);
    }
    return EndOf(job.state, job.error).value_or(kExitUnreachable);
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
