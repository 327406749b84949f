#include "runner/streaming.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/splits.h"
#include "runner/intermediate.h"
#include "runner/task_runner.h"
#include "tests/support/temp_dir.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

using Pairs = std::vector<std::pair<std::string, std::string>>;

const std::string kScripts = std::string(ZMR_SOURCE_DIR) + "/tests/integration/streaming_scripts/";

std::string PythonScript(const std::string& name, const std::string& args = "") {
  std::string cmd = "/usr/bin/python3 '" + kScripts + name + "'";
  if (!args.empty()) cmd += " " + args;
  return cmd;
}

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Sends this process's stderr (fd 2, which the streaming app copies ordinary command stderr
// lines to) to a file until Take() or destruction.
class StderrCapture {
 public:
  explicit StderrCapture(fs::path file) : path_(std::move(file)) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~StderrCapture() { Restore(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string Take() {
    Restore();
    return ReadBytes(path_);
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  fs::path path_;
  int saved_ = -1;
};

class Collector : public Emitter {
 public:
  void Emit(std::string_view key, std::string_view value) override {
    pairs.emplace_back(std::string(key), std::string(value));
  }
  Pairs pairs;
};

class VectorValues : public ValueStream {
 public:
  explicit VectorValues(std::vector<std::string> values) : values_(std::move(values)) {}
  bool Next(std::string_view* value) override {
    if (next_ >= values_.size()) return false;
    *value = values_[next_++];
    return true;
  }

 private:
  std::vector<std::string> values_;
  std::size_t next_ = 0;
};

JobCode MapCode(std::string mapper, std::string combiner = "") {
  JobCode code;
  code.mapper = std::move(mapper);
  code.combiner = std::move(combiner);
  return code;
}

JobCode ReduceCode(std::string reducer) {
  JobCode code;
  code.reducer = std::move(reducer);
  return code;
}

AttemptInfo MapInfo(const fs::path& work_dir) {
  AttemptInfo info;
  info.job_id = "job-7";
  info.task_id = "m-00003";
  info.attempt = 2;
  info.is_map = true;
  info.partition = 3;
  info.num_reduces = 4;
  info.work_dir = work_dir.string();
  info.input_file = "/data/in/part-1.txt";
  info.input_start = 1024;
  info.input_length = 4096;
  return info;
}

AttemptInfo ReduceInfo(const fs::path& work_dir) {
  AttemptInfo info;
  info.job_id = "job-7";
  info.task_id = "r-00001";
  info.attempt = 1;
  info.is_map = false;
  info.partition = 1;
  info.num_reduces = 4;
  info.work_dir = work_dir.string();
  return info;
}

std::unique_ptr<App> MakeStarted(const JobCode& code, bool is_map, const AttemptInfo& info,
                                 const std::atomic<bool>* cancelled = nullptr) {
  std::string error;
  auto app = MakeStreamingApp(code, is_map, &error, cancelled);
  REQUIRE_MESSAGE(app != nullptr, error);
  REQUIRE_MESSAGE(app->Start(info, &error), error);
  return app;
}

// Feeds lines to a map app and finishes it. Returns Finish's result; *error gets its error.
bool RunMap(App& app, const std::vector<std::string>& lines, Collector* out, std::string* error) {
  MapContext ctx{"/data/in/part-1.txt", "part-1.txt"};
  for (const std::string& line : lines) {
    app.Map(line, ctx, *out);
    if (!app.Failure().empty()) break;
  }
  return app.Finish(*out, error);
}

std::vector<std::string> ManyLines(std::size_t count, std::size_t width) {
  std::vector<std::string> lines;
  lines.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::string line = std::to_string(i);
    line.resize(std::max(width, line.size()), 'x');
    lines.push_back(std::move(line));
  }
  return lines;
}

std::map<std::string, std::string> ToMap(const Pairs& pairs) {
  std::map<std::string, std::string> m;
  for (const auto& [k, v] : pairs) m[k] = v;
  return m;
}

// Whether pid is a live (not zombie) process.
bool IsAlive(pid_t pid) {
  std::string stat = ReadBytes("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  std::size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Waits (bounded) for an eventual condition; returns whether it became true.
bool WaitUntil(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

TEST_CASE("a streaming line splits at its first TAB into key and value") {
  std::string_view key, value;
  CHECK(ParseStreamingLine("word\t1", &key, &value));
  CHECK(key == "word");
  CHECK(value == "1");

  CHECK(ParseStreamingLine("k\tv1\tv2", &key, &value));
  CHECK(key == "k");
  CHECK(value == "v1\tv2");

  CHECK_FALSE(ParseStreamingLine("no tab here", &key, &value));
  CHECK(key == "no tab here");
  CHECK(value.empty());

  CHECK_FALSE(ParseStreamingLine("", &key, &value));
  CHECK(key.empty());
  CHECK(value.empty());

  CHECK(ParseStreamingLine("\tv", &key, &value));
  CHECK(key.empty());
  CHECK(value == "v");

  CHECK(ParseStreamingLine("k\t", &key, &value));
  CHECK(key == "k");
  CHECK(value.empty());

  const std::string binary("k\r\x01\xff\0z\tv\r", 9);
  CHECK(ParseStreamingLine(binary, &key, &value));
  CHECK(key == std::string_view("k\r\x01\xff\0z", 6));
  CHECK(value == "v\r");

  const std::string long_line = std::string(3 << 20, 'a') + "\t" + std::string(1 << 20, 'b');
  CHECK(ParseStreamingLine(long_line, &key, &value));
  CHECK(key.size() == (3u << 20));
  CHECK(value.size() == (1u << 20));
}

TEST_CASE("stderr lines are read as counters, status or ordinary lines") {
  ReporterLine r = ParseReporterLine("reporter:counter:Records,Seen,1");
  CHECK(r.kind == ReporterLine::Kind::kCounter);
  CHECK(r.group == "Records");
  CHECK(r.name == "Seen");
  CHECK(r.amount == 1);

  r = ParseReporterLine("reporter:counter:My Group,bad, records,-25\r");
  CHECK(r.kind == ReporterLine::Kind::kCounter);
  CHECK(r.group == "My Group");
  CHECK(r.name == "bad, records");
  CHECK(r.amount == -25);

  r = ParseReporterLine("reporter:counter:G,N, +9223372036854775807 ");
  CHECK(r.kind == ReporterLine::Kind::kCounter);
  CHECK(r.amount == INT64_MAX);

  for (std::string_view other :
       {"reporter:counter:G,N", "reporter:counter:G,N,", "reporter:counter:G,N,x1",
        "reporter:counter:,N,1", "reporter:counter:G,,1", "reporter:counter:G,N,1.5",
        "reporter:counter:G,N,99999999999999999999", "Reporter:counter:G,N,1",
        "reporter:statu:x", "plain log line", ""}) {
    CAPTURE(other);
    CHECK(ParseReporterLine(other).kind == ReporterLine::Kind::kOther);
  }

  r = ParseReporterLine("reporter:status:50% done, 3 files");
  CHECK(r.kind == ReporterLine::Kind::kStatus);
  CHECK(r.status == "50% done, 3 files");
  r = ParseReporterLine("reporter:status:");
  CHECK(r.kind == ReporterLine::Kind::kStatus);
  CHECK(r.status.empty());
}

TEST_CASE("MakeStreamingApp refuses a missing command and cmdenv that cannot reach exec") {
  std::string error;
  CHECK(MakeStreamingApp(ReduceCode("cat"), /*is_map=*/true, &error) == nullptr);
  CHECK(error.find("no mapper command") != std::string::npos);
  CHECK(MakeStreamingApp(MapCode("cat"), /*is_map=*/false, &error) == nullptr);
  CHECK(error.find("no reducer command") != std::string::npos);

  JobCode code = MapCode("cat");
  code.cmdenv["A=B"] = "x";
  CHECK(MakeStreamingApp(code, /*is_map=*/true, &error) == nullptr);
  CHECK(error.find("cmdenv") != std::string::npos);

  code = MapCode(std::string("cat\0x", 5));
  CHECK(MakeStreamingApp(code, /*is_map=*/true, &error) == nullptr);
  CHECK(error.find("NUL") != std::string::npos);

  auto app = MakeStreamingApp(MapCode("cat", "cat"), /*is_map=*/true, &error);
  REQUIRE(app != nullptr);
  CHECK(app->HasCombiner());
  CHECK_FALSE(MakeStreamingApp(MapCode("cat"), /*is_map=*/true, &error)->HasCombiner());
}

TEST_CASE("a mapper running cat hands back every input line split at its first TAB") {
  TempDir dir;
  auto app = MakeStarted(MapCode("cat"), /*is_map=*/true, MapInfo(dir.path()));
  std::vector<std::string> lines = {"plain", "k\tv", "k\tv\tw", "", "\tonly value"};
  // Enough lines to go through the write buffer and the pipe many times.
  for (const std::string& line : ManyLines(50000, 20)) lines.push_back(line);
  Collector out;
  std::string error;
  REQUIRE_MESSAGE(RunMap(*app, lines, &out, &error), error);
  REQUIRE(out.pairs.size() == lines.size());
  CHECK(out.pairs[0] == std::pair<std::string, std::string>("plain", ""));
  CHECK(out.pairs[1] == std::pair<std::string, std::string>("k", "v"));
  CHECK(out.pairs[2] == std::pair<std::string, std::string>("k", "v\tw"));
  CHECK(out.pairs[3] == std::pair<std::string, std::string>("", ""));
  CHECK(out.pairs[4] == std::pair<std::string, std::string>("", "only value"));
  for (std::size_t i = 5; i < lines.size(); ++i) {
    if (out.pairs[i].first != lines[i]) {
      FAIL("line " << i << " came back as '" << out.pairs[i].first << "'");
    }
  }
  CHECK(app->Failure().empty());
}

TEST_CASE("stdout bytes are kept exactly and a last line without newline counts") {
  TempDir dir;
  auto app = MakeStarted(MapCode("printf 'k\\r\\tv\\001\\377\\r\\nlast'"), /*is_map=*/true,
                         MapInfo(dir.path()));
  Collector out;
  std::string error;
  REQUIRE_MESSAGE(app->Finish(out, &error), error);
  REQUIRE(out.pairs.size() == 2);
  CHECK(out.pairs[0].first == "k\r");
  CHECK(out.pairs[0].second == "v\x01\xff\r");
  CHECK(out.pairs[1] == std::pair<std::string, std::string>("last", ""));
}

TEST_CASE("a map command sees the attempt's variables, cmdenv and the parent's environment") {
  TempDir dir;
  ::setenv("ZMR_STREAMING_TEST_PARENT", "from-parent", /*overwrite=*/1);
  JobCode code = MapCode("env | grep -E '^(mapreduce_|ZMR_STREAMING_TEST_)'; echo \"cwd=$(pwd -P)\"");
  code.cmdenv["ZMR_STREAMING_TEST_CMDENV"] = "a b=c";
  code.cmdenv["mapreduce_job_reduces"] = "overridden";
  auto app = MakeStarted(code, /*is_map=*/true, MapInfo(dir.path()));
  Collector out;
  std::string error;
  REQUIRE_MESSAGE(app->Finish(out, &error), error);
  ::unsetenv("ZMR_STREAMING_TEST_PARENT");

  std::map<std::string, std::string> vars;
  for (const auto& [line, value] : out.pairs) {
    CHECK(value.empty());
    std::size_t eq = line.find('=');
    REQUIRE(eq != std::string::npos);
    vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  CHECK(vars["mapreduce_job_id"] == "job-7");
  CHECK(vars["mapreduce_task_id"] == "m-00003");
  CHECK(vars["mapreduce_task_attempt_id"] == "m-00003.a2");
  CHECK(vars["mapreduce_task_partition"] == "3");
  CHECK(vars["mapreduce_task_is_map"] == "true");
  CHECK(vars["mapreduce_map_input_file"] == "/data/in/part-1.txt");
  CHECK(vars["mapreduce_map_input_start"] == "1024");
  CHECK(vars["mapreduce_map_input_length"] == "4096");
  CHECK(vars["mapreduce_job_reduces"] == "overridden");  // cmdenv wins
  CHECK(vars["ZMR_STREAMING_TEST_PARENT"] == "from-parent");
  CHECK(vars["ZMR_STREAMING_TEST_CMDENV"] == "a b=c");
  CHECK(vars["cwd"] == fs::canonical(dir.path()).string());
}

TEST_CASE("a command inherits no descriptor of the host beyond stdin, stdout and stderr") {
  TempDir dir;
  int leaky = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(leaky >= 0);
  REQUIRE(::dup2(leaky, 57) == 57);
  // The shell's descriptors, listed without a pipeline (whose pipes the shell itself holds).
  auto app = MakeStarted(MapCode("ls /proc/$$/fd"), /*is_map=*/true, MapInfo(dir.path()));
  Collector out;
  std::string error;
  bool ok = app->Finish(out, &error);
  ::close(57);
  ::close(leaky);
  REQUIRE_MESSAGE(ok, error);
  std::vector<std::string> fds;
  for (const auto& [fd, empty] : out.pairs) fds.push_back(fd);
  std::sort(fds.begin(), fds.end());
  CHECK(fds == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("a reduce command sees its partition and no map input variables") {
  TempDir dir;
  auto app = MakeStarted(ReduceCode("env | grep '^mapreduce_'"), /*is_map=*/false,
                         ReduceInfo(dir.path()));
  Collector out;
  std::string error;
  REQUIRE_MESSAGE(app->Finish(out, &error), error);
  std::map<std::string, std::string> vars;
  for (const auto& [line, value] : out.pairs) {
    std::size_t eq = line.find('=');
    REQUIRE(eq != std::string::npos);
    vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  CHECK(vars["mapreduce_task_id"] == "r-00001");
  CHECK(vars["mapreduce_task_attempt_id"] == "r-00001.a1");
  CHECK(vars["mapreduce_task_partition"] == "1");
  CHECK(vars["mapreduce_task_is_map"] == "false");
  CHECK(vars["mapreduce_job_reduces"] == "4");
  CHECK(vars.count("mapreduce_map_input_file") == 0);
}

TEST_CASE("a reducer is fed key TAB value for every value of every key") {
  TempDir dir;
  auto app = MakeStarted(ReduceCode("cat"), /*is_map=*/false, ReduceInfo(dir.path()));
  Collector out;
  VectorValues a({"1", "2", "x\ty"});
  app->Reduce("a", a, out);
  VectorValues b({""});
  app->Reduce("b", b, out);
  std::string error;
  REQUIRE_MESSAGE(app->Finish(out, &error), error);
  Pairs expected = {{"a", "1"}, {"a", "2"}, {"a", "x\ty"}, {"b", ""}};
  CHECK(out.pairs == expected);
}

TEST_CASE("reporter lines become user counters and status, other stderr lines the log") {
  TempDir dir;
  std::vector<std::string> statuses;
  AttemptInfo info = MapInfo(dir.path());
  info.set_status = [&](const std::string& s) { statuses.push_back(s); };
  auto app = MakeStarted(MapCode(PythonScript("reporter_mapper.py")), /*is_map=*/true, info);

  StderrCapture capture(dir.path() / "stderr.log");
  Collector out;
  std::string error;
  bool ok = RunMap(*app, {"ab", "cde", "f"}, &out, &error);
  std::string log = capture.Take();
  REQUIRE_MESSAGE(ok, error);

  CHECK(out.pairs.size() == 3);
  Counters counters;
  app->TakeCounters(&counters);
  CHECK(counters == Counters{{"Records/Seen", 3}, {"Records/Chars", 6}});
  Counters again;
  app->TakeCounters(&again);
  CHECK(again.empty());
  CHECK(statuses == std::vector<std::string>{"starting", "done"});
  CHECK(log.find("reporter_mapper: processed 3 lines\n") != std::string::npos);
  CHECK(log.find("reporter:") == std::string::npos);
}

TEST_CASE("a command exiting with a non-zero status fails with its status and last stderr lines") {
  TempDir dir;
  auto app = MakeStarted(MapCode("cat >/dev/null; echo first >&2; echo second >&2; exit 3"),
                         /*is_map=*/true, MapInfo(dir.path()));
  StderrCapture capture(dir.path() / "stderr.log");
  Collector out;
  std::string error;
  CHECK_FALSE(RunMap(*app, {"a", "b"}, &out, &error));
  std::string log = capture.Take();
  CHECK(error == "mapper command exited with status 3: first | second");
  CHECK(app->Failure() == error);
  CHECK(log == "first\nsecond\n");
}

TEST_CASE("a mapper exiting 1 on a bad record fails the attempt with its message") {
  TempDir dir;
  auto app = MakeStarted(MapCode(PythonScript("fail_on_line.py", "BAD")), /*is_map=*/true,
                         MapInfo(dir.path()));
  std::vector<std::string> lines = {"good1", "good2", "BAD"};
  for (const std::string& line : ManyLines(20000, 30)) lines.push_back(line);
  StderrCapture capture(dir.path() / "stderr.log");
  Collector out;
  std::string error;
  CHECK_FALSE(RunMap(*app, lines, &out, &error));
  capture.Take();
  CHECK(error.find("mapper command exited with status 1") != std::string::npos);
  CHECK(error.find("bad record: BAD") != std::string::npos);
  CHECK(app->Failure() == error);
  REQUIRE(out.pairs.size() >= 2);
  CHECK(out.pairs[0].first == "good1");
  CHECK(out.pairs[1].first == "good2");
}

TEST_CASE("a command killed by a signal is named in the error") {
  TempDir dir;
  SUBCASE("the shell itself") {
    auto app = MakeStarted(ReduceCode("kill -SEGV $$"), /*is_map=*/false, ReduceInfo(dir.path()));
    Collector out;
    std::string error;
    CHECK_FALSE(app->Finish(out, &error));
    CHECK(error.rfind("reducer command killed by signal SIGSEGV (Segmentation fault)", 0) == 0);
  }
  SUBCASE("a python mapper the shell ran") {
    auto app = MakeStarted(MapCode(PythonScript("segfault_mapper.py")), /*is_map=*/true,
                           MapInfo(dir.path()));
    StderrCapture capture(dir.path() / "stderr.log");
    Collector out;
    std::string error;
    CHECK_FALSE(RunMap(*app, {"one"}, &out, &error));
    capture.Take();
    CHECK(error.find("mapper command exited with status 139") != std::string::npos);
    CHECK(error.find("SIGSEGV") != std::string::npos);
    CHECK(error.find("about to crash") != std::string::npos);
  }
}

TEST_CASE("a command that does not exist fails with status 127 and the shell's message") {
  TempDir dir;
  auto app = MakeStarted(MapCode("zmr-no-such-command-here --flag"), /*is_map=*/true,
                         MapInfo(dir.path()));
  StderrCapture capture(dir.path() / "stderr.log");
  Collector out;
  std::string error;
  CHECK_FALSE(app->Finish(out, &error));
  capture.Take();
  CHECK(error.find("mapper command exited with status 127 (command not found)") == 0);
  CHECK(error.find("zmr-no-such-command-here: not found") != std::string::npos);
}

TEST_CASE("a working directory that does not exist fails Start with a clear error") {
  TempDir dir;
  std::string error;
  auto app = MakeStreamingApp(MapCode("cat"), /*is_map=*/true, &error);
  REQUIRE(app != nullptr);
  CHECK_FALSE(app->Start(MapInfo(dir.path() / "missing"), &error));
  CHECK(error.find("cannot enter working directory") != std::string::npos);
  CHECK(app->Failure() == error);
  Collector out;
  app->Map("x", MapContext{}, out);  // a no-op after the failure
  CHECK_FALSE(app->Finish(out, &error));
}

TEST_CASE("a mapper that exits before reading all its input fails with a broken pipe") {
  TempDir dir;
  const std::vector<std::string> lines = ManyLines(20000, 60);  // > 1 MB
  SUBCASE("exit status 0") {
    auto app = MakeStarted(MapCode("head -n 1"), /*is_map=*/true, MapInfo(dir.path()));
    Collector out;
    std::string error;
    CHECK_FALSE(RunMap(*app, lines, &out, &error));
    CHECK(error == "broken pipe: mapper exited before reading all input (exit status 0)");
    CHECK(app->Failure() == error);
  }
  SUBCASE("a non-zero exit status") {
    auto app = MakeStarted(MapCode("echo giving up >&2; exit 4"), /*is_map=*/true,
                           MapInfo(dir.path()));
    StderrCapture capture(dir.path() / "stderr.log");
    Collector out;
    std::string error;
    CHECK_FALSE(RunMap(*app, lines, &out, &error));
    capture.Take();
    CHECK(error == "broken pipe: mapper command exited with status 4 before reading all input: "
                   "giving up");
  }
}

TEST_CASE("a command that closes its input but keeps running is killed after a broken pipe") {
  TempDir dir;
  auto app = MakeStarted(MapCode("exec 0<&-; sleep 1000"), /*is_map=*/true, MapInfo(dir.path()));
  Collector out;
  std::string error;
  CHECK_FALSE(RunMap(*app, ManyLines(20000, 60), &out, &error));
  CHECK(error == "broken pipe: mapper stopped reading its input and did not exit; killed");
}

TEST_CASE("a command that never reads its input is stopped by the cancel flag") {
  TempDir dir;
  std::atomic<bool> cancelled{false};
  auto app = MakeStarted(MapCode(PythonScript("sleep_mapper.py")), /*is_map=*/true,
                         MapInfo(dir.path()), &cancelled);
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancelled = true;
  });
  Collector out;
  std::string error;
  bool ok = RunMap(*app, ManyLines(20000, 60), &out, &error);  // blocks until cancelled
  canceller.join();
  CHECK_FALSE(ok);
  CHECK(error == "cancelled");
  CHECK(app->Failure() == "cancelled");
}

TEST_CASE("destroying the app kills a command that never ends, and what it started") {
  TempDir dir;
  auto app = MakeStarted(
      MapCode("sleep 1000 & echo $! > bg.pid; echo $$ > sh.pid; exec " +
              PythonScript("sleep_mapper.py")),
      /*is_map=*/true, MapInfo(dir.path()));
  Collector out;
  app->Map("some input", MapContext{}, out);
  auto read_pid = [&](const char* name) -> pid_t {
    std::string text = ReadBytes(dir.path() / name);
    return text.empty() || text.back() != '\n' ? 0 : static_cast<pid_t>(std::stol(text));
  };
  REQUIRE(WaitUntil([&] { return read_pid("sh.pid") > 0 && read_pid("bg.pid") > 0; }));
  const pid_t command = read_pid("sh.pid");
  const pid_t background = read_pid("bg.pid");
  CHECK(IsAlive(command));
  CHECK(IsAlive(background));
  app.reset();
  CHECK_FALSE(IsAlive(command));  // reaped by the destructor
  CHECK(WaitUntil([&] { return !IsAlive(background); }));
}

TEST_CASE("a 10 MB line goes through a mapper unchanged") {
  TempDir dir;
  auto app = MakeStarted(MapCode("cat"), /*is_map=*/true, MapInfo(dir.path()));
  std::string big_key(10 << 20, 'k');
  big_key[12345] = '\x01';
  const std::string big_value(10 << 20, 'v');
  Collector out;
  std::string error;
  REQUIRE_MESSAGE(RunMap(*app, {"before", big_key, "key\t" + big_value, "after"}, &out, &error),
                  error);
  REQUIRE(out.pairs.size() == 4);
  CHECK(out.pairs[0].first == "before");
  CHECK((out.pairs[1].first == big_key));
  CHECK(out.pairs[1].second.empty());
  CHECK(out.pairs[2].first == "key");
  CHECK((out.pairs[2].second == big_value));
  CHECK(out.pairs[3].first == "after");
}

TEST_CASE("a command flooding stderr while its input is written does not deadlock") {
  TempDir dir;
  const std::vector<std::string> lines = ManyLines(20000, 60);
  SUBCASE("1 MB of short lines before it reads, then success") {
    auto app = MakeStarted(
        MapCode("head -c 1000000 /dev/zero | tr '\\0' e | fold -w 99 >&2; cat"),
        /*is_map=*/true, MapInfo(dir.path()));
    StderrCapture capture(dir.path() / "stderr.log");
    Collector out;
    std::string error;
    bool ok = RunMap(*app, lines, &out, &error);
    std::string log = capture.Take();
    REQUIRE_MESSAGE(ok, error);
    CHECK(out.pairs.size() == lines.size());
    CHECK(std::count(log.begin(), log.end(), 'e') == 1000000);
  }
  SUBCASE("1 MB without a newline, then a failure with a bounded error") {
    auto app = MakeStarted(MapCode("cat; head -c 1000000 /dev/zero | tr '\\0' e >&2; exit 2"),
                           /*is_map=*/true, MapInfo(dir.path()));
    StderrCapture capture(dir.path() / "stderr.log");
    Collector out;
    std::string error;
    bool ok = RunMap(*app, lines, &out, &error);
    std::string log = capture.Take();
    CHECK_FALSE(ok);
    CHECK(out.pairs.size() == lines.size());
    CHECK(error.rfind("mapper command exited with status 2: eeee", 0) == 0);
    CHECK(error.size() < 2 * kStreamingStderrTailBytes);
    CHECK(std::count(log.begin(), log.end(), 'e') == 1000000);
  }
}

TEST_CASE("an awk combiner sums each key's values in one process per batch") {
  TempDir dir;
  const std::string awk_sum =
      "awk -F '\\t' '{ s[$1] += $2 } END { for (k in s) printf \"%s\\t%d\\n\", k, s[k] }'";
  auto app = MakeStarted(MapCode("cat", awk_sum), /*is_map=*/true, MapInfo(dir.path()));
  REQUIRE(app->HasCombiner());

  // One Emitter per batch for Combine and FlushCombine, as the runner does.
  Collector batch1;
  VectorValues a({"1", "2", "3"});
  app->Combine("a", a, batch1);
  VectorValues b({"4", "5"});
  app->Combine("b", b, batch1);
  std::vector<std::string> many(30000, "1");
  VectorValues c(many);
  app->Combine("c", c, batch1);
  std::string error;
  REQUIRE_MESSAGE(app->FlushCombine(batch1, &error), error);
  CHECK(ToMap(batch1.pairs) == std::map<std::string, std::string>{{"a", "6"}, {"b", "9"},
                                                                  {"c", "30000"}});
  CHECK(batch1.pairs.size() == 3);

  Collector batch2;
  REQUIRE_MESSAGE(app->FlushCombine(batch2, &error), error);  // nothing combined: nothing emitted
  CHECK(batch2.pairs.empty());

  Collector batch3;
  VectorValues a2({"10", "-3"});
  app->Combine("a", a2, batch3);
  REQUIRE_MESSAGE(app->FlushCombine(batch3, &error), error);
  CHECK(batch3.pairs == Pairs{{"a", "7"}});

  // The mapper is unaffected by the combiner processes.
  Collector out;
  REQUIRE_MESSAGE(RunMap(*app, {"x\t1"}, &out, &error), error);
  CHECK(out.pairs == Pairs{{"x", "1"}});
}

TEST_CASE("a combiner's output is emitted in the order it prints it, as soon as it is read") {
  TempDir dir;
  auto app = MakeStarted(MapCode("cat", "cat"), /*is_map=*/true, MapInfo(dir.path()));
  Collector batch;
  Pairs expected;
  std::size_t after_combines = 0;
  for (const char* key : {"k1", "k2", "k3"}) {
    std::vector<std::string> values;
    for (int i = 0; i < 20000; ++i) {
      values.push_back(std::to_string(i));
      expected.emplace_back(key, values.back());
    }
    VectorValues stream(values);
    app->Combine(key, stream, batch);
    after_combines = batch.pairs.size();
  }
  CHECK(after_combines > 0);  // 600 KB through cat: some came back while it was being fed
  std::string error;
  REQUIRE_MESSAGE(app->FlushCombine(batch, &error), error);
  CHECK(batch.pairs == expected);
}

TEST_CASE("a failing combiner fails the batch and the attempt") {
  TempDir dir;
  auto app = MakeStarted(MapCode("cat", "echo combiner broke >&2; exit 2"), /*is_map=*/true,
                         MapInfo(dir.path()));
  StderrCapture capture(dir.path() / "stderr.log");
  Collector out;
  VectorValues a({"1", "2"});
  app->Combine("a", a, out);
  std::string error;
  CHECK_FALSE(app->FlushCombine(out, &error));
  capture.Take();
  CHECK(error.find("combiner command exited with status 2") != std::string::npos);
  CHECK(error.find("combiner broke") != std::string::npos);
  CHECK(app->Failure() == error);
  std::string finish_error;
  CHECK_FALSE(app->Finish(out, &finish_error));
  CHECK(finish_error == error);
}

TEST_CASE("python word-count mapper and reducer produce the right counts through the App") {
  TempDir dir;
  std::mt19937 rng(42);
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 300; ++i) vocabulary.push_back("w" + std::to_string(i * i % 997));
  vocabulary.push_back("caf\xc3\xa9");
  std::vector<std::string> lines;
  std::map<std::string, int64_t> expected;
  for (int i = 0; i < 5000; ++i) {
    std::string line;
    int words = static_cast<int>(rng() % 12);
    for (int w = 0; w < words; ++w) {
      const std::string& word = vocabulary[rng() % vocabulary.size()];
      line += (rng() % 4 == 0 ? "\t " : " ");
      line += word;
      ++expected[word];
    }
    lines.push_back(line);
  }

  auto mapper = MakeStarted(MapCode(PythonScript("wordcount_mapper.py")), /*is_map=*/true,
                            MapInfo(dir.path()));
  Collector mapped;
  std::string error;
  REQUIRE_MESSAGE(RunMap(*mapper, lines, &mapped, &error), error);

  // The shuffle: group by key in bytewise order.
  std::map<std::string, std::vector<std::string>> groups;
  for (auto& [key, value] : mapped.pairs) groups[key].push_back(value);

  auto reducer = MakeStarted(ReduceCode(PythonScript("wordcount_reducer.py")), /*is_map=*/false,
                             ReduceInfo(dir.path()));
  Collector reduced;
  for (auto& [key, values] : groups) {
    VectorValues stream(values);
    reducer->Reduce(key, stream, reduced);
    REQUIRE(reducer->Failure().empty());
  }
  REQUIRE_MESSAGE(reducer->Finish(reduced, &error), error);

  std::map<std::string, int64_t> counts;
  for (const auto& [word, count] : reduced.pairs) counts[word] += std::stoll(count);
  CHECK(reduced.pairs.size() == expected.size());
  CHECK(counts == expected);
}

// Lines a word-count job would read: words of a small vocabulary, with the reference counts.
std::string WordText(int lines, uint32_t seed, std::map<std::string, int64_t>* counts) {
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < lines; ++i) {
    int words = 1 + static_cast<int>(rng() % 10);
    for (int w = 0; w < words; ++w) {
      std::string word = "w" + std::to_string(rng() % 400);
      if (w > 0) text += ' ';
      text += word;
      ++(*counts)[word];
    }
    text += '\n';
  }
  return text;
}

// Runs a streaming job's maps and reduces through the task runner, like the zmr-task process
// does: a MakeStreamingApp per attempt handed over as ctx.app.
struct StreamingJob {
  TempDir dir;
  LocalFileStore store{(dir.path() / "work").string()};
  std::atomic<bool> cancelled{false};
  JobCode code;
  std::vector<InputFile> files;
  int64_t sort_buffer_bytes = kDefaultSortBufferBytes;

  AssignMsg Task(TaskKind kind, int64_t index, int64_t reduces) const {
    AssignMsg task;
    task.job_id = "job-s1";
    task.task_id = std::string(kind == TaskKind::kMap ? "m-" : "r-") + "0000" +
                   std::to_string(index);
    task.attempt = 1;
    task.kind = kind;
    task.code = code;
    task.num_reduces = reduces;
    task.output_dir = (dir.path() / "out").string();
    task.partition = index;
    return task;
  }

  // Runs an attempt; true with *result, or false with *error.
  bool Run(const AssignMsg& task, TaskResult* result, std::string* error) {
    auto app = MakeStreamingApp(task.code, task.kind == TaskKind::kMap, error, &cancelled);
    if (!app) return false;
    TaskContext ctx;
    ctx.store = &store;
    ctx.cancelled = &cancelled;
    ctx.app = app.get();
    ctx.attempt_dir =
        (dir.path() / "attempts" / (task.task_id + ".a" + std::to_string(task.attempt))).string();
    ctx.sort_buffer_bytes = sort_buffer_bytes;
    return task.kind == TaskKind::kMap ? RunMapTask(task, ctx, result, error)
                                       : RunReduceTask(task, ctx, result, error);
  }

  // Runs every map and reduce; returns the reduce outputs' lines parsed as word counts.
  std::map<std::string, int64_t> RunWordCount(int maps, int64_t reduces, Counters* totals) {
    std::vector<Split> splits = PlanSplits(files, maps);
    std::vector<std::vector<MapOutput>> map_outputs;
    for (int m = 0; m < maps; ++m) {
      AssignMsg task = Task(TaskKind::kMap, m, reduces);
      task.split = splits[static_cast<std::size_t>(m)];
      TaskResult result;
      std::string error;
      REQUIRE_MESSAGE(Run(task, &result, &error), error);
      REQUIRE(result.outputs.size() == static_cast<std::size_t>(reduces));
      for (const auto& [name, n] : result.counters) (*totals)[name] += n;
      map_outputs.push_back(result.outputs);
    }
    std::map<std::string, int64_t> counts;
    for (int64_t r = 0; r < reduces; ++r) {
      AssignMsg task = Task(TaskKind::kReduce, r, reduces);
      for (const auto& outputs : map_outputs) {
        task.inputs.push_back(outputs[static_cast<std::size_t>(r)].location);
      }
      TaskResult result;
      std::string error;
      REQUIRE_MESSAGE(Run(task, &result, &error), error);
      REQUIRE(result.outputs.size() == 1);
      for (const auto& [name, n] : result.counters) (*totals)[name] += n;
      std::ifstream part(result.outputs[0].location, std::ios::binary);
      std::string line;
      while (std::getline(part, line)) {
        std::size_t tab = line.find('\t');
        REQUIRE(tab != std::string::npos);
        counts[line.substr(0, tab)] += std::stoll(line.substr(tab + 1));
      }
    }
    return counts;
  }
};

TEST_CASE("a streaming word count runs through RunMapTask and RunReduceTask") {
  StreamingJob job;
  std::map<std::string, int64_t> expected;
  fs::create_directories(job.dir.path() / "in");
  for (int f = 0; f < 2; ++f) {
    fs::path path = job.dir.path() / "in" / ("part-" + std::to_string(f) + ".txt");
    std::string text = WordText(1500, 7 + static_cast<uint32_t>(f), &expected);
    std::ofstream(path, std::ios::binary) << text;
    job.files.push_back(InputFile{path.string(), static_cast<int64_t>(text.size())});
  }
  job.code.mapper = PythonScript("wordcount_mapper.py");
  job.code.reducer = PythonScript("wordcount_reducer.py");
  job.sort_buffer_bytes = 16 << 10;  // several spills per map
  Counters totals;
  SUBCASE("without a combiner") {
    CHECK(job.RunWordCount(3, 2, &totals) == expected);
    CHECK(totals["combine_input_records"] == 0);
  }
  SUBCASE("with the reducer script as combiner") {
    job.code.combiner = PythonScript("wordcount_reducer.py");
    CHECK(job.RunWordCount(3, 2, &totals) == expected);
    CHECK(totals["combine_input_records"] > 0);
    CHECK(totals["combine_output_records"] < totals["combine_input_records"]);
  }
}

TEST_CASE("a failing streaming mapper fails its RunMapTask attempt with the command's error") {
  StreamingJob job;
  fs::create_directories(job.dir.path() / "in");
  fs::path path = job.dir.path() / "in" / "in.txt";
  std::string text;
  for (int i = 0; i < 5000; ++i) text += (i == 2500 ? "BAD" : "line " + std::to_string(i)) + "\n";
  std::ofstream(path, std::ios::binary) << text;
  job.files.push_back(InputFile{path.string(), static_cast<int64_t>(text.size())});
  job.code.mapper = PythonScript("fail_on_line.py", "BAD");
  job.code.reducer = "cat";
  AssignMsg task = job.Task(TaskKind::kMap, 0, 2);
  task.split = PlanSplits(job.files, 1)[0];
  StderrCapture capture(job.dir.path() / "stderr.log");
  TaskResult result;
  std::string error;
  CHECK_FALSE(job.Run(task, &result, &error));
  capture.Take();
  CHECK(error.find("mapper command exited with status 1") != std::string::npos);
  CHECK(error.find("bad record: BAD") != std::string::npos);
  CHECK(result.outputs.empty());
}

}  // namespace
}  // namespace zmr
