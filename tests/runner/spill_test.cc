// Spills and merges of map output: whatever the sort buffer size and merge fan-in, a map task's
// runs equal an in-memory sort (without a combiner) or the same per-key totals (with one).
#include "runner/map_output_buffer.h"
#include "runner/merge.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "apps/registry.h"
#include "apps/text.h"
#include "common/api_adapter.h"
#include "common/partition.h"
#include "common/splits.h"
#include "runner/task_runner.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

using Records = std::vector<std::pair<std::string, std::string>>;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("zmr-spill-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Records ReadRun(const std::string& path) {
  Records records;
  std::string error;
  auto reader = RunReader::Open(path, &error);
  REQUIRE_MESSAGE(reader != nullptr, error);
  std::string_view key, value;
  while (reader->Next(&key, &value)) records.emplace_back(key, value);
  REQUIRE_MESSAGE(reader->error().empty(), reader->error());
  return records;
}

// Map: "key<TAB>value" lines emitted as they are. No combiner.
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
  void Reduce(std::string_view, ValueStream&, Emitter&) override {}
};

int64_t ParseInt(std::string_view s) {
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// A value as apps::SumReducer reads it: a decimal int64 taking the whole string, else 0.
int64_t ParseIntStrict(std::string_view s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size() ? v : 0;
}

// A PairApp whose values are numbers and whose combiner sums them like an external command
// would: Combine only remembers the sums, FlushCombine emits them all.
class BatchSumApp : public PairApp {
 public:
  bool HasCombiner() const override { return true; }
  void Combine(std::string_view key, ValueStream& values, Emitter&) override {
    int64_t sum = 0;
    std::string_view value;
    while (values.Next(&value)) sum += ParseInt(value);
    pending_.emplace_back(std::string(key), std::to_string(sum));
    ++combines;
  }
  bool FlushCombine(Emitter& out, std::string*) override {
    for (const auto& [key, value] : pending_) out.Emit(key, value);
    pending_.clear();
    ++flushes;
    return true;
  }
  int64_t combines = 0;
  int64_t flushes = 0;

 private:
  Records pending_;
};

// A map task over generated input lines, run with a given buffer size and fan-in.
struct SpillRun {
  TempDir dir;
  LocalFileStore store{(dir.path() / "work").string()};
  std::atomic<bool> cancelled{false};
  AssignMsg task;
  TaskContext ctx;

  SpillRun(const std::string& lines, int64_t reduces) {
    const fs::path input = dir.path() / "input.txt";
    std::ofstream(input, std::ios::binary) << lines;
    task.job_id = "job_spill_0001";
    task.task_id = "m-00000";
    task.kind = TaskKind::kMap;
    task.num_reduces = reduces;
    task.output_dir = (dir.path() / "out").string();
    task.split = PlanSplits({InputFile{input.string(), static_cast<int64_t>(lines.size())}}, 1)[0];
    ctx.store = &store;
    ctx.cancelled = &cancelled;
    ctx.attempt_dir = (dir.path() / "attempt").string();
  }

  // Runs the map; returns each partition's records.
  std::vector<Records> Run(App* app, int64_t buffer_bytes, int fan_in, TaskResult* result) {
    ctx.app = app;
    ctx.sort_buffer_bytes = buffer_bytes;
    ctx.merge_fan_in = fan_in;
    std::string error;
    REQUIRE_MESSAGE(RunMapTask(task, ctx, result, &error), error);
    REQUIRE(result->outputs.size() == static_cast<std::size_t>(task.num_reduces));
    std::vector<Records> runs;
    for (const MapOutput& out : result->outputs) runs.push_back(ReadRun(out.location));
    CHECK_FALSE(fs::exists(fs::path(ctx.attempt_dir) / ".zmr-spill"));
    for (const MapOutput& out : result->outputs) fs::remove(out.location);
    ++task.attempt;
    return runs;
  }
};

// Random "key<TAB>value" lines: keys from a small alphabet (many duplicates, some empty, some
// long), values numbered so that their order is visible.
std::string RandomPairs(std::mt19937& rng, int count, Records* emitted) {
  std::uniform_int_distribution<int> len(0, 6);
  std::uniform_int_distribution<int> letter('a', 'f');
  std::uniform_int_distribution<int> long_key(0, 50);
  std::string lines;
  for (int i = 0; i < count; ++i) {
    std::string key(static_cast<std::size_t>(len(rng)), 'a');
    for (char& c : key) c = static_cast<char>(letter(rng));
    if (long_key(rng) == 0) key += std::string(70, 'q') + std::to_string(i % 3);
    std::string value = std::to_string(i % 17);
    if (i % 11 == 0) value += std::string(40, 'v');
    lines += key + "\t" + value + "\n";
    emitted->emplace_back(key, value);
  }
  return lines;
}

// Each partition's records stably sorted by key: what an in-memory sort of the map output gives.
std::vector<Records> StableSortByPartition(const Records& emitted, int64_t reduces) {
  std::vector<Records> parts(static_cast<std::size_t>(reduces));
  for (const auto& record : emitted) {
    parts[static_cast<std::size_t>(PartitionOf(record.first, reduces))].push_back(record);
  }
  for (Records& part : parts) {
    std::stable_sort(part.begin(), part.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  return parts;
}

// Sort buffer sizes: the small ones spill many times over the test inputs, the last two never.
const int64_t kBufferSizes[] = {1 << 10, 3 << 10, 16 << 10, 1 << 20, kDefaultSortBufferBytes};
bool Spills(int64_t buffer) { return buffer < (1 << 20); }

TEST_CASE("without a combiner, spilled and merged runs equal a stable in-memory sort") {
  std::mt19937 rng(2024);
  Records emitted;
  const std::string lines = RandomPairs(rng, 4000, &emitted);
  const int64_t reduces = 3;
  const std::vector<Records> expected = StableSortByPartition(emitted, reduces);
  SpillRun run(lines, reduces);
  PairApp app;
  for (int64_t buffer : kBufferSizes) {
    for (int fan_in : {2, 3, 64}) {
      CAPTURE(buffer);
      CAPTURE(fan_in);
      TaskResult result;
      std::vector<Records> runs = run.Run(&app, buffer, fan_in, &result);
      CHECK(runs == expected);
      Counters& c = result.counters;
      CHECK(c["map_output_records"] == 4000);
      CHECK(c["combine_input_records"] == 0);
      if (Spills(buffer)) {
        CHECK(c["spilled_records"] >= 8000);  // the spills, and the final runs again
      } else {
        CHECK(c["spilled_records"] == 4000);  // only the final runs
      }
    }
  }
}

// Word count of "w1 w2 ..." lines over a vocabulary of the given size.
std::string RandomWords(std::mt19937& rng, int lines, int vocabulary,
                        std::map<std::string, int64_t>* counts) {
  std::uniform_int_distribution<int> word(0, vocabulary - 1);
  std::uniform_int_distribution<int> per_line(0, 8);
  std::string text;
  for (int i = 0; i < lines; ++i) {
    int n = per_line(rng);
    for (int w = 0; w < n; ++w) {
      std::string token = "w";
      for (char c : std::to_string(word(rng))) token += static_cast<char>('a' + (c - '0'));
      ++(*counts)[token];
      text += token + (w + 1 < n ? " " : "");
    }
    text += "\n";
  }
  return text;
}

TEST_CASE("with an eager combiner, every buffer size and fan-in gives identical runs") {
  std::mt19937 rng(7);
  std::map<std::string, int64_t> counts;
  // Few hot words and a long tail: eager combining and many spills both happen.
  const std::string text = RandomWords(rng, 1500, 400, &counts);
  const int64_t reduces = 2;
  std::vector<Records> expected(reduces);
  for (const auto& [word, n] : counts) {
    expected[static_cast<std::size_t>(PartitionOf(word, reduces))].emplace_back(
        word, std::to_string(n));
  }
  int64_t words = 0;
  for (const auto& [word, n] : counts) words += n;

  SpillRun run(text, reduces);
  std::string error;
  std::unique_ptr<App> app = MakeApp("wordcount", {}, &error);
  REQUIRE(app != nullptr);
  for (int64_t buffer : kBufferSizes) {
    for (int fan_in : {2, 3, 64}) {
      CAPTURE(buffer);
      CAPTURE(fan_in);
      TaskResult result;
      std::vector<Records> runs = run.Run(app.get(), buffer, fan_in, &result);
      CHECK(runs == expected);
      Counters& c = result.counters;
      int64_t final_records = 0;
      for (const Records& r : runs) final_records += static_cast<int64_t>(r.size());
      CHECK(c["map_output_records"] == words);
      CHECK(c["combine_input_records"] > 0);
      CHECK(c["map_output_records"] - c["combine_input_records"] + c["combine_output_records"] ==
            final_records);
      if (Spills(buffer)) {
        CHECK(c["spilled_records"] > final_records);
      } else {
        CHECK(c["spilled_records"] == final_records);
      }
    }
  }
}


// Forwards everything to another App, but declares its own CombinerKind: the same app with and
// without the summing buffer.
class DeclaringApp final : public App {
 public:
  DeclaringApp(App* inner, CombinerKind kind) : inner_(inner), kind_(kind) {}
  bool Start(const AttemptInfo& info, std::string* error) override {
    return inner_->Start(info, error);
  }
  bool Finish(Emitter& out, std::string* error) override { return inner_->Finish(out, error); }
  std::string Failure() const override { return inner_->Failure(); }
  int64_t Partition(std::string_view key, int64_t n) override { return inner_->Partition(key, n); }
  void Map(std::string_view line, const MapContext& ctx, Emitter& out) override {
    inner_->Map(line, ctx, out);
  }
  bool HasCombiner() const override { return inner_->HasCombiner(); }
  CombinerKind KnownCombiner() const override { return kind_; }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    inner_->Combine(key, values, out);
  }
  bool FlushCombine(Emitter& out, std::string* error) override {
    return inner_->FlushCombine(out, error);
  }
  void TakeCounters(Counters* into) override { inner_->TakeCounters(into); }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    inner_->Reduce(key, values, out);
  }

 private:
  App* inner_;
  CombinerKind kind_;
};

// Map: "key<TAB>value" lines as they are (no TAB: the line is the key, the value empty), through
// the plugin API; the combiner is the built-ins' apps::SumReducer.
class PairMapper final : public api::Mapper {
 public:
  void Map(std::string_view line, api::Context& ctx) override {
    std::size_t tab = line.find('\t');
    if (tab == std::string_view::npos) {
      ctx.Emit(line, "");
    } else {
      ctx.Emit(line.substr(0, tab), line.substr(tab + 1));
    }
  }
};
constexpr api::PluginInfo kPairSumInfo =
    api::MakePluginInfo<PairMapper, apps::SumReducer, apps::SumReducer>("pairsum");

TEST_CASE("the built-in apps whose combiner is SumReducer declare it, others do not") {
  std::string error;
  CHECK(MakeApp("wordcount", {}, &error)->KnownCombiner() == CombinerKind::kInt64Sum);
  CHECK(MakeApp("grep", {{"pattern", "a+"}}, &error)->KnownCombiner() == CombinerKind::kInt64Sum);
  CHECK(MakeApp("invertedindex", {}, &error)->KnownCombiner() == CombinerKind::kOpaque);
  CHECK(MakeApiApp(kPairSumInfo, {}, "test", nullptr)->KnownCombiner() == CombinerKind::kOpaque);
}

TEST_CASE("a combiner declared an int64 sum gives the runs of calling it, across spills") {
  // Keys of every size around the 8- and 16-byte boundaries and beyond, high cardinality, the
  // empty key, keys that differ only by a NUL byte; values canonical or not (a key seen once
  // keeps its value's bytes; more values become the decimal sum, a non-number counting 0).
  const std::vector<std::string> odd_values = {"01", "+1", "x", "", "-0", " 1", "1 ",
                                               "99999999999999999999", "-12", "0", "007"};
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> pick(0, 99);
  std::map<std::string, std::pair<int64_t, std::vector<std::string>>> per_key;  // sum, values
  std::string lines;
  auto add = [&](const std::string& key, const std::string& value) {
    lines += key + "\t" + value + "\n";
    auto& [sum, values] = per_key[key];
    sum += ParseIntStrict(value);
    values.push_back(value);
  };
  for (int i = 0; i < 6000; ++i) {
    const int r = pick(rng);
    std::string key;
    if (r < 40) {
      key = "h" + std::to_string(rng() % 3000);  // high cardinality
    } else if (r < 60) {
      key = std::string(1 + rng() % 24, static_cast<char>('a' + rng() % 3));  // 1..24 bytes
    } else if (r < 70) {
      key = std::string(40 + rng() % 60, 'L') + std::to_string(rng() % 5);  // long keys
    } else if (r < 75) {
      key = "";
    } else if (r < 80) {
      key = (rng() % 2 == 0) ? std::string("n\0", 2) : std::string("n");
    } else if (r < 85) {
      key = "lone" + std::to_string(i);  // seen once
    } else {
      key = "hot";
    }
    std::string value = std::to_string(rng() % 4);
    if (pick(rng) < 15) value = odd_values[rng() % odd_values.size()];
    if (pick(rng) < 3) value = "-" + std::to_string(rng() % 1000);
    add(key, value);
  }
  const int64_t reduces = 3;
  std::vector<Records> expected(reduces);
  for (const auto& [key, entry] : per_key) {
    const auto& [sum, values] = entry;
    expected[static_cast<std::size_t>(PartitionOf(key, reduces))].emplace_back(
        key, values.size() == 1 ? values[0] : std::to_string(sum));
  }

  SpillRun run(lines, reduces);
  auto inner = MakeApiApp(kPairSumInfo, {}, "test", nullptr);
  for (int64_t buffer : kBufferSizes) {
    for (int fan_in : {2, 64}) {
      CAPTURE(buffer);
      CAPTURE(fan_in);
      DeclaringApp generic(inner.get(), CombinerKind::kOpaque);
      DeclaringApp summing(inner.get(), CombinerKind::kInt64Sum);
      TaskResult generic_result, summing_result;
      const std::vector<Records> generic_runs = run.Run(&generic, buffer, fan_in, &generic_result);
      const std::vector<Records> summing_runs = run.Run(&summing, buffer, fan_in, &summing_result);
      CHECK(generic_runs == expected);
      CHECK(summing_runs == expected);
      Counters& c = summing_result.counters;
      CHECK(c["map_output_records"] == 6000);
      CHECK(c["map_output_bytes"] == generic_result.counters["map_output_bytes"]);
      CHECK(c["map_output_records"] - c["combine_input_records"] + c["combine_output_records"] ==
            static_cast<int64_t>(per_key.size()));
      if (Spills(buffer)) CHECK(c["spilled_records"] > static_cast<int64_t>(per_key.size()));
    }
  }
}

TEST_CASE("wordcount and grep give the same runs with and without their declared sum") {
  std::mt19937 rng(77);
  std::map<std::string, int64_t> counts;
  std::string text = RandomWords(rng, 3000, 20000, &counts);
  text += std::string(40, 'q') + " " + std::string(17, 'r') + " " + std::string(16, 's') + "\n";
  for (const char* app_name : {"wordcount", "grep"}) {
    Params params;
    if (std::string(app_name) == "grep") params["pattern"] = "w[a-c]+";
    std::string error;
    auto inner = MakeApp(app_name, params, &error);
    REQUIRE_MESSAGE(inner != nullptr, error);
    SpillRun run(text, 2);
    for (int64_t buffer : {int64_t{1} << 10, int64_t{16} << 10, kDefaultSortBufferBytes}) {
      CAPTURE(app_name);
      CAPTURE(buffer);
      DeclaringApp generic(inner.get(), CombinerKind::kOpaque);
      TaskResult generic_result, summing_result;
      const std::vector<Records> generic_runs = run.Run(&generic, buffer, 3, &generic_result);
      const std::vector<Records> summing_runs = run.Run(inner.get(), buffer, 3, &summing_result);
      CHECK(summing_runs == generic_runs);
      CHECK(summing_result.counters["map_output_records"] ==
            generic_result.counters["map_output_records"]);
    }
  }
}

TEST_CASE("a combiner that emits at FlushCombine is applied per spill and per merge") {
  std::mt19937 rng(99);
  Records emitted;
  std::map<std::string, int64_t> sums;
  std::string lines;
  std::uniform_int_distribution<int> key(0, 300);
  std::uniform_int_distribution<int> value(0, 9);
  for (int i = 0; i < 3000; ++i) {
    std::string k = std::string("k").append(std::to_string(key(rng)));
    int v = value(rng);
    sums[k] += v;
    lines += k + "\t" + std::to_string(v) + "\n";
  }
  const int64_t reduces = 3;
  std::vector<Records> expected(reduces);
  for (const auto& [k, sum] : sums) {
    expected[static_cast<std::size_t>(PartitionOf(k, reduces))].emplace_back(k,
                                                                            std::to_string(sum));
  }
  SpillRun run(lines, reduces);
  run.task.code.combiner = "sum";  // an external combiner: no eager combining
  for (int64_t buffer : {int64_t{1} << 10, int64_t{8} << 10, kDefaultSortBufferBytes}) {
    for (int fan_in : {2, 5}) {
      CAPTURE(buffer);
      CAPTURE(fan_in);
      BatchSumApp app;
      TaskResult result;
      CHECK(run.Run(&app, buffer, fan_in, &result) == expected);
      CHECK(app.flushes > 0);
      CHECK(app.flushes <= app.combines);
      CHECK(result.counters["combine_output_records"] > 0);
    }
  }
}

TEST_CASE("a record larger than the whole sort buffer is spilled on its own") {
  const std::string big_value(5000, 'x');
  const std::string big_key(3000, 'k');
  std::string lines = "b\t1\n" + big_key + "\t2\na\t" + big_value + "\nb\t3\n";
  SpillRun run(lines, 1);
  Records expected = {{"a", big_value}, {"b", "1"}, {"b", "3"}, {big_key, "2"}};

  PairApp pairs;
  TaskResult result;
  CHECK(run.Run(&pairs, 1 << 10, 2, &result) == std::vector<Records>{expected});

  std::map<std::string, int64_t> counts;
  std::string words = std::string(3000, 'z') + " a a\n" + std::string(2000, 'y') + " a\n";
  SpillRun wc(words, 1);
  std::string error;
  auto app = MakeApp("wordcount", {}, &error);
  Records wc_expected = {{"a", "3"}, {std::string(2000, 'y'), "1"}, {std::string(3000, 'z'), "1"}};
  TaskResult wc_result;
  CHECK(wc.Run(app.get(), 1 << 10, 2, &wc_result) == std::vector<Records>{wc_expected});
}

class BadPartitionApp : public PairApp {
 public:
  int64_t Partition(std::string_view key, int64_t) override { return key == "bad" ? 7 : 0; }
};

// Its combiner emits under another key, which also breaks the order ("good" -> "a-other" after
// "bad" -> "z-other").
class KeyChangingCombinerApp : public PairApp {
 public:
  bool HasCombiner() const override { return true; }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    std::string_view value;
    while (values.Next(&value)) out.Emit(key == "good" ? "a-other" : "z-other", value);
  }
};

