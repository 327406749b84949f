#include "client/client.h"

#include <iterator>

#include <fstream>

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <limits>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "client/connection.h"
#include "client/follow.h"
#include "client/progress.h"
#include "client/views_read.h"
#include "common/apps.h"
#include "common/inputs.h"
#include "common/logging.h"

namespace zmr::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Signals: the handler only records; the loops below poll in short slices and look.

volatile std::sig_atomic_t g_signal = 0;

extern "C" void RecordSignal(int signal_number) { g_signal = signal_number; }

bool IsTerminalState(std::string_view state) { return ExitCodeForState(state).has_value(); }

}  // namespace

std::optional<int> ExitCodeForState(std::string_view state) {
  if (state == "COMPLETED") return kExitOk;
  if (state == "FAILED") return kExitJobFailed;
  if (state == "CANCELLED") return kExitCancelled;
  return std::nullopt;
}

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = RecordSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and the loops look at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int PendingSignal() { return g_signal; }
void ClearPendingSignal() { g_signal = 0; }

namespace {

// ---------------------------------------------------------------------------------------------
// One invocation of a subcommand.


// Reads a file to ship with a job (--file, --plugin): its base name, permission bits and bytes.
bool ReadLocalFile(const std::string& path, SubmitFile* file, std::string* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = "cannot ship " + path + ": not a readable regular file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  file->data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    *error = "cannot read " + path;
    return false;
  }
  std::string name = path;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  auto slash = name.rfind('/');
  file->name = slash == std::string::npos ? name : name.substr(slash + 1);
  file->mode = st.st_mode & 0777;
  return true;
}

class Session {
 public:
  Session(const Options& options, std::ostream& out, std::ostream& err)
      : options_(options), out_(out), err_(err) {}

  int Run() {
    switch (options_.command) {
      case Command::kHelp:
        out_ << UsageText();
        return kExitOk;
      case Command::kVersion:
        out_ << "zmr " << ZMR_VERSION << "\n";
        return kExitOk;
      case Command::kSubmit:
        return Submit();
      default:
        break;
    }
    if (int rc = Connect(); rc != kExitOk) return rc;
    switch (options_.command) {
      case Command::kStatus:
        return Status();
      case Command::kJobs:
        return Jobs();
      case Command::kTasks:
        return Tasks();
      case Command::kWorkers:
        return Workers();
      case Command::kWatch:
        return Watch();
      case Command::kWait:
        return WaitFor(options_.job_id);
      case Command::kCancel:
        return Cancel();
      case Command::kLogs:
        return Logs();
      default:
        return kExitUsage;
    }
  }

 private:
  // Opens the DEALER and says hello. Returns kExitOk, or the exit code after printing why not.
  int Connect() {
    try {
      connection_.emplace(context_, options_.coordinator, options_.timeout_ms);
    } catch (const zmq::error_t& e) {
      err_ << "zmr: cannot connect to " << options_.coordinator << ": " << e.what() << "\n";
      return kExitUsage;
    }
    Value hello;
    hello.Set("type", msg::kHello);
    hello.Set("proto", kProtocolVersion);
    Value reply;
    if (int rc = Request(hello, msg::kHello, &reply); rc != kExitOk) return rc;
    int64_t proto = 0;
    std::string error;
    if (ReadOptInt(reply, "proto", &proto, &error) && proto != 0 && proto != kProtocolVersion) {
      err_ << "zmr: coordinator at " << options_.coordinator << " speaks protocol " << proto
           << ", this zmr speaks " << kProtocolVersion << "\n";
      return kExitUsage;
    }
    const std::string events = GetString(reply, "events");
    if (!events.empty()) events_endpoint_ = ResolveEventsEndpoint(events, options_.coordinator);
    spdlog::debug("coordinator {} version {} events {}", options_.coordinator,
                  GetString(reply, "version"), events_endpoint_);
    return kExitOk;
  }

