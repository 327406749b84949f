// End-to-end tests: the real zmr-coordinator, zmr-worker and zmr binaries on loopback ports bound
// at run time, checked the way a user would check them: output bytes against an independent
// reference, job states, exit codes, files that must (not) exist. Every process is stopped by the
// harness (tests/support/cluster.h), also when a check fails.
#include <doctest/doctest.h>
#include <msgpack.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;
using Clock = std::chrono::steady_clock;

// Size of the corpus for the tests that need a job to be caught in the middle of its map phase:
// 40 maps over it keep two single-slot workers busy for several seconds, long after the first
// map finished (at the kill, typically 1-3 of the 40 maps are done).
constexpr int64_t kLargeCorpusBytes = 32 << 20;
constexpr int kLargeCorpusMaps = 40;

// A corpus generated once per test process and shared by the tests that only read it.
const fs::path& LargeCorpus() {
  static std::unique_ptr<TempDir> dir;
  if (!dir) {
    dir = std::make_unique<TempDir>("large-corpus");
    GenerateCorpus(dir->path(), {.seed = 7, .total_bytes = kLargeCorpusBytes, .files = 6});
  }
  return dir->path();
}

const std::string& LargeCorpusWordCount() {
  static const std::string reference = ReferenceWordCount(CorpusFiles(LargeCorpus()));
  return reference;
}

// A job whose event sequence has not moved for this long has stalled: every running attempt
// reports progress (a task_progress event) every 0.5 s.
constexpr milliseconds kStallLimit{30000};

