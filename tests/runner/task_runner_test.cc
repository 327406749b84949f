#include "runner/task_runner.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/app.h"
#include "common/splits.h"
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

// Regular files anywhere under dir (empty if dir does not exist).
std::vector<std::string> FilesUnder(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  return files;
}

// The reference word count: letters [A-Za-z] lower-cased, computed independently of the apps.
std::map<std::string, int64_t> ReferenceWordCount(const std::vector<std::string>& texts) {
  std::map<std::string, int64_t> counts;
  for (const std::string& text : texts) {
    std::string word;
    for (char c : text + " ") {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      } else if (!word.empty()) {
        ++counts[word];
        word.clear();
      }
    }
  }
  return counts;
}

// Parses "key\tvalue\n" lines.
std::vector<std::pair<std::string, std::string>> ParsePart(const std::string& bytes) {
  std::vector<std::pair<std::string, std::string>> lines;
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) {
    auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    lines.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return lines;
}

// A small multi-file corpus, its map tasks and a store: runs maps and reduces like a worker would.
struct Pipeline {
  TempDir dir;
  fs::path input_dir = dir.path() / "in";
  fs::path output_dir = dir.path() / "out";
  LocalFileStore store{(dir.path() / "work").string()};
  std::atomic<bool> cancelled{false};
  std::vector<double> progress;
  TaskContext ctx;
  std::vector<std::string> texts;
  std::vector<InputFile> files;

  Pipeline() {
    fs::create_directories(input_dir);
    fs::create_directories(output_dir);
    ctx.store = &store;
    ctx.cancelled = &cancelled;
    ctx.progress = [this](double f) { progress.push_back(f); };
  }

  void AddFile(const std::string& name, const std::string& text) {
    fs::path path = input_dir / name;
    WriteBytes(path, text);
    texts.push_back(text);
    files.push_back(InputFile{path.string(), static_cast<int64_t>(text.size())});
  }

  AssignMsg Task(const std::string& app, int64_t reduces) const {
    AssignMsg task;
    task.job_id = "job_test_0001";
    task.app = app;
    task.num_reduces = reduces;
    task.output_dir = output_dir.string();
    return task;
  }

  // Runs one map per split; returns each map's outputs (or fails the test).
  std::vector<std::vector<MapOutput>> RunMaps(const std::string& app, int64_t reduces,
                                              int num_maps, Counters* totals,
                                              const Params& params = {}) {
    std::vector<std::vector<MapOutput>> all;
    auto splits = PlanSplits(files, num_maps);
    for (std::size_t m = 0; m < splits.size(); ++m) {
      AssignMsg task = Task(app, reduces);
      task.params = params;
      task.kind = TaskKind::kMap;
      task.task_id = "m-0000" + std::to_string(m);
      task.split = splits[m];
      TaskResult result;
      std::string error;
      progress.clear();
      REQUIRE_MESSAGE(RunMapTask(task, ctx, &result, &error), error);
      REQUIRE(result.outputs.size() == static_cast<std::size_t>(reduces));
      for (int64_t p = 0; p < reduces; ++p) {
        CHECK(result.outputs[p].partition == p);
        CHECK(fs::exists(result.outputs[p].location));
        CHECK(result.outputs[p].bytes == static_cast<int64_t>(fs::file_size(result.outputs[p].location)));
      }
      REQUIRE_FALSE(progress.empty());
      CHECK(progress.back() == 1.0);
      for (const auto& [name, value] : result.counters) (*totals)[name] += value;
      all.push_back(result.outputs);
    }
    return all;
  }

  AssignMsg ReduceTask(const std::string& app, int64_t reduces, int64_t partition,
                       const std::vector<std::vector<MapOutput>>& maps) const {
    AssignMsg task = Task(app, reduces);
    task.kind = TaskKind::kReduce;
    task.task_id = "r-0000" + std::to_string(partition);
    task.partition = partition;
    for (const auto& outputs : maps) task.inputs.push_back(outputs[partition].location);
    return task;
  }