  // Sends a request (adding `proto`) and expects a reply of type `expect`. Returns kExitOk with
  // *reply, or prints a one-line diagnostic and returns the exit code: error replies are usage
  // errors (2), silence or nonsense is 3, a signal is 130.
  int Request(Value request, const char* expect, Value* reply) {
    if (!request.Find("proto")) request.Set("proto", kProtocolVersion);
    std::string type;
    std::string error;
    switch (connection_->Call(request, reply, &type, &error)) {
      case Connection::Status::kOk:
        break;
      case Connection::Status::kTimeout:
        err_ << "zmr: coordinator at " << options_.coordinator << " did not answer within "
             << options_.timeout_ms << " ms\n";
        return kExitUnreachable;
      case Connection::Status::kInterrupted:
        return Interrupted();
      case Connection::Status::kBadReply:
        err_ << "zmr: undecodable reply from coordinator at " << options_.coordinator << ": "
             << OneLine(error) << "\n";
        return kExitUnreachable;
    }
    if (type == msg::kError) {
      const std::string code = GetString(*reply, "code");
      const std::string message = OneLine(GetString(*reply, "error"));
      if (code == errc::kNotFound && GetString(request, "type") == msg::kLogs) {
        err_ << "zmr: " << message << "\n";
      } else if (code == errc::kNotFound) {
        const std::string job = GetString(request, "job_id");
        err_ << "zmr: no such job: " << (job.empty() ? message : job) << "\n";
      } else if (code == errc::kUnavailable) {
        err_ << "zmr: " << message << "\n";
        return kExitJobFailed;
      } else if (code == errc::kVersion) {
        err_ << "zmr: coordinator at " << options_.coordinator << " refused protocol "
             << kProtocolVersion << (message.empty() ? "" : ": " + message) << "\n";
      } else if (code == errc::kInvalid) {
        err_ << "zmr: " << message << "\n";
      } else {
        err_ << "zmr: coordinator refused the request (" << code << "): " << message << "\n";
      }
      return kExitUsage;
    }
    if (type != expect) {
      err_ << "zmr: unexpected reply '" << OneLine(type) << "' from coordinator at "
           << options_.coordinator << " (expected '" << expect << "')\n";
      return kExitUnreachable;
    }
    return kExitOk;
  }

  // Asks for one job's JobInfo. kExitOk with *job (a map), or an exit code after printing.
  int QueryStatus(const std::string& job_id, Value* job) {
    Value request;
    request.Set("type", msg::kStatus);
    request.Set("job_id", job_id);
    Value reply;
    if (int rc = Request(request, msg::kJob, &reply); rc != kExitOk) return rc;
    const Value* info = reply.Find("job");
    if (!info || !info->is_map()) {
      err_ << "zmr: coordinator at " << options_.coordinator << " sent a status without a job\n";
      return kExitUnreachable;
    }
    *job = *info;
    return kExitOk;
  }

  int Interrupted() {
    // The last block stays on screen; the terminal echoed ^C below it: clear that.
    if (live_rows_ > 0) out_ << "\r\033[K" << std::flush;
    if (options_.command == Command::kWatch && options_.job_id.empty()) return kExitOk;
    const std::string& job = current_job_.empty() ? options_.job_id : current_job_;
    if (options_.command == Command::kWait || options_.command == Command::kWatch ||
        (options_.command == Command::kSubmit && !job.empty())) {
      err_ << "stopped watching; the job keeps running (zmr cancel " << job << " to stop it)\n";
    } else {
      err_ << "zmr: interrupted\n";
    }
    return 128 + (PendingSignal() != 0 ? PendingSignal() : SIGINT);
  }