std::size_t RegularFilesUnder(const fs::path& dir) {
  std::size_t files = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) files += entry.is_regular_file();
  return files;
}

TEST_CASE("a misbehaving partitioner or combiner fails the map with a clear error") {
  std::string lines;
  for (int i = 0; i < 100; ++i) lines += "good\t1\nbad\t2\n";
  SpillRun run(lines, 3);
  std::string error;
  TaskResult result;

  BadPartitionApp partitioner;
  run.ctx.app = &partitioner;
  CHECK_FALSE(RunMapTask(run.task, run.ctx, &result, &error));
  CHECK(error == "partitioner returned 7 for key 'bad' (3 partitions)");

  KeyChangingCombinerApp combiner;
  run.ctx.app = &combiner;
  run.task.num_reduces = 1;
  CHECK_FALSE(RunMapTask(run.task, run.ctx, &result, &error));
  CHECK(error.find("combiner emitted key 'a-other' while combining key 'good'") == 0);

  // Batch combining checks the order of what it writes instead.
  run.task.code.combiner = "external";
  for (int64_t buffer : {int64_t{1} << 10, kDefaultSortBufferBytes}) {
    run.ctx.sort_buffer_bytes = buffer;
    CHECK_FALSE(RunMapTask(run.task, run.ctx, &result, &error));
    CHECK(error.find("combiner output: keys out of order") == 0);
    CHECK_FALSE(fs::exists(fs::path(run.ctx.attempt_dir) / ".zmr-spill"));
    CHECK(RegularFilesUnder(run.dir.path() / "work") == 0);
  }
}