  // Checks a reduce's (or map-only map's) result names its finished part file under
  // OUTPUT/_temporary/<task>.a<attempt>/ and commits it as the coordinator would.
  void Commit(const AssignMsg& task, const TaskResult& result) const {
    REQUIRE(result.outputs.size() == 1);
    const MapOutput& out = result.outputs[0];
    char name[32];
    std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(task.partition));
    const fs::path tmp = output_dir / "_temporary" /
                         (task.task_id + ".a" + std::to_string(task.attempt)) / name;
    CHECK(out.location == tmp.string());
    CHECK(out.partition == task.partition);
    REQUIRE(fs::exists(tmp));
    CHECK(out.bytes == static_cast<int64_t>(fs::file_size(tmp)));
    fs::rename(tmp, output_dir / name);
    fs::remove(tmp.parent_path());
    fs::remove(tmp.parent_path().parent_path());
  }
};

const char* kAlice =
    "Alice was beginning to get very tired of sitting by her sister on the bank,\n"
    "and of having nothing to do: once or twice she had peeped into the book her sister\n"
    "was reading, but it had no pictures or conversations in it, 'and what is the use\n"
    "of a book,' thought Alice 'without pictures or conversations?'\n";
const char* kCrlf = "The quick brown fox\r\njumps over the lazy dog\r\nTHE END\r\n";
const char* kNoNewline = "last line without newline THE the The";

TEST_CASE("map and reduce tasks over a small corpus produce an exact word count") {
  Pipeline p;
  p.AddFile("alice.txt", kAlice);
  p.AddFile("crlf.txt", kCrlf);
  p.AddFile("empty.txt", "");
  p.AddFile("tail.txt", kNoNewline);
  std::string repeated;
  for (int i = 0; i < 3000; ++i) repeated += "ab Ab aB cd" + std::to_string(i % 7) + "ef\n";
  p.AddFile("repeated.txt", repeated);

  const int64_t reduces = 3;
  Counters map_counters;
  auto maps = p.RunMaps("wordcount", reduces, 4, &map_counters);

  std::map<std::string, int64_t> counted;
  Counters reduce_counters;
  for (int64_t r = 0; r < reduces; ++r) {
    AssignMsg task = p.ReduceTask("wordcount", reduces, r, maps);
    TaskResult result;
    std::string error;
    p.progress.clear();
    REQUIRE_MESSAGE(RunReduceTask(task, p.ctx, &result, &error), error);
    p.Commit(task, result);
    REQUIRE_FALSE(p.progress.empty());
    CHECK(p.progress.back() == 1.0);
    for (const auto& [name, value] : result.counters) reduce_counters[name] += value;

    char name[32];
    std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(r));
    const fs::path part = p.output_dir / name;
    REQUIRE(fs::exists(part));
    const std::string bytes = ReadBytes(part);
    std::string previous;
    for (const auto& [key, value] : ParsePart(bytes)) {
      CHECK(counted.count(key) == 0);  // each key in exactly one partition, once
      CHECK((previous.empty() || previous < key));
      previous = key;
      counted[key] = std::stoll(value);
    }
    CHECK(result.counters["reduce_output_bytes"] == static_cast<int64_t>(bytes.size()));
  }
  const auto expected = ReferenceWordCount(p.texts);
  CHECK(counted == expected);
  CHECK(FilesUnder(p.output_dir / "_temporary").empty());

  int64_t words = 0;
  for (const auto& [word, n] : expected) words += n;
  int64_t lines = 4 + 3 + 1 + 3000;
  CHECK(map_counters["map_input_records"] == lines);
  CHECK(map_counters["map_input_bytes"] == static_cast<int64_t>(
                                               std::string(kAlice).size() + std::string(kCrlf).size() +
                                               std::string(kNoNewline).size() + repeated.size()));
  CHECK(map_counters["map_output_records"] == words);
  int64_t run_records = 0;
  for (const auto& outputs : maps) {
    for (const MapOutput& out : outputs) run_records += out.records;
  }
  // Most map output went through the combiner (some values more than once, as eager combines
  // feed their output back), and each combine replaced its input by its output.
  CHECK(map_counters["combine_input_records"] > 0);
  CHECK(map_counters["map_output_bytes"] > words);
  // Nothing spilled with the default buffer: the spilled records are the final runs.
  CHECK(map_counters["map_output_records"] - map_counters["combine_input_records"] +
            map_counters["combine_output_records"] ==
        run_records);
  CHECK(run_records < words);
  CHECK(map_counters["spilled_records"] == run_records);
  CHECK(reduce_counters["reduce_input_groups"] == static_cast<int64_t>(expected.size()));
  CHECK(reduce_counters["reduce_output_records"] == static_cast<int64_t>(expected.size()));
  CHECK(reduce_counters["reduce_input_records"] == run_records);
}