  int Submit() {
    std::vector<InputFile> files;
    std::string error;
    if (!ExpandInputs(options_.inputs, &files, &error)) {
      err_ << "zmr: " << OneLine(error) << "\n";
      return kExitUsage;
    }
    const std::string output = AbsolutePath(options_.output);
    if (!CheckOutputDir(output, &error)) {
      err_ << "zmr: " << OneLine(error) << "\n";
      return kExitUsage;
    }
    SubmitMsg submit;
    // A built-in app's params computed from the input (sort's split points: sampled here, so the
    // coordinator never reads input data), then the app's checks.
    Params params = options_.params;
    if (options_.mapper.empty() && options_.plugin.empty() &&
        (!PlanAppParams(options_.app, files, options_.reduces, &params, &error) ||
         !ValidateApp(options_.app, params, &error, options_.reduces))) {
      err_ << "zmr: " << OneLine(error) << "\n";
      return kExitUsage;
    }
    for (const std::string& path : options_.files) {
      SubmitFile f;
      if (!ReadLocalFile(path, &f, &error)) {
        err_ << "zmr: " << OneLine(error) << "\n";
        return kExitUsage;
      }
      submit.files.push_back(std::move(f));
    }
    if (!options_.plugin.empty()) {
      SubmitFile f;
      if (!ReadLocalFile(options_.plugin, &f, &error)) {
        err_ << "zmr: " << OneLine(error) << "\n";
        return kExitUsage;
      }
      submit.plugin = std::move(f);
    }
    submit.mapper = options_.mapper;
    submit.combiner = options_.combiner;
    submit.reducer = options_.reducer;
    submit.cmdenv = options_.cmdenv;
    submit.max_attempts = options_.max_attempts;
    submit.priority = options_.priority;
    submit.speculation = options_.speculation;
    if (int rc = Connect(); rc != kExitOk) return rc;

    submit.name = options_.name;
    submit.app = options_.app;
    for (const InputFile& f : files) submit.inputs.push_back(f.path);
    submit.output = output;
    submit.params = std::move(params);
    submit.maps = options_.maps;
    submit.reduces = options_.reduces;
    Value reply;
    if (int rc = Request(submit.ToValue(), msg::kSubmitted, &reply); rc != kExitOk) return rc;
    const std::string job_id = GetString(reply, "job_id");
    if (job_id.empty()) {
      err_ << "zmr: coordinator at " << options_.coordinator << " accepted the job without an id\n";
      return kExitUnreachable;
    }
    if (options_.json) {
      Value doc;
      doc.Set("job_id", job_id);
      doc.Set("maps", GetInt(reply, "maps"));
      doc.Set("reduces", GetInt(reply, "reduces"));
      out_ << ToJson(doc) << "\n";
    } else {
      out_ << job_id << "\n";
    }
    out_.flush();
    if (!options_.wait) return kExitOk;
    return WaitFor(job_id);
  }

  int Status() {
    Value job;
    if (int rc = QueryStatus(options_.job_id, &job); rc != kExitOk) return rc;
    out_ << (options_.json ? ToJson(job) + "\n" : FormatStatus(job));
    return kExitOk;
  }

  int Jobs() {
    Value request;
    request.Set("type", msg::kJobs);
    request.Set("all", options_.all);
    Value reply;
    if (int rc = Request(request, msg::kJobs, &reply); rc != kExitOk) return rc;
    const Value* jobs = reply.Find("jobs");
    const Value list = jobs && jobs->is_array() ? *jobs : Value(Array{});
    out_ << (options_.json ? ToJson(list) + "\n" : FormatJobsTable(list));
    return kExitOk;
  }

  int Tasks() {
    Value request;
    request.Set("type", msg::kTasks);
    request.Set("job_id", options_.job_id);
    Value reply;
    if (int rc = Request(request, msg::kTasks, &reply); rc != kExitOk) return rc;
    const Value* tasks = reply.Find("tasks");
    const Value list = tasks && tasks->is_array() ? *tasks : Value(Array{});
    out_ << (options_.json ? ToJson(list) + "\n" : FormatTasksTable(list));
    return kExitOk;
  }

  int Workers() {
    Value request;
    request.Set("type", msg::kWorkers);
    Value reply;
    if (int rc = Request(request, msg::kWorkers, &reply); rc != kExitOk) return rc;
    const Value* workers = reply.Find("workers");
    const Value list = workers && workers->is_array() ? *workers : Value(Array{});
    out_ << (options_.json ? ToJson(list) + "\n" : FormatWorkersTable(list));
    return kExitOk;
  }

