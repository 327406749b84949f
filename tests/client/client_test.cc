// Tests for the zmr client: argument parsing, formatting and exit-code decisions as pure functions,
// and whole invocations of Run() against a fake coordinator (a ROUTER and a PUB on loopback
// ports chosen at run time, answering from its own thread).
#include "client/client.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <zmq.hpp>

namespace zmr::client {
namespace {

namespace fs = std::filesystem;

ParseResult Parse(std::vector<std::string> args, std::string env = "") {
  return ParseArgs(args, env);
}

void CheckUsageError(std::vector<std::string> args, const std::string& needle) {
  CAPTURE(args);
  ParseResult r = Parse(args);
  CHECK_FALSE(r.ok);
  CHECK(r.error.rfind("zmr: ", 0) == 0);
  CHECK(r.error.find('\n') == std::string::npos);
  CHECK(r.error.find(needle) != std::string::npos);
}

Value JobInfo(const std::string& job_id, const std::string& state) {
  Value maps;
  maps.Set("total", 32);
  maps.Set("pending", 10);
  maps.Set("running", 4);
  maps.Set("done", 18);
  maps.Set("failed", 0);
  Value reduces;
  reduces.Set("total", 2);
  reduces.Set("pending", 2);
  reduces.Set("running", 0);
  reduces.Set("done", 0);
  reduces.Set("failed", 0);
  Value counters;
  counters.Set("map_output_records", 500);
  counters.Set("map_input_records", 100);
  counters.Set("reduce_output_records", 0);
  Value job;
  job.Set("job_id", job_id);
  job.Set("name", "counting");
  job.Set("app", "wordcount");
  job.Set("output", "/tmp/out");
  job.Set("state", state);
  job.Set("error", state == "FAILED" ? "map m-00001 failed 4 times" : "");
  job.Set("input_files", 3);
  job.Set("input_bytes", 12345);
  job.Set("submitted_ms", 1700000000000LL);
  job.Set("finished_ms", state == "COMPLETED" || state == "FAILED" || state == "CANCELLED"
                             ? 1700000007000LL
                             : 0LL);
  job.Set("elapsed_ms", 7000);
  job.Set("maps", maps);
  job.Set("reduces", reduces);
  job.Set("map_progress", 0.41);
  job.Set("reduce_progress", 0.0);
  job.Set("counters", counters);
  job.Set("last_seq", 42);
  return job;
}

Value Reply(const char* type) {
  Value v;
  v.Set("type", type);
  return v;
}

// A stand-in coordinator: answers client requests with `handler` (nullopt: stay silent) and,
// when `publish` is set, calls it every few milliseconds with the PUB socket. Everything runs on
// its own thread; the destructor stops and joins it.
class FakeCoordinator {
 public:
  using Handler = std::function<std::optional<Value>(const Value& request)>;
  using Publisher = std::function<void(zmq::socket_t& pub)>;

  explicit FakeCoordinator(Handler handler, Publisher publish = nullptr,
                           std::string events_host = "0.0.0.0")
      : handler_(std::move(handler)),
        publish_(std::move(publish)),
        events_host_(std::move(events_host)) {
    std::promise<void> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] { Loop(ready); });
    started.wait();
  }
  ~FakeCoordinator() {
    stop_ = true;
    thread_.join();
  }