TEST_CASE("invertedindex and grep tasks produce the expected part files") {
  Pipeline p;
  p.AddFile("a.txt", "Apple banana\napple\n");
  p.AddFile("b.txt", "banana cherry, APPLE\n");
  p.AddFile("c.txt", "cherry\n");

  Counters counters;
  auto maps = p.RunMaps("invertedindex", 1, 2, &counters);
  TaskResult result;
  std::string error;
  AssignMsg ii_task = p.ReduceTask("invertedindex", 1, 0, maps);
  REQUIRE_MESSAGE(RunReduceTask(ii_task, p.ctx, &result, &error), error);
  p.Commit(ii_task, result);
  CHECK(ReadBytes(p.output_dir / "part-00000") ==
        "apple\ta.txt,b.txt\nbanana\ta.txt,b.txt\ncherry\tb.txt,c.txt\n");

  Pipeline g;
  g.AddFile("x.log", "error: disk\nok\nerror: net error: disk\n");
  g.AddFile("y.log", "warning\nerror: disk\n");
  Counters grep_counters;
  auto grep_maps = g.RunMaps("grep", 1, 3, &grep_counters, {{"pattern", "error: [a-z]+"}});
  AssignMsg task = g.ReduceTask("grep", 1, 0, grep_maps);
  task.params = {{"pattern", "error: [a-z]+"}};
  result = {};
  REQUIRE_MESSAGE(RunReduceTask(task, g.ctx, &result, &error), error);
  g.Commit(task, result);
  CHECK(ReadBytes(g.output_dir / "part-00000") == "error: disk\t3\nerror: net\t1\n");
}

TEST_CASE("a map task writes a run for every partition even when most are empty") {
  Pipeline p;
  p.AddFile("one.txt", "word\n");
  Counters counters;
  auto maps = p.RunMaps("wordcount", 5, 1, &counters);
  REQUIRE(maps.size() == 1);
  int64_t records = 0;
  for (const MapOutput& out : maps[0]) records += out.records;
  CHECK(records == 1);
  for (int64_t r = 0; r < 5; ++r) {
    TaskResult result;
    std::string error;
    AssignMsg task = p.ReduceTask("wordcount", 5, r, maps);
    REQUIRE_MESSAGE(RunReduceTask(task, p.ctx, &result, &error), error);
    p.Commit(task, result);
  }
  std::string all;
  for (int r = 0; r < 5; ++r) all += ReadBytes(p.output_dir / ("part-0000" + std::to_string(r)));
  CHECK(all == "word\t1\n");
}

