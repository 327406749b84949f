#include "common/splits.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace zmr {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it when the guard goes
// out of scope (also when an assertion fails and the test case unwinds).
class InputDir {
 public:
  // Writes `content` to a file named `name` in the directory and returns its input description.
  InputFile Write(const std::string& name, const std::string& content) const {
    const fs::path file = dir_ / name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    REQUIRE(out.good());
    return InputFile{file.string(), static_cast<int64_t>(content.size())};
  }

  const fs::path& path() const { return dir_.path(); }

 private:
  TempDir dir_{"splits-test"};
};

__extension__ typedef __int128 Int128;  // exact floor(i*T/M) for the reference cut points

using Lines = std::vector<std::pair<std::string, std::string>>;  // (path, line)

// The independent reference: the lines of a file read as a whole. Each '\n' ends a line and one
// '\r' before it is dropped; bytes after the last '\n' form one more line.
void AppendReferenceLines(const std::string& path, const std::string& content, Lines* lines) {
  size_t line_start = 0;
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] != '\n') continue;
    size_t line_end = i;
    if (line_end > line_start && content[line_end - 1] == '\r') --line_end;
    lines->emplace_back(path, content.substr(line_start, line_end - line_start));
    line_start = i + 1;
  }
  if (line_start < content.size()) lines->emplace_back(path, content.substr(line_start));
}

struct Corpus {
  std::vector<InputFile> files;
  std::vector<std::string> contents;
  int64_t total = 0;

  Lines Reference() const {
    Lines lines;
    for (size_t i = 0; i < files.size(); ++i) {
      AppendReferenceLines(files[i].path, contents[i], &lines);
    }
    return lines;
  }
};

// Reads every split of a plan in order with SplitReader, checking each reader's bookkeeping.
Lines ReadAllSplits(const std::vector<Split>& splits) {
  Lines lines;
  for (const Split& split : splits) {
    SplitReader reader(split);
    int64_t expected_total = 0;
    for (const FileRange& r : split) expected_total += r.end - r.start;
    CHECK(reader.total_bytes() == expected_total);
    CHECK(reader.bytes_consumed() == 0);
    int64_t count = 0;
    int64_t last_consumed = 0;
    std::string_view line;
    while (reader.Next(&line)) {
      lines.emplace_back(reader.current_path(), std::string(line));
      ++count;
      const int64_t consumed = reader.bytes_consumed();
      CHECK(consumed >= last_consumed);
      CHECK(consumed <= reader.total_bytes());
      last_consumed = consumed;
    }
    CHECK(reader.error() == "");
    CHECK(reader.lines() == count);
    CHECK(reader.bytes_consumed() == reader.total_bytes());
    // Once at the end, Next stays false.
    CHECK_FALSE(reader.Next(&line));
  }
  return lines;
}

std::string RandomLine(std::mt19937& rng) {
  static const std::string kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \t,.\r";
  const int shape = std::uniform_int_distribution<int>(0, 99)(rng);
  size_t length;
  if (shape < 20) {
    length = 0;
  } else if (shape < 85) {
    length = std::uniform_int_distribution<size_t>(1, 30)(rng);
  } else if (shape < 97) {
    length = std::uniform_int_distribution<size_t>(31, 300)(rng);
  } else {
    length = std::uniform_int_distribution<size_t>(301, 3000)(rng);
  }
  std::string line(length, ' ');
  std::uniform_int_distribution<size_t> pick(0, kAlphabet.size() - 1);
  for (char& c : line) c = kAlphabet[pick(rng)];
  return line;
}

std::string RandomFileContent(std::mt19937& rng) {
  const int shape = std::uniform_int_distribution<int>(0, 9)(rng);
  if (shape == 0) return "";
  if (shape == 1) return std::string(std::uniform_int_distribution<size_t>(1, 5)(rng), '\n');
  if (shape == 2) return RandomLine(rng);  // a single line, maybe without newline
  std::string content;
  const int lines = std::uniform_int_distribution<int>(1, 60)(rng);
  const bool crlf_file = std::uniform_int_distribution<int>(0, 3)(rng) == 0;
  for (int i = 0; i < lines; ++i) {
    content += RandomLine(rng);
    const bool crlf = crlf_file || std::uniform_int_distribution<int>(0, 9)(rng) == 0;
    content += crlf ? "\r\n" : "\n";
  }
  // Sometimes drop the final newline, or end in a bare '\r'.
  const int ending = std::uniform_int_distribution<int>(0, 5)(rng);
  if (ending == 0) {
    content += RandomLine(rng);
  } else if (ending == 1) {
    content += "tail\r";
  }
  return content;
}

