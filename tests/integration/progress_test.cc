// End-to-end tests of the progress display of `zmr submit --wait` and `zmr wait JOB`: on a
// pseudo-terminal (tests/integration/pty_run.py, Debian's python) it is redrawn in place and
// replaced by the summary; Ctrl-C stops watching without cancelling; without a terminal, or with
// --no-progress, it is plain lines. Real binaries on loopback ports bound at run time; slow maps
// (slow_wordcount_mapper.py with ZMR_TEST_SLOW_MAP_S) keep a job running long enough to be drawn
// more than once. Nothing asserts on timing.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

const fs::path kIntegration = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration";
const fs::path kScripts = kIntegration / "streaming_scripts";

// Terminal size the display runs in; narrow, so that its lines have to be cut to fit.
constexpr int kCols = 60;

// The arguments of a word-count job with the slow streaming mapper (slow only on workers started
// with ZMR_TEST_SLOW_MAP_S).
std::vector<std::string> SlowJobArgs(const fs::path& input, const fs::path& output) {
  return {"--mapper", "/usr/bin/python3 slow_wordcount_mapper.py", "--reducer",
          "/usr/bin/python3 wordcount_reducer.py", "--file",
          (kScripts / "slow_wordcount_mapper.py").string(), "--file",
          (kScripts / "wordcount_reducer.py").string(), "--input", input.string(), "--output",
          output.string(), "--maps", "4", "--reduces", "2", "--no-speculation", "--name",
          "progress-test"};
}

// Runs `zmr --coordinator ... args` on a pseudo-terminal of kCols columns; out is every byte it
// wrote (stdout and stderr both go to the terminal). `interrupt_after`: type ^C once this text
// appeared.
ClientResult RunOnTerminal(const Cluster& cluster, const std::vector<std::string>& args,
                           const std::string& interrupt_after = "") {
  std::vector<std::string> argv = {"/usr/bin/python3", (kIntegration / "pty_run.py").string(),
                                   "--cols", std::to_string(kCols), "--rows", "30",
                                   "--timeout", "100"};
  if (!interrupt_after.empty()) {
    argv.push_back("--interrupt-after");
    argv.push_back(interrupt_after);
  }
  argv.push_back("--");
  argv.push_back(Cluster::ClientBinary().string());
  argv.push_back("--coordinator");
  argv.push_back(cluster.clients_endpoint());
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, cluster.dir().path() / "logs");
}

// The text without CSI control sequences (ESC [ digits/semicolons, then a letter).
std::string WithoutControlSequences(const std::string& raw) {
  std::string text;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\x1b' && i + 1 < raw.size() && raw[i + 1] == '[') {
      size_t end = raw.find_first_not_of("0123456789;", i + 2);
      if (end != std::string::npos) {
        i = end;  // the final letter
        continue;
      }
    }
    text += raw[i];
  }
  return text;
}

// Whether `text` holds "\r ESC [ <n> A ESC [ J": back up over n lines and clear from there.
bool HasRedraw(const std::string& text) {
  for (size_t at = text.find("\r\x1b["); at != std::string::npos;
       at = text.find("\r\x1b[", at + 1)) {
    const size_t end = text.find_first_not_of("0123456789", at + 3);
    if (end != std::string::npos && end > at + 3 && text.compare(end, 4, "A\x1b[J") == 0) {
      return true;
    }
  }
  return false;
}

// The text without control sequences, cut into lines at "\n" and "\r" (a pty turns "\n" into
// "\r\n"), empty pieces dropped.
std::vector<std::string> ScreenPieces(const std::string& raw) {
  const std::string text = WithoutControlSequences(raw);
  std::vector<std::string> pieces;
  std::string piece;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!piece.empty()) pieces.push_back(piece);
      piece.clear();
    } else {
      piece += c;
    }
  }
  if (!piece.empty()) pieces.push_back(piece);
  return pieces;
}

