#include "worker/attempt_process.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/layout.h"
#include "common/sha256.h"
#include "common/splits.h"
#include "runner/intermediate.h"
#include "runner/task_runner.h"
#include "worker/attempt_log.h"
#include "worker/blob_cache.h"
#include "worker/runner_pool.h"
#include "tests/support/temp_dir.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// All records of a run file, or a test failure.
std::vector<std::pair<std::string, std::string>> ReadRun(const std::string& path) {
  std::string error;
  auto reader = RunReader::Open(path, &error);
  REQUIRE_MESSAGE(reader != nullptr, error);
  std::vector<std::pair<std::string, std::string>> records;
  std::string_view key, value;
  while (reader->Next(&key, &value)) records.emplace_back(std::string(key), std::string(value));
  REQUIRE_MESSAGE(reader->error().empty(), reader->error());
  return records;
}

// Pids whose parent is this process.
std::vector<pid_t> Children() {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  REQUIRE(proc != nullptr);
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::string stat = ReadBytes(std::string("/proc/") + entry->d_name + "/stat");
    std::size_t close = stat.rfind(')');
    char state = 0;
    long ppid = 0;
    if (close == std::string::npos ||
        std::sscanf(stat.c_str() + close + 1, " %c %ld", &state, &ppid) != 2) {
      continue;
    }
    if (ppid == getpid()) children.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return children;
}

