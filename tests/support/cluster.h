// Test support for the integration tests: temporary directories, child processes that never
// outlive their owner, a local zmr cluster (coordinator + workers on ports bound at run time), a
// deterministic text corpus and independent reference results to compare job output against.
//
// Everything here is for the test thread only (the doctest main thread): Process uses fork/exec
// with PR_SET_PDEATHSIG tied to the forking thread. Nothing here calls zmr's own code: the
// references are computed from the files directly, so a bug shared by zmr and a reference cannot
// hide.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tests/support/temp_dir.h"

namespace zmr::testing {

using zmr::TempDir;  // tests/support/temp_dir.h

using std::chrono::milliseconds;
namespace fs = std::filesystem;

// Upper bound for anything the tests wait for (a process to exit, a job to finish, a file to
// appear). Generous on purpose: it is a hang guard under ASan on two cores, not a timing check.
inline constexpr milliseconds kPatience{120000};
// How often polling loops look again.
inline constexpr milliseconds kPollInterval{50};

// NAME=VALUE pairs a child gets on top of the test process's environment (a later pair wins).
using Environment = std::vector<std::pair<std::string, std::string>>;

// One child process with stdout and stderr redirected to files. The destructor SIGKILLs and reaps
// a child that is still running, so no process outlives its Process object; the child also gets
// SIGKILL if the test process dies (PR_SET_PDEATHSIG).
class Process {
 public:
  // Starts argv[0] (a path, not searched in PATH) with argv, stdin from /dev/null, stdout and
  // stderr appended to the given files. Throws std::runtime_error when fork fails; an exec
  // failure shows as exit code 127 with the reason in the stderr file. `extra_env` is added to
  // (or replaces entries of) the environment the child inherits.
  Process(const std::vector<std::string>& argv, fs::path stdout_path, fs::path stderr_path,
          const Environment& extra_env = {});
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Whether the child has not been reaped yet (reaps it if it has exited).
  bool Running();
  // Sends a signal to a running child; no-op once reaped.
  void Kill(int signal_number);
  // Waits up to `timeout` for the child to exit. Returns its exit code, 128+N if a signal N ended
  // it, or nullopt on timeout (the child is then SIGKILLed and reaped; a later Wait returns
  // 128+SIGKILL).
  std::optional<int> Wait(milliseconds timeout = kPatience);
  // Sends `signal_number`, waits up to `grace`, then SIGKILLs. Returns the exit status as Wait.
  int Stop(int signal_number, milliseconds grace);

  std::string Stdout() const;
  std::string Stderr() const;
  const fs::path& stdout_path() const { return stdout_path_; }
  const fs::path& stderr_path() const { return stderr_path_; }
  // The command line, for messages.
  const std::string& command() const { return command_; }

 private:
  bool Reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> status_;  // exit code once reaped (as Wait returns it)
  fs::path stdout_path_;
  fs::path stderr_path_;
  std::string command_;
};

// What a finished `zmr` invocation returned.
struct ClientResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  // "exit N\nstdout: ...\nstderr: ..." for test messages.
  std::string Describe() const;
};

struct ClusterOptions {
  int workers = 2;         // started by the constructor
  int slots = 2;           // per worker
  // Passed to the coordinator and the workers when set.
  std::optional<int> heartbeat_ms = std::nullopt;
  std::optional<int> liveness = std::nullopt;
};

// How to start one worker beyond ClusterOptions (Cluster::AddWorker(const WorkerLaunch&)).
struct WorkerLaunch {
  std::optional<int> slots = std::nullopt;  // default: ClusterOptions::slots
  std::vector<std::string> flags = {};      // appended to the command line: {"--task-timeout", "2"}
  // Set in the worker's environment; its attempts and their streaming commands inherit it (how a
  // test slows one worker down: a test script reads the variable).
  Environment env = {};
};