Corpus RandomCorpus(const InputDir& dir, std::mt19937& rng, int index) {
  Corpus corpus;
  const int num_files = std::uniform_int_distribution<int>(1, 6)(rng);
  for (int i = 0; i < num_files; ++i) {
    std::string content = RandomFileContent(rng);
    corpus.files.push_back(
        dir.Write("corpus" + std::to_string(index) + "_" + std::to_string(i), content));
    corpus.total += static_cast<int64_t>(content.size());
    corpus.contents.push_back(std::move(content));
  }
  return corpus;
}

// Every split's ranges, in order, cover exactly [floor(i*T/M), floor((i+1)*T/M)) of the
// concatenation.
void CheckPlanCovers(const std::vector<InputFile>& files, int m, const std::vector<Split>& plan) {
  REQUIRE(plan.size() == static_cast<size_t>(m));
  int64_t total = 0;
  for (const InputFile& f : files) total += f.size;
  std::vector<int64_t> file_offset;
  int64_t offset = 0;
  for (const InputFile& f : files) {
    file_offset.push_back(offset);
    offset += f.size;
  }
  auto offset_of = [&](const std::string& path) -> int64_t {
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].path == path) return file_offset[i];
    }
    FAIL("range names an unknown file: " << path);
    return -1;
  };
  int64_t covered_until = 0;
  for (int i = 0; i < m; ++i) {
    const int64_t lo = static_cast<int64_t>(static_cast<Int128>(i) * total / m);
    const int64_t hi = static_cast<int64_t>(static_cast<Int128>(i + 1) * total / m);
    CHECK(covered_until == lo);
    int64_t bytes = 0;
    for (const FileRange& r : plan[i]) {
      CHECK(r.start < r.end);
      CHECK(r.start >= 0);
      const int64_t global_start = offset_of(r.path) + r.start;
      CHECK(global_start == covered_until);
      covered_until = offset_of(r.path) + r.end;
      bytes += r.end - r.start;
    }
    CHECK(bytes == hi - lo);
    covered_until = hi;
  }
  CHECK(covered_until == total);
}

TEST_CASE("a plan over several files cuts the concatenation at floor(i*T/M)") {
  const std::vector<InputFile> files = {{"/a", 10}, {"/b", 0}, {"/c", 5}, {"/d", 7}};
  const std::vector<Split> plan = PlanSplits(files, 3);  // T = 22: cuts at 0, 7, 14, 22
  REQUIRE(plan.size() == 3);
  CHECK(plan[0] == Split{{"/a", 0, 7}});
  CHECK(plan[1] == Split{{"/a", 7, 10}, {"/c", 0, 4}});
  CHECK(plan[2] == Split{{"/c", 4, 5}, {"/d", 0, 7}});
  CheckPlanCovers(files, 3, plan);
}

TEST_CASE("a plan with more splits than bytes has empty splits and exactly M entries") {
  const std::vector<InputFile> files = {{"/a", 2}, {"/b", 1}};
  const std::vector<Split> plan = PlanSplits(files, 5);  // T = 3: cuts at 0, 0, 1, 1, 2, 3
  REQUIRE(plan.size() == 5);
  CHECK(plan[0].empty());
  CHECK(plan[1] == Split{{"/a", 0, 1}});
  CHECK(plan[2].empty());
  CHECK(plan[3] == Split{{"/a", 1, 2}});
  CHECK(plan[4] == Split{{"/b", 0, 1}});
  CheckPlanCovers(files, 5, plan);
}