// Polls the job's status until it ends. Returns true then. Fails the test and returns false when
// the job stalls instead (last_seq unchanged for kStallLimit while not terminal: a lost report, a
// task left RUNNING forever), so the caller stops checking that job. Fails the test if status
// cannot be read.
[[nodiscard]] bool AwaitEnd(const Cluster& cluster, const std::string& job_id) {
  int64_t last_seq = -1;
  auto last_change = Clock::now();
  for (;;) {
    std::optional<Json> job = Status(cluster, job_id);
    REQUIRE_MESSAGE(job.has_value(), "cannot read the status of " << job_id);
    if (IsTerminal(job->String("state"))) return true;
    const auto now = Clock::now();
    if (job->Int("last_seq") != last_seq) {
      last_seq = job->Int("last_seq");
      last_change = now;
    } else if (now - last_change >= kStallLimit) {
      ClientResult status = cluster.RunClient({"status", job_id, "--json"});
      FAIL_CHECK("job " << job_id << " made no progress for " << kStallLimit.count()
                        << " ms: " << status.out << "\n"
                        << cluster.Logs());
      return false;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
}

// `zmr wait JOB`: its exit code says how the job ended.
ClientResult WaitJob(const Cluster& cluster, const std::string& job_id) {
  return cluster.RunClient({"wait", job_id, "--no-progress"});
}

// A finished job's output directory holds exactly part-00000..part-(R-1) and an empty _SUCCESS,
// each part sorted by key, and all lines together equal the reference.
void CheckJobOutput(const fs::path& output, int reduces, const std::string& expected) {
  std::vector<std::string> want = {"_SUCCESS"};
  for (int r = 0; r < reduces; ++r) want.push_back(PartName(r));
  std::sort(want.begin(), want.end());
  CHECK(Join(ListDir(output)) == Join(want));
  CHECK(!fs::exists(output / "_temporary"));
  if (fs::exists(output / "_SUCCESS")) CHECK(fs::file_size(output / "_SUCCESS") == 0);
  for (int r = 0; r < reduces; ++r) {
    const std::string part = ReadFile(output / PartName(r));
    INFO(PartName(r));
    CHECK(KeysStrictlyIncreasing(part));
    if (!part.empty()) CHECK(part.back() == '\n');
  }
  const std::string actual = ReadSortedOutput(output);
  CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
}

// Bytes of one msgpack document built with a packer callback.
std::string Msgpack(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& build) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  build(packer);
  return std::string(buffer.data(), buffer.size());
}

// A msgpack map of string keys to values given as pre-packed bytes (so any shape can be built).
std::string MsgpackMap(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out = Msgpack([&](auto& pk) { pk.pack_map(static_cast<uint32_t>(fields.size())); });
  for (const auto& [key, packed_value] : fields) {
    out += Msgpack([&](auto& pk) { pk.pack(key); });
    out += packed_value;
  }
  return out;
}

template <typename T>
std::string P(const T& value) {
  return Msgpack([&](auto& pk) { pk.pack(value); });
}
std::string P(const char* s) { return P(std::string(s)); }

// The bytes of a string literal, embedded NULs included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

// Sends one multi-frame message without blocking forever (DEALER with a bounded send timeout).
void SendFrames(zmq::socket_t& socket, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const bool more = i + 1 < frames.size();
    socket.send(zmq::buffer(frames[i]), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// Garbage common to both ROUTER sockets: bytes that are not a valid message of any kind.
std::vector<std::string> CommonGarbage(std::mt19937& rng, int kind) {
  std::uniform_int_distribution<int> small(0, 300);
  switch (kind) {
    case 0:
      return {RandomBytes(rng, static_cast<size_t>(small(rng)))};
    case 1: {  // several frames of random bytes
      std::vector<std::string> frames;
      const int n = 2 + small(rng) % 5;
      for (int i = 0; i < n; ++i) frames.push_back(RandomBytes(rng, static_cast<size_t>(small(rng) % 40)));
      return frames;
    }
    case 2:  // valid msgpack, not a map
      switch (small(rng) % 4) {
        case 0: return {P(std::vector<int>{1, 2, 3})};
        case 1: return {P("ready")};
        case 2: return {P(int64_t{-42})};
        default: return {Msgpack([](auto& pk) { pk.pack_nil(); })};
      }
    case 3:  // a map without a type
      return {MsgpackMap({{"name", P("x")}, {"slots", P(1)}})};
    case 4:  // a non-string type
      return {MsgpackMap({{"type", P(7)}})};
    case 5:  // an unknown type
      return {MsgpackMap({{"type", P("xyzzy-" + std::to_string(small(rng)))}})};
    case 6: {  // a valid message cut short
      std::string whole = MsgpackMap({{"type", P("hello")}, {"proto", P(1)}, {"pad", P(std::string(40, 'p'))}});
      return {whole.substr(0, 1 + static_cast<size_t>(small(rng)) % (whole.size() - 1))};
    }
    case 7:  // headers announcing huge containers that are not there
      switch (small(rng) % 4) {
        case 0: return {Bytes("\xdf\xff\xff\xff\xff\xa4type")};
        case 1: return {Bytes("\xdd\xff\xff\xff\xff\x01\x02")};
        case 2: return {Bytes("\xdb\xff\xff\xff\xf0" "abc")};
        default: return {Bytes("\xc6\x7f\xff\xff\xff" "abc")};
      }
    case 8: {  // nesting far deeper than any limit
      std::string deep(200, '\x91');
      deep += '\x01';
      return {deep};
    }
    case 9:  // non-string map keys
      return {Msgpack([](auto& pk) {
        pk.pack_map(2);
        pk.pack(1);
        pk.pack(std::string("ready"));
        pk.pack(std::string("type"));
        pk.pack(std::string("ready"));
      })};
    case 10:  // an ext value and a float where text is expected
      return {Bytes("\x82\xa4type\xd4\x01\x02\xa5proto\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00")};
    case 11:  // an empty frame
      return {std::string()};
    default:  // a big frame of random bytes
      return {RandomBytes(rng, 256 * 1024)};
  }
}
constexpr int kCommonGarbageKinds = 13;

// Garbage for the workers socket: worker messages of the wrong shape, and well-formed ones that
// refer to nothing (unknown jobs, tasks, attempts).
std::vector<std::string> WorkerGarbage(std::mt19937& rng, int i) {
  const int kind = i % (kCommonGarbageKinds + 10);
  if (kind < kCommonGarbageKinds) return CommonGarbage(rng, kind);
  const std::string name = "garbage-" + std::to_string(i);
  switch (kind - kCommonGarbageKinds) {
    case 0:
      return {MsgpackMap({{"type", P("ready")}, {"proto", P(1)}, {"name", P(name)},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P("x")}})};
    case 1:
      return {MsgpackMap({{"type", P("ready")}, {"proto", P("1")}, {"name", P(name)},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P(2)}})};
    case 2:  // slots out of range
      return {MsgpackMap({{"type", P("ready")}, {"proto", P(1)}, {"name", P(name)},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P(i % 2 ? 0 : 5000)}})};
    case 3:  // another protocol version: refused, never registered
      return {MsgpackMap({{"type", P("ready")}, {"proto", P(2)}, {"name", P(name)},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P(1)}})};
    case 4:  // an empty name
      return {MsgpackMap({{"type", P("ready")}, {"proto", P(1)}, {"name", P("")},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P(1)}})};
    case 5:  // well-formed task_done for a job nobody knows, from an unregistered peer
      return {MsgpackMap({{"type", P("task_done")}, {"job_id", P("job_nope")},
                          {"task_id", P("m-00000")}, {"attempt", P(1)},
                          {"outputs", Msgpack([](auto& pk) { pk.pack_array(0); })},
                          {"counters", Msgpack([](auto& pk) { pk.pack_map(0); })}})};
    case 6:
      return {MsgpackMap({{"type", P("heartbeat")}, {"running", P("x")}})};
    case 7:
      return {MsgpackMap({{"type", P("task_failed")}, {"job_id", P("job_nope")},
                          {"task_id", P("r-00001")}, {"attempt", P("1")}, {"error", P("e")}})};
    case 8:
      return {MsgpackMap({{"type", P("disconnect")}})};
    default:  // a right message in a three-frame envelope
      return {"", MsgpackMap({{"type", P("heartbeat")}, {"running", P(0)}})};
  }
}

