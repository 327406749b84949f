#include "tests/sim/sim_workers.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <vector>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/layout.h"
#include "common/value.h"

namespace zmr::sim {

namespace fs = std::filesystem;

namespace {

// Longest wait: the stop flag is looked at least this often.
constexpr int64_t kMaxPollMs = 100;
// Messages read from one socket per loop turn, so one chatty registration cannot starve the rest.
constexpr int kMaxRecvPerSocket = 64;
// Timers due within this many ms are run together (a heartbeat or an attempt's end may come this
// much early), so 1,000 staggered heartbeats a second cost at most 1000/kTimerSlackMs wake-ups.
constexpr int64_t kTimerSlackMs = 5;
// Sockets serviced per loop turn before timers get their turn again, so a burst of input (2,000
// assigns at a job's start) does not delay heartbeats for the whole burst.
constexpr size_t kMaxServicePerTurn = 256;
// Timers run per loop turn before sockets get their turn again (an attempt's end may create a
// part file, which is slow).
constexpr int kMaxTimersPerTurn = 512;
// Readiness notifications taken from epoll per call (more are returned by the next call).
constexpr int kMaxEpollEvents = 1024;
// Durations are counted in 1 ms buckets up to this; longer ones share the last bucket (the exact
// maximum is kept separately).
constexpr int64_t kHistogramMs = 120000;
// Before connecting the workers, wait this many heartbeat intervals for the events subscription to
// deliver something (the coordinator publishes cluster/heartbeat every interval), so that
// worker_joined and worker_lost events are not missed while the subscription propagates.
constexpr int64_t kEventsWaitIntervals = 3;
// On shutdown, how long the `disconnect` messages may take to leave.
constexpr int kShutdownLingerMs = 1000;
// A loop turn busy this long (or longer than any before) is logged.
constexpr int64_t kSlowTurnMs = 100;
// A status line is logged this often.
constexpr int64_t kStatusLogMs = 10000;
// Descriptors each simulated worker needs (its TCP connection and its socket's mailbox), plus a
// reserve for the context, the events socket and the part files.
constexpr int64_t kFdsPerWorker = 2;
constexpr int64_t kFdReserve = 64;
// A probe (SimOptions::probe_ms) unanswered for this long is counted lost and the next one sent.
constexpr int64_t kProbeTimeoutMs = 1000;
// Made-up sizes of a map output partition.
constexpr int64_t kFakeOutputBytes = 64;
constexpr int64_t kFakeOutputRecords = 4;

// Millisecond durations: percentiles from 1 ms buckets, exact maximum.
class MsHistogram {
 public:
  MsHistogram() : buckets_(kHistogramMs + 1, 0) {}

  void Add(int64_t ms) {
    ms = std::max<int64_t>(ms, 0);
    ++buckets_[static_cast<size_t>(std::min(ms, kHistogramMs))];
    ++count_;
    max_ = std::max(max_, ms);
  }

  // The smallest d such that at least fraction p of the samples are <= d; 0 when empty.
  int64_t Percentile(double p) const {
    if (count_ == 0) return 0;
    const int64_t rank =
        std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p * static_cast<double>(count_))));
    int64_t seen = 0;
    for (size_t ms = 0; ms < buckets_.size(); ++ms) {
      seen += buckets_[ms];
      if (seen >= rank) return std::min(static_cast<int64_t>(ms), max_);
    }
    return max_;
  }

  int64_t max() const { return max_; }
  int64_t count() const { return count_; }

 private:
  std::vector<int64_t> buckets_;
  int64_t count_ = 0;
  int64_t max_ = 0;
};

// An epoll set of file descriptors, each with a 64-bit key. Level-triggered.
class EpollSet {
 public:
  EpollSet() : fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~EpollSet() {
    if (fd_ >= 0) ::close(fd_);
  }
  EpollSet(const EpollSet&) = delete;
  EpollSet& operator=(const EpollSet&) = delete;

  bool ok() const { return fd_ >= 0; }
  // False (errno set) when the kernel refuses, e.g. past fs.epoll.max_user_watches.
  bool Add(int fd, uint64_t key) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = key;
    return epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  void Remove(int fd) { epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr); }
  // Waits up to timeout_ms; fills `keys` with the keys of readable descriptors (empty on EINTR).
  void Wait(int timeout_ms, std::vector<uint64_t>* keys) {
    keys->clear();
    epoll_event events[kMaxEpollEvents];
    const int n = epoll_wait(fd_, events, kMaxEpollEvents, timeout_ms);
    for (int i = 0; i < n; ++i) keys->push_back(events[i].data.u64);
  }

 private:
  int fd_;
};

enum class TimerKind : uint8_t {
  kHeartbeat,   // send a heartbeat (and check the coordinator's silence)
  kReconnect,   // the backoff after a silence is over: new socket, ready
  kAttemptEnd,  // an attempt has "run" for task_ms: report it done
  kProbe,       // time for the probe's next heartbeat (SimOptions::probe_ms)
};

struct Timer {
  int64_t at = 0;        // steady ms
  TimerKind kind = TimerKind::kHeartbeat;
  int worker = 0;
  uint64_t token = 0;    // heartbeat/reconnect: the worker's epoch; attempt end: attempt serial
  bool operator>(const Timer& other) const { return at > other.at; }
};

