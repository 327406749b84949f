// zmr's public C++ plugin API: the only header a plugin needs. It depends on the standard library
// alone (C++17 or later), so a plugin builds with one command and nothing else from zmr:
//
//   g++ -std=c++17 -O2 -shared -fPIC -I/path/to/zmr/include myapp.cc -o libmyapp.so
//
// (the include directory is zmr's include/, so that `#include <zmr/api.h>` finds this file), and
// runs with `zmr submit --plugin ./libmyapp.so --app myapp ...`. examples/plugin/ has a complete
// one.
//
// A plugin is a shared library that defines one app: a Mapper, a Reducer (optional: without one the
// values pass through unchanged), a Combiner (optional) and a Partitioner (optional: without one
// zmr's stable FNV-1a hash decides). It registers them with one ZMR_PLUGIN line, which defines the
// C entry point `zmr_plugin_info` that the runner (a worker's zmr-task process) looks up after
// dlopen.
//
// Lifetime and threads: for each task attempt zmr creates fresh instances (a map attempt: a Mapper,
// a Combiner if any and a Partitioner if any; a reduce attempt: a Reducer), calls Setup once, then
// the per-record methods, then Finish, and destroys them before the attempt ends. All calls to one
// instance come from one thread, so instances need no locking; different attempts may run at the
// same time in one process, so mutable globals (statics) need their own care. Constructors must
// take no arguments; read parameters in Setup.
//
// Errors: an exception thrown by user code (constructor, Setup, Map, Reduce, Combine, Partition,
// Finish) is caught by zmr; the attempt fails with the exception's what() text and zmr calls that
// instance no further (it is still destroyed). Retries run in new attempts, possibly elsewhere.
//
// Data: keys and values are byte strings (std::string_view, any bytes; a TAB or newline in a key is
// allowed but the final `key<TAB>value` output lines then become ambiguous). Every string_view zmr
// passes in is valid only during the call that received it: copy what must be kept.
//
// Compatibility: a plugin is native code loaded into a worker's zmr-task runner, so it must be
// built for the same platform and C++ standard library (libstdc++ on Linux) as zmr. kApiVersion
// changes whenever an interface below changes shape; a plugin built for another version is refused
// with a clear error instead of crashing.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace zmr::api {

// The version of this API. A plugin records the version it was compiled with in its PluginInfo.
inline constexpr int kApiVersion = 1;

// What user code calls back into. One Context per instance, owned by zmr; it outlives every call
// that receives it (Setup .. Finish), so keeping a reference between calls is fine.
class Context {
 public:
  // Adds a key/value pair to the output: a map's output goes to the sort and the reducers (or to
  // the job output of a map-only job); a combiner's back into the map output; a reducer's to the
  // job output as `key<TAB>value`. zmr copies the bytes before returning, so views of temporary
  // buffers are fine. Only allowed during Map, Reduce, Combine and Finish (elsewhere, e.g. in
  // Setup, it throws std::logic_error, which fails the attempt).
  virtual void Emit(std::string_view key, std::string_view value) = 0;

  // Adds `amount` (may be negative) to the user counter "GROUP/NAME". Counters of successful
  // attempts are summed into the job's counters (`zmr status`).
  virtual void IncrementCounter(std::string_view group, std::string_view name,
                                int64_t amount = 1) = 0;

  // Sets the attempt's status text, shown by `zmr status` (e.g. "processed 1M lines").
  virtual void SetStatus(std::string_view status) = 0;

  // The job parameter `name` (`zmr submit --param name=value`), or "" when it is absent. The view
  // stays valid for the whole attempt.
  virtual std::string_view Param(std::string_view name) const = 0;
  // Whether the parameter was given at all (distinguishes "absent" from "empty").
  virtual bool HasParam(std::string_view name) const = 0;

  // About the attempt. Views stay valid for the whole attempt.
  virtual std::string_view JobId() const = 0;
  virtual std::string_view TaskId() const = 0;   // "m-00003" (map) or "r-00001" (reduce)
  virtual int64_t Attempt() const = 0;           // 1 for the first try of a task, +1 per retry
  virtual bool IsMap() const = 0;                // true in a map attempt (and its combiner)
  virtual int64_t Partition() const = 0;         // reduce: its partition; map: the map index
  virtual int64_t NumReduces() const = 0;        // 0 for a map-only job
  virtual std::string_view WorkDir() const = 0;  // the attempt's directory (shipped --file files)