// Garbage a registered worker could send: task messages about jobs, tasks and attempts that do not
// exist or with wrong field types, heartbeats with odd values.
std::vector<std::string> RegisteredWorkerGarbage(std::mt19937& rng, int i) {
  const int kind = i % (kCommonGarbageKinds + 9);
  if (kind < kCommonGarbageKinds) return CommonGarbage(rng, kind);
  const auto empty_array = Msgpack([](auto& pk) { pk.pack_array(0); });
  const auto empty_map = Msgpack([](auto& pk) { pk.pack_map(0); });
  switch (kind - kCommonGarbageKinds) {
    case 0:
      return {MsgpackMap({{"type", P("task_done")}, {"job_id", P("job_nope")},
                          {"task_id", P("m-00000")}, {"attempt", P(1)},
                          {"outputs", empty_array}, {"counters", empty_map}})};
    case 1:
      return {MsgpackMap({{"type", P("task_done")}, {"job_id", P("job_nope")},
                          {"task_id", P("bogus")}, {"attempt", P(-3)}, {"outputs", P("x")},
                          {"counters", empty_map}})};
    case 2:
      return {MsgpackMap({{"type", P("task_done")}, {"job_id", P("job_nope")},
                          {"task_id", P("r-99999")}, {"attempt", P(1)},
                          {"outputs", Msgpack([](auto& pk) {
                             pk.pack_array(1);
                             pk.pack_map(1);
                             pk.pack(std::string("partition"));
                             pk.pack(std::string("zero"));
                           })},
                          {"counters", Msgpack([](auto& pk) {
                             pk.pack_map(1);
                             pk.pack(std::string("n"));
                             pk.pack(std::string("many"));
                           })}})};
    case 3:
      return {MsgpackMap({{"type", P("task_failed")}, {"job_id", P("job_nope")},
                          {"task_id", P("m-00001")}, {"attempt", P(1)}, {"error", P("boom")}})};
    case 4:
      return {MsgpackMap({{"type", P("task_progress")}, {"job_id", P("job_nope")},
                          {"task_id", P("m-00000")}, {"attempt", P(1)},
                          {"progress", P(i % 2 ? 5.0 : std::nan(""))}})};
    case 5:
      return {MsgpackMap({{"type", P("task_progress")}, {"job_id", P("job_nope")},
                          {"task_id", P("m-00000")}, {"attempt", P(1)}, {"progress", P("half")}})};
    case 6:
      return {MsgpackMap({{"type", P("heartbeat")}, {"running", P(int64_t{-5})}})};
    case 7:
      return {MsgpackMap({{"type", P("heartbeat")}, {"running", P(std::numeric_limits<int64_t>::max())}})};
    default:  // an invalid ready on a registered connection
      return {MsgpackMap({{"type", P("ready")}, {"proto", P(1)}, {"name", P(42)},
                          {"host", P("h")}, {"pid", P(1)}, {"slots", P(1)}})};
  }
}

// Garbage for the clients socket: requests of the wrong shape and requests about nothing.
std::vector<std::string> ClientGarbage(std::mt19937& rng, int i) {
  const int kind = i % (kCommonGarbageKinds + 10);
  if (kind < kCommonGarbageKinds) return CommonGarbage(rng, kind);
  switch (kind - kCommonGarbageKinds) {
    case 0:
      return {MsgpackMap({{"type", P("submit")}, {"app", P("wordcount")}, {"inputs", P("notarray")},
                          {"output", P("/nonexistent/out")}})};
    case 1:
      return {MsgpackMap({{"type", P("hello")}, {"proto", P(99)}})};
    case 2:
      return {MsgpackMap({{"type", P("hello")}})};
    case 3:
      return {MsgpackMap({{"type", P("status")}, {"job_id", P(42)}})};
    case 4:
      return {MsgpackMap({{"type", P("cancel")}, {"job_id", P("job_nope")}})};
    case 5:  // relative paths: refused before anything is created
      return {MsgpackMap({{"type", P("submit")}, {"app", P("wordcount")},
                          {"inputs", P(std::vector<std::string>{"rel/in.txt"})},
                          {"output", P("rel/out")}, {"params", Msgpack([](auto& pk) { pk.pack_map(0); })},
                          {"maps", P(1)}, {"reduces", P(1)}})};
    case 6:
      return {MsgpackMap({{"type", P("jobs")}, {"proto", P("x")}})};
    case 7:
      return {MsgpackMap({{"type", P("submit")}, {"app", P("wordcount")},
                          {"inputs", P(std::vector<std::string>{"/nonexistent/in.txt"})},
                          {"output", P("/nonexistent/out")}, {"maps", P("7")}})};
    case 8:  // a REQ-like envelope whose delimiter is not empty
      return {"x", MsgpackMap({{"type", P("jobs")}})};
    default:  // too many frames
      return {"", "", MsgpackMap({{"type", P("workers")}})};
  }
}

