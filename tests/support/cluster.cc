#include "tests/support/cluster.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <msgpack.hpp>
#include <zmq.hpp>

extern char** environ;

namespace zmr::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string Quote(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& arg : argv) {
    if (!text.empty()) text += ' ';
    const bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"*?$\\") == std::string::npos;
    text += plain ? arg : "'" + arg + "'";
  }
  return text;
}

// The last `n` bytes of a text, marked when cut.
std::string Tail(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  return "[...]" + text.substr(text.size() - n);
}

// Exit status as Wait reports it: the exit code, or 128+N for a signal N.
int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TempDir

fs::path UniqueFile(const fs::path& dir, std::string_view stem, std::string_view ext) {
  for (int n = 0;; ++n) {
    fs::path candidate = dir / (std::string(stem) + "-" + std::to_string(n) + "." + std::string(ext));
    if (!fs::exists(candidate)) return candidate;
  }
}

// ---------------------------------------------------------------------------------------------
// Process

Process::Process(const std::vector<std::string>& argv, fs::path stdout_path, fs::path stderr_path,
                 const Environment& extra_env)
    : stdout_path_(std::move(stdout_path)),
      stderr_path_(std::move(stderr_path)),
      command_(Quote(argv)) {
  if (argv.empty()) throw std::runtime_error("Process: empty argv");
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<char*> c_args;
  for (std::string& arg : args) c_args.push_back(arg.data());
  c_args.push_back(nullptr);
  // The child's environment: ours, with `extra_env` added or replacing (a later pair wins).
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& [name, value] : extra_env) {
    const std::string prefix = name + "=";
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](const std::string& entry) { return entry.rfind(prefix, 0) == 0; }),
              env.end());
    env.push_back(prefix + value);
  }
  std::vector<char*> c_env;
  for (std::string& entry : env) c_env.push_back(entry.data());
  c_env.push_back(nullptr);
  const int out_fd =
      open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err_fd =
      open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || null_fd < 0) {
    const int saved = errno;
    for (int fd : {out_fd, err_fd, null_fd}) {
      if (fd >= 0) close(fd);
    }
    throw std::runtime_error("Process: cannot open output files for " + command_ + ": " +
                             std::strerror(saved));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Child. Die with the test process, even if it crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    // dup2 clears FD_CLOEXEC on the new descriptor.
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0) {
      _exit(126);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(c_args[0], c_args.data(), c_env.data());
    const char* prefix = "exec failed: ";
    const char* reason = strerror(errno);
    [[maybe_unused]] ssize_t ignored = write(STDERR_FILENO, prefix, strlen(prefix));
    ignored = write(STDERR_FILENO, reason, strlen(reason));
    ignored = write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  const int saved = errno;
  close(out_fd);
  close(err_fd);
  close(null_fd);
  if (pid < 0) throw std::runtime_error("fork failed for " + command_ + ": " + strerror(saved));
  pid_ = pid;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      status_(other.status_),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)),
      command_(std::move(other.command_)) {}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
}

bool Process::Reap(bool block) {
  if (pid_ <= 0 || status_) return true;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      status_ = DecodeStatus(status);
      return true;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    // ECHILD: someone else reaped it; nothing is left to wait for.
    status_ = -1;
    return true;
  }
}

bool Process::Running() { return pid_ > 0 && !Reap(/*block=*/false); }

void Process::Kill(int signal_number) {
  if (Running()) kill(pid_, signal_number);
}

std::optional<int> Process::Wait(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  milliseconds pause{1};
  while (!Reap(/*block=*/false)) {
    if (Clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      Reap(/*block=*/true);
      return std::nullopt;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(20));
  }
  return status_;
}

int Process::Stop(int signal_number, milliseconds grace) {
  Kill(signal_number);
  std::optional<int> code = Wait(grace);
  return code ? *code : 128 + SIGKILL;
}