TEST_CASE("a map task with an invalid app or an unreadable input fails with one line") {
  Pipeline p;
  p.AddFile("one.txt", "word\n");
  AssignMsg task = p.Task("grep", 2);
  task.task_id = "m-00000";
  task.params = {{"pattern", "("}};
  task.split = PlanSplits(p.files, 1)[0];
  TaskResult result;
  std::string error;
  CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  CHECK(error.find("pattern") != std::string::npos);

  task = p.Task("wordcount", 2);
  task.task_id = "m-00000";
  task.split = {FileRange{(p.input_dir / "missing.txt").string(), 0, 10}};
  error.clear();
  CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  CHECK(error.find("missing.txt") != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
  CHECK(FilesUnder(p.dir.path() / "work").empty());
}

TEST_CASE("a cancelled map task fails with cancelled and leaves no run files") {
  Pipeline p;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "some words on line " + std::to_string(i) + "\n";
  p.AddFile("big.txt", text);
  AssignMsg task = p.Task("wordcount", 3);
  task.task_id = "m-00000";
  task.split = PlanSplits(p.files, 1)[0];
  p.cancelled = true;
  TaskResult result;
  std::string error;
  CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  CHECK(error == "cancelled");
  CHECK(FilesUnder(p.dir.path() / "work").empty());
}

TEST_CASE("a cancelled reduce task leaves no part file") {
  Pipeline p;
  p.AddFile("a.txt", kAlice);
  Counters counters;
  auto maps = p.RunMaps("wordcount", 1, 2, &counters);
  p.cancelled = true;
  TaskResult result;
  std::string error;
  CHECK_FALSE(RunReduceTask(p.ReduceTask("wordcount", 1, 0, maps), p.ctx, &result, &error));
  CHECK(error == "cancelled");
  CHECK(FilesUnder(p.output_dir).empty());
  CHECK_FALSE(fs::exists(p.output_dir / "_temporary"));
}

TEST_CASE("a reduce over a corrupt map output fails naming it and leaves no part file") {
  Pipeline p;
  p.AddFile("a.txt", kAlice);
  p.AddFile("b.txt", kCrlf);
  Counters counters;
  auto maps = p.RunMaps("wordcount", 1, 2, &counters);
  const std::string corrupt = maps[1][0].location;

  SUBCASE("a changed byte inside the records") {
    std::string bytes = ReadBytes(corrupt);
    REQUIRE(bytes.size() > 30);
    bytes[bytes.size() / 2] ^= 0x20;
    WriteBytes(corrupt, bytes);
  }
  SUBCASE("a truncated file") {
    std::string bytes = ReadBytes(corrupt);
    WriteBytes(corrupt, bytes.substr(0, bytes.size() - 5));
  }
  SUBCASE("a missing file") {
    fs::remove(corrupt);
  }

  TaskResult result;
  std::string error;
  CHECK_FALSE(RunReduceTask(p.ReduceTask("wordcount", 1, 0, maps), p.ctx, &result, &error));
  CHECK(error.find(corrupt) != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
  CHECK(result.bad_inputs == std::vector<std::string>{corrupt});
  CHECK(result.outputs.empty());
  CHECK_FALSE(fs::exists(p.output_dir / "part-00000"));
  CHECK(FilesUnder(p.output_dir).empty());
}

// A local store that can fail one partition's creation or raise the cancel flag when a reduce
// opens its inputs, to drive the failure paths deterministically.
class ScriptedStore : public LocalFileStore {
 public:
  using LocalFileStore::LocalFileStore;
  int64_t fail_partition = -1;
  std::atomic<bool>* cancel_on_open = nullptr;  // raised when the last input is opened
  std::size_t inputs = 0;
  std::size_t opened = 0;

  std::unique_ptr<RunWriter> CreatePartition(const std::string& job_id,
                                             const std::string& task_id, int64_t attempt,
                                             int64_t partition, std::string* location,
                                             std::string* error) override {
    if (partition == fail_partition) {
      *error = "disk full (scripted)";
      return nullptr;
    }
    return LocalFileStore::CreatePartition(job_id, task_id, attempt, partition, location, error);
  }
  std::unique_ptr<RunReader> OpenPartition(const std::string& location, std::string* error,
                                           ReadFault* fault) override {
    if (cancel_on_open != nullptr && ++opened == inputs) *cancel_on_open = true;
    return LocalFileStore::OpenPartition(location, error, fault);
  }
};

// Distinct letter-only words: "w" followed by the digits of i spelled as letters a..j.
std::string LetterWord(int i) {
  std::string word = "w";
  for (char c : std::to_string(i)) word += static_cast<char>('a' + (c - '0'));
  return word;
}

TEST_CASE("a map task that fails on one partition removes the runs it already finished") {
  Pipeline p;
  std::string text;
  for (int i = 0; i < 500; ++i) text += LetterWord(i) + "\n";
  p.AddFile("words.txt", text);
  ScriptedStore store((p.dir.path() / "work").string());
  store.fail_partition = 2;
  p.ctx.store = &store;
  AssignMsg task = p.Task("wordcount", 4);
  task.task_id = "m-00000";
  task.split = PlanSplits(p.files, 1)[0];
  TaskResult result;
  std::string error;
  CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  CHECK(error == "disk full (scripted)");
  CHECK(result.outputs.empty());
  CHECK(FilesUnder(p.dir.path() / "work").empty());
}

TEST_CASE("a reduce task cancelled while merging leaves no part file") {
  Pipeline p;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += LetterWord(i) + " " + LetterWord(i % 10) + "\n";
  p.AddFile("words.txt", text);
  Counters counters;
  auto maps = p.RunMaps("wordcount", 1, 2, &counters);
  ScriptedStore store((p.dir.path() / "work").string());
  store.cancel_on_open = &p.cancelled;  // the flag rises once all inputs are open
  store.inputs = maps.size();
  p.ctx.store = &store;
  TaskResult result;
  std::string error;
  CHECK_FALSE(RunReduceTask(p.ReduceTask("wordcount", 1, 0, maps), p.ctx, &result, &error));
  CHECK(error == "cancelled");
  CHECK(FilesUnder(p.output_dir).empty());
  CHECK_FALSE(fs::exists(p.output_dir / "_temporary"));
}

// Map: "key<TAB>value" lines (no TAB: all key, empty value) emitted as they are. Reduce: every
// value as it is. No combiner.
class PairApp : public App {
 public:
  void Map(std::string_view line, const MapContext&, Emitter& out) override {
    std::size_t tab = line.find('\t');
    if (tab == std::string_view::npos) {
      out.Emit(line, "");
    } else {
      out.Emit(line.substr(0, tab), line.substr(tab + 1));
    }
  }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    std::string_view value;
    while (values.Next(&value)) out.Emit(key, value);
  }
};

// A PairApp that records the runner's calls, emits one more record from Finish, counts what it
// sees as user counters and fails (Failure()) once it has seen fail_after lines or groups.
class RecordingApp : public PairApp {
 public:
  AttemptInfo info;
  int starts = 0;
  int finishes = 0;
  int64_t calls = 0;
  int64_t fail_after = -1;
  bool finish_fails = false;
  std::atomic<bool>* cancel_after = nullptr;  // raised once fail_after calls were seen instead

  bool Start(const AttemptInfo& attempt, std::string*) override {
    info = attempt;
    ++starts;
    return true;
  }
  bool Finish(Emitter& out, std::string* error) override {
    ++finishes;
    if (finish_fails) {
      *error = "finish failed (scripted)";
      return false;
    }
    out.Emit("zz-finish", "done");
    return true;
  }
  std::string Failure() const override {
    if (fail_after >= 0 && calls > fail_after && cancel_after == nullptr) {
      return "user code died (scripted)";
    }
    return {};
  }
  void Map(std::string_view line, const MapContext& ctx, Emitter& out) override {
    Count();
    PairApp::Map(line, ctx, out);
  }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    Count();
    PairApp::Reduce(key, values, out);
  }
  void TakeCounters(Counters* into) override {
    (*into)["app/calls"] += calls - taken_;
    taken_ = calls;
  }

 private:
  void Count() {
    ++calls;
    if (cancel_after != nullptr && fail_after >= 0 && calls > fail_after) *cancel_after = true;
  }
  int64_t taken_ = 0;
};

