// Streaming commands behind the App interface: the StreamingApp feeds the mapper or reducer
// command (one ChildProcess, runner/streaming_process.h, for the whole attempt) and a combiner
// per batch, and builds their environment. Everything runs on the attempt's thread.
//
// Failure handling: what a command does wrong is found by its ChildProcess (see there); the App
// keeps its first failure (Failure()) and every later call is a no-op.
#include "runner/streaming.h"

#include <filesystem>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "common/layout.h"
#include "common/posix/signals.h"
#include "runner/stderr_sink.h"
#include "runner/streaming_process.h"

extern char** environ;

namespace zmr {

namespace {

// The command's environment: ours, then the attempt's variables, then cmdenv (later wins).
std::vector<std::string> BuildEnvironment(const AttemptInfo& info, const std::string& work_dir,
                                          const Params& cmdenv) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  vars["mapreduce_job_id"] = info.job_id;
  vars["mapreduce_task_id"] = info.task_id;
  vars["mapreduce_task_attempt_id"] = layout::AttemptName(info.task_id, info.attempt);
  vars["mapreduce_task_partition"] = std::to_string(info.partition);
  vars["mapreduce_task_is_map"] = info.is_map ? "true" : "false";
  vars["mapreduce_job_reduces"] = std::to_string(info.num_reduces);
  if (info.is_map) {
    vars["mapreduce_map_input_file"] = info.input_file;
    vars["mapreduce_map_input_start"] = std::to_string(info.input_start);
    vars["mapreduce_map_input_length"] = std::to_string(info.input_length);
  }
  if (!work_dir.empty()) vars["PWD"] = work_dir;
  for (const auto& [name, value] : cmdenv) vars[name] = value;

  std::vector<std::string> env;
  env.reserve(vars.size());
  for (const auto& [name, value] : vars) env.push_back(name + "=" + value);
  return env;
}

class StreamingApp : public App {
 public:
  StreamingApp(JobCode code, bool is_map, const std::atomic<bool>* cancelled)
      : code_(std::move(code)), is_map_(is_map), cancelled_(cancelled) {}

  bool Start(const AttemptInfo& info, std::string* error) override {
    if (started_) {
      *error = "streaming app started twice";
      return false;
    }
    started_ = true;
    IgnoreSigpipeUnlessHandled();
    sink_.set_status_callback(info.set_status);
    if (!info.work_dir.empty()) {
      std::error_code ec;
      work_dir_ = std::filesystem::absolute(info.work_dir, ec).string();
      if (ec) work_dir_ = info.work_dir;
    }
    env_ = BuildEnvironment(info, work_dir_, code_.cmdenv);
    command_ = ChildProcess::Spawn(Role(), is_map_ ? code_.mapper : code_.reducer, work_dir_,
                                   env_, &sink_, cancelled_, error);
    if (!command_) {
      failure_ = *error;
      return false;
    }
    return true;
  }

  void Map(std::string_view line, const MapContext&, Emitter& out) override {
    if (!Usable(/*map_call=*/true)) return;
    if (!command_->Feed({line, "\n"}, &out)) CommandStopped(out);
  }

  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    if (!Usable(/*map_call=*/false)) return;
    std::string_view value;
    while (values.Next(&value)) {
      if (!command_->Feed({key, "\t", value, "\n"}, &out)) {
        CommandStopped(out);
        return;
      }
    }
  }

  bool Finish(Emitter& out, std::string* error) override {
    if (finished_ || !failure_.empty()) {
      finished_ = true;
      *error = failure_.empty() ? "streaming app finished twice" : failure_;
      return false;
    }
    finished_ = true;
    if (!command_) {
      failure_ = "streaming app finished before Start";
      *error = failure_;
      return false;
    }
    std::string command_error;
    if (!command_->Finish(&out, &command_error)) {
      failure_ = command_error;
      *error = failure_;
      return false;
    }
    return true;
  }

  std::string Failure() const override { return failure_; }

  bool HasCombiner() const override { return !code_.combiner.empty(); }

  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    if (!failure_.empty()) return;
    // Combining may go on after Finish: the runner merges the spills once the mapper is done.
    if (!started_ || code_.combiner.empty()) {
      failure_ = "streaming combiner used before Start or without a combiner command";
      return;
    }
    if (!combiner_) {
      std::string error;
      combiner_ = ChildProcess::Spawn("combiner", code_.combiner, work_dir_, env_, &sink_,
                                      cancelled_, &error);
      if (!combiner_) {
        failure_ = error;
        return;
      }
    }
    std::string_view value;
    while (values.Next(&value)) {
      if (!combiner_->Feed({key, "\t", value, "\n"}, &out)) {
        std::string error;
        if (combiner_->Finish(nullptr, &error)) error = "combiner command stopped taking input";
        failure_ = error;
        combiner_.reset();
        return;
      }
    }
  }

  bool FlushCombine(Emitter& out, std::string* error) override {
    if (!failure_.empty()) {
      *error = failure_;
      return false;
    }
    if (!combiner_) return true;  // nothing was combined in this batch
    std::unique_ptr<ChildProcess> combiner = std::move(combiner_);
    std::string combine_error;
    if (!combiner->Finish(&out, &combine_error)) {
      failure_ = combine_error;
      *error = failure_;
      return false;
    }
    return true;
  }

  void TakeCounters(Counters* into) override { sink_.TakeCounters(into); }

 private:
  std::string Role() const { return is_map_ ? "mapper" : "reducer"; }

  // Whether Map/Reduce may feed the command; records why not when it is a caller's mistake.
  bool Usable(bool map_call) {
    if (!failure_.empty()) return false;
    if (!command_ || finished_) {
      failure_ = "streaming app used outside Start..Finish";
      return false;
    }
    if (map_call != is_map_) {
      failure_ = std::string("streaming ") + Role() + " app called with " +
                 (map_call ? "Map" : "Reduce");
      return false;
    }
    return true;
  }

  // The command cannot take more input: end it now, so Failure() tells the runner why.
  void CommandStopped(Emitter& out) {
    std::string error;
    if (command_->Finish(&out, &error)) error = Role() + " command stopped taking input";
    failure_ = error;
  }

  const JobCode code_;
  const bool is_map_;
  const std::atomic<bool>* const cancelled_;
  std::vector<std::string> env_;  // the commands' environment, built at Start
  std::string work_dir_;
  // Declared before the processes, which write to it until they are destroyed.
  StderrSink sink_;
  std::unique_ptr<ChildProcess> command_;   // the mapper or reducer
  std::unique_ptr<ChildProcess> combiner_;  // the current batch's combiner, if one runs
  bool started_ = false;
  bool finished_ = false;
  std::string failure_;  // the first failure; every later call is a no-op
};

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

std::unique_ptr<App> MakeStreamingApp(const JobCode& code, bool is_map, std::string* error,
                                      const std::atomic<bool>* cancelled) {
  const std::string& command = is_map ? code.mapper : code.reducer;
  const char* role = is_map ? "mapper" : "reducer";
  if (command.empty()) {
    *error = std::string("the job has no ") + role + " command";
    return nullptr;
  }
  if (HasNul(code.mapper) || HasNul(code.reducer) || HasNul(code.combiner)) {
    *error = "a streaming command contains a NUL byte";
    return nullptr;
  }
  for (const auto& [name, value] : code.cmdenv) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value)) {
      *error = "invalid cmdenv entry '" + name + "': the name must be non-empty without '=' "
               "and neither may contain a NUL byte";
      return nullptr;
    }
  }
  return std::make_unique<StreamingApp>(code, is_map, cancelled);
}

}  // namespace zmr