TEST_CASE("a plan over only empty files or no files has M empty splits") {
  for (const std::vector<InputFile>& files :
       {std::vector<InputFile>{}, std::vector<InputFile>{{"/a", 0}, {"/b", 0}}}) {
    const std::vector<Split> plan = PlanSplits(files, 4);
    REQUIRE(plan.size() == 4);
    for (const Split& split : plan) CHECK(split.empty());
  }
}

TEST_CASE("a plan with one split covers every non-empty file whole") {
  const std::vector<InputFile> files = {{"/a", 0}, {"/b", 3}, {"/c", 0}, {"/d", 9}};
  const std::vector<Split> plan = PlanSplits(files, 1);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0] == Split{{"/b", 0, 3}, {"/d", 0, 9}});
}

TEST_CASE("random plans cover the concatenation exactly, in order and without overlap") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    std::vector<InputFile> files;
    const int num_files = std::uniform_int_distribution<int>(0, 8)(rng);
    for (int i = 0; i < num_files; ++i) {
      const int shape = std::uniform_int_distribution<int>(0, 3)(rng);
      const int64_t size = shape == 0 ? 0 : std::uniform_int_distribution<int64_t>(1, 5000)(rng);
      files.push_back({"/f" + std::to_string(i), size});
    }
    const int m = std::uniform_int_distribution<int>(1, 200)(rng);
    CAPTURE(round);
    CheckPlanCovers(files, m, PlanSplits(files, m));
  }
}

TEST_CASE("a plan over petabytes of input does not overflow its boundaries") {
  const int64_t huge = int64_t{1} << 62;
  const std::vector<InputFile> files = {{"/a", huge}, {"/b", huge - 1}};
  const int m = 20000;
  const std::vector<Split> plan = PlanSplits(files, m);
  CheckPlanCovers(files, m, plan);
}

TEST_CASE("the default map count is one per 64 MiB, rounded up, and at least one") {
  const int64_t mib = int64_t{1} << 20;
  CHECK(DefaultMapCount(0) == 1);
  CHECK(DefaultMapCount(1) == 1);
  CHECK(DefaultMapCount(64 * mib) == 1);
  CHECK(DefaultMapCount(64 * mib + 1) == 2);
  CHECK(DefaultMapCount(128 * mib) == 2);
  CHECK(DefaultMapCount(10 * 1024 * mib) == 160);
}

TEST_CASE("reading every split of random corpora yields exactly the files' lines, once each") {
  InputDir dir;
  std::mt19937 rng(20240601);
  for (int index = 0; index < 50; ++index) {
    const Corpus corpus = RandomCorpus(dir, rng, index);
    const Lines expected = corpus.Reference();
    std::vector<int> counts;
    for (int m = 1; m <= 40; ++m) counts.push_back(m);
    if (corpus.total <= 4000) {  // one reader per byte and more: keep the run time bounded
      counts.push_back(static_cast<int>(corpus.total) + 1);
      counts.push_back(static_cast<int>(corpus.total) * 2 + 7);
    }
    for (int m : counts) {
      CAPTURE(index);
      CAPTURE(m);
      const Lines actual = ReadAllSplits(PlanSplits(corpus.files, m));
      REQUIRE(actual.size() == expected.size());
      CHECK(actual == expected);
    }
  }
}

TEST_CASE("tiny random corpora read the same lines for every split count up to beyond T") {
  // Random bytes over {a, b, \r, \n} hit every cut position next to CR, LF, CRLF, empty lines and
  // final lines without a newline; M runs over every value from 1 to T + 2.
  InputDir dir;
  std::mt19937 rng(4242);
  const std::string kAlphabet = "ab\r\n\n";
  for (int index = 0; index < 100; ++index) {
    Corpus corpus;
    const int num_files = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int f = 0; f < num_files; ++f) {
      std::string content(std::uniform_int_distribution<size_t>(0, 30)(rng), ' ');
      for (char& c : content) c = kAlphabet[rng() % kAlphabet.size()];
      corpus.files.push_back(
          dir.Write("tiny" + std::to_string(index) + "_" + std::to_string(f), content));
      corpus.total += static_cast<int64_t>(content.size());
      corpus.contents.push_back(std::move(content));
    }
    const Lines expected = corpus.Reference();
    for (int m = 1; m <= corpus.total + 2; ++m) {
      CAPTURE(index);
      CAPTURE(m);
      CHECK(ReadAllSplits(PlanSplits(corpus.files, m)) == expected);
    }
  }
}