// One attempt "running" on a simulated worker.
struct SimAttempt {
  AttemptRef ref;
  TaskKind kind = TaskKind::kMap;
  int64_t num_reduces = 0;
  int64_t partition = 0;
  std::string output_dir;
};

struct SimWorker {
  std::string name;
  std::unique_ptr<zmq::socket_t> dealer;   // null while waiting to reconnect, or once refused
  int zmq_fd = -1;                  // the dealer's ZMQ_FD, in the epoll set while dealer is set
  bool queued = false;              // in Impl::to_service
  std::string ready_bytes;          // its packed `ready` (constant)
  uint64_t epoch = 0;               // bumped on every connect and silence: older timers are stale
  bool registered = false;          // welcomed on the current registration
  bool ever_registered = false;
  bool refused = false;
  int64_t coordinator_heartbeat_ms = 0;  // from welcome
  int64_t last_heard_ms = 0;             // any message from the coordinator
  int64_t last_heartbeat_in_ms = 0;      // last coordinator heartbeat on this registration; 0: none
  int64_t reconnect_delay_ms = kReconnectInitialMs;
  std::map<uint64_t, SimAttempt> attempts;  // running, by serial
};

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

int64_t SteadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The p-th fraction of the samples (nearest rank), 0 when there are none. Sorts them.
int64_t Percentile(std::vector<int64_t>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<size_t>(
      std::max(1.0, std::ceil(p * static_cast<double>(samples.size()))));
  return samples[std::min(rank, samples.size()) - 1];
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Creates the empty part file a real attempt would leave for the coordinator to commit:
// OUTPUT/_temporary/<task_id>.a<attempt>/part-NNNNN (common/layout.h names it).
bool CreatePartFile(const SimAttempt& a, std::string* path, std::string* error) {
  if (a.output_dir.empty() || a.output_dir[0] != '/' || !layout::IsSafeComponent(a.ref.task_id)) {
    *error = "unsafe output dir or task id in assign";
    return false;
  }
  const fs::path dir = layout::AttemptOutputDir(a.output_dir, a.ref.task_id, a.ref.attempt);
  *path = (dir / layout::PartFileName(a.partition)).string();
  // Another attempt's commit may remove the shared _temporary directory in between: retry.
  for (int tries = 0;; ++tries) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec && tries < 3) continue;
    if (ec) {
      *error = "cannot create directory " + dir.string() + ": " + ec.message();
      return false;
    }
    const int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    const int err = errno;
    if (err == ENOENT && tries < 3) continue;
    *error = "cannot create " + *path + ": " + std::strerror(err);
    return false;
  }
}

}  // namespace

std::string SimReport::ToJson() const {
  char buf[2048];
  std::snprintf(
      buf, sizeof(buf),
      "{\"workers\":%lld,\"slots\":%lld,\"task_ms\":%lld,\"heartbeat_ms\":%lld,\"liveness\":%lld,"
      "\"registered\":%lld,\"welcomes\":%lld,\"all_registered_ms\":%lld,\"reregisters\":%lld,"
      "\"coordinator_silences\":%lld,\"refused\":%lld,\"worker_lost_events\":%lld,"
      "\"worker_joined_events\":%lld,\"events_live\":%s,\"attempts_started\":%lld,"
      "\"attempts_done\":%lld,\"attempts_failed\":%lld,\"attempts_cancelled\":%lld,"
      "\"attempts_abandoned\":%lld,\"bad_messages\":%lld,\"send_failures\":%lld,"
      "\"heartbeats_sent\":%lld,\"heartbeats_received\":%lld,\"heartbeat_gap_p50_ms\":%lld,"
      "\"heartbeat_gap_p99_ms\":%lld,\"heartbeat_gap_max_ms\":%lld,\"probes_answered\":%lld,"
      "\"probes_lost\":%lld,\"probe_rtt_p50_us\":%lld,\"probe_rtt_p99_us\":%lld,"
      "\"probe_rtt_max_us\":%lld,\"timer_lag_p99_ms\":%lld,"
      "\"timer_lag_max_ms\":%lld,\"loop_iterations\":%lld,\"loop_turn_max_ms\":%lld,"
      "\"elapsed_ms\":%lld,"
      "\"cpu_seconds\":%.3f}",
      static_cast<long long>(workers), static_cast<long long>(slots),
      static_cast<long long>(task_ms), static_cast<long long>(heartbeat_ms),
      static_cast<long long>(liveness), static_cast<long long>(registered),
      static_cast<long long>(welcomes), static_cast<long long>(all_registered_ms),
      static_cast<long long>(reregisters), static_cast<long long>(coordinator_silences),
      static_cast<long long>(refused), static_cast<long long>(worker_lost_events),
      static_cast<long long>(worker_joined_events), events_live ? "true" : "false",
      static_cast<long long>(attempts_started), static_cast<long long>(attempts_done),
      static_cast<long long>(attempts_failed), static_cast<long long>(attempts_cancelled),
      static_cast<long long>(attempts_abandoned), static_cast<long long>(bad_messages),
      static_cast<long long>(send_failures), static_cast<long long>(heartbeats_sent),
      static_cast<long long>(heartbeats_received), static_cast<long long>(heartbeat_gap_p50_ms),
      static_cast<long long>(heartbeat_gap_p99_ms), static_cast<long long>(heartbeat_gap_max_ms),
      static_cast<long long>(probes_answered), static_cast<long long>(probes_lost),
      static_cast<long long>(probe_rtt_p50_us), static_cast<long long>(probe_rtt_p99_us),
      static_cast<long long>(probe_rtt_max_us),
      static_cast<long long>(timer_lag_p99_ms), static_cast<long long>(timer_lag_max_ms),
      static_cast<long long>(loop_iterations), static_cast<long long>(loop_turn_max_ms),
      static_cast<long long>(elapsed_ms), cpu_seconds);
  return buf;
}