// Receives messages on `socket` until one is a msgpack map whose "type" is `type`; false after
// `patience`. Other messages (replies to earlier garbage) are skipped.
bool ReceiveType(zmq::socket_t& socket, const std::string& type, milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, milliseconds(100));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      continue;
    }
    try {
      msgpack::object_handle handle =
          msgpack::unpack(static_cast<const char*>(frames.back().data()), frames.back().size());
      const msgpack::object& obj = handle.get();
      if (obj.type != msgpack::type::MAP) continue;
      for (uint32_t k = 0; k < obj.via.map.size; ++k) {
        const msgpack::object_kv& kv = obj.via.map.ptr[k];
        if (kv.key.type == msgpack::type::STR && kv.key.as<std::string>() == "type" &&
            kv.val.type == msgpack::type::STR && kv.val.as<std::string>() == type) {
          return true;
        }
      }
    } catch (const std::exception&) {
      // not msgpack: skip
    }
  }
  return false;
}

zmq::socket_t Dealer(zmq::context_t& context, const std::string& endpoint) {
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndtimeo, 10000);
  socket.connect(endpoint);
  return socket;
}

// A TCP port on 127.0.0.1 that is bound (so nobody else gets it) but not listening: connections to
// it are refused. Closes the socket in its destructor.
class DeadPort {
 public:
  DeadPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~DeadPort() { close(fd_); }
  DeadPort(const DeadPort&) = delete;
  DeadPort& operator=(const DeadPort&) = delete;
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("wordcount over a multi-file corpus on two workers equals an independent count") {
  TempDir tmp("wordcount");
  GenerateCorpus(tmp / "in", {.seed = 1, .total_bytes = 3 << 20, .files = 6});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  REQUIRE(!expected.empty());

  Cluster cluster({.workers = 2, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(), "--output",
                       output.string(), "--maps", "7", "--reduces", "3"});
  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);

  std::optional<Json> job = Status(cluster, job_id);
  REQUIRE(job.has_value());
  CHECK(job->String("state") == "COMPLETED");
  CHECK(TaskCount(*job, "maps", "total") == 7);
  CHECK(TaskCount(*job, "maps", "done") == 7);
  CHECK(TaskCount(*job, "reduces", "total") == 3);
  CHECK(TaskCount(*job, "reduces", "done") == 3);
  CheckJobOutput(output, 3, expected);
}

// The runner pids the worker's attempt logs of a job name, with how many attempts each ran: every
// attempt has one "started ... pid N" or "reusing ... pid N" line, in its own log file or (having
// succeeded without stderr output) in the job's succeeded.log.
std::map<long, int> RunnerPids(const fs::path& work_dir, const std::string& job_id) {
  std::map<long, int> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(work_dir / "jobs" / job_id / "logs", ec)) {
    std::istringstream log(ReadFile(entry.path()));
    for (std::string line; std::getline(log, line);) {
      if (line.find("] started ") == std::string::npos &&
          line.find("] reusing ") == std::string::npos) {
        continue;
      }
      const size_t at = line.find(" pid ");
      if (at != std::string::npos) ++pids[std::strtol(line.c_str() + at + 5, nullptr, 10)];
    }
  }
  return pids;
}

TEST_CASE("a job of many tiny maps runs them on a few reused runner processes, which end with "
          "their worker") {
  TempDir tmp("runners");
  std::string text;
  for (int i = 0; i < 120; ++i) text += "w" + std::to_string(i % 17) + " tiny line\n";
  WriteFile(tmp / "in.txt", text);
  const std::string expected = ReferenceWordCount({tmp / "in.txt"});

  // Runs the word count with `maps` maps and `reduces` reduces on the cluster's worker 0 and
  // checks its output; returns how many attempts each runner pid ran (empty if it did not end).
  auto run_job = [&](Cluster& cluster, const std::string& out, int maps, int reduces) {
    std::map<long, int> pids;
    REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
    const fs::path output = tmp / out;
    const std::string job_id =
        Submit(cluster, {"--app", "wordcount", "--input", (tmp / "in.txt").string(), "--output",
                         output.string(), "--maps", std::to_string(maps), "--reduces",
                         std::to_string(reduces)});
    if (!AwaitEnd(cluster, job_id)) return pids;
    ClientResult wait = WaitJob(cluster, job_id);
    INFO(wait.Describe() << "\n" << cluster.Logs());
    REQUIRE(wait.exit_code == 0);
    CheckJobOutput(output, reduces, expected);
    return RunnerPids(cluster.WorkDir(0), job_id);
  };

  SUBCASE("reused") {
    Cluster cluster({.workers = 1, .slots = 2});
    std::map<long, int> pids = run_job(cluster, "out", 40, 2);

    // 42 attempts on 2 slots: never more than 2 runners (an idle one always takes the next).
    int attempts = 0;
    for (const auto& [pid, n] : pids) attempts += n;
    CHECK(attempts == 42);
    CHECK(pids.size() >= 1);
    CHECK(pids.size() <= 2);

    // They wait, idle, as children of the worker; its death (a hang-up on their stdin) ends them.
    std::vector<ProcessInfo> idle;
    for (const ProcessInfo& p : DescendantProcesses(cluster.worker(0).pid())) {
      if (IsIdleRunner(p)) idle.push_back(p);
    }
    CHECK_MESSAGE(idle.size() == pids.size(),
                  DescribeProcesses(DescendantProcesses(cluster.worker(0).pid())));
    cluster.KillWorker(0);
    for (const ProcessInfo& p : idle) {
      CHECK_MESSAGE(WaitUntil([&] {
                      const std::string stat = ReadFile("/proc/" + std::to_string(p.pid) + "/stat");
                      const size_t paren = stat.rfind(')');
                      return stat.empty() || (paren != std::string::npos &&
                                              stat.compare(paren + 2, 1, "Z") == 0);
                    }),
                    "runner " << p.pid << " outlived its worker");
    }
  }
  SUBCASE("one attempt per runner") {
    Cluster cluster({.workers = 0, .slots = 2});
    cluster.AddWorker(WorkerLaunch{.flags = {"--attempts-per-runner", "1"}});
    CHECK(run_job(cluster, "out1", 6, 1).size() == 7);
  }
}

