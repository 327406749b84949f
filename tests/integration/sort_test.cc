// End-to-end tests of the built-in sort app: real zmr-coordinator, zmr-worker and zmr binaries on
// loopback ports; the concatenated part files are compared byte for byte with a stable sort done
// by Python (an independent reference), and bad submissions with what a user sees.
#include <doctest/doctest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

// `zmr submit ARGS --wait`.
ClientResult SubmitWait(const Cluster& cluster, std::vector<std::string> args) {
  args.insert(args.begin(), "submit");
  args.push_back("--wait");
  args.push_back("--no-progress");
  return cluster.RunClient(args);
}

// Part files 0..reduces-1 of a finished job, concatenated in order.
std::string ConcatenatedParts(const fs::path& output, int reduces) {
  std::string all;
  for (int r = 0; r < reduces; ++r) all += ReadFile(output / PartName(r));
  return all;
}

// The reference: Python reads the files in the order zmr reads them (sorted paths) and sorts
// their lines with a stable sort on the first key_bytes bytes.
std::string ReferenceSort(const TempDir& tmp, const std::vector<fs::path>& files,
                          int key_bytes) {
  const fs::path script = tmp / "reference_sort.py";
  WriteFile(script,
            "import sys\n"
            "kb = int(sys.argv[1])\n"
            "lines = []\n"
            "for path in sorted(sys.argv[2:]):\n"
            "    with open(path, 'rb') as f:\n"
            "        parts = f.read().split(b'\\n')\n"
            "    if parts[-1] == b'':\n"
            "        parts.pop()\n"
            "    lines.extend(p + b'\\n' for p in parts)\n"
            "lines.sort(key=lambda l: l[:-1][:kb])\n"
            "sys.stdout.buffer.write(b''.join(lines))\n");
  std::vector<std::string> argv = {"/usr/bin/python3", script.string(), std::to_string(key_bytes)};
  for (const fs::path& f : files) argv.push_back(f.string());
  ClientResult r = RunCommand(argv, tmp.path());
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  return r.out;
}

// Records with many duplicate keys: each line is a key from a small pool of random 10-byte keys,
// then where it came from (file and line), so the order of equal keys shows in the output. Some
// lines are shorter than a key, some contain a TAB, a few are empty.
std::vector<fs::path> WriteRecords(const fs::path& dir, int files, int lines_per_file,
                                   uint32_t seed) {
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<int> letter(0, static_cast<int>(alphabet.size()) - 1);
  std::vector<std::string> pool;
  for (int i = 0; i < 40; ++i) {
    std::string key;
    for (int k = 0; k < 10; ++k) key += alphabet[static_cast<size_t>(letter(rng))];
    pool.push_back(key);
  }
  std::uniform_int_distribution<int> pick(0, static_cast<int>(pool.size()) - 1), kind(0, 99);
  std::vector<fs::path> paths;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int l = 0; l < lines_per_file; ++l) {
      const int k = kind(rng);
      if (k == 0) {
        text += "\n";
      } else if (k < 4) {
        text += pool[static_cast<size_t>(pick(rng))].substr(0, static_cast<size_t>(k * 3)) + "\n";
      } else {
        text += pool[static_cast<size_t>(pick(rng))] + (k % 7 == 0 ? "\t" : "  ") + "file " +
                std::to_string(f) + " line " + std::to_string(l) + "\n";
      }
    }
    // Names not in the order written: zmr reads inputs in sorted path order (so does the
    // reference), and that order decides between equal keys of different files.
    paths.push_back(dir / (std::string(1, static_cast<char>('z' - 3 * f)) + "-records-" +
                           std::to_string(f) + ".txt"));
    WriteFile(paths.back(), text);
  }
  return paths;
}