struct SimWorkers::Impl {
  SimOptions options;
  std::string host;
  zmq::context_t context;
  std::vector<SimWorker> workers;
  std::unique_ptr<zmq::socket_t> events;   // SUB, when options.events is set
  std::string lost_topic_prefix;           // "worker/<prefix>-": events about our workers
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  // Sockets are watched through their ZMQ_FD in an epoll set, keyed by worker index (the events
  // socket by kEventsKey). zmq::poll would read ZMQ_EVENTS of every one of the N sockets on every
  // pass (a system call each): about 10 ms per loop turn for 1,000 sockets under ASan, which made
  // this process fall behind its own heartbeats. The ZMQ_FD contract: the descriptor only says
  // "look at ZMQ_EVENTS", and any operation on the socket (send, recv, ZMQ_EVENTS) may consume
  // that signal, so a socket is serviced (Service) after every readiness report and after every
  // send, until ZMQ_EVENTS shows no input. Then a new message is sure to signal the descriptor.
  EpollSet epoll;
  std::deque<int> to_service;              // worker indices to service before the next wait
  int in_service = -1;                     // the worker Service is reading (it re-checks itself)
  int events_fd = -1;                      // the events socket's ZMQ_FD
  bool events_queued = false;              // the events socket is to be serviced
  std::vector<uint64_t> ready_keys;        // scratch for EpollSet::Wait
  uint64_t next_attempt_serial = 1;
  int64_t ever_registered_count = 0;
  std::mt19937 rng;
  int64_t start_ms = 0;
  int64_t connect_start_ms = 0;            // when the workers' sockets were first created
  double start_cpu = 0;
  int64_t next_status_ms = 0;
  // Packed messages sent or received a thousand times a second, so each costs no msgpack
  // allocation (under ASan, each Pack/Unpack allocates and fills an 8 KiB buffer).
  std::vector<std::string> heartbeat_bytes;  // our heartbeat, by number of running attempts
  std::string coordinator_heartbeat;         // the coordinator's (constant) heartbeat
  MsHistogram heartbeat_gaps;
  // The probe: a DEALER that never registers, so the coordinator answers each of its heartbeats
  // with `reregister` as soon as it reads it. One heartbeat is outstanding at a time.
  std::unique_ptr<zmq::socket_t> probe;
  int probe_fd = -1;
  bool probe_queued = false;               // the probe socket is to be serviced
  int64_t probe_sent_us = 0;               // steady clock of the outstanding heartbeat; 0: none
  std::vector<int64_t> probe_rtts_us;
  MsHistogram timer_lag;
  SimReport report;                        // counters; snapshots are filled by Report()

  // --- sending ---

  static constexpr uint64_t kEventsKey = ~uint64_t{0};
  static constexpr uint64_t kProbeKey = ~uint64_t{0} - 1;

  int IndexOf(const SimWorker& w) const { return static_cast<int>(&w - workers.data()); }