TEST_CASE("merge passes take consecutive runs and reach the fan-in as cheaply as they can") {
  for (int fan_in = 2; fan_in <= 9; ++fan_in) {
    for (std::size_t runs = 0; runs <= 200; ++runs) {
      CAPTURE(fan_in);
      CAPTURE(runs);
      std::size_t n = runs;
      int passes = 0;
      while (true) {
        auto plan = PlanMergePass(n, fan_in);
        if (n <= static_cast<std::size_t>(fan_in)) {
          CHECK(plan.empty());
          break;
        }
        REQUIRE_FALSE(plan.empty());
        std::size_t previous_end = 0;
        std::size_t removed = 0;
        for (auto [begin, end] : plan) {
          CHECK(begin >= previous_end);
          CHECK(end - begin >= 2);
          CHECK(end - begin <= static_cast<std::size_t>(fan_in));
          CHECK(end <= n);
          previous_end = end;
          removed += end - begin - 1;
        }
        const std::size_t after = n - removed;
        // A pass that can reach the fan-in stops exactly there.
        if ((n + fan_in - 1) / fan_in <= static_cast<std::size_t>(fan_in)) {
          CHECK(after == static_cast<std::size_t>(fan_in));
        }
        n = after;
        ++passes;
        REQUIRE(passes < 20);
      }
      // log_f(runs) passes at most, rounding up, before the final merge.
      std::size_t capacity = static_cast<std::size_t>(fan_in);
      int needed = 0;
      while (capacity < runs) {
        capacity *= static_cast<std::size_t>(fan_in);
        ++needed;
      }
      CHECK(passes == needed);
    }
  }
}

}  // namespace
}  // namespace zmr