TEST_CASE("invertedindex over a multi-file corpus equals an independent index") {
  TempDir tmp("invertedindex");
  GenerateCorpus(tmp / "in", {.seed = 2, .total_bytes = 2 << 20, .files = 5});
  const std::string expected = ReferenceInvertedIndex(CorpusFiles(tmp / "in"));

  Cluster cluster({.workers = 2, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "invertedindex", "--input", (tmp / "in").string(), "--output",
                       output.string(), "--maps", "5", "--reduces", "2"});
  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);
  CheckJobOutput(output, 2, expected);
}

TEST_CASE("grep with a pattern counts the same matches as std::regex over the lines") {
  TempDir tmp("grep");
  GenerateCorpus(tmp / "in", {.seed = 3, .total_bytes = 2 << 20, .files = 4});
  // Case-sensitive, with alternation, a class and a repetition; the matches are the keys.
  const std::string pattern = "[A-Z][a-z]*on|th[aeiou]+[a-z]?";
  const std::string expected = ReferenceGrep(CorpusFiles(tmp / "in"), pattern);
  REQUIRE(!expected.empty());

  Cluster cluster({.workers = 2, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "grep", "--param", "pattern=" + pattern, "--input",
                       (tmp / "in").string(), "--output", output.string(), "--maps", "6",
                       "--reduces", "2"});
  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);
  CheckJobOutput(output, 2, expected);
}

TEST_CASE("a worker killed with SIGKILL in the middle of the map phase does not stop the job") {
  const fs::path input = LargeCorpus();
  TempDir tmp("kill");
  Cluster cluster({.workers = 2, .slots = 1, .heartbeat_ms = 200, .liveness = 3});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  // Every job and worker event, to see what the coordinator made of the kill.
  Process watcher = cluster.StartClient({"watch", "--json"});

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", input.string(), "--output",
                       output.string(), "--maps", std::to_string(kLargeCorpusMaps), "--reduces",
                       "3"});
  const Json before = PollStatus(cluster, job_id, [](const Json& job) {
    return TaskCount(job, "maps", "done") >= 1;
  });
  INFO("status before the kill: state " << before.String("state") << ", maps done "
                                        << TaskCount(before, "maps", "done"));
  REQUIRE(before.String("state") == "MAPPING");
  cluster.KillWorker(1, SIGKILL);

  // The kill must have hit the map phase: a status read after it still shows MAPPING with maps
  // left to do. Otherwise this run proved nothing (make the corpus bigger).
  std::optional<Json> after = Status(cluster, job_id);
  REQUIRE(after.has_value());
  INFO("status after the kill: state " << after->String("state") << ", maps done "
                                       << TaskCount(*after, "maps", "done"));
  REQUIRE(after->String("state") == "MAPPING");
  REQUIRE(TaskCount(*after, "maps", "done") < kLargeCorpusMaps);

  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);
  std::optional<Json> job = Status(cluster, job_id);
  REQUIRE(job.has_value());
  CHECK(job->String("state") == "COMPLETED");
  CHECK(TaskCount(*job, "maps", "done") == kLargeCorpusMaps);
  CheckJobOutput(output, 3, LargeCorpusWordCount());

  // The coordinator noticed: worker-1 was declared lost and its running map failed with "lost".
  watcher.Kill(SIGINT);
  CHECK(watcher.Wait() == 0);
  bool worker_lost = false;
  bool task_lost = false;
  std::istringstream events(watcher.Stdout());
  for (std::string line; std::getline(events, line);) {
    std::optional<Json> event = Json::Parse(line);
    if (!event) continue;
    if (event->String("type") == "worker_lost" && event->String("worker") == "worker-1") {
      worker_lost = true;
    }
    if (event->String("type") == "task_failed" && event->String("job_id") == job_id &&
        event->String("worker") == "worker-1" &&
        event->String("error").find("lost") != std::string::npos) {
      task_lost = true;
    }
  }
  INFO("events:\n" << watcher.Stdout().substr(0, 20000));
  CHECK(worker_lost);
  CHECK(task_lost);
  CHECK(cluster.worker(0).Running());
}