std::string Process::Stdout() const { return ReadFile(stdout_path_); }
std::string Process::Stderr() const { return ReadFile(stderr_path_); }

std::string ClientResult::Describe() const {
  return "exit " + std::to_string(exit_code) + "\nstdout: " + Tail(out, 4000) +
         "\nstderr: " + Tail(err, 4000);
}

// ---------------------------------------------------------------------------------------------
// Cluster

fs::path Cluster::CoordinatorBinary() {
  return fs::path(ZMR_BINARY_DIR) / "coordinator" / "zmr-coordinator";
}
fs::path Cluster::WorkerBinary() { return fs::path(ZMR_BINARY_DIR) / "worker" / "zmr-worker"; }
fs::path Cluster::ClientBinary() { return fs::path(ZMR_BINARY_DIR) / "client" / "zmr"; }

std::vector<std::string> Cluster::HeartbeatFlags() const {
  std::vector<std::string> flags;
  if (options_.heartbeat_ms) {
    flags.push_back("--heartbeat-ms");
    flags.push_back(std::to_string(*options_.heartbeat_ms));
  }
  if (options_.liveness) {
    flags.push_back("--liveness");
    flags.push_back(std::to_string(*options_.liveness));
  }
  return flags;
}

Cluster::Cluster(ClusterOptions options) : options_(options) {
  fs::create_directories(dir_ / "logs");
  const fs::path ready = dir_ / "ready";
  std::vector<std::string> argv = {CoordinatorBinary().string(),
                                   "--workers", "tcp://127.0.0.1:*",
                                   "--clients", "tcp://127.0.0.1:*",
                                   "--events", "tcp://127.0.0.1:*",
                                   "--ready-file", ready.string()};
  for (std::string& flag : HeartbeatFlags()) argv.push_back(std::move(flag));
  coordinator_.emplace(argv, dir_ / "logs" / "coordinator.out", dir_ / "logs" / "coordinator.err");

  // The ready file is written atomically (rename), so once it exists it is complete.
  const auto deadline = Clock::now() + kPatience;
  while (!fs::exists(ready)) {
    if (!coordinator_->Running()) {
      throw std::runtime_error("the coordinator exited before it was ready: " +
                               Tail(coordinator_->Stderr(), 4000));
    }
    if (Clock::now() >= deadline) {
      throw std::runtime_error("the coordinator did not write its ready file: " +
                               Tail(coordinator_->Stderr(), 4000));
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::istringstream lines(ReadFile(ready));
  for (std::string line; std::getline(lines, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "workers") workers_endpoint_ = value;
    if (key == "clients") clients_endpoint_ = value;
    if (key == "events") events_endpoint_ = value;
  }
  if (workers_endpoint_.empty() || clients_endpoint_.empty() || events_endpoint_.empty()) {
    throw std::runtime_error("the coordinator's ready file lacks an endpoint: " + ReadFile(ready));
  }
  for (int i = 0; i < options_.workers; ++i) AddWorker();
}

Cluster::~Cluster() {
  // Workers first (each says goodbye to a coordinator that is still there), all at once so the
  // grace periods overlap; then the coordinator. Anything that lingers is SIGKILLed.
  for (Process& w : workers_) w.Kill(SIGTERM);
  for (Process& w : workers_) w.Kill(SIGCONT);  // a SIGSTOPped worker must run to handle it
  const auto deadline = Clock::now() + milliseconds(10000);
  for (Process& w : workers_) {
    w.Wait(std::max(milliseconds(0),
                    std::chrono::duration_cast<milliseconds>(deadline - Clock::now())));
  }
  if (coordinator_) coordinator_->Stop(SIGTERM, milliseconds(10000));
}

int Cluster::AddWorker() { return AddWorker(WorkerLaunch{}); }

int Cluster::AddWorker(const WorkerLaunch& launch) {
  const int index = static_cast<int>(workers_.size());
  const std::string name = WorkerName(index);
  const fs::path work_dir = WorkDir(index);
  fs::create_directories(work_dir);
  std::vector<std::string> argv = {WorkerBinary().string(),
                                   "--coordinator", workers_endpoint_,
                                   "--slots", std::to_string(launch.slots.value_or(options_.slots)),
                                   "--name", name,
                                   "--work-dir", work_dir.string()};
  for (std::string& flag : HeartbeatFlags()) argv.push_back(std::move(flag));
  argv.insert(argv.end(), launch.flags.begin(), launch.flags.end());
  workers_.emplace_back(argv, dir_ / "logs" / (name + ".out"), dir_ / "logs" / (name + ".err"),
                        launch.env);
  return index;
}

void Cluster::KillWorker(int i, int signal_number) {
  Process& w = worker(i);
  w.Kill(signal_number);
  if (signal_number == SIGKILL) w.Wait();
}

ClientResult RunCommand(const std::vector<std::string>& argv, const fs::path& log_dir,
                        milliseconds patience) {
  const fs::path out = UniqueFile(log_dir, "client", "out");
  WriteFile(out, "");
  const fs::path err = UniqueFile(log_dir, "client", "err");
  WriteFile(err, "");
  ClientResult result;
  {
    Process p(argv, out, err);
    std::optional<int> code = p.Wait(patience);
    result.exit_code = code ? *code : -1;
    result.out = ReadFile(out);
    result.err = ReadFile(err);
    if (!code) result.err += "\n[test harness: killed after " + std::to_string(patience.count()) +
                             " ms: " + p.command() + "]";
  }
  std::error_code ec;
  fs::remove(out, ec);
  fs::remove(err, ec);
  return result;
}

ClientResult Cluster::RunClient(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {ClientBinary().string(), "--coordinator", clients_endpoint_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_ / "logs", kPatience);
}

Process Cluster::StartClient(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {ClientBinary().string(), "--coordinator", clients_endpoint_};
  argv.insert(argv.end(), args.begin(), args.end());
  const int n = ++client_runs_;
  return Process(argv, dir_ / "logs" / ("bg-client-" + std::to_string(n) + ".out"),
                 dir_ / "logs" / ("bg-client-" + std::to_string(n) + ".err"));
}

bool Cluster::WaitForWorkers(int n, milliseconds patience) const {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    ClientResult r = RunClient({"workers", "--json"});
    if (r.exit_code == 0) {
      std::optional<Json> doc = Json::Parse(r.out);
      if (doc && doc->AsArray() && static_cast<int>(doc->AsArray()->size()) == n) return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

std::string Cluster::Logs() const {
  std::string text = "--- coordinator stderr:\n" + Tail(ReadFile(dir_ / "logs" / "coordinator.err"), 6000);
  for (size_t i = 0; i < workers_.size(); ++i) {
    text += "\n--- worker-" + std::to_string(i) + " stderr:\n" +
            Tail(ReadFile(workers_[i].stderr_path()), 3000);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Json

namespace {

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<Json> Document() {
    std::optional<Json> v = ParseValue(0);
    SkipSpace();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) {
      ++i_;
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  std::optional<std::string> ParseString() {
    if (i_ >= s_.size() || s_[i_] != '"') return std::nullopt;
    ++i_;
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return std::nullopt;
          unsigned code = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
            else return std::nullopt;
          }
          // UTF-8 of a BMP code point (surrogate pairs are not needed by these tests).
          if (code < 0x80) {
            out += static_cast<char>(code);
          } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::optional<Json> ParseValue(int depth) {
    if (depth > 64) return std::nullopt;
    SkipSpace();
    if (i_ >= s_.size()) return std::nullopt;
    Json out;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      Json::Object members;
      SkipSpace();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        out.v = std::move(members);
        return out;
      }
      for (;;) {
        SkipSpace();
        std::optional<std::string> key = ParseString();
        if (!key) return std::nullopt;
        SkipSpace();
        if (i_ >= s_.size() || s_[i_] != ':') return std::nullopt;
        ++i_;
        std::optional<Json> value = ParseValue(depth + 1);
        if (!value) return std::nullopt;
        members.emplace_back(std::move(*key), std::move(*value));
        SkipSpace();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') {
          ++i_;
          out.v = std::move(members);
          return out;
        }
        return std::nullopt;
      }
    }
    if (c == '[') {
      ++i_;
      Json::Array items;
      SkipSpace();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        out.v = std::move(items);
        return out;
      }
      for (;;) {
        std::optional<Json> value = ParseValue(depth + 1);
        if (!value) return std::nullopt;
        items.push_back(std::move(*value));
        SkipSpace();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          out.v = std::move(items);
          return out;
        }
        return std::nullopt;
      }
    }
    if (c == '"') {
      std::optional<std::string> text = ParseString();
      if (!text) return std::nullopt;
      out.v = std::move(*text);
      return out;
    }
    if (Literal("true")) {
      out.v = true;
      return out;
    }
    if (Literal("false")) {
      out.v = false;
      return out;
    }
    if (Literal("null")) {
      out.v = nullptr;
      return out;
    }
    const size_t start = i_;
    while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_]) != nullptr) ++i_;
    if (i_ == start) return std::nullopt;
    const std::string number(s_.substr(start, i_ - start));
    char* end = nullptr;
    const double d = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size()) return std::nullopt;
    out.v = d;
    return out;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<Json> Json::Parse(std::string_view text) { return JsonParser(text).Document(); }

