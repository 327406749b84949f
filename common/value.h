// A dynamic value mirroring the msgpack data model (nil, bool, integer, float, string, array, map
// with string keys). Every wire message and every event is a Value map before it is packed; the
// client prints Values as JSON. Plain data: safe to copy and move between threads, not to share
// mutably.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace zmr {

class Value;
// Raw bytes: packed as msgpack bin (not str), for file contents that need not be UTF-8.
struct Binary {
  std::string data;
  bool operator==(const Binary&) const = default;
};
using Array = std::vector<Value>;
// A map keeps insertion order, so JSON output has a stable, readable key order.
using Map = std::vector<std::pair<std::string, Value>>;

class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(long i) : v_(static_cast<int64_t>(i)) {}
  Value(long long i) : v_(static_cast<int64_t>(i)) {}
  Value(unsigned i) : v_(static_cast<int64_t>(i)) {}
  Value(unsigned long i) : v_(static_cast<int64_t>(i)) {}
  Value(unsigned long long i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Binary b) : v_(std::move(b)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Map m) : v_(std::move(m)) {}

  bool is_nil() const { return v_.index() == 0; }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_binary() const { return std::holds_alternative<Binary>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_map() const { return std::holds_alternative<Map>(v_); }

  // Accessors require the matching type (check with is_*() first); as_double() accepts ints too.
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const {
    return is_int() ? static_cast<double>(std::get<int64_t>(v_)) : std::get<double>(v_);
  }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const std::string& as_binary() const { return std::get<Binary>(v_).data; }
  const Array& as_array() const { return std::get<Array>(v_); }
  Array& as_array() { return std::get<Array>(v_); }
  const Map& as_map() const { return std::get<Map>(v_); }
  Map& as_map() { return std::get<Map>(v_); }

  // Map lookup: nullptr when this is not a map or has no such key.
  const Value* Find(std::string_view key) const;
  // Map insert-or-replace; turns a nil Value into a map first.
  void Set(std::string key, Value value);

  bool operator==(const Value& other) const = default;

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Binary, Array, Map> v_;
};

// msgpack bytes of a value. Never fails.
std::string Pack(const Value& value);

// Decodes exactly one msgpack object filling all of `bytes`. Returns nullopt (and sets *error) for
// anything malformed: truncated or trailing bytes, non-string map keys, ext types, integers beyond
// int64, nesting deeper than 32, or containers larger than the limits. Never throws.
std::optional<Value> Unpack(std::string_view bytes, std::string* error);

// Compact JSON (one line). Binary values print as {"bytes": N}. Strings are emitted as UTF-8 with control characters escaped; invalid
// UTF-8 bytes are replaced with U+FFFD so the output always parses.
std::string ToJson(const Value& value);

// Field readers for decoding messages: each returns false and fills *error when the key is
// missing or of the wrong type.
bool ReadString(const Value& map, std::string_view key, std::string* out, std::string* error);
bool ReadInt(const Value& map, std::string_view key, int64_t* out, std::string* error);
bool ReadDouble(const Value& map, std::string_view key, double* out, std::string* error);
bool ReadBool(const Value& map, std::string_view key, bool* out, std::string* error);
// Accepts msgpack bin or str.
bool ReadBytes(const Value& map, std::string_view key, std::string* out, std::string* error);
// Optional variants leave *out untouched when the key is absent or nil, and fail on a wrong type.
bool ReadOptString(const Value& map, std::string_view key, std::string* out, std::string* error);
bool ReadOptInt(const Value& map, std::string_view key, int64_t* out, std::string* error);
bool ReadOptDouble(const Value& map, std::string_view key, double* out, std::string* error);
bool ReadOptBool(const Value& map, std::string_view key, bool* out, std::string* error);

}  // namespace zmr