  const std::string& endpoint() const { return endpoint_; }
  int requests() const { return requests_; }
  std::vector<Value> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  void Loop(std::promise<void>& ready) {
    zmq::context_t context;
    zmq::socket_t router(context, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    endpoint_ = router.get(zmq::sockopt::last_endpoint);
    zmq::socket_t pub(context, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    pub.bind("tcp://127.0.0.1:*");
    const std::string pub_endpoint = pub.get(zmq::sockopt::last_endpoint);
    const std::string port = pub_endpoint.substr(pub_endpoint.rfind(':'));
    events_ = "tcp://" + events_host_ + port;
    ready.set_value();
    while (!stop_) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      if (publish_) publish_(pub);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> frames;
      zmq::message_t frame;
      do {
        (void)router.recv(frame);
        frames.emplace_back(std::move(frame));
      } while (frames.back().more());
      std::string error;
      std::optional<Value> request = Unpack(frames.back().to_string_view(), &error);
      if (!request) continue;
      ++requests_;
      {
        std::lock_guard lock(mu_);
        received_.push_back(*request);
      }
      std::optional<Value> reply;
      const Value* type = request->Find("type");
      if (type && type->is_string() && type->as_string() == "hello") {
        reply = Reply("hello");
        reply->Set("proto", 1);
        reply->Set("version", "test");
        reply->Set("events", events_);
        if (std::optional<Value> custom = handler_(*request)) reply = custom;
      } else {
        reply = handler_(*request);
      }
      if (!reply) continue;
      router.send(zmq::buffer(frames.front().to_string_view()), zmq::send_flags::sndmore);
      router.send(zmq::buffer(Pack(*reply)), zmq::send_flags::none);
    }
  }

  Handler handler_;
  Publisher publish_;
  std::string events_host_;
  std::string endpoint_;
  std::string events_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::vector<Value> received_;
  std::thread thread_;
};

std::string TypeOf(const Value& request) {
  const Value* t = request.Find("type");
  return t && t->is_string() ? t->as_string() : "";
}

struct Invocation {
  int code = -1;
  std::string out;
  std::string err;
};

Invocation Invoke(const std::string& coordinator, std::vector<std::string> args) {
  args.insert(args.begin(), {"--coordinator", coordinator, "--timeout-ms", "2000"});
  ParseResult parsed = ParseArgs(args, "");
  REQUIRE_MESSAGE(parsed.ok, parsed.error);
  std::ostringstream out;
  std::ostringstream err;
  Invocation result;
  result.code = Run(parsed.options, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// Like Invoke, as if stdout were a terminal (Main sets stdout_is_tty from isatty).
Invocation InvokeOnTerminal(const std::string& coordinator, std::vector<std::string> args) {
  args.insert(args.begin(), {"--coordinator", coordinator, "--timeout-ms", "2000"});
  ParseResult parsed = ParseArgs(args, "");
  REQUIRE_MESSAGE(parsed.ok, parsed.error);
  parsed.options.stdout_is_tty = true;
  std::ostringstream out;
  std::ostringstream err;
  Invocation result;
  result.code = Run(parsed.options, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

size_t Occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// A scratch directory removed at the end of the test.
// ----------------------------------------------------------------------------------------------
// Parsing

TEST_CASE("global flags may come before or after the subcommand") {
  ParseResult before = Parse({"--coordinator", "tcp://h:1", "--timeout-ms", "300", "jobs"});
  REQUIRE(before.ok);
  CHECK(before.options.command == Command::kJobs);
  CHECK(before.options.coordinator == "tcp://h:1");
  CHECK(before.options.timeout_ms == 300);

  ParseResult after = Parse({"jobs", "--coordinator=tcp://h:2", "--timeout-ms=400", "--json"});
  REQUIRE(after.ok);
  CHECK(after.options.coordinator == "tcp://h:2");
  CHECK(after.options.timeout_ms == 400);
  CHECK(after.options.json);
  CHECK(after.options.log_level == "warn");
}

TEST_CASE("the coordinator comes from the flag, else ZMR_COORDINATOR, else the default") {
  CHECK(Parse({"jobs"}).options.coordinator == "tcp://127.0.0.1:5556");
  CHECK(Parse({"jobs"}, "tcp://env:7").options.coordinator == "tcp://env:7");
  CHECK(Parse({"--coordinator", "tcp://flag:8", "jobs"}, "tcp://env:7").options.coordinator ==
        "tcp://flag:8");
  ParseResult bad_env = Parse({"jobs"}, "nonsense");
  CHECK_FALSE(bad_env.ok);
  CHECK(bad_env.error.find("ZMR_COORDINATOR") != std::string::npos);
}

TEST_CASE("submit takes several paths after one --input and repeated --input and --param") {
  ParseResult r = Parse(
      {"submit",    "--input", "a",      "b",       "c",      "--output",      "out",    "--app",
       "wordcount", "--input", "d",      "--param", "k=v",    "--param=x=y=z", "--maps", "8",
       "--reduces", "3",       "--name", "nightly", "--wait", "--no-progress"});
  REQUIRE_MESSAGE(r.ok, r.error);
  const Options& o = r.options;
  CHECK(o.command == Command::kSubmit);
  CHECK(o.inputs == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(o.output == "out");
  CHECK(o.app == "wordcount");
  CHECK(o.params == Params{{"k", "v"}, {"x", "y=z"}});
  CHECK(o.maps == 8);
  CHECK(o.reduces == 3);
  CHECK(o.name == "nightly");
  CHECK(o.wait);
  CHECK_FALSE(o.progress);
}

TEST_CASE("submit defaults leave maps to the coordinator and use one reduce") {
  ParseResult r = Parse({"submit", "--input", "a", "--output", "o", "--app", "grep"});
  REQUIRE(r.ok);
  CHECK(r.options.maps == 0);
  CHECK(r.options.reduces == 1);
  CHECK_FALSE(r.options.wait);
  CHECK(r.options.progress);
  CHECK(r.options.priority == 0);
  CHECK(r.options.speculation);
}

TEST_CASE("submit takes a priority, negative ones included, and --no-speculation") {
  ParseResult r = Parse({"submit", "--input", "a", "--output", "o", "--app", "grep", "--priority",
                         "-5", "--no-speculation"});
  REQUIRE(r.ok);
  CHECK(r.options.priority == -5);
  CHECK_FALSE(r.options.speculation);
  ParseResult eq = Parse({"submit", "--input", "a", "--output", "o", "--app", "grep",
                          "--priority=12"});
  REQUIRE(eq.ok);
  CHECK(eq.options.priority == 12);
}

TEST_CASE("submit parses streaming commands, shipped files, map-only and max attempts") {
  ParseResult r = ParseArgs({"submit", "--input", "in", "--output", "out", "--mapper",
                             "python3 m.py", "--combiner", "python3 r.py", "--reducer",
                             "python3 r.py", "--file", "m.py", "--file", "r.py", "--cmdenv",
                             "LANG=C", "--max-attempts", "2", "--reduces", "0"},
                            "");
  REQUIRE(r.ok);
  CHECK(r.options.mapper == "python3 m.py");
  CHECK(r.options.combiner == "python3 r.py");
  CHECK(r.options.reducer == "python3 r.py");
  CHECK(r.options.files == std::vector<std::string>{"m.py", "r.py"});
  CHECK(r.options.cmdenv.at("LANG") == "C");
  CHECK(r.options.max_attempts == 2);
  CHECK(r.options.reduces == 0);
  ParseResult p = ParseArgs({"submit", "--input", "in", "--output", "out", "--plugin",
                             "./libx.so", "--app", "x"},
                            "");
  REQUIRE(p.ok);
  CHECK(p.options.plugin == "./libx.so");
  // A map-only streaming job needs no reducer.
  CHECK(ParseArgs({"submit", "--input", "in", "--output", "out", "--mapper", "cat", "--reducer",
                   "NONE"},
                  "")
            .ok);
}

TEST_CASE("subcommands take their JOB argument with flags on either side") {
  ParseResult status = Parse({"status", "--json", "job_1"});
  REQUIRE(status.ok);
  CHECK(status.options.command == Command::kStatus);
  CHECK(status.options.job_id == "job_1");
  CHECK(status.options.json);
  CHECK(Parse({"watch"}).options.command == Command::kWatch);
  CHECK(Parse({"watch"}).options.job_id.empty());
  CHECK(Parse({"watch", "job_2", "--json"}).options.job_id == "job_2");
  CHECK(Parse({"wait", "job_3", "--no-progress"}).options.job_id == "job_3");
  CHECK(Parse({"cancel", "job_4"}).options.command == Command::kCancel);
  CHECK(Parse({"workers", "--log-level", "debug"}).options.log_level == "debug");
}

TEST_CASE("help and version win over everything else") {
  CHECK(Parse({"--help"}).options.command == Command::kHelp);
  CHECK(Parse({"status", "--bogus", "-h"}).options.command == Command::kHelp);
  CHECK(Parse({"--version"}).options.command == Command::kVersion);
  std::ostringstream out, err;
  Options o;
  o.command = Command::kVersion;
  CHECK(Run(o, out, err) == 0);
  CHECK(out.str() == std::string("zmr ") + ZMR_VERSION + "\n");
  std::ostringstream usage;
  o.command = Command::kHelp;
  CHECK(Run(o, usage, err) == 0);
  for (const char* sub : {"submit", "status", "jobs", "workers", "watch", "wait", "cancel"}) {
    CHECK(usage.str().find(sub) != std::string::npos);
  }
}

TEST_CASE("bad arguments are one-line usage errors") {
  const std::vector<std::string> submit = {"submit", "--input", "a", "--output", "o", "--app", "x"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = submit;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  CheckUsageError({}, "missing subcommand");
  CheckUsageError({"frobnicate"}, "unknown subcommand");
  CheckUsageError({"jobs", "--bogus"}, "unknown flag --bogus");
  CheckUsageError(with({"--maps", "abc"}), "--maps");
  CheckUsageError(with({"--maps", "0"}), "--maps");
  CheckUsageError(with({"--maps", "-3"}), "--maps");
  CheckUsageError(with({"--maps", "2x"}), "--maps");
  CheckUsageError(with({"--reduces", "-1"}), "--reduces");
  CheckUsageError(with({"--max-attempts", "0"}), "--max-attempts");
  CheckUsageError(with({"--priority", "high"}), "--priority");
  CheckUsageError(with({"--priority", "2000000"}), "--priority");
  CheckUsageError({"status", "job_x", "--priority", "1"}, "--priority");
  CheckUsageError(with({"--cmdenv", "NOEQUALS"}), "--cmdenv");
  CheckUsageError(with({"--reducer", "cat"}), "--mapper");
  CheckUsageError({"submit", "--input", "a", "--output", "o", "--mapper", "cat"}, "--reducer");
  CheckUsageError({"submit", "--input", "a", "--output", "o", "--mapper", "cat", "--reducer",
                   "cat", "--app", "x"},
                  "--app");
  CheckUsageError(with({"--reduces"}), "--reduces needs a value");
  CheckUsageError(with({"--param", "novalue"}), "KEY=VALUE");
  CheckUsageError(with({"--param", "=v"}), "KEY=VALUE");
  CheckUsageError(with({"--wait=yes"}), "takes no value");
  CheckUsageError({"submit", "--output", "o", "--app", "x"}, "--input");
  CheckUsageError({"submit", "--input", "a", "--app", "x"}, "--output");
  CheckUsageError({"submit", "--input", "a", "--output", "o"}, "--app");
  CheckUsageError({"submit", "--input", "--output", "o", "--app", "x"}, "--input needs a value");
  CheckUsageError({"status"}, "needs a JOB");
  CheckUsageError({"wait"}, "needs a JOB");
  CheckUsageError({"cancel"}, "needs a JOB");
  CheckUsageError({"status", "a", "b"}, "unexpected argument 'b'");
  CheckUsageError({"jobs", "extra"}, "unexpected argument");
  CheckUsageError({"jobs", "--maps", "3"}, "--maps is not an option of jobs");
  CheckUsageError({"wait", "j", "--json"}, "--json is not an option of wait");
  CheckUsageError({"jobs", "--timeout-ms", "0"}, "--timeout-ms");
  CheckUsageError({"jobs", "--timeout-ms", "soon"}, "--timeout-ms");
  CheckUsageError({"jobs", "--log-level", "loud"}, "--log-level");
  CheckUsageError({"jobs", "--coordinator", "localhost"}, "--coordinator");
  CheckUsageError({"jobs", "--coordinator"}, "--coordinator needs a value");
}

// ----------------------------------------------------------------------------------------------
// Pure helpers

TEST_CASE("terminal states map to exit codes") {
  CHECK(ExitCodeForState("COMPLETED") == 0);
  CHECK(ExitCodeForState("FAILED") == 1);
  CHECK(ExitCodeForState("CANCELLED") == 4);
  CHECK_FALSE(ExitCodeForState("MAPPING").has_value());
  CHECK_FALSE(ExitCodeForState("SUBMITTED").has_value());
  CHECK_FALSE(ExitCodeForState("bogus").has_value());
}

TEST_CASE("a wildcard events host is replaced by the coordinator's host") {
  CHECK(ResolveEventsEndpoint("tcp://*:5557", "tcp://10.0.0.5:5556") == "tcp://10.0.0.5:5557");
  CHECK(ResolveEventsEndpoint("tcp://0.0.0.0:5557", "tcp://coord.example:5556") ==
        "tcp://coord.example:5557");
  CHECK(ResolveEventsEndpoint("tcp://[::]:5557", "tcp://[::1]:5556") == "tcp://[::1]:5557");
  CHECK(ResolveEventsEndpoint("tcp://192.168.1.2:5557", "tcp://10.0.0.5:5556") ==
        "tcp://192.168.1.2:5557");
  CHECK(ResolveEventsEndpoint("tcp://127.0.0.1:5557", "tcp://h:1") == "tcp://127.0.0.1:5557");
  CHECK(EndpointHost("tcp://h:1") == "h");
  CHECK(EndpointHost("tcp://[::1]:1") == "[::1]");
}

TEST_CASE("durations read as minutes and seconds, with hours when needed") {
  CHECK(FormatDuration(0) == "00:00");
  CHECK(FormatDuration(7999) == "00:07");
  CHECK(FormatDuration(61000) == "01:01");
  CHECK(FormatDuration(3723000) == "1:02:03");
  CHECK(FormatDuration(-5) == "00:00");
  CHECK(FormatClock(1700000001234LL).size() == std::string("12:00:01.234").size());
  CHECK(FormatClock(1700000001234LL).substr(8) == ".234");
}

TEST_CASE("tables align columns and carry no trailing spaces") {
  std::string t = FormatTable({"A", "LONG HEADER", "C"}, {{"xxxx", "y", "z"}, {"1", "2", ""}});
  CHECK(t == "A     LONG HEADER  C\nxxxx  y            z\n1     2\n");
}

TEST_CASE("the jobs table shows one row per job with done/total counts") {
  Value jobs = Array{JobInfo("job_a", "MAPPING"), JobInfo("job_b", "COMPLETED")};
  std::string t = FormatJobsTable(jobs);
  for (const char* h : {"JOB ID", "NAME", "APP", "STATE", "MAPS", "REDUCES", "ELAPSED"}) {
    CHECK(t.find(h) != std::string::npos);
  }
  CHECK(t.find("job_a") != std::string::npos);
  CHECK(t.find("job_b") != std::string::npos);
  CHECK(t.find("18/32") != std::string::npos);
  CHECK(t.find("0/2") != std::string::npos);
  CHECK(t.find("00:07") != std::string::npos);
  CHECK(std::count(t.begin(), t.end(), '\n') == 3);
  CHECK(FormatJobsTable(Array{}).find("JOB ID") == 0);
}

TEST_CASE("the jobs table shows overall progress and age, and --all is a jobs flag") {
  Value job = JobInfo("job_a", "MAPPING");
  job.Set("age_ms", 65000);
  std::string t = FormatJobsTable(Array{job});
  for (const char* h : {"PROGRESS", "SUBMITTED", "01:05 ago", "%"}) {
    CHECK_MESSAGE(t.find(h) != std::string::npos, h);
  }
  ParseResult r = Parse({"jobs", "--all", "--json"});
  REQUIRE(r.ok);
  CHECK(r.options.all);
  CHECK_FALSE(Parse({"jobs"}).options.all);
  CheckUsageError({"status", "job_x", "--all"}, "--all");
}

TEST_CASE("the workers table shows slots used/total and heartbeat age") {
  Value w;
  w.Set("name", "worker-a");
  w.Set("host", "node1");
  w.Set("pid", 4242);
  w.Set("slots", 4);
  w.Set("running", 3);
  w.Set("heartbeat_age_ms", 400);
  w.Set("tasks_done", 17);
  w.Set("tasks_failed", 1);
  w.Set("joined_ms", 1700000000000LL);
  std::string t = FormatWorkersTable(Array{w});
  for (const char* s : {"NAME", "HOST", "PID", "SLOTS", "TASKS DONE", "FAILED", "LAST HEARTBEAT",
                        "worker-a", "node1", "4242", "3/4", "17", "0.4s ago"}) {
    CHECK_MESSAGE(t.find(s) != std::string::npos, s);
  }
}

TEST_CASE("the workers table shows assignments beyond a worker's slots as queued") {
  Value w;
  w.Set("name", "worker-a");
  w.Set("slots", 2);
  w.Set("queue", 2);
  w.Set("running", 3);
  std::string t = FormatWorkersTable(Array{w});
  CHECK_MESSAGE(t.find("2/2 +1 queued") != std::string::npos, t);
}

TEST_CASE("the workers table shows load figures, a saturated host's capacity and unknowns") {
  Value w;
  w.Set("name", "worker-a");
  w.Set("host", "node1");
  w.Set("pid", 4242);
  w.Set("slots", 4);
  w.Set("running", 1);
  w.Set("capacity", 2);
  w.Set("saturated", true);
  w.Set("cpu", 1.5);
  w.Set("host_cpu", 0.97);
  w.Set("load1", 3.5);
  w.Set("rss_kb", 2048);
  w.Set("disk_free_bytes", int64_t{3} << 30);
  Value old;  // a worker that reports no figures
  old.Set("name", "worker-b");
  old.Set("slots", 1);
  std::string t = FormatWorkersTable(Array{w, old});
  for (const char* s : {"CPU", "HOST CPU", "LOAD", "RSS", "DISK FREE", "1/4 (cap 2)", "150%",
                        "97% saturated", "3.50", "2.0M", "3.0G"}) {
    CHECK_MESSAGE(t.find(s) != std::string::npos, s);
  }
  std::string second = t.substr(t.rfind("worker-b"));
  CHECK(second.find(" - ") != std::string::npos);
  CHECK(second.find("(cap") == std::string::npos);
}

TEST_CASE("the tasks table marks stragglers and backups and shows unknown sizes as -") {
  Value slow;
  slow.Set("task_id", "m-00003");
  slow.Set("kind", "map");
  slow.Set("state", "RUNNING");
  slow.Set("attempts", 2);
  slow.Set("worker", "worker-a,worker-b");
  slow.Set("progress", 0.5);
  slow.Set("input_bytes", 3 << 20);
  slow.Set("records", 1200);
  slow.Set("duration_ms", 65000);
  slow.Set("straggler", true);
  slow.Set("speculative", true);
  Value waiting;
  waiting.Set("task_id", "r-00000");
  waiting.Set("kind", "reduce");
  waiting.Set("state", "PENDING");
  waiting.Set("input_bytes", -1);
  std::string t = FormatTasksTable(Array{slow, waiting});
  for (const char* s : {"TASK", "ATTEMPTS", "WORKER", "PROGRESS", "INPUT", "RECORDS", "DURATION",
                        "RUNNING* +backup", "worker-a,worker-b", "50%", "3.0M", "1200", "01:05",
                        "PENDING"}) {
    CHECK_MESSAGE(t.find(s) != std::string::npos, s);
  }
  CHECK(t.substr(t.find("r-00000")).find(" - ") != std::string::npos);
  ParseResult r = Parse({"tasks", "job_x", "--json"});
  REQUIRE(r.ok);
  CHECK(r.options.command == Command::kTasks);
  CHECK(r.options.job_id == "job_x");
  CHECK(r.options.json);
  CheckUsageError({"tasks"}, "tasks");
}

TEST_CASE("status shows the running attempts, backups, blacklist and why a job waits") {
  Value job = JobInfo("job_a", "MAPPING");
  Value attempt;
  attempt.Set("task_id", "m-00007");
  attempt.Set("attempt", 2);
  attempt.Set("worker", "worker-b");
  attempt.Set("progress", 0.25);
  attempt.Set("elapsed_ms", 3000);
  attempt.Set("speculative", true);
  job.Set("attempts", Array{attempt});
  job.Set("backups_launched", 1);
  job.Set("blacklisted_workers", Array{Value("worker-c")});
  job.Set("waiting", "every worker slot is busy");
  job.Set("priority", 3);
  std::string s = FormatStatus(job);
  for (const char* part : {"m-00007.a2 on worker-b  25%  00:03  (speculative backup)",
                           "1 launched", "worker-c", "every worker slot is busy", "priority"}) {
    CHECK_MESSAGE(s.find(part) != std::string::npos, part);
  }
  // None of these lines for a job without them.
  std::string plain = FormatStatus(JobInfo("job_b", "MAPPING"));
  for (const char* part : {"running ", "backups", "blacklisted", "waiting", "priority"}) {
    CHECK_MESSAGE(plain.find(part) == std::string::npos, part);
  }
}

TEST_CASE("status shows counts, progress, output, error and non-zero counters sorted") {
  std::string s = FormatStatus(JobInfo("job_a", "FAILED"));
  for (const char* part :
       {"job_a", "counting", "wordcount", "FAILED", "32 total", "10 pending", "4 running",
        "18 done", "0 failed", "(41%)", "00:07", "/tmp/out", "map m-00001 failed 4 times"}) {
    CHECK_MESSAGE(s.find(part) != std::string::npos, part);
  }
  const auto input = s.find("map_input_records");
  const auto output = s.find("map_output_records");
  REQUIRE(input != std::string::npos);
  REQUIRE(output != std::string::npos);
  CHECK(input < output);
  CHECK(s.find("reduce_output_records") == std::string::npos);  // zero: not shown
}

TEST_CASE("the progress line names state, map and reduce counts and elapsed time") {
  CHECK(FormatProgressLine(JobInfo("job_x", "MAPPING")) ==
        "job_x MAPPING  map 18/32 (41%)  reduce 0/2 (0%)  00:07");
}

TEST_CASE("the summary names the end state, output and key counters") {
  std::string s = FormatSummary(JobInfo("job_x", "COMPLETED"));
  CHECK(s.find("job_x COMPLETED in 00:07") == 0);
  CHECK(s.find("/tmp/out") != std::string::npos);
  CHECK(s.find("map_input_records") != std::string::npos);
  std::string failed = FormatSummary(JobInfo("job_x", "FAILED"));
  CHECK(failed.find("job_x FAILED after 00:07") == 0);
  CHECK(failed.find("map_input_records") == std::string::npos);
}

TEST_CASE("the summary counts tasks, input, failed attempts and backups, and gives a failure's "
          "error") {
  Value job = JobInfo("job_x", "FAILED");
  job.Set("submitted_ms", 1700000000000LL);
  job.Set("started_ms", 1700000002500LL);
  job.Set("failed_attempts", 4);
  job.Set("backups_launched", 1);
  const std::string failed = FormatSummary(job);
  INFO(failed);
  CHECK(failed.rfind("job_x FAILED after 00:07 (00:02 before the first attempt)\n", 0) == 0);
  CHECK(failed.find("tasks            18/32 maps, 0/2 reduces done\n") != std::string::npos);
  CHECK(failed.find("input            3 files, 13K\n") != std::string::npos);
  CHECK(failed.find("failed attempts  4\n") != std::string::npos);
  CHECK(failed.find("backups          1 launched\n") != std::string::npos);
  CHECK(failed.find("error            map m-00001 failed 4 times\n") != std::string::npos);

  const std::string completed = FormatSummary(JobInfo("job_x", "COMPLETED"));
  INFO(completed);
  CHECK(completed.rfind("job_x COMPLETED in 00:07\n", 0) == 0);  // no started_ms: no wait shown
  CHECK(completed.find("32 maps, 2 reduces\n") != std::string::npos);
  CHECK(completed.find("failed attempts") == std::string::npos);
  CHECK(completed.find("error") == std::string::npos);
}

TEST_CASE("events read as one line and cluster heartbeats are skipped") {
  Value assigned;
  assigned.Set("type", "task_assigned");
  assigned.Set("ts_ms", 1700000001234LL);
  assigned.Set("job_id", "job_x");
  assigned.Set("seq", 3);
  assigned.Set("task_id", "m-00003");
  assigned.Set("kind", "map");
  assigned.Set("attempt", 1);
  assigned.Set("worker", "worker-a");
  std::string line = FormatEvent(assigned);
  CHECK(line.substr(12) == " job_x task_assigned m-00003 attempt 1 on worker-a");

  Value state;
  state.Set("type", "job_state");
  state.Set("ts_ms", 1700000001234LL);
  state.Set("job_id", "job_x");
  state.Set("state", "MAPPING");
  state.Set("prev_state", "SUBMITTED");
  CHECK(FormatEvent(state).substr(12) == " job_x job_state MAPPING (was SUBMITTED)");

  Value lost;
  lost.Set("type", "worker_lost");
  lost.Set("ts_ms", 1700000001234LL);
  lost.Set("worker", "worker-b");
  lost.Set("reason", "heartbeat expired");
  CHECK(FormatEvent(lost).substr(12) == " worker-b worker_lost (heartbeat expired)");

  Value speculated;
  speculated.Set("type", "task_speculated");
  speculated.Set("ts_ms", 1700000001234LL);
  speculated.Set("job_id", "job_x");
  speculated.Set("task_id", "m-00003");
  speculated.Set("attempt", 2);
  speculated.Set("worker", "worker-a");
  speculated.Set("original_attempt", 1);
  speculated.Set("original_worker", "worker-b");
  speculated.Set("elapsed_ms", 4000);
  speculated.Set("estimated_ms", 40000);
  speculated.Set("typical_ms", 2000);
  CHECK(FormatEvent(speculated).substr(12) ==
        " job_x task_speculated m-00003 attempt 2 on worker-a: backup for attempt 1 on worker-b "
        "(running 00:04, expected 00:40, typical 00:02)");

  Value killed;
  killed.Set("type", "task_killed");
  killed.Set("ts_ms", 1700000001234LL);
  killed.Set("job_id", "job_x");
  killed.Set("task_id", "m-00003");
  killed.Set("attempt", 1);
  killed.Set("worker", "worker-b");
  killed.Set("reason", "attempt 2 finished first");
  CHECK(FormatEvent(killed).substr(12) ==
        " job_x task_killed m-00003 attempt 1 on worker-b: attempt 2 finished first");

  Value blacklisted;
  blacklisted.Set("type", "worker_blacklisted");
  blacklisted.Set("ts_ms", 1700000001234LL);
  blacklisted.Set("job_id", "job_x");
  blacklisted.Set("worker", "worker-c");
  blacklisted.Set("failures", 3);
  CHECK(FormatEvent(blacklisted).substr(12) ==
        " job_x worker_blacklisted worker-c after 3 failed attempts");

  Value beat;
  beat.Set("type", "heartbeat");
  beat.Set("ts_ms", 1700000001234LL);
  beat.Set("workers", 2);
  beat.Set("jobs", 0);
  CHECK(FormatEvent(beat).empty());
}

TEST_CASE("a terminal status stands in for the job_state event it implies") {
  Value e = FinalStateEvent(JobInfo("job_x", "FAILED"));
  CHECK(e.Find("type")->as_string() == "job_state");
  CHECK(e.Find("job_id")->as_string() == "job_x");
  CHECK(e.Find("state")->as_string() == "FAILED");
  CHECK(e.Find("seq")->as_int() == 42);
  CHECK(e.Find("ts_ms")->as_int() == 1700000007000LL);
  CHECK(e.Find("error")->as_string() == "map m-00001 failed 4 times");
}

// ----------------------------------------------------------------------------------------------
// Whole invocations against a fake coordinator

TEST_CASE("a coordinator that never answers is reported as unreachable with exit code 3") {
  FakeCoordinator silent([](const Value&) { return std::nullopt; });
  ParseResult parsed =
      ParseArgs({"--coordinator", silent.endpoint(), "--timeout-ms", "200", "jobs"}, "");
  REQUIRE(parsed.ok);
  std::ostringstream out, err;
  CHECK(Run(parsed.options, out, err) == 3);
  CHECK(out.str().empty());
  CHECK(err.str() ==
        "zmr: coordinator at " + silent.endpoint() + " did not answer within 200 ms\n");
}

TEST_CASE("every invocation says hello first with the protocol version") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "jobs") return std::nullopt;
    Value reply = Reply("jobs");
    reply.Set("jobs", Array{JobInfo("job_a", "MAPPING")});
    return reply;
  });
  Invocation r = Invoke(fake.endpoint(), {"jobs", "--json"});
  CHECK(r.code == 0);
  std::vector<Value> received = fake.received();
  REQUIRE(received.size() == 2);
  CHECK(TypeOf(received[0]) == "hello");
  CHECK(received[0].Find("proto")->as_int() == 1);
  CHECK(TypeOf(received[1]) == "jobs");
  CHECK(r.out.rfind("[{", 0) == 0);
  CHECK(r.out.find("\"job_id\":\"job_a\"") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);

  Invocation table = Invoke(fake.endpoint(), {"jobs"});
  CHECK(table.code == 0);
  CHECK(table.out.find("JOB ID") == 0);
  CHECK(table.out.find("job_a") != std::string::npos);
}

TEST_CASE("a protocol version refusal is a usage error") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "hello") return std::nullopt;
    return ErrorReply("version", "protocol 1 not supported");
  });
  Invocation r = Invoke(fake.endpoint(), {"jobs"});
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("zmr: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("status of an unknown job exits 2 naming the job") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) == "hello") return std::nullopt;
    return ErrorReply("not_found", "unknown job");
  });
  for (const char* sub : {"status", "wait", "cancel", "watch"}) {
    CAPTURE(sub);
    Invocation r = Invoke(fake.endpoint(), {sub, "job_nope"});
    CHECK(r.code == 2);
    CHECK(r.err == "zmr: no such job: job_nope\n");
    CHECK(r.out.empty());
  }
}