TEST_CASE("invalid submissions exit 2 and create neither an output directory nor a job") {
  TempDir tmp("invalid");
  GenerateCorpus(tmp / "in", {.seed = 4, .total_bytes = 64 << 10, .files = 2});
  const std::string input = (tmp / "in").string();
  fs::create_directories(tmp / "full");
  WriteFile(tmp / "full" / "keep.txt", "keep me\n");

  Cluster cluster({.workers = 1, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  const int jobs_before = JobCount(cluster);

  struct Case {
    const char* what;
    std::vector<std::string> args;
    fs::path output;
  };
  const std::vector<Case> cases = {
      {"missing input",
       {"--app", "wordcount", "--input", (tmp / "in" / "nope.txt").string(), "--output",
        (tmp / "o1").string()},
       tmp / "o1"},
      {"output exists and is not empty",
       {"--app", "wordcount", "--input", input, "--output", (tmp / "full").string()},
       tmp / "full"},
      {"output parent does not exist",
       {"--app", "wordcount", "--input", input, "--output", (tmp / "no" / "such" / "o").string()},
       tmp / "no"},
      {"unknown app",
       {"--app", "nosuchapp", "--input", input, "--output", (tmp / "o3").string()},
       tmp / "o3"},
      {"--maps 0",
       {"--app", "wordcount", "--input", input, "--output", (tmp / "o4").string(), "--maps", "0"},
       tmp / "o4"},
      // (--reduces 0 is valid: a map-only job.)
      {"--reduces -1",
       {"--app", "wordcount", "--input", input, "--output", (tmp / "o5").string(), "--reduces",
        "-1"},
       tmp / "o5"},
      {"grep without a pattern",
       {"--app", "grep", "--input", input, "--output", (tmp / "o6").string()},
       tmp / "o6"},
      {"grep with an invalid regex",
       {"--app", "grep", "--param", "pattern=([a-z", "--input", input, "--output",
        (tmp / "o7").string()},
       tmp / "o7"},
      {"unknown flag",
       {"--app", "wordcount", "--input", input, "--output", (tmp / "o8").string(), "--frobnicate"},
       tmp / "o8"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.begin(), "submit");
    ClientResult r = cluster.RunClient(args);
    INFO(c.what << "\n" << r.Describe());
    CHECK(r.exit_code == 2);
    CHECK(Trim(r.out).empty());
    CHECK(!r.err.empty());
    if (c.output == tmp / "full") {
      CHECK(Join(ListDir(c.output)) == "keep.txt");
      CHECK(ReadFile(c.output / "keep.txt") == "keep me\n");
    } else {
      CHECK(!fs::exists(c.output));
    }
    CHECK(JobCount(cluster) == jobs_before);
  }
}

TEST_CASE("the coordinator itself refuses invalid submissions and creates nothing") {
  // The same refusals as above, but sent straight to the clients socket so the zmr client's own
  // checks cannot hide a missing check in the coordinator.
  TempDir tmp("invalid-raw");
  GenerateCorpus(tmp / "in", {.seed = 5, .total_bytes = 32 << 10, .files = 1});
  const std::string input = CorpusFiles(tmp / "in").front().string();
  fs::create_directories(tmp / "full");
  WriteFile(tmp / "full" / "keep.txt", "keep me\n");

  Cluster cluster({.workers = 0});
  const int jobs_before = JobCount(cluster);
  zmq::context_t context(1);
  zmq::socket_t dealer = Dealer(context, cluster.clients_endpoint());

  auto submit = [&](const std::string& app, const std::string& params_key,
                    const std::string& params_value, const std::vector<std::string>& inputs,
                    const fs::path& output, int64_t maps, int64_t reduces) {
    std::vector<std::pair<std::string, std::string>> fields = {
        {"type", P("submit")}, {"proto", P(1)}, {"app", P(app)}, {"inputs", P(inputs)},
        {"output", P(output.string())}, {"maps", P(maps)}, {"reduces", P(reduces)}};
    if (params_key.empty()) {
      fields.emplace_back("params", Msgpack([](auto& pk) { pk.pack_map(0); }));
    } else {
      fields.emplace_back("params", Msgpack([&](auto& pk) {
                            pk.pack_map(1);
                            pk.pack(params_key);
                            pk.pack(params_value);
                          }));
    }
    SendFrames(dealer, {MsgpackMap(fields)});
  };
  struct Case {
    const char* what;
    std::function<void()> send;
    fs::path output;
  };
  const std::vector<Case> cases = {
      {"missing input",
       [&] { submit("wordcount", "", "", {(tmp / "nope.txt").string()}, tmp / "o1", 1, 1); },
       tmp / "o1"},
      {"relative input", [&] { submit("wordcount", "", "", {"in.txt"}, tmp / "o2", 1, 1); },
       tmp / "o2"},
      {"no inputs", [&] { submit("wordcount", "", "", {}, tmp / "o3", 1, 1); }, tmp / "o3"},
      {"output exists and is not empty",
       [&] { submit("wordcount", "", "", {input}, tmp / "full", 1, 1); }, tmp / "full"},
      {"output parent does not exist",
       [&] { submit("wordcount", "", "", {input}, tmp / "no" / "o", 1, 1); }, tmp / "no"},
      {"unknown app", [&] { submit("nosuchapp", "", "", {input}, tmp / "o4", 1, 1); },
       tmp / "o4"},
      {"negative maps", [&] { submit("wordcount", "", "", {input}, tmp / "o5", -1, 1); },
       tmp / "o5"},
      {"negative reduces", [&] { submit("wordcount", "", "", {input}, tmp / "o6", 1, -1); },
       tmp / "o6"},
      {"grep without a pattern", [&] { submit("grep", "", "", {input}, tmp / "o7", 1, 1); },
       tmp / "o7"},
      {"grep with an invalid regex",
       [&] { submit("grep", "pattern", "([a-z", {input}, tmp / "o8", 1, 1); }, tmp / "o8"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    c.send();
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, milliseconds(30000));
    REQUIRE((item.revents & ZMQ_POLLIN) != 0);
    zmq::message_t reply;
    REQUIRE(dealer.recv(reply, zmq::recv_flags::dontwait));
    msgpack::object_handle handle =
        msgpack::unpack(static_cast<const char*>(reply.data()), reply.size());
    std::map<std::string, msgpack::object> fields;
    handle.get().convert(fields);
    REQUIRE(fields.count("type") == 1);
    CHECK(fields["type"].as<std::string>() == "error");
    if (fields.count("code")) CHECK(fields["code"].as<std::string>() == "invalid");
    if (c.output == tmp / "full") {
      CHECK(Join(ListDir(c.output)) == "keep.txt");
    } else {
      CHECK(!fs::exists(c.output));
    }
    CHECK(JobCount(cluster) == jobs_before);
  }
}

TEST_CASE("garbage on the workers and clients sockets leaves the coordinator serving") {
  TempDir tmp("garbage");
  GenerateCorpus(tmp / "in", {.seed = 6, .total_bytes = 1 << 20, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 1, .slots = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  std::mt19937 rng(20240601);
  zmq::context_t context(1);
  {
    // An unregistered peer on the workers socket.
    zmq::socket_t stranger = Dealer(context, cluster.workers_endpoint());
    for (int i = 0; i < 100; ++i) SendFrames(stranger, WorkerGarbage(rng, i));

    // A peer that registers properly, then talks nonsense, then leaves.
    zmq::socket_t impostor = Dealer(context, cluster.workers_endpoint());
    SendFrames(impostor, {MsgpackMap({{"type", P("ready")}, {"proto", P(1)},
                                      {"name", P("garbage-registered")}, {"host", P("h")},
                                      {"pid", P(1)}, {"slots", P(1)}})});
    REQUIRE_MESSAGE(ReceiveType(impostor, "welcome", milliseconds(30000)), cluster.Logs());
    for (int i = 0; i < 100; ++i) SendFrames(impostor, RegisteredWorkerGarbage(rng, i));
    SendFrames(impostor, {MsgpackMap({{"type", P("disconnect")}})});

    // A client that sends nonsense, then asks a proper question on the same connection.
    zmq::socket_t client = Dealer(context, cluster.clients_endpoint());
    for (int i = 0; i < 100; ++i) SendFrames(client, ClientGarbage(rng, i));
    SendFrames(client, {MsgpackMap({{"type", P("hello")}, {"proto", P(1)}})});
    CHECK_MESSAGE(ReceiveType(client, "hello", milliseconds(60000)), cluster.Logs());
  }
  REQUIRE_MESSAGE(cluster.coordinator().Running(), cluster.Logs());

  // Only the real worker is registered (the impostor said goodbye; no garbage registered).
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());
  ClientResult workers = cluster.RunClient({"workers", "--json"});
  REQUIRE(workers.exit_code == 0);
  CHECK(workers.out.find("garbage") == std::string::npos);
  CHECK(JobCount(cluster) == 0);

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(), "--output",
                       output.string(), "--maps", "4", "--reduces", "2"});
  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);
  CheckJobOutput(output, 2, expected);
  CHECK(cluster.coordinator().Running());
}