// Every record of a run.
std::vector<std::pair<std::string, std::string>> ReadRunRecords(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> records;
  std::string error;
  auto reader = RunReader::Open(path, &error);
  REQUIRE_MESSAGE(reader != nullptr, error);
  std::string_view key, value;
  while (reader->Next(&key, &value)) records.emplace_back(key, value);
  REQUIRE_MESSAGE(reader->error().empty(), reader->error());
  return records;
}

TEST_CASE("a map-only task writes its lines in emit order to an uncommitted part file") {
  Pipeline p;
  p.AddFile("a.txt", "zeta\t1\nalpha\t2\nno tab here\nempty value\t\nalpha\t3\n");
  RecordingApp app;
  p.ctx.app = &app;
  AssignMsg task = p.Task("ignored", 0);
  task.task_id = "m-00003";
  task.partition = 3;
  task.split = PlanSplits(p.files, 1)[0];
  TaskResult result;
  std::string error;
  REQUIRE_MESSAGE(RunMapTask(task, p.ctx, &result, &error), error);
  const fs::path part = p.output_dir / "_temporary" / "m-00003.a1" / "part-00003";
  const std::string expected =
      "zeta\t1\nalpha\t2\nno tab here\nempty value\nalpha\t3\nzz-finish\tdone\n";
  CHECK(ReadBytes(part) == expected);
  REQUIRE(result.outputs.size() == 1);
  CHECK(result.outputs[0] ==
        MapOutput{3, part.string(), static_cast<int64_t>(expected.size()), 6});
  CHECK(result.counters["map_input_records"] == 5);
  CHECK(result.counters["map_output_records"] == 6);
  CHECK(result.counters["map_output_bytes"] == 4 + 1 + 5 + 1 + 11 + 11 + 5 + 1 + 9 + 4);
  CHECK(result.counters["spilled_records"] == 0);
  CHECK(result.counters["app/calls"] == 5);
  CHECK(app.info.num_reduces == 0);
  CHECK(FilesUnder(p.dir.path() / "work").empty());

  SUBCASE("a failed map-only attempt leaves no part file") {
    RecordingApp failing;
    failing.finish_fails = true;
    p.ctx.app = &failing;
    task.attempt = 2;
    TaskResult failed;
    CHECK_FALSE(RunMapTask(task, p.ctx, &failed, &error));
    CHECK(error == "finish failed (scripted)");
    CHECK_FALSE(fs::exists(p.output_dir / "_temporary" / "m-00003.a2"));
    CHECK(fs::exists(part));  // the first attempt's file is not this attempt's business
  }
}