TEST_CASE("status prints the job as text or as one JSON object") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "status") return std::nullopt;
    Value reply = Reply("job");
    reply.Set("job", JobInfo(req.Find("job_id")->as_string(), "MAPPING"));
    return reply;
  });
  Invocation text = Invoke(fake.endpoint(), {"status", "job_a"});
  CHECK(text.code == 0);
  CHECK(text.out.find("MAPPING") != std::string::npos);
  Invocation json = Invoke(fake.endpoint(), {"status", "job_a", "--json"});
  CHECK(json.code == 0);
  CHECK(json.out.rfind("{\"job_id\":\"job_a\"", 0) == 0);
  CHECK(std::count(json.out.begin(), json.out.end(), '\n') == 1);
}

TEST_CASE("cancel reports whether it changed anything and exits 0 either way") {
  std::atomic<bool> changed{true};
  FakeCoordinator fake([&](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "cancel") return std::nullopt;
    Value reply = Reply("cancelled");
    reply.Set("job_id", req.Find("job_id")->as_string());
    reply.Set("state", changed ? "CANCELLED" : "COMPLETED");
    reply.Set("changed", changed.load());
    return reply;
  });
  Invocation first = Invoke(fake.endpoint(), {"cancel", "job_a"});
  CHECK(first.code == 0);
  CHECK(first.out == "job job_a cancelled\n");
  changed = false;
  Invocation again = Invoke(fake.endpoint(), {"cancel", "job_a"});
  CHECK(again.code == 0);
  CHECK(again.out == "job job_a already finished (COMPLETED)\n");
  Invocation json = Invoke(fake.endpoint(), {"cancel", "job_a", "--json"});
  CHECK(json.out.find("\"changed\":false") != std::string::npos);
}

