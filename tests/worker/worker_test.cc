// Drives one real Worker (its loop on a thread of this process, attempts in real zmr-task
// children) from a stand-in coordinator: a ROUTER on a loopback port bound at run time that
// speaks just enough of the protocol to register the worker and hand it attempts.
#include "worker/worker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/clock.h"
#include "common/protocol.h"
#include "common/value.h"
#include "tests/support/temp_dir.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

// Hang guard for everything the tests wait for; not a timing check.
constexpr int64_t kPatienceMs = 120000;

void WriteFile(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The coordinator side: one ROUTER, used by the test thread only. Answers every worker
// heartbeat with one of its own so the worker never declares it lost.
class FakeCoordinator {
 public:
  FakeCoordinator() {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:0");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }

  const std::string& endpoint() const { return endpoint_; }

  // Waits for the next message from the worker for which `want(type, body)` holds, answering
  // heartbeats on the way. nullopt after kPatienceMs.
  std::optional<Value> WaitFor(const std::function<bool(const std::string&, const Value&)>& want) {
    const int64_t deadline = SteadyMs() + kPatienceMs;
    while (SteadyMs() < deadline) {
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      zmq::multipart_t frames(router_);
      if (frames.size() != 2) continue;
      identity_ = frames[0].to_string();
      std::string type, error;
      std::optional<Value> body = DecodeMessage(frames[1].to_string_view(), &type, &error);
      if (!body) continue;
      if (type == msg::kHeartbeat) Send(HeartbeatMsg().ToValue());
      if (want(type, *body)) return body;
    }
    return std::nullopt;
  }

  std::optional<Value> WaitForType(const std::string& wanted) {
    return WaitFor([&](const std::string& type, const Value&) { return type == wanted; });
  }

  // The next heartbeat saying no attempt is running (so every finished attempt has been reaped).
  std::optional<HeartbeatMsg> WaitForIdleHeartbeat() {
    std::optional<HeartbeatMsg> idle;
    WaitFor([&](const std::string& type, const Value& body) {
      if (type != msg::kHeartbeat) return false;
      std::string error;
      idle = HeartbeatMsg::FromValue(body, &error);
      return idle && idle->running == 0;
    });
    return idle && idle->running == 0 ? idle : std::nullopt;
  }

  // Sends a body to the worker that last spoke.
  void Send(const Value& body) {
    zmq::multipart_t frames;
    frames.addstr(identity_);
    frames.addstr(Pack(body));
    frames.send(router_);
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t router_{context_, zmq::socket_type::router};
  std::string endpoint_;
  std::string identity_;
};

// A worker serving the fake coordinator from its own thread until destroyed.
class RunningWorker {
 public:
  explicit RunningWorker(Worker* worker) : thread_([this, worker] { worker->Run(stop_); }) {}
  ~RunningWorker() {
    stop_.store(true);
    thread_.join();
  }
  RunningWorker(const RunningWorker&) = delete;
  RunningWorker& operator=(const RunningWorker&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A registered worker (two slots unless told, a queue as large) and a job output dir.
struct Fixture {
  TempDir dir;
  fs::path output = dir.path() / "out";
  fs::path temporary = output / "_temporary";
  FakeCoordinator coordinator;
  std::unique_ptr<Worker> worker;
  std::optional<RunningWorker> running;

  explicit Fixture(int slots = 2) {
    fs::create_directories(output);
    WorkerOptions options;
    options.coordinator = coordinator.endpoint();
    options.slots = slots;
    options.work_dir = (dir.path() / "work").string();
    options.name = "worker-test";
    options.heartbeat_ms = 100;
    options.liveness = 1000;  // the fake coordinator is silent while a test polls the disk
    options.task_binary = ZMR_BINARY_DIR "/worker/zmr-task";
    std::string error;
    worker = Worker::Create(options, &error);
    REQUIRE_MESSAGE(worker != nullptr, error);
    running.emplace(worker.get());
    REQUIRE(coordinator.WaitForType(msg::kReady));
    WelcomeMsg welcome;
    welcome.worker = options.name;
    welcome.heartbeat_ms = 100;
    coordinator.Send(welcome.ToValue());
  }

  // A reduce of partition p reading `inputs`, writing under output.
  AssignMsg Reduce(int64_t partition, std::vector<std::string> inputs) const {
    AssignMsg task;
    task.job_id = "job_worker_test";
    task.task_id = "r-0000" + std::to_string(partition);
    task.attempt = 1;
    task.kind = TaskKind::kReduce;
    task.app = "wordcount";
    task.num_reduces = 3;
    task.output_dir = output.string();
    task.partition = partition;
    task.inputs = std::move(inputs);
    return task;
  }

  // A streaming reduce of partition p (no inputs) whose reducer is the shell command `reducer`.
  AssignMsg StreamingReduce(int64_t partition, const std::string& reducer) const {
    AssignMsg task = Reduce(partition, {});
    task.app.clear();
    task.code.mapper = "cat";
    task.code.reducer = reducer;
    return task;
  }
};

// Whether `done()` holds within kPatienceMs (polled).
bool Eventually(const std::function<bool()>& done) {
  const int64_t deadline = SteadyMs() + kPatienceMs;
  while (!done()) {
    if (SteadyMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST_CASE("a failed attempt's directory in the job output's _temporary is removed, others stay") {
  Fixture f;
  // What a killed attempt could have left, and another task's attempt that must stay.
  const fs::path mine = f.temporary / "r-00000.a1";
  const fs::path other = f.temporary / "r-00001.a1" / "part-00001";
  WriteFile(mine / "part-00000.partial", "left behind");
  WriteFile(other, "someone else's\n");

  f.coordinator.Send(f.Reduce(0, {(f.dir.path() / "no-such-run").string()}).ToValue());
  REQUIRE(f.coordinator.WaitForType(msg::kTaskFailed));
  REQUIRE(f.coordinator.WaitForIdleHeartbeat());
  CHECK_FALSE(fs::exists(mine));
  CHECK(fs::exists(other));
}

TEST_CASE("a cancelled running attempt leaves no _temporary directory in the job output") {
  Fixture f;
  const fs::path mine = f.temporary / "r-00002.a1";
  WriteFile(mine / "part-00002.partial", "left behind");
  AssignMsg task = f.Reduce(2, {});
  task.app.clear();
  task.code.mapper = "cat";         // a streaming job (the reduce runs only the reducer)
  task.code.reducer = "sleep 30";  // runs until cancelled
  f.coordinator.Send(task.ToValue());
  // Cancel it while it runs: once its own part file is there.
  REQUIRE(Eventually([&] { return fs::exists(mine / "part-00002"); }));
  CancelAttemptMsg cancel;
  cancel.ref = AttemptRef{task.job_id, task.task_id, task.attempt};
  f.coordinator.Send(cancel.ToValue());
  // A cancelled attempt reports nothing; what it leaves is the outcome to wait for.
  CHECK(Eventually([&] { return !fs::exists(f.temporary); }));
}

TEST_CASE("assignments beyond a worker's slots wait and run one at a time as the slot frees") {
  Fixture f(/*slots=*/1);
  const fs::path trace = f.dir.path() / "trace.txt";
  // Each attempt notes its start and end in one file: one slot means no interleaving.
  const std::string reducer =
      "sh -c 'echo start >> " + trace.string() + "; sleep 0.2; echo end >> " + trace.string() + "'";
  for (int64_t p = 0; p < 3; ++p) f.coordinator.Send(f.StreamingReduce(p, reducer).ToValue());
  std::set<std::string> done;
  while (done.size() < 3) {
    std::optional<Value> body = f.coordinator.WaitFor([](const std::string& type, const Value&) {
      return type == msg::kTaskDone || type == msg::kTaskFailed;
    });
    REQUIRE(body);
    REQUIRE(body->Find("type")->as_string() == msg::kTaskDone);
    done.insert(body->Find("task_id")->as_string());
  }
  std::ifstream in(trace);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "start\nend\nstart\nend\nstart\nend\n");
}

TEST_CASE("a queued assignment that is cancelled never runs") {
  Fixture f(/*slots=*/1);
  const fs::path running_part = f.temporary / "r-00000.a1" / "part-00000";
  const fs::path cancelled_mark = f.dir.path() / "cancelled-ran";
  const fs::path later_mark = f.dir.path() / "later-ran";
  AssignMsg running = f.StreamingReduce(0, "sleep 30");  // holds the slot until cancelled
  AssignMsg queued = f.StreamingReduce(1, "touch " + cancelled_mark.string());
  AssignMsg later = f.StreamingReduce(2, "touch " + later_mark.string());
  f.coordinator.Send(running.ToValue());
  f.coordinator.Send(queued.ToValue());
  REQUIRE(Eventually([&] { return fs::exists(running_part); }));
  for (const AssignMsg* task : {&queued, &running}) {
    CancelAttemptMsg cancel;
    cancel.ref = AttemptRef{task->job_id, task->task_id, task->attempt};
    f.coordinator.Send(cancel.ToValue());
  }
  // The queue is first in, first out: had the cancelled assignment stayed queued, it would run
  // before this one.
  f.coordinator.Send(later.ToValue());
  std::optional<Value> body = f.coordinator.WaitFor([](const std::string& type, const Value&) {
    return type == msg::kTaskDone || type == msg::kTaskFailed;
  });
  REQUIRE(body);
  CHECK(body->Find("type")->as_string() == msg::kTaskDone);
  CHECK(body->Find("task_id")->as_string() == later.task_id);
  CHECK(fs::exists(later_mark));
  CHECK_FALSE(fs::exists(cancelled_mark));
}

TEST_CASE("a finished attempt's part file stays for the coordinator and heartbeats carry load") {
  Fixture f;
  AssignMsg task = f.Reduce(0, {});
  f.coordinator.Send(task.ToValue());
  std::optional<Value> body = f.coordinator.WaitForType(msg::kTaskDone);
  REQUIRE(body);
  std::string error;
  std::optional<TaskDoneMsg> done = TaskDoneMsg::FromValue(*body, &error);
  REQUIRE_MESSAGE(done, error);
  REQUIRE(done->outputs.size() == 1);
  CHECK(done->outputs[0].location == (f.temporary / "r-00000.a1" / "part-00000").string());

  std::optional<HeartbeatMsg> hb = f.coordinator.WaitForIdleHeartbeat();
  REQUIRE(hb);
  CHECK(fs::exists(done->outputs[0].location));
  CHECK(hb->free_slots == 2);
  CHECK(hb->cores >= 1);
  CHECK(hb->cpu >= 0);
  CHECK(hb->host_cpu >= 0);
  CHECK(hb->host_cpu <= 1);
  CHECK(hb->load1 >= 0);
  CHECK(hb->rss_kb > 0);
  CHECK(hb->disk_free_bytes > 0);
}

}  // namespace
}  // namespace zmr