// A coordinator (ports '*' on 127.0.0.1, endpoints read from its ready file) and workers named
// worker-0, worker-1, ... with work dirs under the cluster's temp dir. The destructor stops
// everything (SIGTERM, a short grace, then SIGKILL).
class Cluster {
 public:
  // Starts the coordinator, waits (bounded) for its ready file and starts the workers. Does not
  // wait for the workers to register: call WaitForWorkers. Throws std::runtime_error if the
  // coordinator does not come up.
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts one more worker (named worker-<index>); returns its index.
  int AddWorker();
  // The same with other slots, extra flags or extra environment variables.
  int AddWorker(const WorkerLaunch& launch);
  // Name and work dir of worker i (WORK_DIR/jobs/<job_id> holds a job's intermediate data).
  std::string WorkerName(int i) const { return "worker-" + std::to_string(i); }
  fs::path WorkDir(int i) const { return dir_ / ("work-" + std::to_string(i)); }
  int worker_count() const { return static_cast<int>(workers_.size()); }
  // Sends a signal to worker i (SIGKILL by default) and reaps it when the signal is fatal.
  void KillWorker(int i, int signal_number = SIGKILL);
  Process& worker(int i) { return workers_.at(static_cast<size_t>(i)); }
  Process& coordinator() { return *coordinator_; }

  // Runs `zmr --coordinator <clients endpoint> args...` to completion (bounded by kPatience).
  ClientResult RunClient(const std::vector<std::string>& args) const;
  // Starts `zmr --coordinator <clients endpoint> args...` in the background.
  Process StartClient(const std::vector<std::string>& args) const;

  // Polls `zmr workers --json` until exactly n workers are registered. False after `patience`.
  bool WaitForWorkers(int n, milliseconds patience = kPatience) const;

  const std::string& workers_endpoint() const { return workers_endpoint_; }
  const std::string& clients_endpoint() const { return clients_endpoint_; }
  const std::string& events_endpoint() const { return events_endpoint_; }
  const TempDir& dir() const { return dir_; }
  // The coordinator's and all workers' stderr, for failure messages.
  std::string Logs() const;

  static fs::path CoordinatorBinary();
  static fs::path WorkerBinary();
  static fs::path ClientBinary();

 private:
  std::vector<std::string> HeartbeatFlags() const;

  ClusterOptions options_;
  TempDir dir_{"cluster"};
  std::optional<Process> coordinator_;
  std::vector<Process> workers_;
  std::string workers_endpoint_, clients_endpoint_, events_endpoint_;
  mutable int client_runs_ = 0;  // numbers client output files
};

// A unique path for a process's output file under `dir`: <dir>/<stem>-<n>.<ext>.
fs::path UniqueFile(const fs::path& dir, std::string_view stem, std::string_view ext);

// Runs argv to completion (SIGKILLed after `patience`, exit_code -1 then) with its output captured
// through files in `log_dir` that are removed afterwards.
ClientResult RunCommand(const std::vector<std::string>& argv, const fs::path& log_dir,
                        milliseconds patience = kPatience);

// ---------------------------------------------------------------------------------------------
// A minimal JSON reader for the client's --json output (objects, arrays, strings, numbers, bools,
// null). Enough to read JobInfo and WorkerInfo; not a general-purpose parser.

struct Json {
  using Object = std::vector<std::pair<std::string, Json>>;
  using Array = std::vector<Json>;
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v;

  // Parses one document (surrounding whitespace allowed); nullopt on any syntax error.
  static std::optional<Json> Parse(std::string_view text);
  // Member lookup; nullptr when not an object or absent.
  const Json* Get(std::string_view key) const;
  // Typed getters with a fallback for a missing or mistyped member.
  std::string String(std::string_view key) const;
  int64_t Int(std::string_view key, int64_t fallback = -1) const;
  // A bool member, or nullopt when it is missing or not a bool.
  std::optional<bool> Bool(std::string_view key) const;
  const Array* AsArray() const { return std::get_if<Array>(&v); }
};

// ---------------------------------------------------------------------------------------------
// Processes under a pid, from /proc (Linux).

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';     // as in /proc/PID/stat: R, S, D, Z (zombie), T (stopped), ...
  std::string command;  // /proc/PID/cmdline with spaces between the arguments, or (comm)
};

// Every process whose chain of parents reaches `root` (root itself excluded), zombies included,
// as /proc shows them now. Processes that re-parented away from `root` (to init or to another
// subreaper) are not its descendants any more and are not listed.
std::vector<ProcessInfo> DescendantProcesses(pid_t root);
// Whether p is a worker's zmr-task runner waiting for its next attempt (its title is "idle"):
// such a process belongs to no job.
bool IsIdleRunner(const ProcessInfo& p);
// One "pid ppid state command" line per process, for messages.
std::string DescribeProcesses(const std::vector<ProcessInfo>& processes);

// Polls `done` every kPollInterval until it returns true (true) or `patience` ran out (false).
bool WaitUntil(const std::function<bool()>& done, milliseconds patience = kPatience);