TEST_CASE("submit checks inputs and output locally before contacting the coordinator") {
  TempDir dir;
  FakeCoordinator fake([](const Value&) { return std::nullopt; });
  Invocation missing =
      Invoke(fake.endpoint(), {"submit", "--input", (dir.path() / "nope").string(), "--output",
                               (dir.path() / "out").string(), "--app", "wordcount"});
  CHECK(missing.code == 2);
  CHECK(missing.err.rfind("zmr: ", 0) == 0);
  CHECK(std::count(missing.err.begin(), missing.err.end(), '\n') == 1);

  std::ofstream(dir.path() / "in.txt") << "hello world\n";
  fs::create_directory(dir.path() / "full");
  std::ofstream(dir.path() / "full" / "x") << "x\n";
  Invocation taken =
      Invoke(fake.endpoint(), {"submit", "--input", (dir.path() / "in.txt").string(), "--output",
                               (dir.path() / "full").string(), "--app", "wordcount"});
  CHECK(taken.code == 2);
  CHECK(fake.requests() == 0);
  CHECK_FALSE(fs::exists(dir.path() / "out"));
}

TEST_CASE("submit sends absolute paths and prints the job id alone") {
  TempDir dir;
  std::ofstream(dir.path() / "a.txt") << "a\n";
  std::ofstream(dir.path() / "b.txt") << "b\n";
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "submit") return std::nullopt;
    Value reply = Reply("submitted");
    reply.Set("job_id", "job_20261128023200_0001");
    reply.Set("maps", 2);
    reply.Set("reduces", 3);
    return reply;
  });
  Invocation r = Invoke(fake.endpoint(), {"submit", "--input", dir.path().string(), "--output",
                                          (dir.path() / "out").string(), "--app", "wordcount",
                                          "--reduces", "3", "--param", "k=v", "--name", "n"});
  CHECK(r.code == 0);
  CHECK(r.out == "job_20261128023200_0001\n");
  std::vector<Value> received = fake.received();
  REQUIRE(received.size() == 2);
  const Value& submit = received[1];
  CHECK(TypeOf(submit) == "submit");
  const Array& inputs = submit.Find("inputs")->as_array();
  REQUIRE(inputs.size() == 2);
  CHECK(inputs[0].as_string() == (dir.path() / "a.txt").string());
  CHECK(inputs[1].as_string() == (dir.path() / "b.txt").string());
  CHECK(submit.Find("output")->as_string() == (dir.path() / "out").string());
  CHECK(submit.Find("reduces")->as_int() == 3);
  CHECK(submit.Find("app")->as_string() == "wordcount");
  CHECK(submit.Find("name")->as_string() == "n");
  CHECK(submit.Find("params")->Find("k")->as_string() == "v");
  CHECK(submit.Find("priority")->as_int() == 0);
  CHECK(submit.Find("speculation")->as_bool());

  Invocation json =
      Invoke(fake.endpoint(), {"submit", "--input", dir.path().string(), "--output",
                               (dir.path() / "out").string(), "--app", "wordcount", "--json"});
  CHECK(json.code == 0);
  CHECK(json.out == "{\"job_id\":\"job_20261128023200_0001\",\"maps\":2,\"reduces\":3}\n");
}