TEST_CASE("a split cut inside CRLF or right after a newline keeps line ownership exact") {
  InputDir dir;
  const std::string content = "a\r\nb\r\r\n\r\n\nc\r";
  const InputFile file = dir.Write("crlf", content);
  Lines expected;
  expected.emplace_back(file.path, "a");
  expected.emplace_back(file.path, "b\r");
  expected.emplace_back(file.path, "");
  expected.emplace_back(file.path, "");
  expected.emplace_back(file.path, "c\r");  // no "\n" after it, so the "\r" is data
  // Every single cut point: two splits [0, k) and [k, T).
  for (int64_t k = 0; k <= file.size; ++k) {
    CAPTURE(k);
    std::vector<Split> plan(2);
    if (k > 0) plan[0].push_back({file.path, 0, k});
    if (k < file.size) plan[1].push_back({file.path, k, file.size});
    CHECK(ReadAllSplits(plan) == expected);
  }
}

TEST_CASE("empty lines are returned as empty views") {
  InputDir dir;
  const InputFile file = dir.Write("empty_lines", "\n\nx\n\n");
  SplitReader reader(Split{{file.path, 0, file.size}});
  std::vector<std::string> lines;
  std::string_view line;
  while (reader.Next(&line)) lines.emplace_back(line);
  CHECK(reader.error() == "");
  CHECK(lines == std::vector<std::string>{"", "", "x", ""});
}

TEST_CASE("a line longer than the read buffer is returned whole by the split that owns it") {
  InputDir dir;
  std::mt19937 rng(7);
  std::string long_line(3 * (1 << 20) + 12345, 'x');
  for (char& c : long_line) c = static_cast<char>('a' + rng() % 26);
  const std::string content = "first\n" + long_line + "\r\nlast\n";
  const InputFile file = dir.Write("long", content);
  const std::vector<InputFile> files = {file};
  for (int m : {1, 2, 3, 4, 7, 16}) {
    CAPTURE(m);
    const std::vector<Split> plan = PlanSplits(files, m);
    // The split holding byte 6 (the long line's first byte) owns it, no other split returns it.
    int owners = 0;
    for (const Split& split : plan) {
      SplitReader reader(split);
      std::string_view line;
      while (reader.Next(&line)) {
        if (line.size() > 100) {
          ++owners;
          CHECK(line == long_line);
          REQUIRE(!split.empty());
          CHECK(split.front().start <= 6);
        }
      }
      CHECK(reader.error() == "");
    }
    CHECK(owners == 1);
    const Lines expected = {{file.path, "first"}, {file.path, long_line}, {file.path, "last"}};
    CHECK(ReadAllSplits(plan) == expected);
  }
}

TEST_CASE("lines crossing read-buffer boundaries in a multi-megabyte corpus are read exactly") {
  InputDir dir;
  std::mt19937 rng(99);
  Corpus corpus;
  for (int f = 0; f < 3; ++f) {
    std::string content;
    while (content.size() < (size_t{5} << 19)) {  // ~2.5 MiB per file
      const int shape = std::uniform_int_distribution<int>(0, 999)(rng);
      const size_t length = shape == 0   ? std::uniform_int_distribution<size_t>(1 << 20, 3 << 20)(rng)
                            : shape < 50 ? std::uniform_int_distribution<size_t>(1000, 20000)(rng)
                                         : std::uniform_int_distribution<size_t>(0, 120)(rng);
      content.append(length, static_cast<char>('a' + rng() % 26));
      content += (rng() % 4 == 0) ? "\r\n" : "\n";
    }
    if (f == 1) content += "no newline at the end";
    corpus.files.push_back(dir.Write("big" + std::to_string(f), content));
    corpus.total += static_cast<int64_t>(content.size());
    corpus.contents.push_back(std::move(content));
  }
  const Lines expected = corpus.Reference();
  for (int m : {1, 2, 3, 5, 8, 13}) {
    CAPTURE(m);
    const Lines actual = ReadAllSplits(PlanSplits(corpus.files, m));
    REQUIRE(actual.size() == expected.size());
    CHECK(actual == expected);
  }
}