TEST_CASE("the runner starts and finishes the app and adds the app's counters") {
  Pipeline p;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "k" + std::to_string(i % 7) + "\tv" + std::to_string(i) + "\n";
  p.AddFile("pairs.txt", text);
  p.ctx.attempt_dir = (p.dir.path() / "attempts" / "m-00000.a1").string();
  RecordingApp map_app;
  p.ctx.app = &map_app;
  AssignMsg task = p.Task("ignored", 2);
  task.task_id = "m-00000";
  task.partition = 0;
  task.split = PlanSplits(p.files, 1)[0];
  TaskResult result;
  std::string error;
  REQUIRE_MESSAGE(RunMapTask(task, p.ctx, &result, &error), error);
  CHECK(map_app.starts == 1);
  CHECK(map_app.finishes == 1);
  CHECK(map_app.info.job_id == "job_test_0001");
  CHECK(map_app.info.task_id == "m-00000");
  CHECK(map_app.info.attempt == 1);
  CHECK(map_app.info.is_map);
  CHECK(map_app.info.num_reduces == 2);
  CHECK(map_app.info.work_dir == p.ctx.attempt_dir);
  CHECK(map_app.info.input_file == p.files[0].path);
  CHECK(map_app.info.input_start == 0);
  CHECK(map_app.info.input_length == static_cast<int64_t>(text.size()));
  CHECK(fs::is_directory(p.ctx.attempt_dir));
  CHECK(FilesUnder(p.ctx.attempt_dir).empty());
  CHECK(result.counters["app/calls"] == 50);
  CHECK(result.counters["map_output_records"] == 51);
  int64_t records = 0;
  bool finish_record = false;
  for (const MapOutput& out : result.outputs) {
    for (const auto& [key, value] : ReadRunRecords(out.location)) {
      ++records;
      finish_record = finish_record || (key == "zz-finish" && value == "done");
    }
  }
  CHECK(records == 51);
  CHECK(finish_record);

  RecordingApp reduce_app;
  p.ctx.app = &reduce_app;
  p.ctx.attempt_dir = (p.dir.path() / "attempts" / "r-00001.a1").string();
  AssignMsg reduce = p.ReduceTask("ignored", 2, 1, {result.outputs});
  TaskResult reduced;
  REQUIRE_MESSAGE(RunReduceTask(reduce, p.ctx, &reduced, &error), error);
  CHECK(reduce_app.starts == 1);
  CHECK(reduce_app.finishes == 1);
  CHECK_FALSE(reduce_app.info.is_map);
  CHECK(reduce_app.info.partition == 1);
  CHECK(reduce_app.info.input_file.empty());
  CHECK(reduced.counters["app/calls"] == reduced.counters["reduce_input_groups"]);
  p.Commit(reduce, reduced);
  const std::string bytes = ReadBytes(p.output_dir / "part-00001");
  CHECK(bytes.size() >= std::string("zz-finish\tdone\n").size());
  CHECK(bytes.substr(bytes.size() - 15) == "zz-finish\tdone\n");
  CHECK(reduced.counters["reduce_output_records"] ==
        reduced.counters["reduce_input_records"] + 1);
}

