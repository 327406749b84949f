// The worker's loop: its DEALER to the coordinator (connect, heartbeats, reconnect with backoff),
// the coordinator's messages, and the attempt threads' reports (worker/attempt_threads.h). What
// a job keeps on disk is worker/job_data.h; running one attempt is worker/attempt_process.h.
#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/clock.h"
#include "common/layout.h"
#include "common/posix/io.h"
#include "common/protocol.h"
#include "runner/protocol.h"
#include "worker/attempt_process.h"
#include "worker/attempt_threads.h"
#include "worker/blob_cache.h"
#include "worker/job_data.h"
#include "worker/resources.h"
#include "worker/runner_pool.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// How often processes that attempts left behind (reparented to this subreaper) are swept.
constexpr int64_t kOrphanSweepMs = 1000;
// How often finished jobs' attempt logs past their retention are looked for.
constexpr int64_t kLogSweepMs = 60000;

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

struct Worker::Impl {
  WorkerOptions options;
  std::string host;
  zmq::context_t context{1};
  std::unique_ptr<zmq::socket_t> dealer;        // recreated on every reconnect
  ReportQueue reports;                            // from the attempt threads
  std::unique_ptr<BlobCache> blobs;               // WORK_DIR/cache: shipped job files
  std::unique_ptr<AttemptProcess> runner;         // shared by attempt threads (thread-safe)
  std::unique_ptr<ResourceSampler> resources;     // load figures for heartbeats
  std::map<AttemptRef, std::unique_ptr<Attempt>> attempts;
  // Declared after what its threads use (attempts, runner, reports), so it is destroyed first.
  std::unique_ptr<AttemptThreads> threads;
  std::set<std::string> cleanup_pending;         // jobs to remove once their attempts are gone
  bool registered = false;                        // got welcome for the current connection
  int64_t coordinator_heartbeat_ms = 0;
  int64_t last_heard_ms = 0;
  int64_t ready_sent_ms = 0;                     // when the last ready went out
  int64_t next_heartbeat_ms = 0;
  int64_t next_orphan_sweep_ms = 0;
  int64_t next_log_sweep_ms = 0;
  int64_t reconnect_delay_ms = kReconnectInitialMs;
  int64_t reconnect_at_ms = 0;                    // non-zero while waiting to reconnect
  int64_t bad_messages = 0;
  int64_t bad_blobs = 0;                          // job_files blobs refused (wrong digest, I/O)
  int exit_code = 0;
  bool refused = false;

  int64_t SilenceLimitMs() const {
    int64_t hb = std::max<int64_t>(options.heartbeat_ms, coordinator_heartbeat_ms);
    return hb * options.liveness;
  }

  // Queues body for the coordinator. False when it was dropped (no connection, queue full).
  bool Send(const Value& body) { return SendBytes(Pack(body)); }