  // Map attempts: during Map, the file the current line came from (full path and base name; a
  // split may span several files, so read these in Map rather than caching them in Setup), valid
  // during that call; in Setup and Finish, the split's first file. "" in reduce attempts.
  virtual std::string_view InputPath() const = 0;
  virtual std::string_view InputName() const = 0;

 protected:
  ~Context() = default;  // zmr owns every Context; user code never deletes one
};

// The values of one key during Reduce or Combine, in an unspecified but deterministic order.
class Values {
 public:
  // Sets *value to the next value and returns true, or returns false when there are no more (and
  // keeps returning false). *value is valid until the next call of Next. Values not read are
  // skipped by zmr.
  virtual bool Next(std::string_view* value) = 0;

 protected:
  ~Values() = default;  // owned by zmr
};

// Turns input lines into key/value pairs.
class Mapper {
 public:
  virtual ~Mapper() = default;
  // Called once, before the first Map. Read parameters here; throw to fail the attempt (e.g.
  // std::invalid_argument for a bad parameter). Must not emit.
  virtual void Setup(Context& /*ctx*/) {}
  // Called once per input line, without its line terminator ("\n" or "\r\n"). A line belongs to
  // exactly one map task (see zmr's split rules), so every line of the input is mapped once per
  // successful job.
  virtual void Map(std::string_view line, Context& ctx) = 0;
  // Called once after the last Map: emit what was buffered across lines (in-mapper combining).
  virtual void Finish(Context& /*ctx*/) {}
};

// Folds all values of one key into the job's output.
class Reducer {
 public:
  virtual ~Reducer() = default;
  // Called once, before the first Reduce. Throw to fail the attempt.
  virtual void Setup(Context& /*ctx*/) {}
  // Called once per distinct key of the partition, keys in bytewise (memcmp) order.
  virtual void Reduce(std::string_view key, Values& values, Context& ctx) = 0;
  // Called once after the last Reduce.
  virtual void Finish(Context& /*ctx*/) {}
};

// Shrinks map output before the shuffle. zmr may apply it zero, one or several times to any subset
// of a key's values (when a sort buffer spills, when spills merge), so it must be associative and
// commutative, emit under the key it was given, and emit values the Reducer (and itself) accept.
// A Reducer class with those properties can be registered as the combiner directly (ZMR_PLUGIN
// wraps it), as for word counting.
class Combiner {
 public:
  virtual ~Combiner() = default;
  virtual void Setup(Context& /*ctx*/) {}
  virtual void Combine(std::string_view key, Values& values, Context& ctx) = 0;
};

// Decides which reduce partition a key goes to. It must be a pure function of the key: every map
// attempt, on every worker, must agree.
class Partitioner {
 public:
  virtual ~Partitioner() = default;
  // Called once, before the first Partition; Emit and IncrementCounter must not be used here.
  virtual void Setup(const Context& /*ctx*/) {}
  // Returns a partition in [0, num_partitions); num_partitions >= 1. A result out of range fails
  // the attempt.
  virtual uint64_t Partition(std::string_view key, uint64_t num_partitions) = 0;
};

// What `zmr_plugin_info` returns: a plain C-layout struct, so a worker can check api_version (the
// first member in every version) before it relies on anything else. Fill it with ZMR_PLUGIN or
// MakePluginInfo, not by hand. Factories return objects allocated by the plugin (or throw); the
// matching destroy function frees them inside the plugin, so allocator and runtime stay consistent
// across the library boundary.
struct PluginInfo {
  int api_version;       // kApiVersion of the header the plugin was compiled with; always first
  const char* app_name;  // the name users pass to `--app`
  Mapper* (*create_mapper)();
  void (*destroy_mapper)(Mapper*);
  Reducer* (*create_reducer)();  // null: identity reducer (every value is output unchanged)
  void (*destroy_reducer)(Reducer*);
  Combiner* (*create_combiner)();  // null: no combiner
  void (*destroy_combiner)(Combiner*);
  Partitioner* (*create_partitioner)();  // null: zmr's default hash partitioner
  void (*destroy_partitioner)(Partitioner*);
};
static_assert(std::is_standard_layout_v<PluginInfo> && std::is_trivially_copyable_v<PluginInfo>);