// Whether the attempt's process group and every process it left behind are gone. Leftovers are
// reparented to this process (Run made it a subreaper); the worker sweeps them with ReapOrphans
// every second, which this does too while it waits (at most ten seconds).
bool NothingLeftOf(pid_t pgid) {
  int64_t deadline = SteadyMs() + 10000;
  for (;;) {
    ReapOrphans();
    bool group_gone = kill(-pgid, 0) != 0 && errno == ESRCH;
    if (group_gone && Children().empty()) return true;
    if (SteadyMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// What one Run reported.
struct Outcome {
  bool ok = false;
  TaskResult result;
  std::string error;
  pid_t pid = 0;
  std::vector<double> progress;
  std::vector<std::string> statuses;
};

// A work dir with a blob cache, an input dir and an output dir, and the AttemptProcess running
// the real zmr-task from the build tree.
struct Fixture {
  TempDir dir;
  fs::path work = dir.path() / "work";
  fs::path input = dir.path() / "in";
  fs::path output = dir.path() / "out";
  BlobCache blobs{(dir.path() / "work" / "cache").string()};
  AttemptProcessOptions options;

  Fixture() {
    fs::create_directories(work);
    fs::create_directories(input);
    fs::create_directories(output);
    options.work_dir = work.string();
    options.task_binary = ZMR_BINARY_DIR "/worker/zmr-task";
    options.blobs = &blobs;
  }

  // A map task over one input file holding `text`.
  AssignMsg MapTask(const std::string& text, int64_t reduces, const std::string& app = "") {
    fs::path path = input / ("input-" + std::to_string(inputs_++) + ".txt");
    WriteBytes(path, text);
    AssignMsg task;
    task.job_id = "job_test_0001";
    task.task_id = "m-00000";
    task.attempt = 1;
    task.kind = TaskKind::kMap;
    task.app = app;
    task.num_reduces = reduces;
    task.output_dir = output.string();
    task.partition = 0;
    task.split = PlanSplits({InputFile{path.string(), static_cast<int64_t>(text.size())}}, 1)[0];
    return task;
  }

  // A streaming map-only task running `mapper` over `text`.
  AssignMsg StreamingMap(const std::string& mapper, const std::string& text = "a\nb\nc\n") {
    AssignMsg task = MapTask(text, 0);
    task.code.mapper = mapper;
    return task;
  }

  // Puts bytes in the blob cache and returns the reference an assign would carry.
  FileRef Ship(const std::string& name, const std::string& bytes, int64_t mode) {
    std::string sha = Sha256Hex(bytes);
    std::string error;
    REQUIRE_MESSAGE(blobs.Put(sha, bytes, &error), error);
    return FileRef{name, sha, mode};
  }

  Outcome Run(const AssignMsg& task, const std::atomic<bool>& cancelled,
              const AttemptProcessOptions& with) {
    AttemptProcess process(with);
    return RunOn(process, task, cancelled);
  }

  // Runs the attempt on `process`, whose idle runners it may use and leaves behind.
  Outcome RunOn(AttemptProcess& process, const AssignMsg& task,
                const std::atomic<bool>& cancelled) {
    Outcome out;
    AttemptCallbacks callbacks;
    std::mutex mu;
    callbacks.progress = [&](double progress, const std::string& status) {
      std::lock_guard<std::mutex> lock(mu);
      out.progress.push_back(progress);
      if (!status.empty()) out.statuses.push_back(status);
    };
    callbacks.started = [&](pid_t pid) { out.pid = pid; };
    out.ok = process.Run(task, cancelled, callbacks, &out.result, &out.error);
    return out;
  }

  Outcome Run(const AssignMsg& task) {
    std::atomic<bool> cancelled{false};
    return Run(task, cancelled, options);
  }

  Outcome RunOn(AttemptProcess& process, const AssignMsg& task) {
    std::atomic<bool> cancelled{false};
    return RunOn(process, task, cancelled);
  }

  fs::path AttemptDir(const AssignMsg& task) const {
    return layout::AttemptDir(options.work_dir, AttemptRef{task.job_id, task.task_id, task.attempt});
  }
  fs::path LogPath(const AssignMsg& task) const {
    return layout::AttemptLogPath(options.work_dir, AttemptRef{task.job_id, task.task_id, task.attempt});
  }
  // The attempt's lines in its job's succeeded.log ("" if none).
  std::string QuietLog(const AssignMsg& task) const {
    return QuietAttemptLog(ReadBytes(layout::SucceededLogPath(options.work_dir, task.job_id)),
                           AttemptRef{task.job_id, task.task_id, task.attempt});
  }

 private:
  int inputs_ = 0;
};

std::string Corpus() {
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    text += "the quick brown fox " + std::to_string(i % 13) + " jumps over the lazy dog\n";
    if (i % 7 == 0) text += "Alice was beginning to get very tired\n";
  }
  return text;
}

TEST_CASE("a built-in wordcount map and reduce in child processes give the in-process output") {
  Fixture f;
  const std::string text = Corpus();
  const int64_t reduces = 2;
  AssignMsg map = f.MapTask(text, reduces, "wordcount");

  // The same task in this process, with its own store and output dir.
  const fs::path inproc_output = f.dir.path() / "out-inproc";
  fs::create_directories(inproc_output);
  LocalFileStore inproc_store((f.dir.path() / "work-inproc").string());
  std::atomic<bool> never{false};
  TaskContext ctx;
  ctx.store = &inproc_store;
  ctx.cancelled = &never;
  ctx.attempt_dir = (f.dir.path() / "inproc-attempt").string();
  TaskResult inproc_map;
  std::string error;
  REQUIRE_MESSAGE(RunMapTask(map, ctx, &inproc_map, &error), error);

  Outcome child_map = f.Run(map);
  REQUIRE_MESSAGE(child_map.ok, child_map.error);
  REQUIRE(child_map.result.outputs.size() == static_cast<std::size_t>(reduces));
  for (int64_t p = 0; p < reduces; ++p) {
    const MapOutput& out = child_map.result.outputs[p];
    CHECK(out.partition == p);
    CHECK(out.location.rfind(f.work.string() + "/", 0) == 0);
    CHECK(ReadRun(out.location) == ReadRun(inproc_map.outputs[p].location));
    CHECK(out.records == inproc_map.outputs[p].records);
  }
  for (const auto& [name, value] : inproc_map.counters) {
    CHECK_MESSAGE(child_map.result.counters[name] == value, name);
  }
  CHECK(child_map.result.counters.count("task_cpu_ms") == 1);
  CHECK(child_map.result.counters["task_cpu_ms"] >= 0);
  CHECK(child_map.result.counters["peak_rss_kb"] > 0);
  // Progress only grows; the final 1.0 of an attempt that ends at once is implied by its outcome.
  for (std::size_t i = 0; i < child_map.progress.size(); ++i) {
    CHECK(child_map.progress[i] >= 0.0);
    CHECK(child_map.progress[i] <= 1.0);
    if (i > 0) CHECK(child_map.progress[i] >= child_map.progress[i - 1]);
  }
  CHECK_FALSE(fs::exists(f.AttemptDir(map)));
  // It wrote nothing to stderr: its notes are in the job's succeeded.log, not a file of its own.
  CHECK_FALSE(fs::exists(f.LogPath(map)));
  const std::string quiet = f.QuietLog(map);
  CHECK(quiet.find("started ") != std::string::npos);
  CHECK(quiet.find("attempt succeeded (cpu ") != std::string::npos);
  CHECK(quiet.find(map.task_id + ".a") == std::string::npos);  // the prefix is taken off
  CHECK(NothingLeftOf(child_map.pid));

  for (int64_t p = 0; p < reduces; ++p) {
    AssignMsg reduce = map;
    reduce.kind = TaskKind::kReduce;
    reduce.task_id = "r-0000" + std::to_string(p);
    reduce.partition = p;
    reduce.split.clear();
    reduce.inputs = {child_map.result.outputs[p].location};
    Outcome child_reduce = f.Run(reduce);
    REQUIRE_MESSAGE(child_reduce.ok, child_reduce.error);
    REQUIRE(child_reduce.result.outputs.size() == 1);
    CHECK(child_reduce.result.counters["peak_rss_kb"] > 0);

    AssignMsg inproc_reduce = reduce;
    inproc_reduce.output_dir = inproc_output.string();
    inproc_reduce.inputs = {inproc_map.outputs[p].location};
    TaskResult inproc_result;
    REQUIRE_MESSAGE(RunReduceTask(inproc_reduce, ctx, &inproc_result, &error), error);
    REQUIRE(inproc_result.outputs.size() == 1);
    const std::string child_bytes = ReadBytes(child_reduce.result.outputs[0].location);
    CHECK_FALSE(child_bytes.empty());
    CHECK(child_bytes == ReadBytes(inproc_result.outputs[0].location));
    CHECK(child_reduce.result.outputs[0].location.rfind(f.output.string() + "/_temporary/", 0) ==
          0);
  }
}

TEST_CASE("a streaming mapper killed by SIGSEGV fails the attempt naming the signal") {
  Fixture f;
  AssignMsg task = f.StreamingMap("kill -SEGV $$");
  Outcome out = f.Run(task);
  CHECK_FALSE(out.ok);
  CHECK_MESSAGE(out.error.find("SIGSEGV") != std::string::npos, out.error);
  CHECK(out.error.find('\n') == std::string::npos);
  CHECK(out.pid > 0);
  CHECK(NothingLeftOf(out.pid));
  CHECK_FALSE(fs::exists(f.AttemptDir(task)));
}

TEST_CASE("a streaming mapper that exits 1 fails the attempt with its status and stderr") {
  Fixture f;
  AssignMsg task = f.StreamingMap("cat >/dev/null; echo 'cannot parse record 7' >&2; exit 1");
  Outcome out = f.Run(task);
  CHECK_FALSE(out.ok);
  CHECK_MESSAGE(out.error.find("status 1") != std::string::npos, out.error);
  CHECK_MESSAGE(out.error.find("cannot parse record 7") != std::string::npos, out.error);
  CHECK(NothingLeftOf(out.pid));
  // The attempt log keeps the command's stderr after the attempt dir is gone.
  CHECK(ReadBytes(f.LogPath(task)).find("cannot parse record 7") != std::string::npos);
}

TEST_CASE("a streaming mapper that never makes progress is killed after the task timeout") {
  Fixture f;
  AttemptProcessOptions options = f.options;
  options.task_timeout_ms = 1000;
  // sh forks sleep (it is not the last command), so killing sh alone would leave sleep behind.
  AssignMsg task = f.StreamingMap("sleep 1000; cat");
  std::atomic<bool> cancelled{false};
  Outcome out = f.Run(task, cancelled, options);
  CHECK_FALSE(out.ok);
  CHECK(out.error == "task timed out after 1 s without progress");
  CHECK(NothingLeftOf(out.pid));
  CHECK_FALSE(fs::exists(f.AttemptDir(task)));
}

TEST_CASE("cancelling a running attempt kills its task process and the commands it started") {
  Fixture f;
  AssignMsg task = f.StreamingMap("touch started; sleep 1000; cat");
  std::atomic<bool> cancelled{false};
  Outcome out;
  std::thread runner([&] { out = f.Run(task, cancelled, f.options); });
  // Cancel once the command runs (or after ten seconds, which the checks below then report).
  const fs::path marker = f.AttemptDir(task) / "started";
  int64_t deadline = SteadyMs() + 10000;
  while (!fs::exists(marker) && SteadyMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(fs::exists(marker));
  cancelled.store(true);
  runner.join();
  CHECK_FALSE(out.ok);
  CHECK(out.error == "cancelled");
  CHECK(NothingLeftOf(out.pid));
  CHECK_FALSE(fs::exists(f.AttemptDir(task)));
}

TEST_CASE("a plugin whose Map crashes fails the attempt with SIGSEGV and this process survives") {
  Fixture f;
  const std::string library = ReadBytes(ZMR_TEST_CRASH_PLUGIN);
  REQUIRE_FALSE(library.empty());
  FileRef ref = f.Ship("libzmrtestcrash.so", library, 0755);

  SUBCASE("a line that does not crash maps normally") {
    AssignMsg task = f.MapTask("alpha\nbeta\n", 1, "crash");
    task.code.plugin = ref.sha256;
    task.code.files = {ref};
    Outcome out = f.Run(task);
    REQUIRE_MESSAGE(out.ok, out.error);
    REQUIRE(out.result.outputs.size() == 1);
    auto records = ReadRun(out.result.outputs[0].location);
    CHECK(records == std::vector<std::pair<std::string, std::string>>{{"alpha", "1"}, {"beta", "1"}});
    CHECK(NothingLeftOf(out.pid));
  }
  SUBCASE("the crashing line kills the task process, not this one") {
    AssignMsg task = f.MapTask("alpha\ncrash\nbeta\n", 1, "crash");
    task.code.plugin = ref.sha256;
    task.code.files = {ref};
    Outcome out = f.Run(task);
    CHECK_FALSE(out.ok);
    CHECK_MESSAGE(out.error.find("task process killed by signal SIGSEGV") == 0, out.error);
    CHECK(out.result.counters.count("peak_rss_kb") == 1);
    CHECK(NothingLeftOf(out.pid));
    CHECK_FALSE(fs::exists(f.AttemptDir(task)));
  }
  SUBCASE("the wrong app name fails with the loader's error") {
    AssignMsg task = f.MapTask("alpha\n", 1, "nosuchapp");
    task.code.plugin = ref.sha256;
    task.code.files = {ref};
    Outcome out = f.Run(task);
    CHECK_FALSE(out.ok);
    CHECK_MESSAGE(out.error.find("libzmrtestcrash.so") != std::string::npos, out.error);
    CHECK_MESSAGE(out.error.find("nosuchapp") != std::string::npos, out.error);
  }
}

TEST_CASE("shipped files appear in the attempt dir with their mode bits") {
  Fixture f;
  FileRef tool = f.Ship("tool.sh",
                        "#!/bin/sh\n"
                        "cat >/dev/null\n"
                        "for f in tool.sh data.txt; do printf '%s\\t%s\\n' \"$f\" \"$(stat -c %a \"$f\")\"; done\n"
                        "printf 'data\\t%s\\n' \"$(cat data.txt)\"\n",
                        0755);
  FileRef data = f.Ship("data.txt", "forty-two", 0640);
  AssignMsg task = f.StreamingMap("./tool.sh");
  task.code.files = {tool, data};
  Outcome out = f.Run(task);
  REQUIRE_MESSAGE(out.ok, out.error);
  REQUIRE(out.result.outputs.size() == 1);
  CHECK(ReadBytes(out.result.outputs[0].location) ==
        "tool.sh\t755\ndata.txt\t640\ndata\tforty-two\n");
  CHECK_FALSE(fs::exists(f.AttemptDir(task)));
}

TEST_CASE("an attempt whose shipped file is not cached fails without starting a process") {
  Fixture f;
  AssignMsg task = f.StreamingMap("cat");
  task.code.files = {FileRef{"missing.txt", std::string(64, 'a'), 0644}};
  Outcome out = f.Run(task);
  CHECK_FALSE(out.ok);
  CHECK(out.error == "shipped file missing.txt not available");
  CHECK(out.pid == 0);
}

TEST_CASE("a streaming command's status reaches the progress callback") {
  Fixture f;
  AssignMsg task = f.StreamingMap("echo 'reporter:status:halfway there' >&2; cat");
  Outcome out = f.Run(task);
  REQUIRE_MESSAGE(out.ok, out.error);
  REQUIRE_FALSE(out.statuses.empty());
  CHECK(out.statuses.back() == "halfway there");
}

#if !defined(__SANITIZE_ADDRESS__)
// (Under AddressSanitizer zmr-task does not apply the limit: ASan needs terabytes of address space.)
TEST_CASE("the memory limit bounds the task process and the commands it runs") {
  Fixture f;
  AttemptProcessOptions options = f.options;
  options.memory_limit_bytes = 100ll << 20;
  std::atomic<bool> cancelled{false};

  SUBCASE("a streaming command that allocates without bound fails") {
    // ulimit -v is only a safety net for this machine should the limit not apply; the peak RSS
    // shows which one stopped it.
    AssignMsg task = f.StreamingMap(
        "cat >/dev/null; ulimit -v 2000000; awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
    Outcome out = f.Run(task, cancelled, options);
    CHECK_FALSE(out.ok);
    CHECK_MESSAGE(out.error.find("out of memory") != std::string::npos, out.error);
    CHECK(out.result.counters["peak_rss_kb"] < 300 * 1024);
    CHECK(NothingLeftOf(out.pid));
  }
  SUBCASE("the task process itself failing to allocate reports the limit") {
    // One 128 MiB line: the split reader cannot hold it under a 100 MiB address-space limit.
    AssignMsg task = f.MapTask(std::string(128 << 20, 'x') + "\n", 1, "wordcount");
    Outcome out = f.Run(task, cancelled, options);
    CHECK_FALSE(out.ok);
    CHECK_MESSAGE(out.error.find("out of memory (limit 100 MB)") == 0, out.error);
    CHECK(NothingLeftOf(out.pid));
  }
}
#endif

// Whether a process with this pid exists (a zombie counts: it is not reaped yet).
bool ProcessExists(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

// The runner's argv[1] as /proc/PID/cmdline shows it (the title it rewrites in place).
std::string RunnerTitle(pid_t pid) {
  std::string cmdline = ReadBytes("/proc/" + std::to_string(pid) + "/cmdline");
  std::size_t first = cmdline.find('\0');
  if (first == std::string::npos) return "";
  std::string title = cmdline.substr(first + 1);
  title.resize(std::strlen(title.c_str()));
  return title;
}

TEST_CASE("a runner whose attempt succeeded runs the next attempts, each with its own log") {
  Fixture f;
  AttemptProcess process(f.options);
  AssignMsg first = f.StreamingMap("echo 'first attempt speaking' >&2; cat", "a\nb\n");
  Outcome one = f.RunOn(process, first);
  REQUIRE_MESSAGE(one.ok, one.error);
  CHECK(process.IdleRunners() == 1);
  CHECK(RunnerTitle(one.pid) == kIdleRunnerTitle);

  AssignMsg second = f.StreamingMap("echo 'second attempt speaking' >&2; tr a-z A-Z", "c\nd\n");
  second.task_id = "m-00001";
  second.partition = 1;
  Outcome two = f.RunOn(process, second);
  REQUIRE_MESSAGE(two.ok, two.error);
  CHECK(two.pid == one.pid);
  REQUIRE(two.result.outputs.size() == 1);
  CHECK(ReadBytes(two.result.outputs[0].location) == "C\nD\n");
  CHECK(two.result.counters["peak_rss_kb"] > 0);
  CHECK(two.result.counters.count("task_cpu_ms") == 1);

  // A built-in app's attempt (another job) takes the same runner: it has no user code in it.
  AssignMsg third = f.MapTask("x y x\n", 1, "wordcount");
  third.job_id = "job_test_0002";
  Outcome three = f.RunOn(process, third);
  REQUIRE_MESSAGE(three.ok, three.error);
  CHECK(three.pid == one.pid);
  REQUIRE(three.result.outputs.size() == 1);
  CHECK(ReadRun(three.result.outputs[0].location) ==
        std::vector<std::pair<std::string, std::string>>{{"x", "2"}, {"y", "1"}});

  const std::string log_one = ReadBytes(f.LogPath(first));
  const std::string log_two = ReadBytes(f.LogPath(second));
  CHECK(log_one.find("first attempt speaking") != std::string::npos);
  CHECK(log_one.find("second attempt speaking") == std::string::npos);
  CHECK(log_two.find("second attempt speaking") != std::string::npos);
  CHECK(log_two.find("first attempt speaking") == std::string::npos);
  CHECK(log_two.find("reusing") != std::string::npos);
  CHECK_FALSE(fs::exists(f.AttemptDir(first)));
  CHECK_FALSE(fs::exists(f.AttemptDir(second)));
}

TEST_CASE("a runner whose attempt failed or was cancelled is never given another attempt") {
  Fixture f;
  AttemptProcess process(f.options);
  Outcome good = f.RunOn(process, f.StreamingMap("cat"));
  REQUIRE_MESSAGE(good.ok, good.error);

  SUBCASE("failed") {
    AssignMsg bad = f.StreamingMap("cat >/dev/null; exit 3");
    bad.task_id = "m-00001";
    Outcome failed = f.RunOn(process, bad);
    CHECK_FALSE(failed.ok);
    CHECK(failed.pid == good.pid);  // it ran on the idle runner...
    CHECK(NothingLeftOf(failed.pid));  // ...which is gone with it
  }
  SUBCASE("cancelled") {
    AssignMsg slow = f.StreamingMap("touch started; sleep 1000; cat");
    slow.task_id = "m-00001";
    std::atomic<bool> cancelled{false};
    Outcome out;
    std::thread thread([&] { out = f.RunOn(process, slow, cancelled); });
    const fs::path marker = f.AttemptDir(slow) / "started";
    int64_t deadline = SteadyMs() + 10000;
    while (!fs::exists(marker) && SteadyMs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    cancelled.store(true);
    thread.join();
    CHECK(out.error == "cancelled");
    CHECK(out.pid == good.pid);
    CHECK(NothingLeftOf(out.pid));
  }
  CHECK(process.IdleRunners() == 0);
  AssignMsg next = f.StreamingMap("cat");
  next.task_id = "m-00002";
  Outcome after = f.RunOn(process, next);
  REQUIRE_MESSAGE(after.ok, after.error);
  CHECK(after.pid != good.pid);
}

TEST_CASE("a runner that loaded a plugin serves only its job, and retires with it") {
  Fixture f;
  AttemptProcessOptions options = f.options;
  options.max_idle_runners = 3;  // room for the three runners below
  AttemptProcess process(options);
  const std::string library = ReadBytes(ZMR_TEST_CRASH_PLUGIN);
  REQUIRE_FALSE(library.empty());
  FileRef ref = f.Ship("libzmrtestcrash.so", library, 0755);
  auto plugin_task = [&](const std::string& job_id, const std::string& task_id) {
    AssignMsg task = f.MapTask("alpha\nbeta\n", 1, "crash");
    task.job_id = job_id;
    task.task_id = task_id;
    task.code.plugin = ref.sha256;
    task.code.files = {ref};
    return task;
  };
  Outcome a1 = f.RunOn(process, plugin_task("job_a", "m-00000"));
  REQUIRE_MESSAGE(a1.ok, a1.error);
  Outcome b1 = f.RunOn(process, plugin_task("job_b", "m-00000"));
  REQUIRE_MESSAGE(b1.ok, b1.error);
  CHECK(b1.pid != a1.pid);
  Outcome builtin = f.RunOn(process, f.MapTask("gamma\n", 1, "wordcount"));
  REQUIRE_MESSAGE(builtin.ok, builtin.error);
  CHECK(builtin.pid != a1.pid);
  CHECK(builtin.pid != b1.pid);
  Outcome a2 = f.RunOn(process, plugin_task("job_a", "m-00001"));
  REQUIRE_MESSAGE(a2.ok, a2.error);
  CHECK(a2.pid == a1.pid);
  REQUIRE(a2.result.outputs.size() == 1);
  CHECK(ReadRun(a2.result.outputs[0].location) ==
        std::vector<std::pair<std::string, std::string>>{{"alpha", "1"}, {"beta", "1"}});

  process.RetireRunners("job_a");
  CHECK_FALSE(ProcessExists(a1.pid));
  CHECK(ProcessExists(b1.pid));
  CHECK(ProcessExists(builtin.pid));
}

TEST_CASE("an idle runner that was killed is not given the next attempt") {
  Fixture f;
  AttemptProcess process(f.options);
  Outcome first = f.RunOn(process, f.StreamingMap("cat"));
  REQUIRE_MESSAGE(first.ok, first.error);
  REQUIRE(process.IdleRunners() == 1);
  REQUIRE(kill(first.pid, SIGKILL) == 0);
  // Wait (at most ten seconds) until it has exited, not reaped. (Its main thread shows as a zombie
  // in /proc before its other threads are gone; only then can a parent wait for it.)
  int64_t deadline = SteadyMs() + 10000;
  for (;;) {
    siginfo_t info{};
    REQUIRE(waitid(P_PID, static_cast<id_t>(first.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0);
    if (info.si_pid == first.pid) break;
    REQUIRE(SteadyMs() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  AssignMsg next = f.StreamingMap("cat");
  next.task_id = "m-00001";
  Outcome second = f.RunOn(process, next);
  REQUIRE_MESSAGE(second.ok, second.error);
  CHECK(second.pid != first.pid);
  CHECK_FALSE(ProcessExists(first.pid));  // reaped
}

TEST_CASE("with one attempt per runner every attempt gets a fresh process") {
  Fixture f;
  AttemptProcessOptions options = f.options;
  options.attempts_per_runner = 1;
  AttemptProcess process(options);
  Outcome one = f.RunOn(process, f.StreamingMap("cat"));
  REQUIRE_MESSAGE(one.ok, one.error);
  CHECK_FALSE(ProcessExists(one.pid));
  AssignMsg second = f.StreamingMap("cat");
  second.task_id = "m-00001";
  Outcome two = f.RunOn(process, second);
  REQUIRE_MESSAGE(two.ok, two.error);
  CHECK(two.pid != one.pid);
  CHECK(process.IdleRunners() == 0);
}

TEST_CASE("idle runners beyond the pool size are retired") {
  Fixture f;
  AttemptProcessOptions options = f.options;
  options.max_idle_runners = 1;
  AttemptProcess process(options);
  // Two attempts at once need two runners; only one stays idle after them.
  const fs::path gate = f.dir.path() / "gate";
  AssignMsg a = f.StreamingMap("touch started; while [ ! -e " + gate.string() +
                                " ]; do sleep 0.01; done; cat");
  AssignMsg b = a;
  b.task_id = "m-00001";
  Outcome out_a, out_b;
  std::thread ta([&] { out_a = f.RunOn(process, a); });
  std::thread tb([&] { out_b = f.RunOn(process, b); });
  // Open the gate once both run (or after twenty seconds, which the checks below then report).
  int64_t deadline = SteadyMs() + 20000;
  while (!(fs::exists(f.AttemptDir(a) / "started") && fs::exists(f.AttemptDir(b) / "started")) &&
         SteadyMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  WriteBytes(gate, "");
  ta.join();
  tb.join();
  REQUIRE_MESSAGE(out_a.ok, out_a.error);
  REQUIRE_MESSAGE(out_b.ok, out_b.error);
  CHECK(out_a.pid != out_b.pid);
  CHECK(process.IdleRunners() == 1);
  CHECK(ProcessExists(out_a.pid) != ProcessExists(out_b.pid));
}

TEST_CASE("the blob cache refuses bytes whose digest does not match their name") {
  TempDir dir;
  BlobCache cache((dir.path() / "cache").string());
  std::string error;
  const std::string sha = Sha256Hex("hello");
  CHECK_FALSE(cache.Put(sha, "hellO", &error));
  CHECK(error.find(sha) != std::string::npos);
  CHECK_FALSE(cache.Has(sha));
  CHECK_FALSE(cache.Put("../etc/passwd", "x", &error));
  REQUIRE(cache.Put(sha, "hello", &error));
  CHECK(cache.Has(sha));
  CHECK(ReadBytes(cache.Path(sha)) == "hello");
  CHECK(cache.Put(sha, "hello", &error));  // present already: fine
  CHECK(cache.Path(std::string(64, 'b')).empty());
}

}  // namespace
}  // namespace zmr