  int Logs() {
    Value request;
    request.Set("type", msg::kLogs);
    request.Set("job_id", options_.job_id);
    request.Set("task_id", options_.task_id);
    if (options_.attempt > 0) request.Set("attempt", options_.attempt);
    // The coordinator gives up on the worker before we give up on the coordinator.
    request.Set("wait_ms", std::max<int64_t>(1, options_.timeout_ms * 3 / 4));
    Value reply;
    if (int rc = Request(request, msg::kLog, &reply); rc != kExitOk) return rc;
    std::string data;
    std::string error;
    ReadBytes(reply, "data", &data, &error);
    const Value* truncated = reply.Find("truncated");
    const bool cut = truncated != nullptr && truncated->is_bool() && truncated->as_bool();
    if (options_.json) {
      Value doc;
      for (const char* key : {"job_id", "task_id", "worker", "state"}) {
        doc.Set(key, GetString(reply, key));
      }
      doc.Set("attempt", GetInt(reply, "attempt"));
      doc.Set("truncated", cut);
      doc.Set("size", GetInt(reply, "size"));
      doc.Set("log", data);
      out_ << ToJson(doc) << "\n";
      return kExitOk;
    }
    if (cut) {
      err_ << "zmr: the log of " << options_.task_id << " attempt " << GetInt(reply, "attempt")
           << " has " << GetInt(reply, "size") << " bytes; showing the last " << data.size()
           << "\n";
    }
    out_ << data;
    if (!data.empty() && data.back() != '\n') out_ << "\n";
    out_.flush();
    return kExitOk;
  }

  int Cancel() {
    Value request;
    request.Set("type", msg::kCancel);
    request.Set("job_id", options_.job_id);
    Value reply;
    if (int rc = Request(request, msg::kCancelled, &reply); rc != kExitOk) return rc;
    if (options_.json) {
      out_ << ToJson(reply) << "\n";
      return kExitOk;
    }
    const std::string job_id =
        GetString(reply, "job_id").empty() ? options_.job_id : GetString(reply, "job_id");
    const Value* changed = reply.Find("changed");
    if (changed && changed->is_bool() && !changed->as_bool()) {
      out_ << "job " << job_id << " already finished (" << GetString(reply, "state") << ")\n";
    } else {
      out_ << "job " << job_id << " cancelled\n";
    }
    return kExitOk;
  }

  // Polls status until the job ends, showing progress (client/progress.h). Used by `wait` and
  // `submit --wait`. On a terminal (and without --no-progress or --json) a block redrawn in place
  // on stdout, failed attempts as permanent lines above it; otherwise plain lines on stderr, on
  // state changes and at most every kPlainProgressIntervalMs, failed attempts as they are seen.
  // Then the summary (on stderr with --json, whose stdout holds only the JSON document).
  int WaitFor(const std::string& job_id) {
    current_job_ = job_id;
    std::ostream& result = options_.json ? err_ : out_;
    live_ = options_.stdout_is_tty && options_.progress && !options_.json;
    ProgressTracker tracker;
    std::string last_state;
    auto last_plain = Clock::now();
    // The job's state changes and failures wake the loop at once (a short job ends long before
    // the next poll); the poll stays, so a dropped event only costs time, and it starts fast
    // (kWaitFirstPollMs, doubling up to kWaitPollMs) for a job that ends before the subscription
    // is in place.
    std::optional<zmq::socket_t> wake;
    if (!events_endpoint_.empty()) {
      try {
        wake.emplace(context_, zmq::socket_type::sub);
        wake->set(zmq::sockopt::linger, 0);
        wake->set(zmq::sockopt::subscribe, "job/" + job_id + "/job_state");
        wake->set(zmq::sockopt::subscribe, "job/" + job_id + "/task_failed");
        wake->connect(events_endpoint_);
      } catch (const zmq::error_t& e) {
        spdlog::debug("no event wake-ups for wait: {}", e.what());
        wake.reset();
      }
    }
    int poll_ms = kWaitFirstPollMs;
    for (;;) {
      Value job;
      // On an error the block stays on screen and the message goes below it.
      if (int rc = QueryStatus(job_id, &job); rc != kExitOk) return rc;
      const auto now = Clock::now();
      tracker.Update(job, std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count());
      const std::string state = GetString(job, "state");
      if (std::optional<int> code = ExitCodeForState(state)) {
        EraseLiveBlock();
        ShowFailureLines(tracker);
        result << FormatSummary(job);
        result.flush();
        if (state == "FAILED") {
          err_ << "zmr: job " << job_id << " failed: " << OneLine(GetString(job, "error")) << "\n";
        }
        return *code;
      }
      if (live_) {
        DrawLiveBlock(tracker);
      } else {
        ShowFailureLines(tracker);
        if (state != last_state || now - last_plain >= milliseconds(kPlainProgressIntervalMs)) {
          err_ << tracker.RenderPlainLine() << "\n" << std::flush;
          last_plain = now;
        }
      }
      last_state = state;
      if (!SleepUntilWoken(wake ? &*wake : nullptr, milliseconds(poll_ms))) return Interrupted();
      poll_ms = std::min(poll_ms * 2, kWaitPollMs);
    }
  }