const Json* Json::Get(std::string_view key) const {
  const Object* members = std::get_if<Object>(&v);
  if (members == nullptr) return nullptr;
  for (const auto& [k, value] : *members) {
    if (k == key) return &value;
  }
  return nullptr;
}

std::string Json::String(std::string_view key) const {
  const Json* member = Get(key);
  const std::string* s = member ? std::get_if<std::string>(&member->v) : nullptr;
  return s ? *s : std::string();
}

int64_t Json::Int(std::string_view key, int64_t fallback) const {
  const Json* member = Get(key);
  const double* d = member ? std::get_if<double>(&member->v) : nullptr;
  return d ? static_cast<int64_t>(*d) : fallback;
}

std::optional<bool> Json::Bool(std::string_view key) const {
  const Json* member = Get(key);
  const bool* b = member ? std::get_if<bool>(&member->v) : nullptr;
  return b ? std::optional<bool>(*b) : std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Processes under a pid

namespace {

// pid, ppid, state and command of one /proc entry; nullopt once the process is gone.
std::optional<ProcessInfo> ReadProcess(pid_t pid) {
  const fs::path dir = fs::path("/proc") / std::to_string(pid);
  const std::string stat = ReadFile(dir / "stat");
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so parse after the last ')'.
  const size_t paren = stat.rfind(')');
  if (stat.empty() || paren == std::string::npos || paren + 2 >= stat.size()) return std::nullopt;
  ProcessInfo info;
  info.pid = pid;
  std::istringstream rest(stat.substr(paren + 2));
  long ppid = 0;
  if (!(rest >> info.state >> ppid)) return std::nullopt;
  info.ppid = static_cast<pid_t>(ppid);
  std::string cmdline = ReadFile(dir / "cmdline");
  while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  const size_t open = stat.find('(');
  info.command = !cmdline.empty() ? cmdline
                 : open != std::string::npos ? stat.substr(open, paren - open + 1)
                                             : std::string("?");
  return info;
}

}  // namespace

std::vector<ProcessInfo> DescendantProcesses(pid_t root) {
  std::map<pid_t, ProcessInfo> all;
  if (DIR* proc = opendir("/proc")) {
    while (const dirent* entry = readdir(proc)) {
      const std::string name = entry->d_name;
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(name));
      if (std::optional<ProcessInfo> info = ReadProcess(pid)) all.emplace(pid, std::move(*info));
    }
    closedir(proc);
  }
  std::vector<ProcessInfo> found;
  for (const auto& [pid, info] : all) {
    // Walk up the parents; the bound guards against a cycle in a racy snapshot.
    pid_t up = info.ppid;
    for (int depth = 0; depth < 64 && up > 1; ++depth) {
      if (up == root) {
        found.push_back(info);
        break;
      }
      auto it = all.find(up);
      if (it == all.end()) break;
      up = it->second.ppid;
    }
  }
  return found;
}

