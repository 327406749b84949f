// The coordinator's socket loop. Over 600 lines because it is the one poll loop of the process
// (as in zguide's ppqueue): decoding, replies and the carrying out of the scheduler's actions
// share its sockets and pending state; the decisions live in the Scheduler and admission.
#include "coordinator/coordinator.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/clock.h"
#include "common/layout.h"
#include "common/posix/io.h"
#include "common/protocol.h"
#include "common/splits.h"
#include "common/views.h"
#include "coordinator/actions.h"
#include "coordinator/admission.h"
#include "coordinator/scheduler.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// Most messages read from one socket per loop turn, so one busy socket cannot starve the other.
constexpr int kMaxBatch = 1000;
// Within a batch, whether heartbeats are due is looked at every this many messages.
constexpr int kHeartbeatCheckEvery = 64;
// An idle cluster of many workers (no unfinished job, at least kRestMinWorkers workers): after a
// wake-up that brought heartbeats and nothing else, the workers socket is left unread for
// kHeartbeatRestMs (at most heartbeat / kHeartbeatRestDivisor; clients are still served at once),
// so that a thousand workers' heartbeats, which arrive spread over each interval, are read in a
// few dozen batches a second instead of a wake-up each (every wake-up costs both ZeroMQ threads
// system calls and context switches: BENCHMARKS.md, Coordinator scale). A heartbeat read this late
// is harmless (liveness counts whole intervals), and with no job there is no task message to
// delay. While a job runs there is no rest: a rest would leave finished slots waiting (it cost a
// third of the tasks/s of a 100,000-map job of 20 ms tasks), and a small cluster's few heartbeats
// cost little anyway.
constexpr int64_t kHeartbeatRestMs = 25;
constexpr int64_t kHeartbeatRestDivisor = 40;
constexpr std::size_t kRestMinWorkers = 64;
// The scheduler's start check: a job's inputs must still be there, at least as long as planned,
// when its first attempt is about to start (it may have waited a long time for workers).
bool InputsStillThere(const JobSpec& spec, std::string* error) {
  std::map<std::string, int64_t> needed;  // path -> bytes the splits read
  for (const Split& split : spec.splits) {
    for (const FileRange& range : split) {
      int64_t& end = needed[range.path];
      end = std::max(end, range.end);
    }
  }
  for (const auto& [path, end] : needed) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      *error = "input " + path + " vanished before the job started";
      return false;
    }
    auto size = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec || size < end) {
      *error = "input " + path + " shrank before the job started (" + std::to_string(size) +
               " bytes, " + std::to_string(end) + " planned)";
      return false;
    }
  }
  return true;
}

// Removes what a failed or cancelled job left in its output dir: _temporary and the part files it
// had committed (the dir was empty at submission, so every part-* in it is the job's). The dir
// itself stays, empty, so the same output can be used again.
void RemovePartialOutput(const std::string& output) {
  std::error_code ec;
  fs::remove_all(layout::OutputTemporaryDir(output), ec);
  for (fs::directory_iterator it(output, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(layout::kPartFilePrefix, 0) == 0) fs::remove(it->path(), ec);
  }
}

std::string ClusterIdNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d%H%M%S", &tm);
  return buf;
}

}  // namespace

// A `logs` request waiting for the worker's answer.
struct PendingLog {
  std::vector<zmq::message_t> envelope;  // the client's, for the reply
  std::string worker_key;
  std::string worker_name;
  std::string attempt_state;
  AttemptRef ref;
  int64_t deadline_ms = 0;  // steady clock
};

struct Coordinator::Impl {
  CoordinatorOptions options;
  zmq::context_t context{1};
  zmq::socket_t workers{context, zmq::socket_type::router};
  zmq::socket_t clients{context, zmq::socket_type::router};
  zmq::socket_t events{context, zmq::socket_type::pub};
  std::string workers_endpoint, clients_endpoint, events_endpoint;  // as bound
  std::unique_ptr<Scheduler> scheduler;
  std::set<std::string> outputs_in_use;   // output dirs of active jobs
  int64_t bad_messages = 0;               // undecodable or invalid, from anyone
  int64_t dropped_sends = 0;              // unroutable or over the high-water mark
  int64_t next_heartbeat_ms = 0;          // steady clock
  std::map<int64_t, PendingLog> pending_logs;  // by request_id
  int64_t next_log_request = 1;
  // Whether an operation on the socket since it last answered EAGAIN may have taken the signal
  // of its ZMQ_FD: ZeroMQ processes the socket's commands (a peer's "there is input") in send
  // and getsockopt too, and then the descriptor stays quiet although input is queued. Run looks
  // at ZMQ_EVENTS before it sleeps on the descriptor of an unsure socket.
  bool workers_unsure = true;
  bool clients_unsure = true;
  const std::string reregister_bytes = Pack(Value(Map{{"type", Value(msg::kReregister)}}));
  bool only_heartbeats = true;            // of the worker messages Run's last Drain read
  int64_t worker_messages = 0;            // read by Run's last Drain of the workers socket
  std::vector<zmq::message_t> frames;     // Drain's, reused