TEST_CASE("a refused submission prints the coordinator's reason and exits 2") {
  TempDir dir;
  std::ofstream(dir.path() / "a.txt") << "a\n";
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "submit") return std::nullopt;
    return ErrorReply("invalid", "output /x exists and is not empty");
  });
  Invocation r =
      Invoke(fake.endpoint(), {"submit", "--input", (dir.path() / "a.txt").string(), "--output",
                               (dir.path() / "out").string(), "--app", "wordcount"});
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(r.err == "zmr: output /x exists and is not empty\n");
}

// A status handler that reports `states` one after the other (the last one repeatedly).
FakeCoordinator::Handler StatusSequence(std::vector<std::string> states) {
  auto calls = std::make_shared<std::atomic<size_t>>(0);
  return [states, calls](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "status") return std::nullopt;
    size_t i = std::min(calls->fetch_add(1), states.size() - 1);
    Value reply = Reply("job");
    reply.Set("job", JobInfo(req.Find("job_id")->as_string(), states[i]));
    return reply;
  };
}

TEST_CASE("wait exits with the code of the job's end state and prints a summary") {
  struct Case {
    std::string state;
    int code;
  };
  for (const Case& c : {Case{"COMPLETED", 0}, Case{"FAILED", 1}, Case{"CANCELLED", 4}}) {
    CAPTURE(c.state);
    FakeCoordinator fake(StatusSequence({"SUBMITTED", "MAPPING", c.state}));
    Invocation r = Invoke(fake.endpoint(), {"wait", "job_w"});
    CHECK(r.code == c.code);
    CHECK(r.out.rfind("job_w " + c.state, 0) == 0);
    // Not a terminal: progress lines go to stderr, one per state change.
    CHECK(r.err.find("job_w SUBMITTED  map") != std::string::npos);
    CHECK(r.err.find("job_w MAPPING  map") != std::string::npos);
    CHECK((r.err.find("failed: map m-00001 failed 4 times") != std::string::npos) ==
          (c.state == "FAILED"));
  }
}