  // Queues worker `index`'s socket for Service before the next wait.
  void QueueService(int index) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    if (w.queued) return;
    w.queued = true;
    to_service.push_back(index);
  }

  bool Send(SimWorker& w, const Value& body) { return SendBytes(w, Pack(body)); }

  bool SendBytes(SimWorker& w, const std::string& bytes) {
    if (!w.dealer) return false;
    // The send may consume the descriptor's signal: look at the socket again afterwards.
    if (IndexOf(w) != in_service) QueueService(IndexOf(w));
    try {
      if (w.dealer->send(zmq::buffer(bytes), zmq::send_flags::dontwait)) return true;
    } catch (const zmq::error_t& e) {
      spdlog::debug("worker {}: send failed: {}", w.name, e.what());
    }
    ++report.send_failures;
    return false;
  }

  // Closes the worker's socket (LINGER 0: queued messages are dropped).
  void CloseSocket(SimWorker& w) {
    if (!w.dealer) return;
    epoll.Remove(w.zmq_fd);
    w.zmq_fd = -1;
    w.dealer.reset();
  }

  void SendReady(SimWorker& w) { SendBytes(w, w.ready_bytes); }

  // Packs the messages that never change (see heartbeat_bytes).
  void PackConstantMessages() {
    for (int64_t running = 0; running <= options.slots; ++running) {
      HeartbeatMsg hb;
      hb.running = running;
      hb.free_slots = options.slots - running;
      heartbeat_bytes.push_back(Pack(hb.ToValue()));
    }
    coordinator_heartbeat = Pack(HeartbeatMsg{}.ToValue());
    for (SimWorker& w : workers) {
      ReadyMsg ready;
      ready.name = w.name;
      ready.host = host;
      ready.pid = getpid();
      ready.slots = options.slots;
      ready.work_dir = "sim:" + w.name;  // nothing is stored: the outputs are made up
      w.ready_bytes = Pack(ready.ToValue());
    }
  }

  void SendHeartbeat(SimWorker& w) {
    // More attempts than slots only if the coordinator over-assigns: report them all the same.
    const size_t running = w.attempts.size();
    bool sent;
    if (running < heartbeat_bytes.size()) {
      sent = SendBytes(w, heartbeat_bytes[running]);
    } else {
      HeartbeatMsg hb;
      hb.running = static_cast<int64_t>(running);
      hb.free_slots = 0;
      sent = Send(w, hb.ToValue());
    }
    if (sent) ++report.heartbeats_sent;
  }

  // --- connection state ---

  // A new socket and a fresh registration. The first heartbeat follows after `first_beat_ms`
  // (none is scheduled when it is negative: the caller does it).
  void Connect(int index, int64_t now, int64_t first_beat_ms) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    w.dealer = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
    w.dealer->set(zmq::sockopt::linger, 0);
    w.dealer->set(zmq::sockopt::sndhwm, kSendHighWaterMark);
    w.dealer->connect(options.coordinator);
    w.zmq_fd = w.dealer->get(zmq::sockopt::fd);
    if (!epoll.Add(w.zmq_fd, static_cast<uint64_t>(index))) {
      spdlog::error("worker {}: cannot watch its socket ({}); retrying in {} ms", w.name,
                    std::strerror(errno), w.reconnect_delay_ms);
      w.dealer.reset();
      w.zmq_fd = -1;
      ++w.epoch;
      timers.push({now + w.reconnect_delay_ms, TimerKind::kReconnect, index, w.epoch});
      w.reconnect_delay_ms = std::min<int64_t>(w.reconnect_delay_ms * 2, kReconnectMaxMs);
      return;
    }
    w.registered = false;
    w.last_heard_ms = now;
    w.last_heartbeat_in_ms = 0;
    ++w.epoch;
    SendReady(w);
    if (first_beat_ms >= 0) {
      timers.push({now + first_beat_ms, TimerKind::kHeartbeat, index, w.epoch});
    }
  }

  // Drops the worker's attempts: they belong to a registration that is gone.
  void AbandonAttempts(SimWorker& w) {
    report.attempts_abandoned += static_cast<int64_t>(w.attempts.size());
    w.attempts.clear();
  }

  // --- timers ---

  void OnHeartbeatTimer(int index, const Timer& t, int64_t now) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    if (t.token != w.epoch || !w.dealer) return;
    timer_lag.Add(now - t.at);
    const int64_t hb = std::max<int64_t>(options.heartbeat_ms, w.coordinator_heartbeat_ms);
    // Input this process has not read yet is not the coordinator's silence: read it first.
    if (now - w.last_heard_ms > hb * options.liveness) Service(index, now);
    if (now - w.last_heard_ms > hb * options.liveness) {
      // Paranoid Pirate, as worker/worker.cc: close (LINGER 0), back off, reconnect, ready.
      ++report.coordinator_silences;
      spdlog::warn("worker {}: coordinator silent for {} ms; reconnecting in {} ms", w.name,
                   now - w.last_heard_ms, w.reconnect_delay_ms);
      CloseSocket(w);
      AbandonAttempts(w);
      w.registered = false;
      ++w.epoch;
      timers.push({now + w.reconnect_delay_ms, TimerKind::kReconnect, index, w.epoch});
      w.reconnect_delay_ms = std::min<int64_t>(w.reconnect_delay_ms * 2, kReconnectMaxMs);
      return;
    }
    SendHeartbeat(w);
    // Keep the phase (so the stagger survives), unless this process fell a whole interval behind.
    int64_t next = t.at + options.heartbeat_ms;
    if (next <= now) next = now + options.heartbeat_ms;
    timers.push({next, TimerKind::kHeartbeat, index, w.epoch});
  }

  void OnAttemptEnd(int index, const Timer& t, int64_t now) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    auto it = w.attempts.find(t.token);
    if (it == w.attempts.end()) return;  // cancelled or abandoned
    timer_lag.Add(now - t.at);
    SimAttempt a = std::move(it->second);
    w.attempts.erase(it);

    TaskProgressMsg progress;
    progress.ref = a.ref;
    progress.progress = 1.0;
    Send(w, progress.ToValue());

    TaskDoneMsg done;
    done.ref = a.ref;
    if (a.kind == TaskKind::kMap && a.num_reduces > 0) {
      const std::string base =
          "sim:" + a.ref.job_id + "/" + a.ref.task_id + ".a" + std::to_string(a.ref.attempt) + "/";
      done.outputs.reserve(static_cast<size_t>(a.num_reduces));
      for (int64_t p = 0; p < a.num_reduces; ++p) {
        done.outputs.push_back({p, base + std::to_string(p), kFakeOutputBytes, kFakeOutputRecords});
      }
    } else {
      // Reduces and map-only maps: the coordinator commits the reported file by renaming it.
      std::string path, error;
      if (!CreatePartFile(a, &path, &error)) {
        TaskFailedMsg failed;
        failed.ref = a.ref;
        failed.error = error;
        Send(w, failed.ToValue());
        ++report.attempts_failed;
        spdlog::warn("worker {}: job {} task {} attempt {} failed: {}", w.name, a.ref.job_id,
                     a.ref.task_id, a.ref.attempt, error);
        return;
      }
      done.outputs.push_back({a.partition, path, 0, 0});
    }
    done.counters["sim/attempts"] = 1;
    if (Send(w, done.ToValue())) ++report.attempts_done;
  }

  // Runs the due timers, at most kMaxTimersPerTurn of them. Returns how many ran.
  int RunTimers(int64_t now) {
    int n = 0;
    for (; n < kMaxTimersPerTurn && !timers.empty() && timers.top().at <= now + kTimerSlackMs;
         ++n) {
      const Timer t = timers.top();
      timers.pop();
      SimWorker& w = workers[static_cast<size_t>(t.worker)];
      switch (t.kind) {
        case TimerKind::kHeartbeat:
          OnHeartbeatTimer(t.worker, t, now);
          break;
        case TimerKind::kReconnect:
          if (t.token == w.epoch && !w.dealer && !w.refused) {
            Connect(t.worker, now, options.heartbeat_ms);
          }
          break;
        case TimerKind::kAttemptEnd:
          OnAttemptEnd(t.worker, t, now);
          break;
        case TimerKind::kProbe:
          OnProbeTimer(now);
          break;
      }
    }
    return n;
  }

  // --- the probe ---

  void OnProbeTimer(int64_t now) {
    timers.push({now + options.probe_ms, TimerKind::kProbe, 0, 0});
    if (!probe) return;
    if (probe_sent_us != 0) {
      if (SteadyUs() - probe_sent_us < kProbeTimeoutMs * 1000) return;
      ++report.probes_lost;
    }
    probe_queued = true;  // the send may consume the descriptor's signal
    try {
      if (probe->send(zmq::buffer(heartbeat_bytes[0]), zmq::send_flags::dontwait)) {
        probe_sent_us = SteadyUs();
        return;
      }
    } catch (const zmq::error_t& e) {
      spdlog::debug("probe: send failed: {}", e.what());
    }
    probe_sent_us = 0;
    ++report.send_failures;
  }

  // Reads the probe's answers until ZMQ_EVENTS shows no more input.
  void ServiceProbe() {
    for (int i = 0; i < kMaxRecvPerSocket; ++i) {
      zmq::message_t frame;
      try {
        if ((probe->get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) return;
        if (!probe->recv(frame, zmq::recv_flags::dontwait)) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        break;
      }
      if (probe_sent_us != 0) {
        probe_rtts_us.push_back(SteadyUs() - probe_sent_us);
        ++report.probes_answered;
        probe_sent_us = 0;
      }
    }
    probe_queued = true;  // stopped at the limit (or EINTR): look again next turn
  }

  // --- messages from the coordinator ---

  void BadMessage(const SimWorker& w, const std::string& error) {
    ++report.bad_messages;
    spdlog::warn("worker {}: dropped bad message from coordinator: {} ({} so far)", w.name, error,
                 report.bad_messages);
  }

  void OnCoordinatorHeartbeat(SimWorker& w, int64_t now) {
    ++report.heartbeats_received;
    if (w.last_heartbeat_in_ms != 0) heartbeat_gaps.Add(now - w.last_heartbeat_in_ms);
    w.last_heartbeat_in_ms = now;
  }

  void HandleAssign(int index, const Value& v, int64_t now) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    std::string error;
    std::optional<AssignMsg> task = AssignMsg::FromValue(v, &error);
    if (!task) {
      BadMessage(w, "assign: " + error);
      TaskFailedMsg failed;
      if (ReadString(v, "job_id", &failed.ref.job_id, &error) &&
          ReadString(v, "task_id", &failed.ref.task_id, &error) &&
          ReadInt(v, "attempt", &failed.ref.attempt, &error)) {
        failed.error = "invalid assignment: " + error;
        Send(w, failed.ToValue());
      }
      return;
    }
    SimAttempt a;
    a.ref = {task->job_id, task->task_id, task->attempt};
    for (const auto& [serial, running] : w.attempts) {
      if (running.ref == a.ref) {
        spdlog::warn("worker {}: job {} task {} attempt {} already running; ignoring duplicate",
                     w.name, a.ref.job_id, a.ref.task_id, a.ref.attempt);
        return;
      }
    }
    a.kind = task->kind;
    a.num_reduces = task->num_reduces;
    a.partition = task->partition;
    a.output_dir = std::move(task->output_dir);
    const uint64_t serial = next_attempt_serial++;
    w.attempts.emplace(serial, std::move(a));
    ++report.attempts_started;
    timers.push({now + options.task_ms, TimerKind::kAttemptEnd, index, serial});
  }

  void HandleMessage(int index, const zmq::message_t& frame, int64_t now) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    if (frame.to_string_view() == coordinator_heartbeat) {
      w.last_heard_ms = now;
      OnCoordinatorHeartbeat(w, now);
      return;
    }
    std::string type, error;
    std::optional<Value> v = DecodeMessage(frame.to_string_view(), &type, &error);
    if (!v) {
      BadMessage(w, error);
      return;
    }
    w.last_heard_ms = now;
    if (type == msg::kHeartbeat) {
      OnCoordinatorHeartbeat(w, now);
    } else if (type == msg::kWelcome) {
      std::optional<WelcomeMsg> welcome = WelcomeMsg::FromValue(*v, &error);
      if (!welcome) {
        BadMessage(w, "welcome: " + error);
        return;
      }
      ++report.welcomes;
      w.registered = true;
      w.reconnect_delay_ms = kReconnectInitialMs;
      w.coordinator_heartbeat_ms = welcome->heartbeat_ms;
      if (!w.ever_registered) {
        w.ever_registered = true;
        if (++ever_registered_count == options.workers) {
          report.all_registered_ms = now - connect_start_ms;
          spdlog::info("all {} workers registered after {} ms", options.workers,
                       report.all_registered_ms);
        }
      }
    } else if (type == msg::kRefused) {
      std::string reason = "refused";
      ReadString(*v, "error", &reason, &error);
      ++report.refused;
      spdlog::error("worker {}: coordinator refused it: {}", w.name, reason);
      w.refused = true;  // the caller closes the socket once it stops reading it
    } else if (type == msg::kReregister) {
      ++report.reregisters;
      spdlog::warn("worker {}: coordinator does not know it; registering again", w.name);
      AbandonAttempts(w);
      w.registered = false;
      w.last_heartbeat_in_ms = 0;
      SendReady(w);
    } else if (type == msg::kAssign) {
      HandleAssign(index, *v, now);
    } else if (type == msg::kCancel) {
      std::optional<CancelAttemptMsg> cancel = CancelAttemptMsg::FromValue(*v, &error);
      if (!cancel) {
        BadMessage(w, "cancel: " + error);
        return;
      }
      for (auto it = w.attempts.begin(); it != w.attempts.end(); ++it) {
        if (it->second.ref == cancel->ref) {
          w.attempts.erase(it);
          ++report.attempts_cancelled;
          break;
        }
      }
    } else if (type == msg::kCleanup || type == msg::kJobFiles) {
      // Nothing is stored and no user code runs.
    } else {
      BadMessage(w, "unknown message type '" + type + "'");
    }
  }

  // Reads worker `index`'s messages until ZMQ_EVENTS shows no more input (see `epoll`), at most
  // kMaxRecvPerSocket of them; queues the socket again when it stopped at that limit.
  void Service(int index, int64_t now) {
    SimWorker& w = workers[static_cast<size_t>(index)];
    in_service = index;
    for (int received = 0; w.dealer && !w.refused;) {
      try {
        if ((w.dealer->get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) break;
        if (received == kMaxRecvPerSocket) {
          QueueService(index);
          break;
        }
        zmq::message_t frame;
        ++received;  // also bounds the loop should ZMQ_EVENTS and recv ever disagree
        if (!w.dealer->recv(frame, zmq::recv_flags::dontwait)) continue;
        if (frame.more()) {
          // The protocol has single frames only: drop the rest of this message.
          while (frame.more() && w.dealer->recv(frame, zmq::recv_flags::dontwait)) {
          }
          BadMessage(w, "multi-frame message");
          continue;
        }
        HandleMessage(index, frame, now);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        QueueService(index);
        break;
      }
    }
    in_service = -1;
    if (w.refused && w.dealer) {
      AbandonAttempts(w);
      CloseSocket(w);
    }
  }

  // Reads events until ZMQ_EVENTS shows no more input (as Service), at most a bounded number.
  void ServiceEvents() {
    for (int i = 0;; ++i) {
      zmq::message_t topic;
      try {
        if ((events->get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) break;
        if (i == kMaxRecvPerSocket * 16) {
          events_queued = true;
          break;
        }
        if (!events->recv(topic, zmq::recv_flags::dontwait)) continue;
        zmq::message_t body;
        while (topic.more() && events->recv(body, zmq::recv_flags::dontwait) && body.more()) {
        }
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        events_queued = true;
        break;
      }
      report.events_live = true;
      const std::string_view t = topic.to_string_view();
      if (t.substr(0, lost_topic_prefix.size()) != lost_topic_prefix) continue;
      auto ends_with = [&](std::string_view suffix) {
        return t.size() >= suffix.size() && t.substr(t.size() - suffix.size()) == suffix;
      };
      if (ends_with("/worker_lost")) {
        ++report.worker_lost_events;
        spdlog::warn("event {}", t);
      } else if (ends_with("/worker_joined")) {
        ++report.worker_joined_events;
      }
    }
  }

  // Waits (bounded, stoppable) until the events subscription delivers something.
  void WaitForEvents(const std::atomic<bool>& stop) {
    const int64_t deadline = SteadyMs() + kEventsWaitIntervals * options.heartbeat_ms;
    while (!stop.load() && !report.events_live && SteadyMs() < deadline) {
      zmq::pollitem_t item{events->handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(kMaxPollMs));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
      if (item.revents & ZMQ_POLLIN) ServiceEvents();
    }
    if (!report.events_live) {
      spdlog::warn("no event from {} within {} ms; counting worker events anyway", options.events,
                   kEventsWaitIntervals * options.heartbeat_ms);
    }
  }

  void LogStatus(int64_t now) {
    int64_t registered = 0, running = 0;
    for (const SimWorker& w : workers) {
      registered += w.registered ? 1 : 0;
      running += static_cast<int64_t>(w.attempts.size());
    }
    spdlog::info("{} s: {} of {} registered, {} running, {} attempts done, heartbeat gap p50 {} "
                 "p99 {} max {} ms, timer lag max {} ms, {} silences, {} reregisters",
                 (now - start_ms) / 1000, registered, options.workers, running,
                 report.attempts_done, heartbeat_gaps.Percentile(0.50),
                 heartbeat_gaps.Percentile(0.99), heartbeat_gaps.max(), timer_lag.max(),
                 report.coordinator_silences, report.reregisters);
  }

  // Queues the sockets epoll reported and services up to kMaxServicePerTurn queued ones.
  void ServiceQueued() {
    for (uint64_t key : ready_keys) {
      if (key == kEventsKey) {
        events_queued = true;
      } else if (key == kProbeKey) {
        probe_queued = true;
      } else if (key < workers.size()) {
        QueueService(static_cast<int>(key));
      }
    }
    ready_keys.clear();
    if (events_queued && events) {
      events_queued = false;
      ServiceEvents();
    }
    if (probe_queued && probe) {
      probe_queued = false;
      ServiceProbe();
    }
    // At most kMaxServicePerTurn sockets; Service may queue its own socket again (message limit).
    for (size_t n = 0; n < kMaxServicePerTurn && !to_service.empty(); ++n) {
      const int index = to_service.front();
      to_service.pop_front();
      workers[static_cast<size_t>(index)].queued = false;
      Service(index, SteadyMs());
    }
  }

  void Shutdown() {
    if (events) epoll.Remove(events_fd);
    events.reset();  // worker events caused by these goodbyes are not ours to count
    int64_t goodbyes = 0;
    for (SimWorker& w : workers) {
      if (!w.dealer) continue;
      if (w.registered) {
        try {
          w.dealer->set(zmq::sockopt::linger, kShutdownLingerMs);
        } catch (const zmq::error_t&) {
        }
        Value bye;
        bye.Set("type", msg::kDisconnect);
        goodbyes += Send(w, bye) ? 1 : 0;
      }
      epoll.Remove(w.zmq_fd);
      w.zmq_fd = -1;
      w.dealer.reset();  // lingers in the context for the goodbye
    }
    spdlog::info("stopped: {} workers said disconnect", goodbyes);
  }
};

SimWorkers::SimWorkers() : impl_(std::make_unique<Impl>()) {}
SimWorkers::~SimWorkers() = default;

std::unique_ptr<SimWorkers> SimWorkers::Create(const SimOptions& options, std::string* error) {
  if (options.workers < 1 || options.workers > 100000) {
    *error = "workers must be between 1 and 100000";
    return nullptr;
  }
  if (options.slots < 1 || options.slots > 4096) {
    *error = "slots must be between 1 and 4096";
    return nullptr;
  }
  if (options.task_ms < 0 || options.heartbeat_ms < 10 || options.liveness < 1 ||
      options.run_ms < 0 || options.probe_ms < 0) {
    *error = "task_ms, run_ms and probe_ms must be >= 0, heartbeat_ms >= 10 and liveness >= 1";
    return nullptr;
  }
  // Every worker is a TCP connection plus a socket mailbox: raise the descriptor limit.
  const int64_t fds_needed = kFdsPerWorker * options.workers + kFdReserve;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      static_cast<int64_t>(limit.rlim_cur) < fds_needed) {
    *error = std::to_string(options.workers) + " workers need about " +
             std::to_string(fds_needed) + " file descriptors; RLIMIT_NOFILE allows " +
             std::to_string(limit.rlim_cur);
    return nullptr;
  }

  std::unique_ptr<SimWorkers> s(new SimWorkers());
  Impl& m = *s->impl_;
  if (!m.epoll.ok()) {
    *error = std::string("epoll_create1 failed: ") + std::strerror(errno);
    return nullptr;
  }
  m.options = options;
  if (m.options.name_prefix.empty()) m.options.name_prefix = "sim-" + std::to_string(getpid());
  m.lost_topic_prefix = "worker/" + m.options.name_prefix + "-";
  m.host = Hostname();
  m.rng.seed(options.seed);
  try {
    m.context.set(zmq::ctxopt::max_sockets, options.workers + static_cast<int>(kFdReserve));
    zmq::socket_t probe(m.context, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(m.options.coordinator);
    if (!m.options.events.empty()) {
      zmq::socket_t probe_events(m.context, zmq::socket_type::sub);
      probe_events.set(zmq::sockopt::linger, 0);
      probe_events.connect(m.options.events);
    }
  } catch (const zmq::error_t& e) {
    *error = std::string("invalid endpoint: ") + e.what();
    return nullptr;
  }
  m.workers.resize(static_cast<size_t>(options.workers));
  for (int i = 0; i < options.workers; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "-%05d", i);
    m.workers[static_cast<size_t>(i)].name = m.options.name_prefix + name;
  }
  m.PackConstantMessages();
  m.report.workers = options.workers;
  m.report.slots = options.slots;
  m.report.task_ms = options.task_ms;
  m.report.heartbeat_ms = options.heartbeat_ms;
  m.report.liveness = options.liveness;
  return s;
}