  // --- sending ---

  void SendToWorker(const std::string& key, const WorkerMessage& message) {
    SendBytes(key, Pack(MessageValue(message)));
  }

  void SendBytes(const std::string& key, const std::string& bytes) {
    workers_unsure = true;
    try {
      if (!workers.send(zmq::buffer(key), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        ++dropped_sends;
        return;
      }
      workers.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      ++dropped_sends;
      spdlog::debug("send to worker failed: {}", e.what());
    }
  }

  void Reply(const std::vector<zmq::message_t>& envelope, const Value& body) {
    std::string bytes = Pack(body);
    clients_unsure = true;
    try {
      for (const zmq::message_t& frame : envelope) {
        if (!clients.send(zmq::buffer(frame.data(), frame.size()),
                          zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
          ++dropped_sends;
          return;
        }
      }
      clients.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      ++dropped_sends;
      spdlog::debug("reply to client failed: {}", e.what());
    }
  }

  void SendEvent(const std::string& topic, const Value& body) {
    std::string bytes = Pack(body);
    try {
      if (events.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        events.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
      }
    } catch (const zmq::error_t& e) {
      spdlog::debug("publish failed: {}", e.what());
    }
  }

  void BadMessage(const char* from, const std::string& error) {
    ++bad_messages;
    spdlog::warn("dropped bad message from {}: {} ({} so far)", from, error, bad_messages);
  }

  // --- workers ---

  void HandleWorker(std::vector<zmq::message_t>& frames, int64_t now) {
    if (frames.size() != 2) {
      BadMessage("worker", "expected 2 frames, got " + std::to_string(frames.size()));
      return;
    }
    std::string key = frames[0].to_string();
    // Heartbeats, most of the traffic, are read without building a Value and cost one look-up.
    if (std::optional<HeartbeatMsg> hb = ParsePlainHeartbeat(frames[1].to_string_view())) {
      if (!scheduler->WorkerHeartbeat(key, *hb, now)) SendBytes(key, reregister_bytes);
      return;
    }
    std::string type, error;
    std::optional<Value> v = DecodeMessage(frames[1].to_string_view(), &type, &error);
    if (!v) {
      BadMessage("worker", error);
      return;
    }
    if (type != msg::kHeartbeat) only_heartbeats = false;
    if (type == msg::kReady) {
      std::optional<ReadyMsg> ready = ReadyMsg::FromValue(*v, &error);
      if (!ready) {
        BadMessage("worker", "ready: " + error);
        return;
      }
      spdlog::info("worker {} joined from {} pid {} with {} slots", ready->name, ready->host,
                   ready->pid, ready->slots);
      scheduler->WorkerReady(key, *ready, now);
      return;
    }
    std::optional<HeartbeatMsg> hb;
    if (type == msg::kHeartbeat) hb = HeartbeatMsg::FromValue(*v, &error);
    // One look-up of the sender: a heartbeat's figures refresh its liveness too.
    if (hb ? !scheduler->WorkerHeartbeat(key, *hb, now) : !scheduler->WorkerSeen(key, now)) {
      // Only READY registers: tell an unknown sender to register again.
      SendBytes(key, reregister_bytes);
      return;
    }
    if (type == msg::kHeartbeat) {
      if (!hb) BadMessage("worker", "heartbeat: " + error);
    } else if (type == msg::kTaskProgress) {
      std::optional<TaskProgressMsg> m = TaskProgressMsg::FromValue(*v, &error);
      if (m) scheduler->TaskProgress(key, *m, now);
      else BadMessage("worker", "task_progress: " + error);
    } else if (type == msg::kTaskDone) {
      std::optional<TaskDoneMsg> m = TaskDoneMsg::FromValue(*v, &error);
      if (m) {
        spdlog::info("job {} task {} attempt {} done", m->ref.job_id, m->ref.task_id,
                     m->ref.attempt);
        scheduler->TaskDone(key, *m, now);
      } else {
        BadMessage("worker", "task_done: " + error);
      }
    } else if (type == msg::kTaskFailed) {
      std::optional<TaskFailedMsg> m = TaskFailedMsg::FromValue(*v, &error);
      if (m) {
        spdlog::warn("job {} task {} attempt {} failed: {}", m->ref.job_id, m->ref.task_id,
                     m->ref.attempt, m->error);
        scheduler->TaskFailed(key, *m, now);
      } else {
        BadMessage("worker", "task_failed: " + error);
      }
    } else if (type == msg::kLog) {
      std::optional<LogMsg> m = LogMsg::FromValue(*v, &error);
      if (m) {
        AnswerLog(key, *m);
      } else {
        BadMessage("worker", "log: " + error);
      }
    } else if (type == msg::kDisconnect) {
      scheduler->WorkerDisconnected(key, now);
    } else {
      BadMessage("worker", "unknown message type '" + type + "'");
    }
  }

  // --- attempt logs ---

  // `logs`: asks the worker that ran the attempt for its log; the reply goes out when it answers
  // (AnswerLog) or when the wait is over (ExpireLogRequests). Returns an immediate error reply, or
  // nullopt when the request is waiting.
  std::optional<Value> HandleLogs(const Value& request, std::vector<zmq::message_t>& envelope) {
    std::string error;
    std::optional<LogsRequest> logs = LogsRequest::FromValue(request, &error);
    if (!logs) return ErrorReply(errc::kBadRequest, "logs: " + error);
    const std::string& job_id = logs->job_id;
    const std::string& task_id = logs->task_id;
    std::optional<Scheduler::AttemptLocation> where =
        scheduler->FindAttempt(job_id, task_id, logs->attempt, &error);
    if (!where) return ErrorReply(errc::kNotFound, error);
    const std::string what = "task " + task_id + " attempt " + std::to_string(where->attempt);
    if (where->worker_key.empty()) {
      return ErrorReply(errc::kUnavailable,
                        "worker " + where->worker_name + " that ran " + what +
                            " is gone (not connected); its log stays on that machine in " +
                            layout::AttemptLogPath("WORK_DIR", {job_id, task_id, where->attempt}) +
                            " until it is restarted there");
    }
    PendingLog pending;
    pending.envelope = std::move(envelope);
    pending.worker_key = where->worker_key;
    pending.worker_name = where->worker_name;
    pending.attempt_state = where->state;
    pending.ref = {job_id, task_id, where->attempt};
    pending.deadline_ms = SteadyMs() + std::clamp<int64_t>(logs->wait_ms, 1, 60000);
    FetchLogMsg fetch;
    fetch.request_id = next_log_request++;
    fetch.ref = pending.ref;
    SendToWorker(pending.worker_key, fetch);
    pending_logs.emplace(fetch.request_id, std::move(pending));
    return std::nullopt;
  }

  void AnswerLog(const std::string& worker_key, const LogMsg& log) {
    auto it = pending_logs.find(log.request_id);
    if (it == pending_logs.end() || it->second.worker_key != worker_key ||
        !(it->second.ref == log.ref)) {
      return;  // answered after its wait was over, or not ours
    }
    PendingLog pending = std::move(it->second);
    pending_logs.erase(it);
    const AttemptRef& ref = pending.ref;
    if (!log.found) {
      Reply(pending.envelope,
            ErrorReply(errc::kUnavailable,
                       "worker " + pending.worker_name + " has no log of job " + ref.job_id +
                           " task " + ref.task_id + " attempt " + std::to_string(ref.attempt) +
                           " (removed after its retention, see zmr-worker --log-retention-s, or "
                           "that worker's work dir was cleared)"));
      return;
    }
    Value reply;
    reply.Set("type", msg::kLog);
    reply.Set("job_id", ref.job_id);
    reply.Set("task_id", ref.task_id);
    reply.Set("attempt", ref.attempt);
    reply.Set("worker", pending.worker_name);
    reply.Set("state", pending.attempt_state);
    reply.Set("data", Binary{log.data});
    reply.Set("truncated", log.truncated);
    reply.Set("size", log.size);
    Reply(pending.envelope, reply);
  }

  // Answers the `logs` requests whose worker did not send the log in time.
  void ExpireLogRequests(int64_t steady_now) {
    for (auto it = pending_logs.begin(); it != pending_logs.end();) {
      if (it->second.deadline_ms > steady_now) {
        ++it;
        continue;
      }
      const PendingLog& p = it->second;
      Reply(p.envelope, ErrorReply(errc::kUnavailable,
                                   "worker " + p.worker_name + " did not send the log of task " +
                                       p.ref.task_id + " attempt " +
                                       std::to_string(p.ref.attempt) + " in time"));
      it = pending_logs.erase(it);
    }
  }

  // --- clients ---

  Value HandleSubmit(const Value& request, int64_t now) {
    std::string error;
    std::optional<SubmitMsg> submit = SubmitMsg::FromValue(request, &error);
    if (!submit) return ErrorReply(errc::kBadRequest, "submit: " + error);
    std::optional<Admission> admitted = AdmitSubmission(*submit, outputs_in_use, &error);
    if (!admitted) return ErrorReply(errc::kInvalid, error);
    const std::string output = admitted->spec.output_dir;
    const int64_t input_files = admitted->spec.input_files;
    const int64_t reduces = admitted->spec.num_reduces;
    std::error_code ec;
    fs::create_directories(output, ec);
    if (ec) return ErrorReply(errc::kInvalid, "cannot create output " + output + ": " + ec.message());

    std::string job_id = scheduler->AddJob(std::move(admitted->spec), now);
    outputs_in_use.insert(output);
    spdlog::info("job {} submitted: app {} {} input files, {} maps, {} reduces, output {}", job_id,
                 submit->app, input_files, admitted->maps, reduces, output);
    return SubmittedReply{job_id, admitted->maps, reduces}.ToValue();
  }

  // The reply to a client request, or nullopt when it will be sent later (`logs`: the envelope
  // was taken).
  std::optional<Value> HandleClientRequest(const Value& request, const std::string& type,
                                           std::vector<zmq::message_t>& envelope, int64_t now) {
    int64_t proto = kProtocolVersion;
    std::string error;
    if (!ReadOptInt(request, "proto", &proto, &error)) {
      return ErrorReply(errc::kBadRequest, error);
    }
    if (proto != kProtocolVersion) {
      return ErrorReply(errc::kVersion, "protocol version " + std::to_string(proto) +
                                            " not supported (coordinator speaks " +
                                            std::to_string(kProtocolVersion) + ")");
    }
    if (type == msg::kHello) {
      if (request.Find("proto") == nullptr) {
        return ErrorReply(errc::kBadRequest, "hello: missing field 'proto'");
      }
      Value reply;
      reply.Set("type", msg::kHello);
      reply.Set("proto", kProtocolVersion);
      reply.Set("version", ZMR_VERSION);
      reply.Set("events", events_endpoint);
      return reply;
    }
    if (type == msg::kSubmit) return HandleSubmit(request, now);
    if (type == msg::kStatus) {
      std::optional<StatusRequest> status = StatusRequest::FromValue(request, &error);
      if (!status) return ErrorReply(errc::kBadRequest, type + ": " + error);
      std::optional<JobInfo> info = scheduler->GetJobInfo(status->job_id, WallMs());
      if (!info) return ErrorReply(errc::kNotFound, "no such job: " + status->job_id);
      return JobReply{std::move(*info)}.ToValue();
    }
    if (type == msg::kCancel) {
      std::optional<CancelRequest> cancel = CancelRequest::FromValue(request, &error);
      if (!cancel) return ErrorReply(errc::kBadRequest, type + ": " + error);
      std::optional<Scheduler::CancelResult> result = scheduler->CancelJob(cancel->job_id, now);
      if (!result) return ErrorReply(errc::kNotFound, "no such job: " + cancel->job_id);
      if (result->changed) spdlog::info("job {} cancelled", cancel->job_id);
      return CancelledReply{cancel->job_id, result->state, result->changed}.ToValue();
    }
    if (type == msg::kJobs) {
      std::optional<JobsRequest> jobs = JobsRequest::FromValue(request, &error);
      if (!jobs) return ErrorReply(errc::kBadRequest, "jobs: " + error);
      return JobsReply{scheduler->ListJobs(now, jobs->all ? Scheduler::Finished::kInclude
                                                          : Scheduler::Finished::kExclude)}
          .ToValue();
    }
    if (type == msg::kTasks) {
      std::optional<TasksRequest> tasks = TasksRequest::FromValue(request, &error);
      if (!tasks) return ErrorReply(errc::kBadRequest, type + ": " + error);
      std::optional<std::vector<TaskInfo>> list = scheduler->ListTasks(tasks->job_id, now);
      if (!list) return ErrorReply(errc::kNotFound, "no such job: " + tasks->job_id);
      return TasksReply{tasks->job_id, std::move(*list)}.ToValue();
    }
    if (type == msg::kLogs) return HandleLogs(request, envelope);
    if (type == msg::kEvents) {
      std::optional<EventsRequest> events = EventsRequest::FromValue(request, &error);
      if (!events) return ErrorReply(errc::kBadRequest, type + ": " + error);
      std::optional<JobEventsView> view = scheduler->EventsAfter(events->job_id, events->after_seq);
      if (!view) return ErrorReply(errc::kNotFound, "no such job: " + events->job_id);
      return EventsReply{events->job_id, std::move(*view)}.ToValue();
    }
    if (type == msg::kWorkers) return WorkersReply{scheduler->ListWorkers(now)}.ToValue();
    return ErrorReply(errc::kBadRequest, "unknown request type '" + type + "'");
  }

  void HandleClient(std::vector<zmq::message_t>& frames, int64_t now) {
    // [routing id, body] from a DEALER, [routing id, "", body] from a REQ.
    if (frames.size() < 2 || frames.size() > 3 || (frames.size() == 3 && frames[1].size() != 0)) {
      BadMessage("client", "unexpected envelope of " + std::to_string(frames.size()) + " frames");
      return;
    }
    std::vector<zmq::message_t> envelope;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) envelope.push_back(std::move(frames[i]));
    std::string type, error;
    std::optional<Value> v = DecodeMessage(frames.back().to_string_view(), &type, &error);
    if (!v) {
      BadMessage("client", error);
      Reply(envelope, ErrorReply(errc::kBadRequest, error));
      return;
    }
    std::optional<Value> deferred = HandleClientRequest(*v, type, envelope, now);
    if (!deferred) return;
    Value& reply = *deferred;
    const Value* reply_type = reply.Find("type");
    if (reply_type != nullptr && reply_type->as_string() == msg::kError) {
      const Value* code = reply.Find("code");
      if (code != nullptr && code->as_string() == errc::kBadRequest) {
        BadMessage("client", reply.Find("error")->as_string());
      }
    }
    Reply(envelope, reply);
  }

  // --- job output ---

  // Checks that every part file of the job is there and writes _SUCCESS.
  static bool CommitOutput(const CommitJob& commit, std::string* error) {
    const fs::path output(commit.output_dir);
    for (int64_t r = 0; r < commit.parts; ++r) {
      const std::string name = layout::PartFileName(r);
      if (!fs::is_regular_file(output / name)) {
        *error = "missing " + (output / name).string();
        return false;
      }
    }
    std::error_code ec;
    fs::remove_all(output / layout::kTemporaryDir, ec);
    std::ofstream success(output / layout::kSuccessFile, std::ios::trunc);
    if (!success) {
      *error = "cannot write " + (output / layout::kSuccessFile).string();
      return false;
    }
    return true;
  }

  // --- carrying out the scheduler's actions ---

  void Do(const ToWorker& a, int64_t) { SendToWorker(a.worker_key, a.message); }

  void Do(const zmr::Publish& a, int64_t) {
    std::visit([this](const auto& event) { SendEvent(event.Topic(), event.ToValue()); }, a.event);
    if (const JobEvent* e = std::get_if<JobEvent>(&a.event)) {
      if (const JobStateEvent* s = std::get_if<JobStateEvent>(&e->detail)) {
        spdlog::info("job {} {}", e->job_id, JobStateName(s->state));
      }
    }
  }

  void Do(const CommitTask& a, int64_t now) {
    std::error_code ec;
    // Only a file inside this job's _temporary may be committed.
    const std::string temporary = layout::OutputTemporaryDir(a.output_dir) + "/";
    if (a.from.compare(0, temporary.size(), temporary) != 0 ||
        a.from.find("/../") != std::string::npos) {
      ec = std::make_error_code(std::errc::operation_not_permitted);
    } else {
      fs::rename(a.from, a.to, ec);
    }
    if (ec) {
      scheduler->JobCommitted(a.job_id, false,
                              "task " + a.task_id + ": cannot move " + a.from + " to " + a.to +
                                  ": " + ec.message(),
                              now);
    }
  }

  void Do(const CommitJob& a, int64_t now) {
    std::optional<JobState> state = scheduler->GetJobState(a.job_id);
    if (!state || IsTerminal(*state)) return;  // a task commit failed just before
    std::string error;
    bool ok = CommitOutput(a, &error);
    scheduler->JobCommitted(a.job_id, ok, error, now);
  }

  void Do(const AbortJob& a, int64_t) { RemovePartialOutput(a.output_dir); }

  void Do(const JobEnded& a, int64_t) { outputs_in_use.erase(a.output_dir); }

  void Execute(int64_t now) {
    // Actions may queue more actions (a commit completes the job), so loop until empty.
    for (;;) {
      std::vector<Action> actions = scheduler->TakeActions();
      if (actions.empty()) return;
      for (const Action& action : actions) {
        std::visit([this, now](const auto& a) { Do(a, now); }, action);
      }
    }
  }

  void SendHeartbeats(int64_t now) {
    std::string hb = Pack(HeartbeatMsg{}.ToValue());
    for (const std::string& key : scheduler->WorkerKeys()) SendBytes(key, hb);
    ClusterHeartbeatEvent tick{now, static_cast<int64_t>(scheduler->worker_count()),
                               static_cast<int64_t>(scheduler->active_job_count())};
    SendEvent(event::kClusterHeartbeatTopic, tick.ToValue());
  }

  // Sends the heartbeats if they are due. Called between messages too, so a long batch cannot
  // make every worker hear from us late.
  void HeartbeatIfDue() {
    if (SteadyMs() < next_heartbeat_ms) return;
    SendHeartbeats(WallMs());
    next_heartbeat_ms = SteadyMs() + options.heartbeat_ms;
  }

  // Handles up to kMaxBatch messages from the socket. Returns true when it is empty now (it said
  // EAGAIN: its descriptor will signal new input).
  bool Drain(zmq::socket_t& socket, bool from_workers) {
    for (int i = 0; i < kMaxBatch; ++i) {
      frames.clear();
      std::optional<size_t> n;
      try {
        n = zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) return false;
        throw;
      }
      if (!n) {
        (from_workers ? workers_unsure : clients_unsure) = false;
        return true;
      }
      int64_t now = WallMs();
      if (from_workers) {
        ++worker_messages;
        HandleWorker(frames, now);
      } else {
        HandleClient(frames, now);
      }
      Execute(now);
      if (i % kHeartbeatCheckEvery == 0) HeartbeatIfDue();
    }
    return false;
  }
};

