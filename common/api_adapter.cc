// The one adapter from zmr::api objects to App. Failure handling, in order: a user call that
// throws records "<label> threw in <phase>: <what>" as the failure and nothing of that user code
// runs again; an exception raised by zmr's Emitter underneath a user call is remembered by the
// Context and re-thrown after the user call returns (even if the user code swallowed it), so the
// task runner sees its own errors exactly as it would without the adapter.
#include "common/api_adapter.h"

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace zmr {
namespace {

// Owns one user object through the plugin's own destroy function.
template <class T>
class UserObject {
 public:
  UserObject() = default;
  UserObject(const UserObject&) = delete;
  UserObject& operator=(const UserObject&) = delete;
  ~UserObject() { Reset(); }

  void Reset(T* object = nullptr, void (*destroy)(T*) = nullptr) {
    if (object_ != nullptr) destroy_(object_);
    object_ = object;
    destroy_ = destroy;
  }
  T* get() const { return object_; }
  T* operator->() const { return object_; }
  explicit operator bool() const { return object_ != nullptr; }

 private:
  T* object_ = nullptr;
  void (*destroy_)(T*) = nullptr;
};

// What the contexts of one App share.
struct SharedState {
  std::map<std::string, std::string, std::less<>> params;  // heterogeneous lookup: no allocation
  AttemptInfo attempt;
  std::string input_name;  // base name of attempt.input_file
  struct Counter {
    int64_t amount = 0;
    bool touched = false;  // incremented (possibly by 0) since the last TakeCounters
  };
  std::map<std::string, Counter, std::less<>> counters;  // "GROUP/NAME"
  std::string counter_key;                               // reused to build "GROUP/NAME"
  // Set when zmr's Emitter threw under a user call; re-thrown once the user call returns.
  std::exception_ptr emitter_error;
};

std::string_view BaseName(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The Context handed to one user object. Bound to the caller's Emitter only during a call.
class ContextImpl final : public api::Context {
 public:
  explicit ContextImpl(SharedState* state) : state_(state) {}

  // Binds `out` (and, for Map, the line's file) for the duration of one user call.
  void Bind(Emitter* out, std::string_view input_path, std::string_view input_name) {
    out_ = out;
    input_path_ = input_path;
    input_name_ = input_name;
  }
  void Bind(Emitter* out) { Bind(out, DefaultInputPath(), DefaultInputName()); }
  void Unbind() { Bind(nullptr); }

  void Emit(std::string_view key, std::string_view value) override {
    if (out_ == nullptr) {
      throw std::logic_error("Context::Emit called outside Map, Reduce, Combine and Finish");
    }
    try {
      out_->Emit(key, value);
    } catch (...) {
      state_->emitter_error = std::current_exception();
      throw;
    }
  }

  void IncrementCounter(std::string_view group, std::string_view name, int64_t amount) override {
    std::string& key = state_->counter_key;
    key.assign(group);
    key += '/';
    key.append(name);
    auto it = state_->counters.find(key);
    if (it == state_->counters.end()) {
      it = state_->counters.emplace(key, SharedState::Counter{}).first;
    }
    it->second.amount += amount;
    it->second.touched = true;
  }

  void SetStatus(std::string_view status) override {
    if (state_->attempt.set_status) state_->attempt.set_status(std::string(status));
  }

  std::string_view Param(std::string_view name) const override {
    auto it = state_->params.find(name);
    return it == state_->params.end() ? std::string_view() : std::string_view(it->second);
  }
  bool HasParam(std::string_view name) const override {
    return state_->params.find(name) != state_->params.end();
  }

  std::string_view JobId() const override { return state_->attempt.job_id; }
  std::string_view TaskId() const override { return state_->attempt.task_id; }
  int64_t Attempt() const override { return state_->attempt.attempt; }
  bool IsMap() const override { return state_->attempt.is_map; }
  int64_t Partition() const override { return state_->attempt.partition; }
  int64_t NumReduces() const override { return state_->attempt.num_reduces; }
  std::string_view WorkDir() const override { return state_->attempt.work_dir; }
  std::string_view InputPath() const override { return input_path_; }
  std::string_view InputName() const override { return input_name_; }

 private:
  std::string_view DefaultInputPath() const {
    if (!state_->attempt.is_map) return {};
    return state_->attempt.input_file;
  }
  std::string_view DefaultInputName() const {
    if (!state_->attempt.is_map) return {};
    return state_->input_name;
  }

  SharedState* state_;
  Emitter* out_ = nullptr;  // the caller's Emitter during a user call, else null
  std::string_view input_path_;
  std::string_view input_name_;
};

// Keeps Context bound to an Emitter for one user call, whatever way the call ends.
class BindScope {
 public:
  BindScope(ContextImpl* ctx, Emitter* out) : ctx_(ctx) { ctx_->Bind(out); }
  BindScope(ContextImpl* ctx, Emitter* out, std::string_view input_path,
            std::string_view input_name)
      : ctx_(ctx) {
    ctx_->Bind(out, input_path, input_name);
  }
  BindScope(const BindScope&) = delete;
  BindScope& operator=(const BindScope&) = delete;
  ~BindScope() { ctx_->Unbind(); }

 private:
  ContextImpl* ctx_;
};

// The values of one key for user code. Keeps returning false at the end whatever the stream does.
class StreamValues final : public api::Values {
 public:
  explicit StreamValues(ValueStream* stream) : stream_(stream) {}
  bool Next(std::string_view* value) override {
    if (done_) return false;
    if (stream_->Next(value)) return true;
    done_ = true;
    return false;
  }
  // Skips what the user code left unread, so the caller's stream is at the end of the key.
  void Drain() {
    std::string_view ignored;
    while (Next(&ignored)) {
    }
  }

 private:
  ValueStream* stream_;
  bool done_ = false;
};

class ApiApp final : public App {
 public:
  ApiApp(const api::PluginInfo& info, const Params& params, std::string label,
         std::shared_ptr<void> keep_alive, CombinerKind combiner)
      : keep_alive_(std::move(keep_alive)),
        info_(info),
        label_(std::move(label)),
        combiner_kind_(info.create_combiner != nullptr ? combiner : CombinerKind::kOpaque),
        map_ctx_(&state_),
        combine_ctx_(&state_),
        reduce_ctx_(&state_) {
    state_.params.insert(params.begin(), params.end());
  }

  ~ApiApp() override {
    // User objects go first, while their library is still loaded (keep_alive_ is released by the
    // implicit member destruction afterwards).
    partitioner_.Reset();
    combiner_.Reset();
    reducer_.Reset();
    mapper_.Reset();
  }

  bool Start(const AttemptInfo& info, std::string* error) override {
    state_.attempt = info;
    state_.input_name = std::string(BaseName(info.input_file));
    map_ctx_.Unbind();
    combine_ctx_.Unbind();
    reduce_ctx_.Unbind();
    if (info.is_map) {
      EnsureMapper();
      if (info_.create_combiner != nullptr) EnsureCombiner();
      if (info_.create_partitioner != nullptr && info.num_reduces > 0) EnsurePartitioner();
    } else if (info_.create_reducer != nullptr) {
      EnsureReducer();
    }
    return Ok(error);
  }

  bool Finish(Emitter& out, std::string* error) override {
    if (!failed_ && mapper_) {
      BindScope bind(&map_ctx_, &out);
      Call("Finish", [&] { mapper_->Finish(map_ctx_); });
    }
    if (!failed_ && reducer_) {
      BindScope bind(&reduce_ctx_, &out);
      Call("Finish", [&] { reducer_->Finish(reduce_ctx_); });
    }
    return Ok(error);
  }

  std::string Failure() const override { return failure_; }

  int64_t Partition(std::string_view key, int64_t num_partitions) override {
    if (info_.create_partitioner == nullptr) return App::Partition(key, num_partitions);
    if (failed_ || !EnsurePartitioner()) return 0;
    uint64_t partition = 0;
    Call("Partition", [&] {
      partition = partitioner_->Partition(key, static_cast<uint64_t>(num_partitions));
    });
    if (failed_) return 0;
    if (partition >= static_cast<uint64_t>(num_partitions)) {
      Fail(label_ + ": partitioner returned partition " + std::to_string(partition) + " for " +
           std::to_string(num_partitions) + " partitions");
      return 0;
    }
    return static_cast<int64_t>(partition);
  }

  void Map(std::string_view line, const MapContext& ctx, Emitter& out) override {
    if (failed_ || !EnsureMapper()) return;
    BindScope bind(&map_ctx_, &out, ctx.input_path, ctx.input_name);
    Call("Map", [&] { mapper_->Map(line, map_ctx_); });
  }

  bool HasCombiner() const override { return info_.create_combiner != nullptr; }
  CombinerKind KnownCombiner() const override { return combiner_kind_; }

  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    if (info_.create_combiner == nullptr) return App::Combine(key, values, out);
    StreamValues user_values(&values);
    if (!failed_ && EnsureCombiner()) {
      BindScope bind(&combine_ctx_, &out);
      Call("Combine", [&] { combiner_->Combine(key, user_values, combine_ctx_); });
    }
    user_values.Drain();
  }

  bool FlushCombine(Emitter&, std::string* error) override { return Ok(error); }

  void TakeCounters(Counters* into) override {
    for (auto& [name, counter] : state_.counters) {
      if (!counter.touched) continue;
      (*into)[name] += counter.amount;
      counter.amount = 0;
      counter.touched = false;
    }
  }

  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    if (info_.create_reducer == nullptr) {
      // Identity reducer: every value is output unchanged.
      std::string_view value;
      while (values.Next(&value)) out.Emit(key, value);
      return;
    }
    StreamValues user_values(&values);
    if (!failed_ && EnsureReducer()) {
      BindScope bind(&reduce_ctx_, &out);
      Call("Reduce", [&] { reducer_->Reduce(key, user_values, reduce_ctx_); });
    }
    user_values.Drain();
  }

 private:
  // Runs one user call. A user exception becomes the failure; an exception from zmr's Emitter
  // underneath is re-thrown as is.
  template <class Fn>
  void Call(const char* phase, Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      RethrowEmitterError();
      Fail(label_ + " threw in " + phase + ": " + e.what());
    } catch (...) {
      RethrowEmitterError();
      Fail(label_ + " threw a non-standard exception in " + phase);
    }
    RethrowEmitterError();  // the user code caught and swallowed it
  }

  void RethrowEmitterError() {
    if (state_.emitter_error) {
      std::exception_ptr error = std::exchange(state_.emitter_error, nullptr);
      std::rethrow_exception(error);
    }
  }

  // Records the first failure, as one line.
  void Fail(std::string text) {
    if (failed_) return;
    failed_ = true;
    for (char& c : text) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    failure_ = std::move(text);
  }

  bool Ok(std::string* error) const {
    if (!failed_) return true;
    if (error != nullptr) *error = failure_;
    return false;
  }

  // Each Ensure* creates the object and runs its Setup once; false once anything has failed.
  template <class T>
  bool Ensure(UserObject<T>* object, T* (*create)(), void (*destroy)(T*), const char* what) {
    if (failed_) return false;
    if (*object) return true;
    if (create == nullptr) {
      Fail(label_ + " has no " + what);
      return false;
    }
    Call("constructor", [&] { object->Reset(create(), destroy); });
    if (!failed_ && !*object) Fail(label_ + " returned no " + what);
    return !failed_;
  }

  bool EnsureMapper() {
    if (mapper_ || failed_) return !failed_;
    if (!Ensure(&mapper_, info_.create_mapper, info_.destroy_mapper, "mapper")) return false;
    Call("Setup", [&] { mapper_->Setup(map_ctx_); });
    return !failed_;
  }
  bool EnsureReducer() {
    if (reducer_ || failed_) return !failed_;
    if (!Ensure(&reducer_, info_.create_reducer, info_.destroy_reducer, "reducer")) return false;
    Call("Setup", [&] { reducer_->Setup(reduce_ctx_); });
    return !failed_;
  }
  bool EnsureCombiner() {
    if (combiner_ || failed_) return !failed_;
    if (!Ensure(&combiner_, info_.create_combiner, info_.destroy_combiner, "combiner")) {
      return false;
    }
    Call("Setup", [&] { combiner_->Setup(combine_ctx_); });
    return !failed_;
  }
  bool EnsurePartitioner() {
    if (partitioner_ || failed_) return !failed_;
    if (!Ensure(&partitioner_, info_.create_partitioner, info_.destroy_partitioner,
                "partitioner")) {
      return false;
    }
    Call("Setup", [&] { partitioner_->Setup(map_ctx_); });
    return !failed_;
  }

  std::shared_ptr<void> keep_alive_;  // first member: released after everything below
  api::PluginInfo info_;
  std::string label_;
  const CombinerKind combiner_kind_;  // declared by the creator (MakeApiApp)
  SharedState state_;
  ContextImpl map_ctx_;      // for the mapper and the partitioner
  ContextImpl combine_ctx_;  // separate: Combine may run inside a Map's Emit (a spill)
  ContextImpl reduce_ctx_;
  UserObject<api::Mapper> mapper_;
  UserObject<api::Reducer> reducer_;
  UserObject<api::Combiner> combiner_;
  UserObject<api::Partitioner> partitioner_;
  bool failed_ = false;
  std::string failure_;  // the first failure, one line
};

}  // namespace

std::unique_ptr<App> MakeApiApp(const api::PluginInfo& info, const Params& params,
                                std::string label, std::shared_ptr<void> keep_alive,
                                CombinerKind combiner) {
  return std::make_unique<ApiApp>(info, params, std::move(label), std::move(keep_alive),
                                  combiner);
}

}  // namespace zmr
