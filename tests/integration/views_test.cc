// The client's views of a running job, checked against what is surely true at that moment: a job
// whose map attempts are held open (gated_wordcount_mapper.py) on 2 workers x 1 slot has exactly 2
// maps RUNNING, one per worker, and the rest PENDING. And every --json view (status, jobs, tasks,
// workers) has exactly the keys PROTOCOL.md documents for JobInfo, TaskInfo and WorkerInfo, read
// from PROTOCOL.md itself, so the page and the code cannot drift apart.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/helpers.h"
#include "tests/support/cluster.h"

namespace {

using namespace zmr::testing;

const fs::path kScripts = fs::path(ZMR_SOURCE_DIR) / "tests" / "integration" / "streaming_scripts";

// The lines of PROTOCOL.md.
std::vector<std::string> ProtocolLines() {
  std::ifstream in(fs::path(ZMR_SOURCE_DIR) / "PROTOCOL.md");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lower-case identifiers in backquotes of `text` (`task_id`, not `PENDING` or `JOB/TASK`).
std::set<std::string> QuotedNames(const std::string& text) {
  std::set<std::string> names;
  std::size_t open = text.find('`');
  while (open != std::string::npos) {
    const std::size_t close = text.find('`', open + 1);
    if (close == std::string::npos) break;
    const std::string name = text.substr(open + 1, close - open - 1);
    const bool identifier =
        !name.empty() && name[0] >= 'a' && name[0] <= 'z' &&
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
    if (identifier) names.insert(name);
    open = text.find('`', close + 1);
  }
  return names;
}

// JobInfo's fields: the first column of the table after the "JobInfo:" line.
std::set<std::string> DocumentedJobInfo() {
  std::vector<std::string> lines = ProtocolLines();
  std::set<std::string> names;
  bool in_table = false;
  for (const std::string& line : lines) {
    if (line == "JobInfo:") {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (line.empty() && !names.empty()) break;
    if (line.rfind("| `", 0) != 0) continue;
    const std::string first = line.substr(1, line.find('|', 1) - 1);
    for (const std::string& name : QuotedNames(first)) names.insert(name);
  }
  return names;
}

// The fields of the paragraph "NAME: `a` str, `b` int, ..." (TaskInfo, WorkerInfo): every quoted
// name in it that is followed by its type or an explanation.
std::set<std::string> DocumentedParagraph(const std::string& name) {
  std::vector<std::string> lines = ProtocolLines();
  std::string paragraph;
  bool in = false;
  for (const std::string& line : lines) {
    if (line.rfind(name + ": ", 0) == 0) in = true;
    if (!in) continue;
    if (line.empty()) break;
    paragraph += line + " ";
  }
  // Names in parentheses are values or examples ("(`PENDING`, ...)"), not fields: drop them.
  std::string fields;
  int depth = 0;
  for (char c : paragraph) {
    if (c == '(') ++depth;
    if (depth == 0) fields += c;
    if (c == ')' && depth > 0) --depth;
  }
  return QuotedNames(fields);
}

std::set<std::string> Keys(const Json& object) {
  std::set<std::string> keys;
  if (const auto* members = std::get_if<Json::Object>(&object.v)) {
    for (const auto& [key, value] : *members) keys.insert(key);
  }
  return keys;
}

std::string Describe(const std::set<std::string>& names) {
  std::string text;
  for (const std::string& n : names) text += (text.empty() ? "" : " ") + n;
  return text;
}

// Documented minus present, and present minus documented; `optional` fields may be absent.
void CheckKeys(const Json& object, const std::set<std::string>& documented,
               const std::set<std::string>& optional, const std::string& what) {
  const std::set<std::string> keys = Keys(object);
  std::set<std::string> missing, undocumented;
  for (const std::string& k : documented) {
    if (keys.count(k) == 0 && optional.count(k) == 0) missing.insert(k);
  }
  for (const std::string& k : keys) {
    if (documented.count(k) == 0) undocumented.insert(k);
  }
  INFO(what << ": documented but missing: [" << Describe(missing) << "], present but not in "
            << "PROTOCOL.md: [" << Describe(undocumented) << "]");
  CHECK(missing.empty());
  CHECK(undocumented.empty());
}

Json RunJson(const Cluster& cluster, const std::vector<std::string>& args) {
  ClientResult r = cluster.RunClient(args);
  INFO("zmr " << Join(args) << "\n" << r.Describe());
  REQUIRE(r.exit_code == 0);
  std::optional<Json> doc = Json::Parse(r.out);
  REQUIRE(doc.has_value());
  return *doc;
}

const Json::Array& Items(const Json& doc) {
  REQUIRE(doc.AsArray() != nullptr);
  return *doc.AsArray();
}

TEST_CASE("while two gated maps run, tasks and workers show exactly them and --json views have "
          "the documented keys") {
  const std::set<std::string> job_info = DocumentedJobInfo();
  const std::set<std::string> task_info = DocumentedParagraph("TaskInfo");
  const std::set<std::string> worker_info = DocumentedParagraph("WorkerInfo");
  // The parsing of PROTOCOL.md itself found the tables (a reworded page must not pass silently).
  REQUIRE(job_info.count("map_progress") == 1);
  REQUIRE(job_info.count("last_seq") == 1);
  REQUIRE(task_info.count("straggler") == 1);
  REQUIRE(worker_info.count("heartbeat_age_ms") == 1);

  TempDir tmp("views");
  std::vector<fs::path> files = GenerateCorpus(tmp / "in", {.seed = 7, .total_bytes = 64 << 10});
  const fs::path gate = tmp / "gate";
  Cluster cluster({.workers = 2, .slots = 1});
  REQUIRE_MESSAGE(cluster.WaitForWorkers(2), cluster.Logs());
  const std::string job =
      Submit(cluster, {"--mapper", "/usr/bin/python3 gated_wordcount_mapper.py", "--reducer",
                       "/usr/bin/python3 wordcount_reducer.py", "--file",
                       (kScripts / "gated_wordcount_mapper.py").string(), "--file",
                       (kScripts / "wordcount_reducer.py").string(), "--cmdenv",
                       "ZMR_TEST_GATE=" + gate.string(), "--input", (tmp / "in").string(),
                       "--output", (tmp / "out").string(), "--maps", "4", "--reduces", "2"});
  struct GateOpener {  // opens the gate whatever happens, so no attempt outlives the test
    fs::path path;
    ~GateOpener() { WriteFile(path, ""); }
  } opener{gate};

  // Both slots take a map, and the maps cannot finish while the gate is shut.
  Json status = PollStatus(cluster, job, [](const Json& j) {
    return j.Get("maps") != nullptr && j.Get("maps")->Int("running") == 2;
  });
  REQUIRE(status.String("state") == "MAPPING");
  CHECK(status.Int("running_attempts") == 2);
  CHECK(TaskCount(status, "maps", "pending") == 2);
  CHECK(TaskCount(status, "maps", "done") == 0);
  REQUIRE(status.Get("attempts") != nullptr);
  CHECK(Items(*status.Get("attempts")).size() == 2);
  CheckKeys(status, job_info, {"failure"}, "status --json");

  const Json tasks = RunJson(cluster, {"tasks", job, "--json"});
  std::map<std::string, int> states;
  std::set<std::string> running_on;
  for (const Json& t : Items(tasks)) {
    CheckKeys(t, task_info, {}, "tasks --json item");
    CHECK(t.String("kind") == "map");  // reduces do not exist before the maps are done
    ++states[t.String("state")];
    if (t.String("state") == "RUNNING") running_on.insert(t.String("worker"));
  }
  CHECK(Items(tasks).size() == 4);
  CHECK(states["RUNNING"] == 2);
  CHECK(states["PENDING"] == 2);
  CHECK(running_on == std::set<std::string>{cluster.WorkerName(0), cluster.WorkerName(1)});

  const Json workers = RunJson(cluster, {"workers", "--json"});
  REQUIRE(Items(workers).size() == 2);
  for (const Json& w : Items(workers)) {
    CheckKeys(w, worker_info, {}, "workers --json item");
    CHECK(w.Int("slots") == 1);
    CHECK(w.Int("running") == 1);
    const Json* attempts = w.Get("attempts");
    REQUIRE(attempts != nullptr);
    REQUIRE(Items(*attempts).size() == 1);
    CHECK(std::get<std::string>(Items(*attempts)[0].v).rfind(job + "/m-", 0) == 0);
  }

  const Json jobs = RunJson(cluster, {"jobs", "--json"});
  REQUIRE(Items(jobs).size() == 1);
  CheckKeys(Items(jobs)[0], job_info, {"failure"}, "jobs --json item");
  CHECK(Items(jobs)[0].String("job_id") == job);

  // Open the gate: the job completes with the right output, and the views say so.
  WriteFile(gate, "");
  Json end = PollStatus(cluster, job, [](const Json&) { return false; });
  INFO(cluster.Logs());
  REQUIRE(end.String("state") == "COMPLETED");
  CHECK(ReadSortedOutput(tmp / "out") == ReferenceWordCount(files));
  CheckKeys(end, job_info, {"failure"}, "status --json of a COMPLETED job");
  const Json done_tasks = RunJson(cluster, {"tasks", job, "--json"});
  CHECK(Items(done_tasks).size() == 6);
  for (const Json& t : Items(done_tasks)) CHECK(t.String("state") == "DONE");
  const Json idle = RunJson(cluster, {"workers", "--json"});
  for (const Json& w : Items(idle)) CHECK(w.Int("running") == 0);
  CHECK(Items(RunJson(cluster, {"jobs", "--json"})).empty());
  CHECK(Items(RunJson(cluster, {"jobs", "--all", "--json"})).size() == 1);
}

}  // namespace