TEST_CASE("on a terminal wait redraws its block in place, prints each failure once above it and "
          "replaces it with the summary") {
  auto calls = std::make_shared<std::atomic<int>>(0);
  FakeCoordinator fake([calls](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "status") return std::nullopt;
    const int i = calls->fetch_add(1);
    Value job = JobInfo("job_t", i < 3 ? "MAPPING" : "COMPLETED");
    Value failure;
    failure.Set("task_id", "m-00001");
    failure.Set("kind", "map");
    failure.Set("attempt", 1);
    failure.Set("worker", "worker-a");
    failure.Set("error", "boom");
    failure.Set("stderr_tail", Array{});
    failure.Set("ts_ms", 1700000001000LL);
    job.Set("recent_failures", i == 0 ? Array{} : Array{failure});
    job.Set("failed_attempts", i == 0 ? 0 : 1);
    Value reply = Reply("job");
    reply.Set("job", job);
    return reply;
  });
  Invocation r = InvokeOnTerminal(fake.endpoint(), {"wait", "job_t"});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(r.out.rfind("job_t \"counting\"  MAPPING  elapsed 00:07  eta ", 0) == 0);
  CHECK(r.out.find("\nmap     [") != std::string::npos);
  CHECK(r.out.find("\nreduce  [") != std::string::npos);
  // Three frames, each but the first drawn over the one before (the cursor goes up as many
  // lines as that one had, which are cleared); then the last one cleared.
  // "\r\033[<n>A\033[J" moves the cursor up n lines and clears from there.
  struct Move {
    size_t at, length;
    std::string lines;
  };
  std::vector<Move> moves;
  for (size_t at = r.out.find("\r\033["); at != std::string::npos;
       at = r.out.find("\r\033[", at + 1)) {
    const size_t digits = at + 3;
    const size_t end = r.out.find_first_not_of("0123456789", digits);
    REQUIRE(end != std::string::npos);
    REQUIRE(r.out.compare(end, 4, "A\033[J") == 0);
    moves.push_back({at, end + 4 - at, r.out.substr(digits, end - digits)});
  }
  REQUIRE(moves.size() == 3);
  size_t frame_start = 0;
  for (const Move& move : moves) {
    std::string frame = r.out.substr(frame_start, move.at - frame_start);
    // Failure lines printed before the block stay: they are not part of it.
    const std::string failure = "attempt m-00001.a1 failed on worker-a: boom\n";
    if (frame.rfind(failure, 0) == 0) frame = frame.substr(failure.size());
    CHECK(std::to_string(std::count(frame.begin(), frame.end(), '\n')) == move.lines);
    frame_start = move.at + move.length;
  }
  CHECK(Occurrences(r.out, "attempt m-00001.a1 failed on worker-a: boom\n") == 1);
  CHECK(r.out.find("1 failed attempt\n") != std::string::npos);
  // The summary replaces the last frame.
  CHECK(r.out.substr(frame_start).rfind("job_t COMPLETED in 00:07\n", 0) == 0);
  CHECK(r.out.find('\033', frame_start) == std::string::npos);
}