Coordinator::Coordinator() : impl_(std::make_unique<Impl>()) {}
Coordinator::~Coordinator() = default;

std::unique_ptr<Coordinator> Coordinator::Create(const CoordinatorOptions& options,
                                                 std::string* error) {
  std::unique_ptr<Coordinator> c(new Coordinator());
  Impl& s = *c->impl_;
  s.options = options;
  SchedulerOptions so;
  so.heartbeat_ms = options.heartbeat_ms;
  so.liveness = options.liveness;
  so.max_attempts = options.max_attempts;
  so.speculation_slack_ms = options.speculation_slack_ms;
  so.start_check = InputsStillThere;
  so.cluster_id = ClusterIdNow();
  s.scheduler = std::make_unique<Scheduler>(so);
  struct Binding {
    zmq::socket_t* socket;
    const std::string* endpoint;
    std::string* bound;
    const char* what;
  };
  for (Binding b : {Binding{&s.workers, &options.workers_endpoint, &s.workers_endpoint, "workers"},
                    Binding{&s.clients, &options.clients_endpoint, &s.clients_endpoint, "clients"},
                    Binding{&s.events, &options.events_endpoint, &s.events_endpoint, "events"}}) {
    try {
      b.socket->set(zmq::sockopt::linger, 0);
      b.socket->set(zmq::sockopt::sndhwm, kSendHighWaterMark);
      if (b.socket != &s.events) b.socket->set(zmq::sockopt::router_mandatory, 1);
      b.socket->bind(*b.endpoint);
      *b.bound = b.socket->get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      *error = std::string("cannot bind ") + b.what + " socket to " + *b.endpoint + ": " + e.what();
      return nullptr;
    }
  }
  spdlog::info("coordinator listening: workers {} clients {} events {}", s.workers_endpoint,
               s.clients_endpoint, s.events_endpoint);
  if (!options.ready_file.empty()) {
    std::string tmp = layout::TempPathFor(options.ready_file);
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << "workers=" << s.workers_endpoint << "\nclients=" << s.clients_endpoint
        << "\nevents=" << s.events_endpoint << "\n";
      if (!f) {
        *error = "cannot write " + options.ready_file;
        return nullptr;
      }
    }
    std::error_code ec;
    fs::rename(tmp, options.ready_file, ec);
    if (ec) {
      *error = "cannot write " + options.ready_file + ": " + ec.message();
      return nullptr;
    }
  }
  return c;
}