int SimWorkers::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  m.start_ms = SteadyMs();
  m.start_cpu = CpuSeconds();
  if (!m.options.events.empty()) {
    m.events = std::make_unique<zmq::socket_t>(m.context, zmq::socket_type::sub);
    m.events->set(zmq::sockopt::linger, 0);
    m.events->set(zmq::sockopt::rcvhwm, 0);  // unbounded: a burst of joins must not be dropped
    m.events->set(zmq::sockopt::subscribe, "worker/");
    m.events->set(zmq::sockopt::subscribe, "cluster/heartbeat");
    m.events->connect(m.options.events);
    m.WaitForEvents(stop);
  }
  // The first beats are spread over one interval so the workers do not beat in lockstep.
  std::uniform_int_distribution<int64_t> stagger(1, m.options.heartbeat_ms);
  int64_t now = SteadyMs();
  m.connect_start_ms = now;
  for (int i = 0; i < m.options.workers; ++i) m.Connect(i, now, /*first_beat_ms=*/-1);
  // Connecting a thousand sockets takes a while (notably under ASan): stagger from when it is done.
  now = SteadyMs();
  for (int i = 0; i < m.options.workers; ++i) {
    m.workers[static_cast<size_t>(i)].last_heard_ms = now;
    m.timers.push({now + stagger(m.rng), TimerKind::kHeartbeat, i,
                   m.workers[static_cast<size_t>(i)].epoch});
  }
  spdlog::info("{} simulated workers ({} slots each, {} ms per attempt) connecting to {} ({} ms "
               "to create their sockets)", m.options.workers, m.options.slots, m.options.task_ms,
               m.options.coordinator, now - m.connect_start_ms);
  m.next_status_ms = now + kStatusLogMs;

  if (m.events) {
    m.events_fd = m.events->get(zmq::sockopt::fd);
    if (!m.epoll.Add(m.events_fd, Impl::kEventsKey)) {
      spdlog::error("cannot watch the events socket ({}); worker events are not counted",
                    std::strerror(errno));
      m.events.reset();
    }
    m.events_queued = true;
  }

  if (m.options.probe_ms > 0) {
    m.probe = std::make_unique<zmq::socket_t>(m.context, zmq::socket_type::dealer);
    m.probe->set(zmq::sockopt::linger, 0);
    m.probe->connect(m.options.coordinator);
    m.probe_fd = m.probe->get(zmq::sockopt::fd);
    if (!m.epoll.Add(m.probe_fd, Impl::kProbeKey)) {
      spdlog::error("cannot watch the probe socket ({}); no round trips are measured",
                    std::strerror(errno));
      m.probe.reset();
    }
    m.timers.push({now + m.options.probe_ms, TimerKind::kProbe, 0, 0});
  }

  int64_t turn_start = SteadyMs();
  while (!stop.load()) {
    now = SteadyMs();
    if (m.options.run_ms > 0 && now - m.start_ms >= m.options.run_ms) break;
    const int timers_run = m.RunTimers(now);
    m.ServiceQueued();  // timers sent; the sends may have hidden input
    if (now >= m.next_status_ms) {
      m.LogStatus(now);
      m.next_status_ms = now + kStatusLogMs;
    }
    now = SteadyMs();
    const int64_t busy_ms = now - turn_start;
    if (busy_ms > m.report.loop_turn_max_ms) {
      m.report.loop_turn_max_ms = busy_ms;
      if (busy_ms >= kSlowTurnMs) {
        spdlog::warn("a loop turn took {} ms ({} timers run)", busy_ms, timers_run);
      }
    }
    int64_t wake = now + kMaxPollMs;
    if (!m.timers.empty()) wake = std::min(wake, m.timers.top().at);
    if (m.options.run_ms > 0) wake = std::min(wake, m.start_ms + m.options.run_ms);
    if (!m.to_service.empty() || m.events_queued || m.probe_queued) wake = now;
    const int64_t wait_ms = std::clamp<int64_t>(wake - now, 0, kMaxPollMs);
    m.epoll.Wait(static_cast<int>(wait_ms), &m.ready_keys);
    ++m.report.loop_iterations;
    turn_start = SteadyMs();
    m.ServiceQueued();
  }
  m.report.elapsed_ms = SteadyMs() - m.start_ms;
  m.report.cpu_seconds = CpuSeconds() - m.start_cpu;
  if (m.probe) m.epoll.Remove(m.probe_fd);
  m.probe.reset();
  m.Shutdown();
  return 0;
}

SimReport SimWorkers::Report() const {
  const Impl& m = *impl_;
  SimReport r = m.report;
  r.registered = 0;
  for (const SimWorker& w : m.workers) r.registered += w.registered ? 1 : 0;
  r.heartbeat_gap_p50_ms = m.heartbeat_gaps.Percentile(0.50);
  r.heartbeat_gap_p99_ms = m.heartbeat_gaps.Percentile(0.99);
  r.heartbeat_gap_max_ms = m.heartbeat_gaps.max();
  std::vector<int64_t> rtts = m.probe_rtts_us;
  r.probe_rtt_p50_us = Percentile(rtts, 0.50);
  r.probe_rtt_p99_us = Percentile(rtts, 0.99);
  r.probe_rtt_max_us = rtts.empty() ? 0 : rtts.back();
  r.timer_lag_p99_ms = m.timer_lag.Percentile(0.99);
  r.timer_lag_max_ms = m.timer_lag.max();
  if (r.elapsed_ms == 0 && m.start_ms != 0) r.elapsed_ms = SteadyMs() - m.start_ms;
  return r;
}

}  // namespace zmr::sim