TEST_CASE("submit --wait --json keeps stdout to the one JSON document") {
  TempDir dir;
  std::ofstream(dir.path() / "a.txt") << "a\n";
  auto status = StatusSequence({"MAPPING", "COMPLETED"});
  FakeCoordinator fake([&](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) == "submit") {
      Value reply = Reply("submitted");
      reply.Set("job_id", "job_s");
      reply.Set("maps", 1);
      reply.Set("reduces", 1);
      return reply;
    }
    return status(req);
  });
  Invocation r = Invoke(fake.endpoint(),
                        {"submit", "--input", (dir.path() / "a.txt").string(), "--output",
                         (dir.path() / "out").string(), "--app", "wordcount", "--wait", "--json"});
  CHECK(r.code == 0);
  CHECK(r.out == "{\"job_id\":\"job_s\",\"maps\":1,\"reduces\":1}\n");
  CHECK(r.err.find("job_s COMPLETED") != std::string::npos);
}

TEST_CASE("watch of a finished job prints its final state and exits with its code") {
  FakeCoordinator fake(StatusSequence({"CANCELLED"}));
  Invocation r = Invoke(fake.endpoint(), {"watch", "job_f", "--json"});
  CHECK(r.code == 4);
  CHECK(r.out.rfind("{\"type\":\"job_state\"", 0) == 0);
  CHECK(r.out.find("\"state\":\"CANCELLED\"") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
}

TEST_CASE("watch follows events from the announced endpoint until the job ends") {
  // Status always says MAPPING: only the published job_state event can end the watch.
  auto publish = [](zmq::socket_t& pub) {
    Value progress;
    progress.Set("type", "task_progress");
    progress.Set("ts_ms", 1700000001234LL);
    progress.Set("job_id", "job_e");
    progress.Set("seq", 43);  // the snapshot (status) says last_seq 42
    progress.Set("task_id", "m-00000");
    progress.Set("kind", "map");
    progress.Set("attempt", 1);
    progress.Set("worker", "worker-a");
    progress.Set("progress", 0.5);
    Value other = progress;
    other.Set("job_id", "job_other");
    Value done;
    done.Set("type", "job_state");
    done.Set("ts_ms", 1700000002000LL);
    done.Set("job_id", "job_e");
    done.Set("seq", 44);
    done.Set("state", "FAILED");
    done.Set("prev_state", "MAPPING");
    done.Set("error", "boom");
    Value heartbeat;  // tells the watcher its subscription is live
    heartbeat.Set("type", "heartbeat");
    heartbeat.Set("ts_ms", 1700000001000LL);
    for (const auto& [topic, event] :
         {std::pair{"cluster/heartbeat", heartbeat}, std::pair{"job/job_other/task_progress", other},
          std::pair{"job/job_e/task_progress", progress}, std::pair{"job/job_e/job_state", done}}) {
      pub.send(zmq::buffer(std::string(topic)), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(Pack(event)), zmq::send_flags::none);
    }
  };
  FakeCoordinator fake(StatusSequence({"MAPPING"}), publish, "*");
  Invocation r = Invoke(fake.endpoint(), {"watch", "job_e", "--json"});
  CHECK(r.code == 1);
  CHECK(r.out.find("job_other") == std::string::npos);
  CHECK(r.out.find("\"state\":\"FAILED\"") != std::string::npos);
  // It starts from a snapshot of the job, then shows the events after it.
  CHECK(r.out.rfind("{\"type\":\"job_snapshot\",\"job_id\":\"job_e\"", 0) == 0);
  CHECK(r.out.find("\"type\":\"heartbeat\"") == std::string::npos);
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
  }
  CHECK(r.err.find("boom") != std::string::npos);

  Invocation text = Invoke(fake.endpoint(), {"watch", "job_e"});
  CHECK(text.code == 1);
  CHECK(text.out.find("job_e job_state FAILED (was MAPPING): boom") != std::string::npos);
}

}  // namespace
}  // namespace zmr::client