// The entry point's name and type: `extern "C" const zmr::api::PluginInfo* zmr_plugin_info()`.
// It may be called more than once and must return the same static object each time.
inline constexpr const char* kPluginInfoSymbol = "zmr_plugin_info";
using PluginInfoFunction = const PluginInfo* (*)();

namespace internal {

// Runs a Reducer as a Combiner (the common "reducer doubles as combiner" case).
template <class R>
class ReducerAsCombiner final : public Combiner {
 public:
  void Setup(Context& ctx) override { reducer_.Setup(ctx); }
  void Combine(std::string_view key, Values& values, Context& ctx) override {
    reducer_.Reduce(key, values, ctx);
  }

 private:
  R reducer_;
};

template <class Base, class T>
Base* Create() {
  return new T();
}
template <class Base>
void Destroy(Base* object) {
  delete object;
}

template <class Base, class T>
constexpr Base* (*FactoryFor())() {
  if constexpr (std::is_void_v<T>) {
    return nullptr;
  } else {
    static_assert(std::is_base_of_v<Base, T>, "class does not derive from the zmr::api interface");
    static_assert(std::is_default_constructible_v<T>,
                  "zmr::api classes need a default constructor (read parameters in Setup)");
    return &Create<Base, T>;
  }
}

template <class Base, class T>
constexpr void (*DestroyerFor())(Base*) {
  if constexpr (std::is_void_v<T>) {
    return nullptr;
  } else {
    return &Destroy<Base>;
  }
}

// A combiner slot accepts a Combiner, a Reducer (wrapped) or void.
template <class C>
using CombinerType =
    std::conditional_t<std::is_base_of_v<Reducer, C> && !std::is_base_of_v<Combiner, C>,
                       ReducerAsCombiner<C>, C>;

}  // namespace internal

// Builds the PluginInfo for app `app_name` (a string literal or other static string) from the
// user's classes. ReducerClass, CombinerClass and PartitionerClass may be void; CombinerClass may
// be a Combiner or a Reducer.
template <class MapperClass, class ReducerClass, class CombinerClass = void,
          class PartitionerClass = void>
constexpr PluginInfo MakePluginInfo(const char* app_name) {
  static_assert(!std::is_void_v<MapperClass>, "a zmr plugin needs a Mapper");
  using CombinerImpl = std::conditional_t<std::is_void_v<CombinerClass>, void,
                                          internal::CombinerType<CombinerClass>>;
  return PluginInfo{kApiVersion,
                    app_name,
                    internal::FactoryFor<Mapper, MapperClass>(),
                    internal::DestroyerFor<Mapper, MapperClass>(),
                    internal::FactoryFor<Reducer, ReducerClass>(),
                    internal::DestroyerFor<Reducer, ReducerClass>(),
                    internal::FactoryFor<Combiner, CombinerImpl>(),
                    internal::DestroyerFor<Combiner, CombinerImpl>(),
                    internal::FactoryFor<Partitioner, PartitionerClass>(),
                    internal::DestroyerFor<Partitioner, PartitionerClass>()};
}

}  // namespace zmr::api

// Exports the entry point even when the plugin is compiled with -fvisibility=hidden.
#ifndef ZMR_PLUGIN_EXPORT
#define ZMR_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

// Registers the plugin's app; use exactly once per library, at namespace scope:
//
//   ZMR_PLUGIN("wordcount", WordMapper, SumReducer, SumReducer);   // reducer doubles as combiner
//   ZMR_PLUGIN("grep", GrepMapper, SumReducer, void);               // no combiner
//
// NAME is the app name (a string literal); the reducer and combiner may be void.
#define ZMR_PLUGIN(NAME, MAPPER, REDUCER, COMBINER) \
  ZMR_PLUGIN_WITH_PARTITIONER(NAME, MAPPER, REDUCER, COMBINER, void)

// As ZMR_PLUGIN, with a Partitioner class (or void).
#define ZMR_PLUGIN_WITH_PARTITIONER(NAME, MAPPER, REDUCER, COMBINER, PARTITIONER)              \
  extern "C" ZMR_PLUGIN_EXPORT const ::zmr::api::PluginInfo* zmr_plugin_info() {               \
    static constexpr ::zmr::api::PluginInfo kZmrPluginInfo =                                    \
        ::zmr::api::MakePluginInfo<MAPPER, REDUCER, COMBINER, PARTITIONER>(NAME);               \
    return &kZmrPluginInfo;                                                                      \
  }                                                                                              \
  static_assert(true, "")  // makes the macro take a trailing semicolon