TEST_CASE("an app that fails stops the attempt with its error and leaves no files") {
  Pipeline p;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "key" + std::to_string(i) + "\tvalue\n";
  p.AddFile("pairs.txt", text);
  p.ctx.attempt_dir = (p.dir.path() / "attempt").string();
  p.ctx.sort_buffer_bytes = 4 << 10;  // spills early: the spill files must go too
  RecordingApp app;
  app.fail_after = 1500;
  p.ctx.app = &app;
  AssignMsg task = p.Task("ignored", 2);
  task.task_id = "m-00000";
  task.split = PlanSplits(p.files, 1)[0];
  TaskResult result;
  std::string error;

  SUBCASE("a map") {
    CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  }
  SUBCASE("a map-only map") {
    task.num_reduces = 0;
    CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
  }
  SUBCASE("a reduce") {
    RecordingApp healthy;
    p.ctx.app = &healthy;
    REQUIRE_MESSAGE(RunMapTask(task, p.ctx, &result, &error), error);
    p.ctx.app = &app;
    CHECK_FALSE(RunReduceTask(p.ReduceTask("ignored", 2, 0, {result.outputs}), p.ctx, &result,
                              &error));
    CHECK(FilesUnder(p.output_dir).empty());
    return;
  }
  CHECK(error == "user code died (scripted)");
  CHECK(FilesUnder(p.dir.path() / "work").empty());
  CHECK(FilesUnder(p.output_dir).empty());
  CHECK(FilesUnder(p.ctx.attempt_dir).empty());
}

// Runs one wordcount map per text, returning their outputs.
std::vector<std::vector<MapOutput>> WordCountMaps(Pipeline* p, int maps) {
  for (int m = 0; m < maps; ++m) {
    std::string text;
    for (int i = 0; i < 300; ++i) {
      text += LetterWord((i * 7 + m * 13) % 150) + " " + LetterWord(i % 5) + "\n";
    }
    p->AddFile("words" + std::to_string(m) + ".txt", text);
  }
  Counters counters;
  return p->RunMaps("wordcount", 1, maps, &counters);
}

TEST_CASE("a reduce merging in passes of a small fan-in writes the same part file as one pass") {
  Pipeline p;
  auto maps = WordCountMaps(&p, 9);
  REQUIRE(maps.size() == 9);
  p.ctx.attempt_dir = (p.dir.path() / "attempt").string();

  std::string single;
  Counters single_counters;
  for (int fan_in : {64, 2, 3, 8}) {
    CAPTURE(fan_in);
    p.ctx.merge_fan_in = fan_in;
    AssignMsg task = p.ReduceTask("wordcount", 1, 0, maps);
    task.attempt = fan_in;
    TaskResult result;
    std::string error;
    REQUIRE_MESSAGE(RunReduceTask(task, p.ctx, &result, &error), error);
    p.Commit(task, result);
    const std::string bytes = ReadBytes(p.output_dir / "part-00000");
    if (fan_in == 64) {
      single = bytes;
      single_counters = result.counters;
      CHECK(result.counters["spilled_records"] == 0);
    } else {
      CHECK(bytes == single);
      CHECK(result.counters["spilled_records"] > 0);
      CHECK(result.counters["reduce_input_records"] == single_counters["reduce_input_records"]);
      CHECK(result.counters["reduce_input_groups"] == single_counters["reduce_input_groups"]);
    }
    CHECK(FilesUnder(p.ctx.attempt_dir).empty());
    // The inputs are still there for other attempts.
    for (const auto& outputs : maps) CHECK(fs::exists(outputs[0].location));
  }
  std::map<std::string, int64_t> counted;
  for (const auto& [key, value] : ParsePart(single)) counted[key] = std::stoll(value);
  CHECK(counted == ReferenceWordCount(p.texts));
}