namespace zmr::client {
namespace {

TEST_CASE("logs takes a job, a task and an optional attempt") {
  ParseResult r = Parse({"logs", "job_1", "m-00003", "--attempt", "2", "--json"});
  REQUIRE(r.ok);
  CHECK(r.options.command == Command::kLogs);
  CHECK(r.options.job_id == "job_1");
  CHECK(r.options.task_id == "m-00003");
  CHECK(r.options.attempt == 2);
  CHECK(r.options.json);
  ParseResult latest = Parse({"logs", "job_1", "r-00000"});
  REQUIRE(latest.ok);
  CHECK(latest.options.attempt == 0);
  CheckUsageError({"logs", "job_1"}, "logs needs JOB and TASK arguments");
  CheckUsageError({"logs", "job_1", "m-00000", "extra"}, "unexpected argument 'extra'");
  CheckUsageError({"logs", "job_1", "m-00000", "--attempt", "0"}, "--attempt must be a positive");
  CheckUsageError({"status", "job_1", "--attempt", "1"}, "--attempt is not an option of status");
}

TEST_CASE("status of a failed job lists each attempt of the task to blame with its stderr") {
  Value job = JobInfo("job_f", "FAILED");
  job.Set("error", "MAPPING: map task m-00001 failed 2 attempts: ...");
  Value failure;
  failure.Set("stage", "MAPPING");
  failure.Set("task_id", "m-00001");
  Array tried;
  for (int i = 1; i <= 2; ++i) {
    Value a;
    a.Set("attempt", i);
    a.Set("worker", "w" + std::to_string(i));
    a.Set("state", "FAILED");
    a.Set("error", "mapper exited with status 3");
    a.Set("stderr_tail", Value(Array{Value("Traceback (most recent call last):"),
                                     Value("KeyError: 'x'")}));
    tried.push_back(a);
  }
  failure.Set("attempts", Value(std::move(tried)));
  job.Set("failure", failure);
  const std::string text = FormatStatus(job);
  CAPTURE(text);
  CHECK(text.find("m-00001.a1 on w1  FAILED: mapper exited with status 3") != std::string::npos);
  CHECK(text.find("m-00001.a2 on w2  FAILED") != std::string::npos);
  CHECK(text.find("stderr| KeyError: 'x'") != std::string::npos);
  CHECK(text.find("zmr logs job_f m-00001 [--attempt N]") != std::string::npos);
}

TEST_CASE("status of a running job with failed attempts names the latest one") {
  Value job = JobInfo("job_r", "MAPPING");
  job.Set("failed_attempts", 3);
  Value last;
  last.Set("task_id", "m-00004");
  last.Set("attempt", 2);
  last.Set("worker", "w2");
  last.Set("error", "worker w2 lost (heartbeat expired)");
  job.Set("recent_failures", Value(Array{last}));
  const std::string text = FormatStatus(job);
  CAPTURE(text);
  CHECK(text.find("3 failed attempts; latest m-00004.a2 on w2: worker w2 lost") !=
        std::string::npos);
}


// A well-formed JobInfo as the coordinator sends it (every field).
zmr::JobInfo FullJob(const std::string& job_id, JobState state) {
  zmr::JobInfo job;
  job.job_id = job_id;
  job.state = state;
  job.maps = {2, 1, 1, 0, 0};
  job.finished_ms = IsTerminal(state) ? 1700000007000LL : 0;
  job.last_seq = 3;
  return job;
}

Value WithProto(Value request) {
  request.Set("proto", 1);
  return request;
}

TEST_CASE("the client sends its requests through the typed request structs, in the bytes it "
          "always sent") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    const std::string type = TypeOf(req);
    if (type == "status") return JobReply{FullJob("job_a", JobState::kMapping)}.ToValue();
    if (type == "jobs") return JobsReply{{FullJob("job_a", JobState::kMapping)}}.ToValue();
    if (type == "tasks") return TasksReply{"job_a", {TaskInfo{}}}.ToValue();
    if (type == "workers") return WorkersReply{{WorkerInfo{}}}.ToValue();
    if (type == "cancel") return CancelledReply{"job_a", JobState::kCancelled, true}.ToValue();
    if (type == "logs") {
      Value reply = Reply("log");
      reply.Set("data", Binary{"line\n"});
      return reply;
    }
    return std::nullopt;
  });
  const std::vector<std::vector<std::string>> commands = {
      {"status", "job_a"}, {"jobs"},        {"jobs", "--all"},
      {"tasks", "job_a"},  {"workers"},     {"cancel", "job_a"},
      {"logs", "job_a", "m-00001"},         {"logs", "job_a", "m-00001", "--attempt", "2"}};
  for (const std::vector<std::string>& command : commands) {
    CAPTURE(command);
    CHECK(Invoke(fake.endpoint(), command).code == 0);
  }
  // What each command sent before its requests went through the structs.
  auto with = [](Value v, std::vector<std::pair<const char*, Value>> fields) {
    for (auto& [key, field] : fields) v.Set(key, std::move(field));
    return WithProto(std::move(v));
  };
  const std::vector<Value> expected = {
      with(Reply("status"), {{"job_id", "job_a"}}),
      with(Reply("jobs"), {{"all", false}}),
      with(Reply("jobs"), {{"all", true}}),
      with(Reply("tasks"), {{"job_id", "job_a"}}),
      with(Reply("workers"), {}),
      with(Reply("cancel"), {{"job_id", "job_a"}}),
      with(Reply("logs"), {{"job_id", "job_a"}, {"task_id", "m-00001"}, {"wait_ms", 1500}}),
      with(Reply("logs"),
           {{"job_id", "job_a"}, {"task_id", "m-00001"}, {"attempt", 2}, {"wait_ms", 1500}})};
  std::vector<Value> sent;
  for (const Value& request : fake.received()) {
    if (TypeOf(request) != "hello") sent.push_back(request);
  }
  REQUIRE(sent.size() == expected.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    CAPTURE(ToJson(sent[i]));
    CHECK(Pack(sent[i]) == Pack(expected[i]));
  }
  // `watch JOB` asks for kept events after a gap, from its own struct.
  Value events = Reply("events");
  events.Set("job_id", "job_a");
  events.Set("after_seq", 7);
  CHECK(Pack(WithProto(EventsRequest{"job_a", 7}.ToValue())) == Pack(WithProto(events)));
}

TEST_CASE("a reply with a field of the wrong type is one line on stderr and exit 3") {
  struct Case {
    std::vector<std::string> command;
    std::function<Value(const Value& request)> reply;
  };
  auto job_with = [](const char* key, Value field) {
    Value job = FullJob("job_a", JobState::kMapping).ToValue();
    job.Set(key, std::move(field));
    return job;
  };
  auto status_with = [job_with](const char* key, Value field) {
    return [=](const Value&) {
      Value reply = Reply("job");
      reply.Set("job", job_with(key, field));
      return reply;
    };
  };
  const std::vector<Case> cases = {
      {{"status", "job_a"}, status_with("maps", 3)},
      {{"status", "job_a", "--json"}, status_with("counters", Array{})},
      {{"wait", "job_a"}, status_with("state", "NAPPING")},
      {{"watch", "job_a"}, status_with("last_seq", "42")},
      {{"status", "job_a"},
       [](const Value&) { return Reply("job"); }},
      {{"jobs"},
       [job_with](const Value&) {
         Value reply = Reply("jobs");
         reply.Set("jobs", Array{job_with("job_id", 5)});
         return reply;
       }},
      {{"jobs", "--json"},
       [](const Value&) {
         Value reply = Reply("jobs");
         reply.Set("jobs", Array{Value(1)});
         return reply;
       }},
      {{"tasks", "job_a"},
       [](const Value&) {
         Value reply = Reply("tasks");
         reply.Set("tasks", "none");
         return reply;
       }},
      {{"workers"},
       [](const Value&) {
         Value worker = WorkerInfo{}.ToValue();
         worker.Set("slots", "four");
         Value reply = Reply("workers");
         reply.Set("workers", Array{worker});
         return reply;
       }},
      {{"cancel", "job_a"},
       [](const Value&) {
         Value reply = CancelledReply{"job_a", JobState::kCancelled, true}.ToValue();
         reply.Set("changed", "yes");
         return reply;
       }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.command);
    FakeCoordinator fake([&](const Value& req) -> std::optional<Value> {
      if (TypeOf(req) == "hello") return std::nullopt;
      return c.reply(req);
    });
    Invocation r = Invoke(fake.endpoint(), c.command);
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("zmr: malformed '", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("watch of a finished job reports its end even when the status names another job") {
  FakeCoordinator fake([](const Value& req) -> std::optional<Value> {
    if (TypeOf(req) != "status") return std::nullopt;
    zmr::JobInfo job = FullJob("job_other", JobState::kFailed);
    job.error = "MAPPING: boom";
    return JobReply{job}.ToValue();
  });
  Invocation r = Invoke(fake.endpoint(), {"watch", "job_f"});
  CHECK(r.code == 1);
  CHECK(r.out.find("job_other job_state FAILED: MAPPING: boom\n") != std::string::npos);
  CHECK(r.err == "zmr: job job_f failed: MAPPING: boom\n");
}

}  // namespace
}  // namespace zmr::client