bool IsIdleRunner(const ProcessInfo& p) {
  const std::string suffix = "zmr-task idle";
  return p.state != 'Z' && p.command.size() >= suffix.size() &&
         p.command.compare(p.command.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string DescribeProcesses(const std::vector<ProcessInfo>& processes) {
  std::string text;
  for (const ProcessInfo& p : processes) {
    text += std::to_string(p.pid) + " " + std::to_string(p.ppid) + " " + p.state + " " +
            p.command + "\n";
  }
  return text.empty() ? "(none)\n" : text;
}

bool WaitUntil(const std::function<bool()>& done, milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

// ---------------------------------------------------------------------------------------------
// EventWatch

namespace {

// One msgpack map of string keys (values: strings or integers), as PROTOCOL.md frames a message.
std::string PackMap(const std::vector<std::pair<std::string, std::variant<std::string, int64_t>>>&
                        fields) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(static_cast<uint32_t>(fields.size()));
  for (const auto& [key, value] : fields) {
    packer.pack(key);
    std::visit([&](const auto& v) { packer.pack(v); }, value);
  }
  return std::string(buffer.data(), buffer.size());
}

// Whether the watcher's output so far has an event of `type` about worker `name`.
bool HasWorkerEvent(const std::string& text, std::string_view type, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::optional<Json> event = Json::Parse(line);
    if (event && event->String("type") == type && event->String("worker") == name) return true;
  }
  return false;
}

}  // namespace

EventWatch::EventWatch(const Cluster& cluster)
    : process_(cluster.StartClient({"watch", "--json"})) {
  static std::atomic<int> probes{0};
  zmq::context_t context(1);
  zmq::socket_t probe(context, zmq::socket_type::dealer);
  probe.set(zmq::sockopt::linger, 0);
  probe.set(zmq::sockopt::sndtimeo, 10000);
  probe.connect(cluster.workers_endpoint());
  const auto deadline = Clock::now() + kPatience;
  // The SUB socket of the watcher connects some time after it started; an event published before
  // its subscription reached the coordinator is lost. So register probes, each a fresh name,
  // until the watcher shows one joining.
  std::string name;
  for (bool live = false; !live;) {
    if (!process_.Running() || Clock::now() >= deadline) {
      throw std::runtime_error("zmr watch --json did not come live: " + process_.Stderr() +
                               "\n" + cluster.Logs());
    }
    if (!name.empty()) {
      probe.send(zmq::buffer(PackMap({{"type", std::string("disconnect")}})),
                 zmq::send_flags::none);
    }
    name = "watch-probe-" + std::to_string(probes++);
    probe.send(zmq::buffer(PackMap({{"type", std::string("ready")},
                                    {"proto", int64_t{1}},
                                    {"name", name},
                                    {"host", std::string("probe")},
                                    {"pid", static_cast<int64_t>(getpid())},
                                    {"slots", int64_t{1}}})),
               zmq::send_flags::none);
    // Short: a probe the watcher missed costs only a worker_joined/worker_lost pair.
    live = WaitUntil([&] { return HasWorkerEvent(process_.Stdout(), "worker_joined", name); },
                     milliseconds(250));
  }
  probe.send(zmq::buffer(PackMap({{"type", std::string("disconnect")}})), zmq::send_flags::none);
  if (!WaitUntil([&] { return HasWorkerEvent(process_.Stdout(), "worker_lost", name); })) {
    throw std::runtime_error("the watcher never saw probe " + name + " leave:\n" + Text());
  }
}

EventWatch::~EventWatch() { process_.Stop(SIGINT, milliseconds(10000)); }

std::vector<Json> EventWatch::Events() const {
  std::vector<Json> events;
  std::istringstream lines(process_.Stdout());
  for (std::string line; std::getline(lines, line);) {
    std::optional<Json> event = Json::Parse(line);
    if (event && event->Get("type") != nullptr) events.push_back(std::move(*event));
  }
  return events;
}

int EventWatch::bad_lines() const {
  int bad = 0;
  std::istringstream lines(process_.Stdout());
  for (std::string line; std::getline(lines, line);) {
    std::optional<Json> event = Json::Parse(line);
    if (!event || event->Get("type") == nullptr) ++bad;
  }
  return bad;
}

std::vector<Json> EventWatch::JobEvents(const std::string& job_id) const {
  std::vector<Json> events;
  for (Json& event : Events()) {
    if (event.String("job_id") == job_id) events.push_back(std::move(event));
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Json& a, const Json& b) { return a.Int("seq") < b.Int("seq"); });
  return events;
}