int Columns(const std::string& line) {
  int n = 0;
  for (char c : line) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("zmr submit --wait on a terminal redraws its display in place and ends with the "
          "summary") {
  TempDir tmp("progress-tty");
  GenerateCorpus(tmp / "in", {.seed = 51, .total_bytes = 192 << 10, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0, .slots = 1});
  for (int i = 0; i < 2; ++i) cluster.AddWorker({.env = {{"ZMR_TEST_SLOW_MAP_S", "1"}}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";

  std::vector<std::string> args = {"submit"};
  for (std::string& a : SlowJobArgs(tmp / "in", output)) args.push_back(std::move(a));
  args.push_back("--wait");
  const ClientResult r = RunOnTerminal(cluster, args);
  INFO("on the terminal:\n" << r.Describe() << "\n" << cluster.Logs());
  REQUIRE(r.exit_code == 0);

  // The job id first (submit prints it), then the display.
  const std::string job_id = r.out.substr(0, r.out.find_first_of("\r\n"));
  REQUIRE(job_id.rfind("job_", 0) == 0);
  const std::string summary_start = job_id + " COMPLETED in ";
  const size_t summary = r.out.find(summary_start);
  REQUIRE(summary != std::string::npos);
  const std::string display = r.out.substr(0, summary);
  const std::string end = r.out.substr(summary);

  // Redrawn in place: the cursor moved up over the previous block, which was cleared.
  CHECK(HasRedraw(display));
  CHECK(Contains(display, "map     ["));
  CHECK(Contains(display, "reduce  ["));
  CHECK(Contains(display, "running "));
  CHECK(Contains(display, "input   "));
  CHECK(Contains(display, "MAPPING"));
  // Every line of the display fits the terminal, so none wrapped and broke the redraw.
  for (const std::string& piece : ScreenPieces(display)) {
    CAPTURE(piece);
    CHECK(Columns(piece) < kCols);
  }
  // It ends with the summary, plain text after the display was cleared.
  CHECK(end.find('\x1b') == std::string::npos);
  CHECK(Contains(end, "output"));
  CHECK(Contains(end, output.string()));
  CHECK(Contains(end, "map_input_records"));
  CHECK_FALSE(Contains(r.out, "zmr: "));
  CHECK(ReadSortedOutput(output) == expected);
}

TEST_CASE("Ctrl-C in zmr wait on a terminal stops watching, says how to cancel and leaves the "
          "job running") {
  TempDir tmp("progress-int");
  GenerateCorpus(tmp / "in", {.seed = 52, .total_bytes = 192 << 10, .files = 3});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0, .slots = 1});
  // Maps of 3 s and more: the job is still running when ^C arrives, right after the first frame.
  for (int i = 0; i < 2; ++i) cluster.AddWorker({.env = {{"ZMR_TEST_SLOW_MAP_S", "3"}}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const fs::path output = tmp / "out";
  const std::string job_id = Submit(cluster, SlowJobArgs(tmp / "in", output));

  const ClientResult r = RunOnTerminal(cluster, {"wait", job_id}, "reduce  [");
  INFO("on the terminal:\n" << r.Describe() << "\n" << cluster.Logs());
  CHECK(r.exit_code == 130);
  CHECK(Contains(r.out, "map     ["));
  CHECK(Contains(r.out, "stopped watching; the job keeps running (zmr cancel " + job_id +
                            " to stop it)"));
  CHECK_FALSE(Contains(r.out, "zmr: "));

  // Only the watching stopped: the job goes on to complete.
  const Json end = PollStatus(cluster, job_id, [](const Json&) { return false; });
  CHECK(end.String("state") == "COMPLETED");
  CHECK(ReadSortedOutput(output) == expected);
}

TEST_CASE("without a terminal, or with --no-progress, zmr submit --wait prints plain lines") {
  TempDir tmp("progress-plain");
  GenerateCorpus(tmp / "in", {.seed = 53, .total_bytes = 128 << 10, .files = 2});
  const std::string expected = ReferenceWordCount(CorpusFiles(tmp / "in"));
  Cluster cluster({.workers = 0, .slots = 1});
  // Slow maps: the job surely has not ended at the first status poll, which prints a line.
  for (int i = 0; i < 2; ++i) cluster.AddWorker({.env = {{"ZMR_TEST_SLOW_MAP_S", "1"}}});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  auto submit_wait = [&](const fs::path& output, std::vector<std::string> extra) {
    std::vector<std::string> args = {"submit"};
    for (std::string& a : SlowJobArgs(tmp / "in", output)) args.push_back(std::move(a));
    args.push_back("--wait");
    for (std::string& a : extra) args.push_back(std::move(a));
    return args;
  };

  SUBCASE("stdout is a file") {
    const fs::path output = tmp / "out-file";
    const ClientResult r = cluster.RunClient(submit_wait(output, {}));
    INFO(r.Describe() << "\n" << cluster.Logs());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find('\x1b') == std::string::npos);
    CHECK(r.err.find('\x1b') == std::string::npos);
    const std::string job_id = r.out.substr(0, r.out.find('\n'));
    // stdout: the job id, then the summary; the progress lines went to stderr.
    CHECK(Contains(r.out, "\n" + job_id + " COMPLETED in "));
    CHECK(Contains(r.out, output.string()));
    CHECK(Contains(r.err, job_id + " "));
    CHECK(Contains(r.err, "  map "));
    CHECK(Contains(r.err, "  eta "));
    CHECK_FALSE(Contains(r.err, "zmr: "));
    CHECK(ReadSortedOutput(output) == expected);
  }
  SUBCASE("--no-progress on a terminal") {
    const fs::path output = tmp / "out-tty";
    const ClientResult r = RunOnTerminal(cluster, submit_wait(output, {"--no-progress"}));
    INFO(r.Describe() << "\n" << cluster.Logs());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find('\x1b') == std::string::npos);
    CHECK(Contains(r.out, "  map "));
    CHECK(Contains(r.out, " COMPLETED in "));
    CHECK_FALSE(Contains(r.out, "zmr: "));
    CHECK(ReadSortedOutput(output) == expected);
  }
}

}  // namespace