TEST_CASE("a job submitted with no workers stays SUBMITTED and completes once a worker starts") {
  TempDir tmp("no-workers");
  GenerateCorpus(tmp / "in", {.seed = 8, .total_bytes = 512 << 10, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0, .slots = 2});
  REQUIRE(cluster.WaitForWorkers(0));

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", (tmp / "in").string(), "--output",
                       output.string(), "--maps", "3", "--reduces", "2"});
  // Nothing can run it: whenever we look, it is waiting.
  for (int look = 0; look < 5; ++look) {
    std::optional<Json> job = Status(cluster, job_id);
    REQUIRE(job.has_value());
    CHECK(job->String("state") == "SUBMITTED");
    CHECK(TaskCount(*job, "maps", "running") == 0);
    CHECK(TaskCount(*job, "maps", "done") == 0);
    std::this_thread::sleep_for(milliseconds(200));
  }
  CHECK(!fs::exists(output / "_SUCCESS"));

  cluster.AddWorker();
  if (!AwaitEnd(cluster, job_id)) return;
  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe() << "\n" << cluster.Logs());
  REQUIRE(wait.exit_code == 0);
  CheckJobOutput(output, 2, expected);
}

TEST_CASE("zmr cancel stops a running job and reports a finished one as already finished") {
  const fs::path input = LargeCorpus();
  TempDir tmp("cancel");
  GenerateCorpus(tmp / "small", {.seed = 9, .total_bytes = 128 << 10, .files = 2});
  Cluster cluster({.workers = 1, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(1), cluster.Logs());

  const fs::path output = tmp / "out";
  const std::string job_id =
      Submit(cluster, {"--app", "wordcount", "--input", input.string(), "--output",
                       output.string(), "--maps", std::to_string(kLargeCorpusMaps)});
  const Json running = PollStatus(cluster, job_id, [](const Json& job) {
    return job.String("state") == "MAPPING" && TaskCount(job, "maps", "running") >= 1;
  });
  REQUIRE(running.String("state") == "MAPPING");

  ClientResult cancel = cluster.RunClient({"cancel", job_id});
  INFO(cancel.Describe());
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out.find("cancelled") != std::string::npos);
  CHECK(cancel.out.find("already") == std::string::npos);

  ClientResult wait = WaitJob(cluster, job_id);
  INFO(wait.Describe());
  CHECK(wait.exit_code == 4);
  std::optional<Json> job = Status(cluster, job_id);
  REQUIRE(job.has_value());
  CHECK(job->String("state") == "CANCELLED");
  CHECK(!fs::exists(output / "_SUCCESS"));

  ClientResult again = cluster.RunClient({"cancel", job_id});
  INFO(again.Describe());
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("already finished") != std::string::npos);
  CHECK(again.out.find("CANCELLED") != std::string::npos);

  // The worker is free again: a new job runs to completion; cancelling it afterwards changes
  // nothing.
  const fs::path small_output = tmp / "small-out";
  const std::string small_job =
      Submit(cluster, {"--app", "wordcount", "--input", (tmp / "small").string(), "--output",
                       small_output.string()});
  if (!AwaitEnd(cluster, small_job)) return;
  ClientResult small_wait = WaitJob(cluster, small_job);
  INFO(small_wait.Describe() << "\n" << cluster.Logs());
  CHECK(small_wait.exit_code == 0);
  std::optional<Json> small = Status(cluster, small_job);
  REQUIRE(small.has_value());
  REQUIRE(small->String("state") == "COMPLETED");
  ClientResult late = cluster.RunClient({"cancel", small_job});
  INFO(late.Describe());
  CHECK(late.exit_code == 0);
  CHECK(late.out.find("already finished") != std::string::npos);
  CHECK(late.out.find("COMPLETED") != std::string::npos);
  CHECK(Status(cluster, small_job)->String("state") == "COMPLETED");
  CheckJobOutput(small_output, 1, ReferenceWordCount(CorpusFiles(tmp / "small")));

  ClientResult unknown = cluster.RunClient({"cancel", "job_does_not_exist"});
  INFO(unknown.Describe());
  CHECK(unknown.exit_code == 2);
}