std::string EventWatch::SeqProblem(const std::string& job_id) const {
  const std::vector<Json> events = JobEvents(job_id);
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t seq = events[i].Int("seq");
    if (seq != static_cast<int64_t>(i) + 1) {
      return "event " + std::to_string(i + 1) + " of job " + job_id + " has seq " +
             std::to_string(seq) + " (a gap: events were dropped, or a duplicate)";
    }
  }
  return "";
}

bool EventWatch::WaitForJobEnd(const std::string& job_id, milliseconds patience) const {
  return WaitUntil(
      [&] {
        const std::vector<Json> events = JobEvents(job_id);
        if (events.empty() || !SeqProblem(job_id).empty()) return false;
        const Json& last = events.back();
        const std::string state = last.String("state");
        return last.String("type") == "job_state" &&
               (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED");
      },
      patience);
}

std::string EventWatch::Text() const { return process_.Stdout(); }

std::vector<Json> EventsOfType(const std::vector<Json>& events, std::string_view type) {
  std::vector<Json> found;
  for (const Json& event : events) {
    if (event.String("type") == type) found.push_back(event);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Files

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::vector<std::string> ListDir(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (e.is_directory()) name += '/';
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// Splits text into lines as zmr defines them: "\n" ends a line and one "\r" before it is
// dropped; a final line without "\n" still counts (and keeps any "\r").
template <typename Fn>
void ForEachLine(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      fn(text.substr(pos));
      return;
    }
    std::string_view line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line);
    pos = nl + 1;
  }
}

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

template <typename Fn>
void ForEachWord(std::string_view line, Fn&& fn) {
  size_t i = 0;
  while (i < line.size()) {
    if (!IsAsciiLetter(line[i])) {
      ++i;
      continue;
    }
    std::string word;
    while (i < line.size() && IsAsciiLetter(line[i])) {
      char c = line[i++];
      word += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    fn(word);
  }
}

// Sorted "key\tvalue\n" lines of a map.
template <typename Map, typename Render>
std::string RenderSorted(const Map& map, Render&& render) {
  std::vector<std::string> lines;
  for (const auto& [key, value] : map) lines.push_back(key + "\t" + render(value) + "\n");
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) text += line;
  return text;
}

}  // namespace

