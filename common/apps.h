// The built-in MapReduce apps (wordcount, grep, invertedindex) behind one interface. The worker's
// task runner calls them; the coordinator and client use ValidateApp at submission. An App instance
// belongs to one task attempt (one thread).
#pragma once

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

struct MapContext {
  std::string_view input_path;   // full path of the file the line came from
  std::string_view input_name;   // its base name
};

class App {
 public:
  virtual ~App() = default;
  // Called once per input line (without its newline).
  virtual void Map(std::string_view line, const MapContext& ctx, Emitter& out) = 0;
  // Whether Combine may be applied to map output (it must be associative and commutative, and
  // emit values Reduce accepts).
  virtual bool HasCombiner() const { return false; }
  // Merges some values of one key into fewer; emits under the same key.
  virtual void Combine(std::string_view key, ValueStream& values, Emitter& out);
  // Called once per distinct key, keys in bytewise order.
  virtual void Reduce(std::string_view key, ValueStream& values, Emitter& out) = 0;
};

// Names of the built-in apps, sorted.
std::vector<std::string> BuiltinAppNames();

// Checks an app name and its params (e.g. grep needs a valid ECMAScript `pattern`).
// Returns false with a one-line *error otherwise.
bool ValidateApp(const std::string& name, const Params& params, std::string* error);

// Creates an app instance; nullptr with *error when ValidateApp would fail.
std::unique_ptr<App> MakeApp(const std::string& name, const Params& params, std::string* error);

}  // namespace zmr