namespace {

TEST_CASE("on a terminal each failed attempt gets one permanent line with its stderr, and a "
          "failed job ends with its error") {
  TempDir tmp("progress-fail");
  fs::create_directories(tmp / "in");
  WriteFile(tmp / "in" / "a.txt", "alpha beta\nFAIL\ngamma\n");
  Cluster cluster({.workers = 2, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  ClientResult r = RunOnTerminal(
      cluster, {"submit", "--mapper", "/usr/bin/python3 fail_on_line.py", "--reducer", "cat",
                "--file", (kScripts / "fail_on_line.py").string(), "--input",
                (tmp / "in").string(), "--output", (tmp / "out").string(), "--maps", "1",
                "--max-attempts", "2", "--wait"});
  INFO(r.Describe() << "\n" << cluster.Logs());
  CHECK(r.exit_code == 1);
  const std::vector<std::string> pieces = ScreenPieces(r.out);
  int first = 0, second = 0, stderr_lines = 0;
  for (const std::string& p : pieces) {
    first += p.rfind("attempt m-00000.a1 failed on worker-", 0) == 0;
    second += p.rfind("attempt m-00000.a2 failed on worker-", 0) == 0;
    stderr_lines += Contains(p, "| bad record: FAIL");
  }
  // Each failure printed once, however often the display was redrawn.
  CHECK(first == 1);
  CHECK(second == 1);
  CHECK(stderr_lines >= 2);
  CHECK(Contains(WithoutControlSequences(r.out), "FAILED"));
  CHECK(Contains(WithoutControlSequences(r.out), "zmr: job "));
  CHECK(Contains(WithoutControlSequences(r.out), "failed 2 attempts"));
}

}  // namespace