std::string ReferenceWordCount(const std::vector<fs::path>& files) {
  std::map<std::string, int64_t> counts;
  for (const fs::path& file : files) {
    const std::string text = ReadFile(file);
    ForEachLine(text, [&](std::string_view line) {
      ForEachWord(line, [&](const std::string& word) { ++counts[word]; });
    });
  }
  return RenderSorted(counts, [](int64_t n) { return std::to_string(n); });
}

std::string ReferenceInvertedIndex(const std::vector<fs::path>& files) {
  std::map<std::string, std::set<std::string>> index;
  for (const fs::path& file : files) {
    const std::string text = ReadFile(file);
    const std::string name = file.filename().string();
    ForEachLine(text, [&](std::string_view line) {
      ForEachWord(line, [&](const std::string& word) { index[word].insert(name); });
    });
  }
  return RenderSorted(index, [](const std::set<std::string>& names) {
    std::string joined;
    for (const std::string& name : names) {
      if (!joined.empty()) joined += ',';
      joined += name;
    }
    return joined;
  });
}

std::string ReferenceGrep(const std::vector<fs::path>& files, const std::string& pattern) {
  const std::regex re(pattern, std::regex::ECMAScript);
  std::map<std::string, int64_t> counts;
  for (const fs::path& file : files) {
    const std::string text = ReadFile(file);
    ForEachLine(text, [&](std::string_view view) {
      const std::string line(view);
      for (std::sregex_iterator it(line.begin(), line.end(), re), end; it != end; ++it) {
        if (it->length(0) > 0) ++counts[it->str(0)];
      }
    });
  }
  return RenderSorted(counts, [](int64_t n) { return std::to_string(n); });
}

