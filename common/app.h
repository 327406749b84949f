// The interface every kind of user code runs behind (built-in apps, C++ plugins, streaming
// commands). The runner's task runner calls an App; an App instance belongs to one task attempt
// (one thread). The built-in apps (apps/, served by apps/registry.h) are written against the public
// plugin API (include/zmr/api.h), as are C++ plugins (loaded by runner/plugin_loader.h); both run
// behind App through the one adapter in common/api_adapter.h.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"

namespace zmr {

// Receives key/value pairs. Views passed to Emit are only valid during the call.
class Emitter {
 public:
  virtual ~Emitter() = default;
  virtual void Emit(std::string_view key, std::string_view value) = 0;
};

// The values of one key during reduce or combine, in merge order.
class ValueStream {
 public:
  virtual ~ValueStream() = default;
  // Sets *value (valid until the next call) and returns true, or returns false at the end.
  virtual bool Next(std::string_view* value) = 0;
};

// What an attempt is, for apps that need it (streaming exports it as environment variables).
struct AttemptInfo {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
  bool is_map = true;
  int64_t partition = 0;      // reduce: its partition; map: the map index
  int64_t num_reduces = 1;    // 0 for a map-only job
  std::string work_dir;       // the attempt's working directory (shipped files are here)
  std::string input_file;     // map: path of the split's first file ("" if the split is empty)
  int64_t input_start = 0;    // map: offset and length of the split's range in that file
  int64_t input_length = 0;
  // Sets the attempt's status text (shown by `zmr status`); may be empty.
  std::function<void(const std::string&)> set_status;
};

// What an App's combiner is known to compute, declared by whoever built the App (never inferred
// from user code). A map buffer may then do the combining itself instead of calling Combine.
enum class CombinerKind {
  kOpaque,    // unknown: call Combine
  // apps::SumReducer (apps/text.h): Combine emits exactly one record, the key with the decimal
  // (std::to_chars) of the wrapping int64 sum of its values, where a value that is not entirely a
  // decimal int64 (std::from_chars, no '+', no spaces, in range) counts as 0. It emits during
  // Combine, never in FlushCombine, never fails, and has no side effects (no counters).
  kInt64Sum,
};

struct MapContext {
  std::string_view input_path;   // full path of the file the line came from
  std::string_view input_name;   // its base name
};

class App {
 public:
  virtual ~App() = default;
  // Called once before any other call of an attempt. Returns false with *error to fail it.
  virtual bool Start(const AttemptInfo& info, std::string* error);
  // Called once after the last Map (or Reduce) call: emits whatever is still buffered (a streaming
  // command is drained and waited for here). Returns false with *error if the user code failed.
  virtual bool Finish(Emitter& out, std::string* error);
  // Non-empty once the user code has failed (e.g. its process died); the runner then stops feeding
  // it and fails the attempt with this text.
  virtual std::string Failure() const;
  // The reduce partition of a key (default: PartitionOf, the stable FNV-1a hash).
  virtual int64_t Partition(std::string_view key, int64_t num_partitions);
  // Called once per input line (without its newline).
  virtual void Map(std::string_view line, const MapContext& ctx, Emitter& out) = 0;
  // Whether Combine may be applied to map output (it must be associative and commutative, and
  // emit values Reduce accepts).
  virtual bool HasCombiner() const { return false; }
  // What the combiner computes, when HasCombiner() and it is known (see CombinerKind).
  virtual CombinerKind KnownCombiner() const { return CombinerKind::kOpaque; }
  // Merges some values of one key into fewer; emits under the same key. Combine is called for the
  // keys of one sorted batch in key order, then FlushCombine once (streaming combiners emit there).
  virtual void Combine(std::string_view key, ValueStream& values, Emitter& out);
  virtual bool FlushCombine(Emitter& out, std::string* error);
  // Moves user counters ("GROUP/NAME" -> amount) added since the last call into *into (adding).
  virtual void TakeCounters(Counters* into);
  // Called once per distinct key, keys in bytewise order.
  virtual void Reduce(std::string_view key, ValueStream& values, Emitter& out) = 0;
};

}  // namespace zmr