// ---------------------------------------------------------------------------------------------
// Following the coordinator's events with `zmr watch --json` (all jobs and workers).

class EventWatch {
 public:
  // Starts `zmr watch --json` against `cluster` and returns once it is known to receive events:
  // a probe worker (named watch-probe-N, 1 slot) registers over the workers socket until the
  // watcher prints its worker_joined, then says goodbye (and the watcher prints its worker_lost).
  // Construct it before submitting any job, or the probe could be given a task. Throws
  // std::runtime_error if the watcher does not come live within kPatience.
  explicit EventWatch(const Cluster& cluster);
  // Stops the watcher (SIGINT, then SIGKILL after a grace period).
  ~EventWatch();
  EventWatch(const EventWatch&) = delete;
  EventWatch& operator=(const EventWatch&) = delete;

  // Every event printed so far, in arrival order (a line that is not one JSON object is skipped
  // and counted in bad_lines()).
  std::vector<Json> Events() const;
  // The events of one job, by seq.
  std::vector<Json> JobEvents(const std::string& job_id) const;
  // Waits (bounded) until the job's events seq 1..N are all here without a gap, the last of them
  // its terminal job_state. False after `patience` (a gap means PUB dropped events).
  bool WaitForJobEnd(const std::string& job_id, milliseconds patience = kPatience) const;
  // "" when the job's events are seq 1..N without gaps or duplicates, else what is wrong.
  std::string SeqProblem(const std::string& job_id) const;
  int bad_lines() const;
  // The raw output (one JSON object per line), for messages.
  std::string Text() const;
  Process& process() { return process_; }

 private:
  Process process_;
};

// Events of `type` among `events` (e.g. EventWatch::JobEvents).
std::vector<Json> EventsOfType(const std::vector<Json>& events, std::string_view type);

// ---------------------------------------------------------------------------------------------
// Corpus and references.

struct CorpusOptions {
  uint32_t seed = 1;
  int64_t total_bytes = 3 << 20;  // spread over the non-empty files
  int files = 5;                  // non-empty files; an empty one is added
  int vocabulary = 3000;          // distinct words generated
};

// Writes a deterministic text corpus into `dir` (created if needed): `files` text files
// (text-NN.txt, different sizes, one of them in a subdirectory) plus an empty file. Words come from
// a generated vocabulary with Zipf-like frequencies, in mixed case, with punctuation, digits and a
// few non-ASCII bytes between them; some lines end in CRLF, some are blank, and the last file ends
// without a newline. Returns the files written (absolute paths, sorted).
std::vector<fs::path> GenerateCorpus(const fs::path& dir, const CorpusOptions& options);

// The regular, non-hidden files below `dir` as zmr expands a directory input (sorted).
std::vector<fs::path> CorpusFiles(const fs::path& dir);

// Reference results, computed straight from the files: lines split at "\n" with one trailing "\r"
// removed and a final unterminated line kept; words are maximal runs of ASCII letters,
// lower-cased. Each returns the expected output as sorted "key\tvalue\n" lines.
std::string ReferenceWordCount(const std::vector<fs::path>& files);
// word -> comma-separated sorted distinct base names of the files containing it.
std::string ReferenceInvertedIndex(const std::vector<fs::path>& files);
// match text -> number of non-empty ECMAScript matches of `pattern` over all lines.
std::string ReferenceGrep(const std::vector<fs::path>& files, const std::string& pattern);

// Reads every OUTPUT/part-* and returns all their lines sorted bytewise (each with "\n").
std::string ReadSortedOutput(const fs::path& output);
// Names of the entries directly in `dir`, sorted ("" entries never; directories get a '/').
std::vector<std::string> ListDir(const fs::path& dir);
// Whether the "key\tvalue" lines of `content` have strictly increasing keys (bytewise).
bool KeysStrictlyIncreasing(std::string_view content);

// Small text helpers for test messages and client output.
// `s` without trailing newlines/CRs/spaces and leading spaces.
std::string Trim(std::string s);
// The items joined by single spaces.
std::string Join(const std::vector<std::string>& items);
// Where two long texts first differ, with a little context, for a readable failure message
// ("identical" when they are equal).
std::string FirstDifference(const std::string& actual, const std::string& expected);
// "part-00003" for 3: the name of a job's output file.
std::string PartName(int r);

std::string ReadFile(const fs::path& path);
void WriteFile(const fs::path& path, std::string_view content);

}  // namespace zmr::testing