std::string ReadSortedOutput(const fs::path& output) {
  std::vector<std::string> lines;
  for (const std::string& name : ListDir(output)) {
    if (name.rfind("part-", 0) != 0 || name.back() == '/') continue;
    const std::string text = ReadFile(output / name);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size() - 1;  // keeps a missing "\n" visible
      lines.push_back(text.substr(pos, nl - pos + 1));
      pos = nl + 1;
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) text += line;
  return text;
}

bool KeysStrictlyIncreasing(std::string_view content) {
  std::optional<std::string> previous;
  bool ok = true;
  ForEachLine(content, [&](std::string_view line) {
    std::string key(line.substr(0, line.find('\t')));
    if (previous && !(*previous < key)) ok = false;
    previous = std::move(key);
  });
  return ok;
}

std::vector<fs::path> CorpusFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && (name[0] == '.' || name[0] == '_')) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(fs::absolute(it->path()));
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ---------------------------------------------------------------------------------------------
// Corpus

namespace {

// Builds `size` distinct lower-case pseudo-words from syllables, with a few very common short
// words first (they dominate real text and make the counts large).
std::vector<std::string> MakeVocabulary(std::mt19937& rng, int size) {
  static const char* const kSyllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe",
                                           "da", "ri", "on", "el", "an", "st", "th", "er", "in",
                                           "qu", "ay", "ou", "ch", "br", "ze", "gu", "fa", "x",
                                           "y",  "z",  "ly", "wo", "ing"};
  static const char* const kCommon[] = {"the", "of", "and", "to", "a", "in", "is", "it", "that",
                                        "was", "for", "on", "with", "as", "i", "his"};
  std::vector<std::string> words(std::begin(kCommon), std::end(kCommon));
  std::set<std::string> seen(words.begin(), words.end());
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<size_t> pick(0, std::size(kSyllables) - 1);
  while (static_cast<int>(words.size()) < size) {
    std::string w;
    for (int n = count(rng); n > 0; --n) w += kSyllables[pick(rng)];
    if (seen.insert(w).second) words.push_back(std::move(w));
  }
  return words;
}