TEST_CASE("current_path names the file each line came from") {
  InputDir dir;
  const InputFile a = dir.Write("a", "1\n2");
  const InputFile b = dir.Write("b", "");
  const InputFile c = dir.Write("c", "3\n");
  SplitReader reader(PlanSplits({a, b, c}, 1)[0]);
  CHECK(reader.current_path() == "");
  std::string_view line;
  REQUIRE(reader.Next(&line));
  CHECK(line == "1");
  CHECK(reader.current_path() == a.path);
  REQUIRE(reader.Next(&line));
  CHECK(line == "2");
  CHECK(reader.current_path() == a.path);
  REQUIRE(reader.Next(&line));
  CHECK(line == "3");
  CHECK(reader.current_path() == c.path);
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.lines() == 3);
  CHECK(reader.bytes_consumed() == 5);
  CHECK(reader.total_bytes() == 5);
}

TEST_CASE("bytes_consumed grows with the lines read and ends at total_bytes") {
  InputDir dir;
  const InputFile file = dir.Write("progress", "aaaa\nbbbb\ncccc\ndddd\n");  // 20 bytes
  SplitReader reader(Split{{file.path, 3, 17}});  // owns the lines at 5, 10 and 15
  CHECK(reader.total_bytes() == 14);
  std::string_view line;
  REQUIRE(reader.Next(&line));
  CHECK(line == "bbbb");
  CHECK(reader.bytes_consumed() == 10 - 3);  // through the end of "bbbb\n"
  REQUIRE(reader.Next(&line));
  CHECK(line == "cccc");
  REQUIRE(reader.Next(&line));
  CHECK(line == "dddd");
  CHECK(reader.bytes_consumed() == 14);  // capped: the last line reads past the range
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.bytes_consumed() == 14);
  CHECK(reader.lines() == 3);
}

TEST_CASE("a missing input file makes Next fail with an error naming the path") {
  InputDir dir;
  const std::string missing = (dir.path() / "does_not_exist").string();
  SplitReader reader(Split{{missing, 0, 10}});
  std::string_view line;
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.error().find(missing) != std::string::npos);
  CHECK(reader.error().find('\n') == std::string::npos);
  CHECK_FALSE(reader.Next(&line));
}

TEST_CASE("an error in a later file stops the reader after the earlier file's lines") {
  InputDir dir;
  const InputFile a = dir.Write("a", "x\ny\n");
  const std::string missing = (dir.path() / "gone").string();
  SplitReader reader(Split{{a.path, 0, a.size}, {missing, 0, 5}});
  std::string_view line;
  REQUIRE(reader.Next(&line));
  REQUIRE(reader.Next(&line));
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.error().find(missing) != std::string::npos);
}

TEST_CASE("a file shorter than its planned range is reported, not silently truncated") {
  InputDir dir;
  const InputFile file = dir.Write("short", "abc\n");
  SplitReader reader(Split{{file.path, 0, 100}});
  std::string_view line;
  REQUIRE(reader.Next(&line));
  CHECK(line == "abc");
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.error().find(file.path) != std::string::npos);
}

TEST_CASE("a directory given as an input file is an I/O error naming it") {
  InputDir dir;
  const std::string path = dir.path().string();
  SplitReader reader(Split{{path, 0, 10}});
  std::string_view line;
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.error().find(path) != std::string::npos);
}

TEST_CASE("an empty split reads nothing and reports zero bytes") {
  SplitReader reader(Split{});
  std::string_view line;
  CHECK_FALSE(reader.Next(&line));
  CHECK(reader.error() == "");
  CHECK(reader.total_bytes() == 0);
  CHECK(reader.bytes_consumed() == 0);
  CHECK(reader.lines() == 0);
}

}  // namespace
}  // namespace zmr