TEST_CASE("a reduce reports every unreadable input in bad_inputs") {
  Pipeline p;
  auto maps = WordCountMaps(&p, 5);
  std::vector<std::string> locations;
  for (const auto& outputs : maps) locations.push_back(outputs[0].location);
  fs::remove(locations[1]);
  WriteBytes(locations[3], ReadBytes(locations[3]).substr(0, 20));
  WriteBytes(locations[4], "garbage");
  for (int fan_in : {64, 2}) {
    CAPTURE(fan_in);
    p.ctx.merge_fan_in = fan_in;
    TaskResult result;
    std::string error;
    CHECK_FALSE(RunReduceTask(p.ReduceTask("wordcount", 1, 0, maps), p.ctx, &result, &error));
    CHECK(result.bad_inputs ==
          std::vector<std::string>{locations[1], locations[3], locations[4]});
    CHECK(error.find(locations[1]) != std::string::npos);
    CHECK(error.find("2 more") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
    CHECK(FilesUnder(p.output_dir).empty());
  }
}

TEST_CASE("a corrupt input found during an intermediate merge pass is reported as bad") {
  Pipeline p;
  auto maps = WordCountMaps(&p, 5);
  const std::string corrupt = maps[2][0].location;
  std::string bytes = ReadBytes(corrupt);
  REQUIRE(bytes.size() > 100);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteBytes(corrupt, bytes);
  p.ctx.attempt_dir = (p.dir.path() / "attempt").string();
  for (int fan_in : {2, 3, 64}) {
    CAPTURE(fan_in);
    p.ctx.merge_fan_in = fan_in;
    TaskResult result;
    std::string error;
    CHECK_FALSE(RunReduceTask(p.ReduceTask("wordcount", 1, 0, maps), p.ctx, &result, &error));
    CHECK(result.bad_inputs == std::vector<std::string>{corrupt});
    CHECK(error.find(corrupt) != std::string::npos);
    CHECK(FilesUnder(p.output_dir).empty());
    CHECK(FilesUnder(p.ctx.attempt_dir).empty());
  }
}

enum class SpillScenario { kSuccess, kFailure, kCancel };

// Runs a map that spills many times under one scenario and checks that no spill file is left.
void CheckNoSpillsLeft(SpillScenario scenario, bool with_attempt_dir) {
  CAPTURE(static_cast<int>(scenario));
  CAPTURE(with_attempt_dir);
  Pipeline p;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += LetterWord(i) + "\t" + std::to_string(i) + "\n";
  p.AddFile("pairs.txt", text);
  p.ctx.sort_buffer_bytes = 2 << 10;
  p.ctx.merge_fan_in = 3;
  p.ctx.attempt_dir = with_attempt_dir ? (p.dir.path() / "attempt").string() : "";
  AssignMsg task = p.Task("ignored", 3);
  task.task_id = "m-00000";
  task.split = PlanSplits(p.files, 1)[0];
  const fs::path work = p.dir.path() / "work";
  const fs::path spills = with_attempt_dir ? fs::path(p.ctx.attempt_dir) / ".zmr-spill"
                                           : work / "jobs" / task.job_id / "m-00000.a1.spill";
  ScriptedStore store(work.string());
  p.ctx.store = &store;
  RecordingApp app;
  p.ctx.app = &app;
  TaskResult result;
  std::string error;
  switch (scenario) {
    case SpillScenario::kSuccess: {
      REQUIRE_MESSAGE(RunMapTask(task, p.ctx, &result, &error), error);
      CHECK(result.outputs.size() == 3);
      CHECK(result.counters["spilled_records"] > 3001);
      for (const std::string& file : FilesUnder(work)) {
        CHECK(fs::path(file).extension() == ".run");
        CHECK(fs::path(file).filename().string().rfind("m-00000.a1.p", 0) == 0);
      }
      for (const MapOutput& out : result.outputs) fs::remove(out.location);
      break;
    }
    case SpillScenario::kFailure:
      store.fail_partition = 1;
      CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
      CHECK(error == "disk full (scripted)");
      break;
    case SpillScenario::kCancel:
      app.fail_after = 1500;
      app.cancel_after = &p.cancelled;
      CHECK_FALSE(RunMapTask(task, p.ctx, &result, &error));
      CHECK(error == "cancelled");
      break;
  }
  CHECK_FALSE(fs::exists(spills));
  CHECK(FilesUnder(work).empty());
  if (with_attempt_dir) CHECK(fs::is_directory(p.ctx.attempt_dir));
}

TEST_CASE("spill files are gone after a map succeeds, fails or is cancelled") {
  for (bool with_attempt_dir : {true, false}) {
    CheckNoSpillsLeft(SpillScenario::kSuccess, with_attempt_dir);
    CheckNoSpillsLeft(SpillScenario::kFailure, with_attempt_dir);
    CheckNoSpillsLeft(SpillScenario::kCancel, with_attempt_dir);
  }
}

}  // namespace
}  // namespace zmr