// One token of text: a vocabulary word in some case, possibly decorated.
std::string MakeToken(std::mt19937& rng, const std::vector<std::string>& words,
                      std::discrete_distribution<size_t>& zipf) {
  std::uniform_int_distribution<int> percent(0, 99);
  std::string w = words[zipf(rng)];
  const int style = percent(rng);
  if (style < 12) {
    w[0] = static_cast<char>(w[0] - 'a' + 'A');  // Capitalized
  } else if (style < 17) {
    for (char& c : w) c = static_cast<char>(c - 'a' + 'A');  // UPPER
  } else if (style < 20) {
    for (char& c : w) {
      if (percent(rng) < 50) c = static_cast<char>(c - 'a' + 'A');  // mIxEd
    }
  }
  const int decoration = percent(rng);
  if (decoration < 8) {
    static const char* const kPunct[] = {",", ".", ";", ":", "!", "?", "...", ")"};
    w += kPunct[percent(rng) % std::size(kPunct)];
  } else if (decoration < 10) {
    w = "\"" + w + "\"";
  } else if (decoration < 11) {
    w += std::to_string(percent(rng));  // digits end a word: "word42"
  } else if (decoration < 12) {
    w += "-" + words[zipf(rng)];  // hyphenated pair: two words
  } else if (decoration < 13) {
    w += "'s";  // apostrophe: "word" and "s"
  } else if (decoration < 14) {
    w += "\xC3\xA9" + words[zipf(rng)];  // non-ASCII letter between two ASCII runs
  } else if (decoration < 15) {
    w = std::to_string(percent(rng) * 37);  // a number alone: no word at all
  }
  return w;
}

}  // namespace

std::vector<fs::path> GenerateCorpus(const fs::path& dir, const CorpusOptions& options) {
  std::mt19937 rng(options.seed);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> line_length(30, 140);
  const std::vector<std::string> words = MakeVocabulary(rng, options.vocabulary);
  std::vector<double> weights;
  for (size_t rank = 0; rank < words.size(); ++rank) weights.push_back(1.0 / (rank + 1.0));
  std::discrete_distribution<size_t> zipf(weights.begin(), weights.end());

  fs::create_directories(dir / "sub");
  std::vector<fs::path> written;
  // File i gets a share proportional to i+1, so the sizes differ and splits straddle files.
  const int n = std::max(1, options.files);
  const int64_t shares = static_cast<int64_t>(n) * (n + 1) / 2;
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "text-%02d.txt", i);
    const fs::path path = (i == 1 ? dir / "sub" : dir) / name;
    const int64_t target = options.total_bytes * (i + 1) / shares;
    std::string text;
    text.reserve(static_cast<size_t>(target) + 200);
    while (static_cast<int64_t>(text.size()) < target) {
      const int kind = percent(rng);
      if (kind < 2) {
        text += "\n";  // blank line
        continue;
      }
      if (kind < 3) {
        text += "  \t \r\n";  // whitespace-only line, CRLF
        continue;
      }
      std::string line;
      const size_t length = static_cast<size_t>(line_length(rng));
      while (line.size() < length) {
        if (!line.empty()) line += percent(rng) < 95 ? " " : (percent(rng) < 50 ? "  " : "\t");
        line += MakeToken(rng, words, zipf);
      }
      text += line;
      text += percent(rng) < 6 ? "\r\n" : "\n";
    }
    if (i == n - 1) {
      // The last file ends in a line without a newline.
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      text += " Final unterminated Line of the corpus";
    }
    WriteFile(path, text);
    written.push_back(path);
  }
  const fs::path empty = dir / "empty.txt";
  WriteFile(empty, "");
  written.push_back(empty);
  for (fs::path& p : written) p = fs::absolute(p);
  std::sort(written.begin(), written.end());
  return written;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && s[start] == ' ') ++start;
  return s.substr(start);
}

std::string Join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : " ") + item;
  return text;
}

std::string FirstDifference(const std::string& actual, const std::string& expected) {
  if (actual == expected) return "identical";
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  const size_t from = i < 80 ? 0 : i - 80;
  return "sizes " + std::to_string(actual.size()) + " (actual) vs " +
         std::to_string(expected.size()) + " (expected); first difference at byte " +
         std::to_string(i) + "\nactual:   ..." + actual.substr(from, 160) +
         "\nexpected: ..." + expected.substr(from, 160);
}

std::string PartName(int r) {
  char name[32];
  std::snprintf(name, sizeof name, "part-%05d", r);
  return name;
}

}  // namespace zmr::testing