TEST_CASE("every command against a port nobody listens on exits 3") {
  TempDir tmp("unreachable");
  WriteFile(tmp / "in.txt", "some words\n");
  DeadPort port;
  const std::vector<std::vector<std::string>> commands = {
      {"wait", "job_x"},
      {"status", "job_x"},
      {"jobs"},
      {"workers", "--json"},
      {"cancel", "job_x"},
      {"watch", "job_x"},
      {"submit", "--app", "wordcount", "--input", (tmp / "in.txt").string(), "--output",
       (tmp / "out").string()},
  };
  for (const std::vector<std::string>& command : commands) {
    std::vector<std::string> argv = {Cluster::ClientBinary().string(), "--coordinator",
                                     port.endpoint(), "--timeout-ms", "300"};
    argv.insert(argv.end(), command.begin(), command.end());
    ClientResult r = RunCommand(argv, tmp.path());
    INFO("zmr " << Join(command) << "\n" << r.Describe());
    CHECK(r.exit_code == 3);
    CHECK(!r.err.empty());
  }
  CHECK(!fs::exists(tmp / "out"));
}

TEST_CASE("a Python client written from PROTOCOL.md submits a job and follows its events") {
  TempDir tmp("python");
  GenerateCorpus(tmp / "in", {.seed = 10, .total_bytes = 1 << 20, .files = 3});
  Cluster cluster({.workers = 2, .slots = 2, .heartbeat_ms = 200});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  const fs::path output = tmp / "out";
  Process script({"/usr/bin/python3",
                  (fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "protocol_client.py").string(),
                  cluster.clients_endpoint(), (tmp / "in").string(), output.string()},
                 tmp / "python.out", tmp / "python.err");
  std::optional<int> code = script.Wait();
  INFO("stdout: " << script.Stdout() << "\nstderr: " << script.Stderr() << "\n" << cluster.Logs());
  REQUIRE(code == 0);  // 3: the script saw the job stall
  CheckJobOutput(output, 2, ReferenceWordCount(CorpusFiles(tmp / "in")));
}