  // Sleeps for `duration`, or until an event arrives on `wake` (then drains it and returns early,
  // but not before kWaitMinPollMs). False when a signal arrived meanwhile.
  static bool SleepUntilWoken(zmq::socket_t* wake, milliseconds duration) {
    if (wake == nullptr) return SleepInterruptibly(duration);
    const auto start = Clock::now();
    const auto until = start + duration;
    bool woken = false;
    while (Clock::now() < until) {
      if (PendingSignal() != 0) return false;
      const auto slice = std::min<milliseconds>(
          kSignalCheckSlice,
          std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1));
      zmq::pollitem_t item{wake->handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, slice);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
      if (item.revents & ZMQ_POLLIN) {
        zmq::message_t frame;
        while (wake->recv(frame, zmq::recv_flags::dontwait)) {
        }
        woken = true;
      }
      if (woken && Clock::now() - start >= milliseconds(kWaitMinPollMs)) break;
    }
    return PendingSignal() == 0;
  }

  // Replaces the block on screen (if any) by the tracker's new failure lines, which stay, and its
  // current block. The frame is built first and handed to the stream in one piece.
  void DrawLiveBlock(ProgressTracker& tracker) {
    std::string frame = MoveOverLiveBlock();
    for (const std::string& line : tracker.TakeFailureLines()) frame += line + "\n";
    const std::vector<std::string> lines = tracker.RenderLive(TerminalWidth());
    for (const std::string& line : lines) frame += line + "\n";
    live_rows_ = static_cast<int>(lines.size());
    out_ << frame << std::flush;
  }

  // Clears the block from the screen (the cursor ends where it began).
  void EraseLiveBlock() {
    if (live_rows_ == 0) return;
    out_ << MoveOverLiveBlock() << std::flush;
  }

  // The control codes that move the cursor to the block's first line and clear from there to
  // the end of the screen; "" when no block is shown. Every block line fits the terminal's width
  // (ProgressTracker::RenderLive), so it took exactly one row.
  std::string MoveOverLiveBlock() {
    if (live_rows_ == 0) return "";
    std::string codes = "\r\033[" + std::to_string(live_rows_) + "A\033[J";
    live_rows_ = 0;
    return codes;
  }

  // Failure lines of the tracker not shown yet: above the block on a terminal, else on stderr.
  void ShowFailureLines(ProgressTracker& tracker) {
    std::ostream& where = live_ ? out_ : err_;
    for (const std::string& line : tracker.TakeFailureLines()) where << line << "\n";
    where.flush();
  }

  // The width of the terminal on stdout, kDefaultTerminalWidth when it does not say.
  static int TerminalWidth() {
    struct winsize size {};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    return kDefaultTerminalWidth;
  }

  // Sleeps; false when a signal arrived meanwhile.
  static bool SleepInterruptibly(milliseconds duration) {
    const auto until = Clock::now() + duration;
    while (Clock::now() < until) {
      if (PendingSignal() != 0) return false;
      std::this_thread::sleep_for(std::min<milliseconds>(
          kSignalCheckSlice,
          std::chrono::duration_cast<milliseconds>(until - Clock::now()) + milliseconds(1)));
    }
    return PendingSignal() == 0;
  }

  // Prints one event as a line (human or JSON). Returns the exit code if it is the terminal
  // job_state of the watched job.
  std::optional<int> PrintEvent(const Value& event) {
    if (options_.json) {
      out_ << ToJson(event) << "\n" << std::flush;
    } else if (std::string line = FormatEvent(event); !line.empty()) {
      out_ << line << "\n" << std::flush;
    }
    if (options_.job_id.empty() || GetString(event, "type") != "job_state" ||
        GetString(event, "job_id") != options_.job_id) {
      return std::nullopt;
    }
    std::optional<int> code = ExitCodeForState(GetString(event, "state"));
    if (code && *code == kExitJobFailed) {
      err_ << "zmr: job " << options_.job_id << " failed: " << OneLine(GetString(event, "error"))
           << "\n";
    }
    return code;
  }

  // Receives one [topic, body] event if one is ready within `wait`. nullopt on nothing or garbage.
  std::optional<Value> ReceiveEvent(zmq::socket_t& sub, milliseconds wait) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return std::nullopt;
    }
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t frame;
    std::string topic;
    int frames = 0;
    do {
      if (!sub.recv(frame, zmq::recv_flags::dontwait)) return std::nullopt;
      if (frames++ == 0) topic = frame.to_string();
    } while (frame.more());
    std::string type;
    std::string error;
    std::optional<Value> event = DecodeMessage(frame.to_string_view(), &type, &error);
    if (frames != 2 || !event) {
      spdlog::warn("dropped a malformed event on topic '{}': {}", topic,
                   frames != 2 ? "expected 2 frames" : error);
      return std::nullopt;
    }
    return event;
  }

  int Watch() {
    if (events_endpoint_.empty()) {
      err_ << "zmr: coordinator at " << options_.coordinator
           << " did not say where its events are published\n";
      return kExitUnreachable;
    }
    zmq::socket_t sub(context_, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    try {
      sub.connect(events_endpoint_);
    } catch (const zmq::error_t& e) {
      err_ << "zmr: cannot connect to events at " << events_endpoint_ << ": " << e.what() << "\n";
      return kExitUnreachable;
    }
    const std::string& job_id = options_.job_id;
    if (!job_id.empty()) {
      sub.set(zmq::sockopt::subscribe, "job/" + job_id + "/");
      // The coordinator's heartbeat tells when the subscription is live (see below).
      sub.set(zmq::sockopt::subscribe, "cluster/heartbeat");
    } else {
      sub.set(zmq::sockopt::subscribe, "job/");
      sub.set(zmq::sockopt::subscribe, "worker/");
    }
    spdlog::debug("watching {} on {}", job_id.empty() ? "everything" : job_id, events_endpoint_);

    JobFollower follower(job_id);
    if (!job_id.empty()) {
      // Subscribed first, then asked: every event after this snapshot reaches the subscription,
      // and an end after it is either seen as an event or found by the status poll below.
      // A SUB connects in the background: events published before it is live would be missed
      // and look like a gap. The cluster heartbeat (every heartbeat interval) says it is live;
      // job events that come first are kept and offered after the snapshot.
      std::vector<Value> early;
      const auto live_deadline = Clock::now() + milliseconds(kWatchLiveWaitMs);
      for (;;) {
        if (PendingSignal() != 0) return Interrupted();
        if (Clock::now() >= live_deadline) break;  // no heartbeat: a gap will resnapshot
        std::optional<Value> event = ReceiveEvent(sub, kSignalCheckSlice);
        if (!event) continue;
        if (GetString(*event, "type") == "heartbeat" && event->Find("job_id") == nullptr) break;
        early.push_back(std::move(*event));
      }
      Value job;
      if (int rc = QueryStatus(job_id, &job); rc != kExitOk) return rc;
      if (IsTerminalState(GetString(job, "state"))) return *PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, /*missed=*/0);
      for (const Value& event : early) {
        if (std::optional<int> code = Follow(follower, event)) return *code;
      }
    }
    auto next_status = Clock::now() + milliseconds(kWatchStatusPollMs);
    for (;;) {
      if (PendingSignal() != 0) return Interrupted();
      const auto now = Clock::now();
      milliseconds wait = kSignalCheckSlice * 2;
      if (!job_id.empty()) {
        wait = std::clamp(std::chrono::duration_cast<milliseconds>(next_status - now),
                          milliseconds(0), wait);
      }
      if (std::optional<Value> event = ReceiveEvent(sub, wait)) {
        if (job_id.empty()) {
          PrintEvent(*event);
          continue;
        }
        if (std::optional<int> code = Follow(follower, *event)) return *code;
      }
      if (job_id.empty() || Clock::now() < next_status) continue;
      Value job;
      if (int rc = QueryStatus(job_id, &job); rc != kExitOk) return rc;
      next_status = Clock::now() + milliseconds(kWatchStatusPollMs);
      if (!IsTerminalState(GetString(job, "state"))) continue;
      // The job ended but its job_state event has not arrived (yet): give it a moment, then
      // report the end from the status.
      const auto grace_end = Clock::now() + milliseconds(kWatchEndGraceMs);
      while (Clock::now() < grace_end) {
        if (PendingSignal() != 0) return Interrupted();
        if (std::optional<Value> event = ReceiveEvent(sub, kSignalCheckSlice)) {
          if (std::optional<int> code = Follow(follower, *event)) return *code;
        }
      }
      return *PrintFinalFromStatus(job);
    }
  }

  // Shows one event of the followed job if it is the next one; after a gap, a fresh snapshot
  // first (events were dropped on the way: show the job as it is now, not a wrong picture).
  // Returns the exit code once the job has ended.
  std::optional<int> Follow(JobFollower& follower, const Value& event) {
    JobFollower::Verdict verdict = follower.Offer(event);
    if (verdict == JobFollower::Verdict::kResnapshot) {
      // The coordinator keeps the job's recent events: fill the gap from them if it can.
      Value request;
      request.Set("type", msg::kEvents);
      request.Set("job_id", options_.job_id);
      request.Set("after_seq", follower.last_seq());
      Value reply;
      if (int rc = Request(request, msg::kEvents, &reply); rc != kExitOk) return rc;
      if (std::optional<std::vector<Value>> missing = follower.CatchUp(reply)) {
        for (const Value& e : *missing) {
          if (std::optional<int> code = PrintEvent(e)) return code;
        }
        verdict = follower.Offer(event);
      }
    }
    if (verdict == JobFollower::Verdict::kResnapshot) {
      const int64_t missed = follower.missed();
      Value job;
      if (int rc = QueryStatus(options_.job_id, &job); rc != kExitOk) return rc;
      if (IsTerminalState(GetString(job, "state"))) return PrintFinalFromStatus(job);
      follower.Reset(job);
      PrintSnapshot(job, missed);
      verdict = follower.Offer(event);
    }
    if (verdict != JobFollower::Verdict::kApply) return std::nullopt;
    return PrintEvent(event);
  }

  // Shows where a followed job stands: at the start of `watch JOB`, and again after a gap in the
  // event stream (`missed` events were lost). JSON: one {"type":"job_snapshot", job_id, seq,
  // missed, job: JobInfo} line; text: the progress line.
  void PrintSnapshot(const Value& job, int64_t missed) {
    if (options_.json) {
      Value line;
      line.Set("type", "job_snapshot");
      line.Set("job_id", GetString(job, "job_id"));
      line.Set("seq", GetInt(job, "last_seq"));
      line.Set("missed", missed);
      line.Set("job", job);
      out_ << ToJson(line) << "\n" << std::flush;
      return;
    }
    if (missed > 0) {
      out_ << "(" << missed << " event" << (missed == 1 ? "" : "s")
           << " missed; status now) ";
    }
    out_ << FormatProgressLine(job) << "\n" << std::flush;
  }

  // Prints a terminal JobInfo as a job_state event line; returns its exit code.
  std::optional<int> PrintFinalFromStatus(const Value& job) {
    return PrintEvent(FinalStateEvent(job));
  }

  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  zmq::context_t context_{1};
  std::optional<Connection> connection_;  // the DEALER, after Connect()
  std::string events_endpoint_;           // from hello, wildcard host resolved
  std::string current_job_;               // the job being waited for
  bool live_ = false;                     // progress redrawn in place on a terminal
  int live_rows_ = 0;                     // lines of the progress block now on screen
};

}  // namespace

int Run(const Options& options, std::ostream& out, std::ostream& err) {
  try {
    Session session(options, out, err);
    return session.Run();
  } catch (const zmq::error_t& e) {
    err << "zmr: " << e.what() << "\n";
    return kExitUnreachable;
  }
}

int Main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  const char* env = std::getenv(kCoordinatorEnv);
  ParseResult parsed = ParseArgs(args, env ? env : "");
  if (!parsed.ok) {
    std::cerr << parsed.error << "\n";
    return kExitUsage;
  }
  Options& options = parsed.options;
  SetupLogging("zmr", options.log_level);  // the level was validated by ParseArgs
  options.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  InstallSignalHandlers();
  return Run(options, std::cout, std::cerr);
}

}  // namespace zmr::client