TEST_CASE("sort jobs over several files with duplicate keys equal a stable sort, for R=1 and R=3") {
  TempDir tmp("sort-e2e");
  std::vector<fs::path> files = WriteRecords(tmp / "in", 3, 30000, 5);  // about 2.5 MiB
  const std::string expected = ReferenceSort(tmp, files, 10);
  // Workers with a 1 MiB sort buffer: each map (a third of the input) spills and merges, so
  // stability is checked through spills as well as across maps, files and partitions.
  Cluster cluster({.workers = 0});
  for (int i = 0; i < 2; ++i) cluster.AddWorker({.flags = {"--sort-buffer-mb", "1"}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());

  for (int reduces : {3, 1}) {
    const fs::path out = tmp / ("out-r" + std::to_string(reduces));
    ClientResult r = SubmitWait(cluster, {"--app", "sort", "--input", (tmp / "in").string(),
                                          "--output", out.string(), "--maps", "3", "--reduces",
                                          std::to_string(reduces)});
    INFO("R=" << reduces << "\n" << r.Describe() << "\n" << cluster.Logs());
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(out / "_SUCCESS"));
    const std::string actual = ConcatenatedParts(out, reduces);
    CHECK_MESSAGE(actual == expected, FirstDifference(actual, expected));
    if (reduces == 3) {
      // The sampled split points spread the records: no partition is empty.
      for (int p = 0; p < reduces; ++p) CHECK(fs::file_size(out / PartName(p)) > 0);
    }
    std::optional<Json> job = Status(cluster, Trim(r.out.substr(0, r.out.find('\n'))));
    REQUIRE(job.has_value());
    const Json* counters = job->Get("counters");
    REQUIRE(counters != nullptr);
    // Spilled maps write their records twice (spills, then the merged run).
    CHECK(counters->Int("spilled_records") > counters->Int("map_output_records"));
  }
}

TEST_CASE("sort handles an empty input, one record, all-equal keys and more reduces than keys") {
  TempDir tmp("sort-edges");
  Cluster cluster({.workers = 2});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  struct Case {
    std::string name;
    std::string input;
    int reduces;
  };
  const std::vector<Case> cases = {
      {"empty", "", 2},
      {"one", "only one record\n", 3},
      {"equal", "samekey123 c\nsamekey123 a\nsamekey123 b\nsamekey123\n", 3},
      {"few-keys", "bbbbbbbbbb 1\naaaaaaaaaa 2\nbbbbbbbbbb 3\naaaaaaaaaa 4\n", 5},
      {"no-newline", "zz last line without newline\naa first", 2},
  };
  for (const Case& c : cases) {
    const fs::path in = tmp / ("in-" + c.name) / "input.txt";
    fs::create_directories(in.parent_path());
    WriteFile(in, c.input);
    const std::string expected = ReferenceSort(tmp, {in}, 10);
    const fs::path out = tmp / ("out-" + c.name);
    ClientResult r = SubmitWait(cluster, {"--app", "sort", "--input", in.string(), "--output",
                                          out.string(), "--reduces", std::to_string(c.reduces)});
    INFO(c.name << "\n" << r.Describe() << "\n" << cluster.Logs());
    REQUIRE(r.exit_code == 0);
    CHECK(ConcatenatedParts(out, c.reduces) == expected);
  }
}

TEST_CASE("a sort job with bad params is refused at submit with one line and nothing created") {
  TempDir tmp("sort-bad");
  WriteFile(tmp / "in.txt", "b\na\n");
  Cluster cluster({.workers = 0});
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--param", "key_bytes=0"}, "key_bytes must be an integer from 1 to 4096, got '0'"},
      {{"--param", "key_bytes=ten"}, "key_bytes must be an integer from 1 to 4096, got 'ten'"},
      {{"--reduces", "0"}, "app 'sort' needs at least one reduce"},
      {{"--reduces", "2", "--param", "split_points=6x"}, "has a character that is not hex"},
      {{"--reduces", "2", "--param", "split_points=61,62"}, "2 split points for 2 reduces"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"submit", "--app", "sort", "--input",
                                     (tmp / "in.txt").string(), "--output", (tmp / "out").string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    ClientResult r = cluster.RunClient(args);
    INFO(r.Describe());
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find(c.error) != std::string::npos);
    CHECK(Trim(r.err).find('\n') == std::string::npos);
    CHECK_FALSE(fs::exists(tmp / "out"));
  }
  CHECK(JobCount(cluster) == 0);
}

}  // namespace