  // The same, for a message packed already.
  bool SendBytes(const std::string& bytes) {
    if (!dealer) return false;
    try {
      if (!dealer->send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
        spdlog::debug("send to coordinator dropped (queue full)");
        return false;
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("send to coordinator failed: {}", e.what());
      return false;
    }
    return true;
  }

  void SendReady(int64_t now) {
    ready_sent_ms = now;
    ReadyMsg ready;
    ready.name = options.name;
    ready.host = host;
    ready.pid = getpid();
    ready.slots = options.slots;
    ready.queue = options.queue;
    ready.work_dir = options.work_dir;
    Send(ready.ToValue());
  }

  void Connect(int64_t now) {
    dealer = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
    dealer->set(zmq::sockopt::linger, 0);
    dealer->set(zmq::sockopt::sndhwm, kSendHighWaterMark);
    dealer->connect(options.coordinator);
    registered = false;
    last_heard_ms = now;
    next_heartbeat_ms = now + options.heartbeat_ms;
    SendReady(now);
    spdlog::info("worker {} connecting to {}", options.name, options.coordinator);
  }

  // Stops the attempt (or takes it out of the queue) and drops its results; its slot is free.
  void Abandon(Attempt& a) {
    a.cancelled.store(true);
    a.abandoned = true;
    if (threads->Abandon(&a)) a.finished.store(true);  // never started: nothing runs it
  }

  // Stops every attempt and drops their results: they belong to a registration that is gone.
  void AbandonAttempts() {
    for (auto& [ref, a] : attempts) Abandon(*a);
  }

  // Attempts assigned and not abandoned (running or queued).
  int64_t RunningCount() const {
    int64_t n = 0;
    for (const auto& [ref, a] : attempts) n += a->abandoned ? 0 : 1;
    return n;
  }

  void StartAttempt(AssignMsg task) {
    AttemptRef ref{task.job_id, task.task_id, task.attempt};
    if (attempts.count(ref) != 0) {
      spdlog::warn("job {} task {} attempt {} already running; ignoring duplicate assign",
                   ref.job_id, ref.task_id, ref.attempt);
      return;
    }
    cleanup_pending.erase(task.job_id);
    auto attempt = std::make_unique<Attempt>();
    attempt->task = std::move(task);
    Attempt* raw = attempt.get();
    attempts.emplace(ref, std::move(attempt));
    const bool now = threads->Start(raw);
    spdlog::info("job {} task {} attempt {} {} ({})", ref.job_id, ref.task_id, ref.attempt,
                 now ? "starting" : "queued until a slot frees", TaskKindName(raw->task.kind));
  }

  void HandleCoordinator(const zmq::message_t& frame, int64_t now) {
    std::string type, error;
    std::optional<Value> v = DecodeMessage(frame.to_string_view(), &type, &error);
    if (!v) {
      ++bad_messages;
      spdlog::warn("dropped bad message from coordinator: {} ({} so far)", error, bad_messages);
      return;
    }
    last_heard_ms = now;
    if (type == msg::kHeartbeat) return;
    if (type == msg::kWelcome) {
      std::optional<WelcomeMsg> w = WelcomeMsg::FromValue(*v, &error);
      if (!w) {
        ++bad_messages;
        spdlog::warn("dropped bad welcome: {}", error);
        return;
      }
      registered = true;
      reconnect_delay_ms = kReconnectInitialMs;
      coordinator_heartbeat_ms = w->heartbeat_ms;
      spdlog::info("worker {} registered with {} ({} slots)", w->worker, options.coordinator,
                   options.slots);
      return;
    }
    if (type == msg::kRefused) {
      std::string reason = "refused";
      ReadString(*v, "error", &reason, &error);
      spdlog::error("coordinator refused this worker: {}", reason);
      refused = true;
      exit_code = 1;
      return;
    }
    if (type == msg::kReregister) {
      // Every message the coordinator could not place gets a reregister: after a silence (a
      // SIGSTOP, a stall) several arrive in a row. Answer the first; the ones that answer
      // messages sent before that ready would only replace the fresh registration again.
      if (!registered && ready_sent_ms != 0 && now - ready_sent_ms < SilenceLimitMs()) return;
      spdlog::warn("coordinator does not know this worker; registering again");
      AbandonAttempts();
      registered = false;
      SendReady(now);
      return;
    }
    if (type == msg::kAssign) {
      std::optional<AssignMsg> task = AssignMsg::FromValue(*v, &error);
      if (!task) {
        ++bad_messages;
        spdlog::warn("dropped bad assign: {}", error);
        TaskFailedMsg failed;
        if (ReadString(*v, "job_id", &failed.ref.job_id, &error) &&
            ReadString(*v, "task_id", &failed.ref.task_id, &error) &&
            ReadInt(*v, "attempt", &failed.ref.attempt, &error)) {
          failed.error = "invalid assignment: " + error;
          Send(failed.ToValue());
        }
        return;
      }
      StartAttempt(std::move(*task));
      return;
    }
    if (type == msg::kCancel) {
      std::optional<CancelAttemptMsg> c = CancelAttemptMsg::FromValue(*v, &error);
      if (!c) {
        ++bad_messages;
        spdlog::warn("dropped bad cancel: {}", error);
        return;
      }
      auto it = attempts.find(c->ref);
      if (it != attempts.end()) {
        Abandon(*it->second);
        spdlog::info("job {} task {} attempt {} cancelled", c->ref.job_id, c->ref.task_id,
                     c->ref.attempt);
      }
      return;
    }
    if (type == msg::kJobFiles) {
      std::optional<JobFilesMsg> files = JobFilesMsg::FromValue(*v, &error);
      if (!files) {
        ++bad_messages;
        spdlog::warn("dropped bad job_files: {}", error);
        return;
      }
      // A blob that cannot be stored is only logged: the attempts needing it fail with
      // "shipped file NAME not available", which the coordinator retries elsewhere.
      for (const auto& [sha256, data] : files->blobs) {
        if (!blobs->Put(sha256, data, &error)) {
          ++bad_blobs;
          spdlog::warn("job {}: shipped file not stored: {} ({} so far)", files->job_id, error,
                       bad_blobs);
        }
      }
      spdlog::info("job {}: {} shipped file(s) received", files->job_id, files->blobs.size());
      return;
    }
    if (type == msg::kFetchLog) {
      std::optional<FetchLogMsg> fetch = FetchLogMsg::FromValue(*v, &error);
      if (!fetch) {
        ++bad_messages;
        spdlog::warn("dropped bad fetch_log: {}", error);
        return;
      }
      Send(ReadAttemptLog(options.work_dir, *fetch).ToValue());
      return;
    }
    if (type == msg::kCleanup) {
      std::optional<CleanupMsg> c = CleanupMsg::FromValue(*v, &error);
      if (!c) {
        ++bad_messages;
        spdlog::warn("dropped bad cleanup: {}", error);
        return;
      }
      for (auto& [ref, a] : attempts) {
        if (ref.job_id == c->job_id) Abandon(*a);
      }
      cleanup_pending.insert(c->job_id);
      return;
    }
    ++bad_messages;
    spdlog::warn("dropped message of unknown type '{}' from coordinator", type);
  }

  // Forwards attempt reports to the coordinator (unless abandoned) and reaps finished threads.
  // A reaped attempt whose task_done was not forwarded will never be committed: what it left in
  // the job output's _temporary is removed (RemoveUncommittedOutput).
  void DrainResults() {
    // Note which threads have finished BEFORE draining: a thread sends its report and only then
    // sets `finished`, so every report of these threads is already queued and is read below.
    // (Checking after the drain could reap a thread whose report is still unread, and the report
    // would then be dropped as abandoned, leaving its task RUNNING forever.)
    std::vector<AttemptRef> finished;
    for (const auto& [ref, a] : attempts) {
      if (a->finished.load()) finished.push_back(ref);
    }
    for (Report& report : reports.TakeAll()) {
      const AttemptRef& ref = report.ref;
      auto it = attempts.find(ref);
      if (it == attempts.end() || it->second->abandoned) continue;
      if (report.kind == Report::Kind::kFailed) {
        spdlog::warn("job {} task {} attempt {} failed: {}", ref.job_id, ref.task_id, ref.attempt,
                     report.error);
      } else if (report.kind == Report::Kind::kDone) {
        spdlog::info("job {} task {} attempt {} done", ref.job_id, ref.task_id, ref.attempt);
      }
      if (SendBytes(report.bytes) && report.kind == Report::Kind::kDone) {
        it->second->done_forwarded = true;
      }
    }
    for (const AttemptRef& ref : finished) {
      auto it = attempts.find(ref);
      if (!it->second->done_forwarded) RemoveUncommittedOutput(it->second->task);
      attempts.erase(it);
    }
    for (auto it = cleanup_pending.begin(); it != cleanup_pending.end();) {
      bool busy = false;
      for (const auto& [ref, a] : attempts) busy = busy || ref.job_id == *it;
      if (busy) {
        ++it;
        continue;
      }
      runner->RetireRunners(*it);
      RemoveJobData(options.work_dir, *it, /*keep_logs=*/options.log_retention_s > 0);
      spdlog::info("job {} intermediate data removed{}", *it,
                   options.log_retention_s > 0 ? " (attempt logs kept)" : " with its logs");
      it = cleanup_pending.erase(it);
    }
  }

  void Shutdown() {
    if (dealer && registered) {
      Value bye;
      bye.Set("type", msg::kDisconnect);
      Send(bye);
    }
    AbandonAttempts();
    while (!attempts.empty()) {
      DrainResults();
      if (!attempts.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ReapOrphans();
    dealer.reset();
  }
};

Worker::Worker() : impl_(std::make_unique<Impl>()) {}

Worker::~Worker() {
  if (impl_) {
    impl_->AbandonAttempts();
    impl_->threads.reset();  // joins the attempt threads
  }
}

std::unique_ptr<Worker> Worker::Create(const WorkerOptions& options, std::string* error) {
  std::unique_ptr<Worker> w(new Worker());
  Impl& s = *w->impl_;
  s.options = options;
  s.host = Hostname();
  if (s.options.name.empty()) s.options.name = s.host + "-" + std::to_string(getpid());
  if (s.options.queue < 0) s.options.queue = s.options.slots;
  if (s.options.work_dir.empty()) {
    s.options.work_dir = (fs::temp_directory_path() / ("zmr-" + s.options.name)).string();
  }
  std::error_code ec;
  fs::create_directories(s.options.work_dir, ec);
  if (ec || !fs::is_directory(s.options.work_dir)) {
    *error = "cannot create work dir " + s.options.work_dir + ": " + ec.message();
    return nullptr;
  }
  s.options.work_dir = fs::absolute(s.options.work_dir).lexically_normal().string();
  try {
    zmq::socket_t probe(s.context, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(s.options.coordinator);
  } catch (const zmq::error_t& e) {
    *error = "invalid --coordinator endpoint '" + s.options.coordinator + "': " + e.what();
    return nullptr;
  }
  s.blobs = std::make_unique<BlobCache>(layout::BlobCacheDir(s.options.work_dir));
  AttemptProcessOptions attempt_options;
  attempt_options.work_dir = s.options.work_dir;
  attempt_options.task_binary = s.options.task_binary;
  attempt_options.blobs = s.blobs.get();
  attempt_options.sort_buffer_bytes = s.options.sort_buffer_bytes;
  attempt_options.memory_limit_bytes = s.options.memory_limit_bytes;
  attempt_options.task_timeout_ms = s.options.task_timeout_ms;
  attempt_options.attempts_per_runner = s.options.attempts_per_runner;
  attempt_options.max_idle_runners = s.options.slots;
  s.runner = std::make_unique<AttemptProcess>(attempt_options);
  s.threads = std::make_unique<AttemptThreads>(&s.reports, s.runner.get(), s.options.slots);
  s.resources = std::make_unique<ResourceSampler>(s.options.work_dir);
  s.resources->Sample(SteadyMs());  // the baseline, so the first heartbeat has rates
  const std::string& task_binary = s.runner->options().task_binary;
  if (task_binary.empty()) {
    *error = "cannot find the zmr-task executable (/proc/self/exe unreadable)";
    return nullptr;
  }
  if (access(task_binary.c_str(), X_OK) != 0) {
    int err = errno;
    *error = "cannot run the task executable " + task_binary + ": " + ErrnoText(err);
    return nullptr;
  }
  return w;
}

int Worker::Run(const std::atomic<bool>& stop) {
  Impl& s = *impl_;
  s.Connect(SteadyMs());
  while (!stop.load() && !s.refused) {
    int64_t now = SteadyMs();
    int64_t wake = s.reconnect_at_ms != 0 ? s.reconnect_at_ms : s.next_heartbeat_ms;
    int64_t wait_ms = std::clamp<int64_t>(wake - now, 0, 100);
    zmq::pollitem_t items[2] = {{nullptr, s.reports.fd(), ZMQ_POLLIN, 0},
                                {nullptr, 0, ZMQ_POLLIN, 0}};
    int count = 1;
    if (s.dealer) {
      items[1].socket = s.dealer->handle();
      count = 2;
    }
    try {
      zmq::poll(items, count, std::chrono::milliseconds(wait_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      continue;
    }
    now = SteadyMs();
    if (count == 2 && (items[1].revents & ZMQ_POLLIN)) {
      for (int i = 0; i < 1000 && s.dealer; ++i) {
        zmq::message_t frame;
        std::optional<size_t> n;
        try {
          n = s.dealer->recv(frame, zmq::recv_flags::dontwait);
        } catch (const zmq::error_t& e) {
          if (e.num() == EINTR) break;
          throw;
        }
        if (!n) break;
        if (frame.more()) {
          // Drain and drop a multi-frame message: the protocol has single frames only.
          while (frame.more() && s.dealer->recv(frame, zmq::recv_flags::dontwait)) {
          }
          ++s.bad_messages;
          spdlog::warn("dropped multi-frame message from coordinator");
          continue;
        }
        s.HandleCoordinator(frame, now);
      }
    }
    s.DrainResults();
    if (now >= s.next_orphan_sweep_ms) {
      ReapOrphans();
      s.next_orphan_sweep_ms = now + kOrphanSweepMs;
    }
    if (now >= s.next_log_sweep_ms) {
      SweepExpiredLogs(s.options.work_dir, s.options.log_retention_s);
      s.next_log_sweep_ms = now + kLogSweepMs;
    }

    if (s.reconnect_at_ms != 0) {
      if (now >= s.reconnect_at_ms) {
        s.reconnect_at_ms = 0;
        s.Connect(now);
      }
      continue;
    }
    if (now - s.last_heard_ms > s.SilenceLimitMs()) {
      spdlog::warn("coordinator silent for {} ms; reconnecting in {} ms", now - s.last_heard_ms,
                   s.reconnect_delay_ms);
      s.dealer.reset();  // LINGER 0: queued messages are dropped
      s.AbandonAttempts();
      s.registered = false;
      s.reconnect_at_ms = now + s.reconnect_delay_ms;
      s.reconnect_delay_ms = std::min<int64_t>(s.reconnect_delay_ms * 2, kReconnectMaxMs);
      continue;
    }
    if (now >= s.next_heartbeat_ms) {
      HeartbeatMsg hb;
      hb.running = s.RunningCount();
      hb.free_slots = std::max<int64_t>(0, s.options.slots - hb.running);
      ResourceSample load = s.resources->Sample(now);
      hb.cpu = load.cpu;
      hb.host_cpu = load.host_cpu;
      hb.cores = load.cores;
      hb.load1 = load.load1;
      hb.rss_kb = load.rss_kb;
      hb.disk_free_bytes = load.disk_free_bytes;
      s.Send(hb.ToValue());
      s.next_heartbeat_ms = now + s.options.heartbeat_ms;
    }
  }
  s.Shutdown();
  spdlog::info("worker {} stopped", s.options.name);
  return s.exit_code;
}

}  // namespace zmr