int Coordinator::Run(const std::atomic<bool>& stop) {
  Impl& s = *impl_;
  s.next_heartbeat_ms = SteadyMs() + s.options.heartbeat_ms;
  // The sockets' ZMQ_FDs are polled directly: zmq::poll would look at ZMQ_EVENTS of both sockets
  // before and after every sleep, several system calls per wake-up. The contract: a descriptor
  // signals only that ZMQ_EVENTS may have changed, so a socket is read until EAGAIN after every
  // signal, and one that is "unsure" (see Impl) is asked before sleeping.
  const int workers_fd = s.workers.get(zmq::sockopt::fd);
  const int clients_fd = s.clients.get(zmq::sockopt::fd);
  const int64_t rest_ms =
      std::min<int64_t>(kHeartbeatRestMs, s.options.heartbeat_ms / kHeartbeatRestDivisor);
  auto has_input = [](zmq::socket_t& socket) {
    try {
      return (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return true;  // interrupted: read it (Drain copes with nothing there)
    }
  };
  bool workers_ready = false, clients_ready = false;  // input is (or may be) queued
  int64_t workers_resume_ms = 0;  // steady clock: the workers socket rests until then
  while (!stop.load()) {
    if (s.workers_unsure) workers_ready = workers_ready || has_input(s.workers);
    if (s.clients_unsure) clients_ready = clients_ready || has_input(s.clients);
    s.workers_unsure = s.clients_unsure = false;
    int64_t steady = SteadyMs();
    const bool resting = !workers_ready && steady < workers_resume_ms;
    int64_t wait_ms = std::clamp<int64_t>(s.next_heartbeat_ms - steady, 0, 100);
    if (resting) wait_ms = std::min(wait_ms, workers_resume_ms - steady);
    if (workers_ready || clients_ready) wait_ms = 0;
    pollfd fds[2] = {{clients_fd, POLLIN, 0}, {workers_fd, POLLIN, 0}};
    if (::poll(fds, resting ? 1 : 2, static_cast<int>(wait_ms)) < 0) {
      if (errno != EINTR) {
        spdlog::critical("poll failed: {}", ErrnoText(errno));
        return 1;
      }
      continue;
    }
    clients_ready = clients_ready || fds[0].revents != 0;
    // While resting, the descriptor keeps its signal for the next poll after the rest.
    if (!resting) workers_ready = workers_ready || fds[1].revents != 0;
    // Whether every queued worker message has been read (unknown while resting).
    bool workers_drained = !resting && !workers_ready;
    if (workers_ready) {
      s.only_heartbeats = true;
      s.worker_messages = 0;
      workers_drained = s.Drain(s.workers, /*from_workers=*/true);
      workers_ready = !workers_drained;
      if (workers_drained && s.only_heartbeats && s.worker_messages > 0 && rest_ms > 0 &&
          s.scheduler->worker_count() >= kRestMinWorkers &&
          s.scheduler->active_job_count() == 0) {
        workers_resume_ms = SteadyMs() + rest_ms;
      }
    }
    if (clients_ready) clients_ready = !s.Drain(s.clients, /*from_workers=*/false);
    s.HeartbeatIfDue();
    if (!s.pending_logs.empty()) s.ExpireLogRequests(SteadyMs());
    int64_t now = WallMs();
    // Silent workers are expired only when every queued worker message has been read: behind
    // a backlog may sit the very heartbeat that keeps a worker alive.
    if (workers_drained) s.scheduler->ExpireSilentWorkers(now);
    s.scheduler->AssignPending(now);
    s.Execute(now);
  }
  spdlog::info("coordinator stopping");
  return 0;
}

}  // namespace zmr
