#include "common/value.h"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace zmr {

namespace {

constexpr int kMaxDepth = 32;
// Upper bounds on what one message may declare; a peer cannot make us allocate more than this.
constexpr std::size_t kMaxContainerItems = 1 << 22;
constexpr std::size_t kMaxStringBytes = 1 << 30;

void PackValue(msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer* buf_, const Value& v) {
  if (v.is_nil()) {
    pk.pack_nil();
  } else if (v.is_bool()) {
    v.as_bool() ? pk.pack_true() : pk.pack_false();
  } else if (v.is_int()) {
    pk.pack_int64(v.as_int());
  } else if (v.is_double()) {
    // Always a float64 on the wire: msgpack-c's pack_double would turn 1.0 into the integer 1
    // (and 2^63..2^64 into a uint64 our own Unpack refuses).
    double d = v.as_double();
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    char buf[9];
    buf[0] = static_cast<char>(0xcb);
    for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    buf_->write(buf, sizeof(buf));
  } else if (v.is_string()) {
    const std::string& s = v.as_string();
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  } else if (v.is_binary()) {
    const std::string& b = v.as_binary();
    pk.pack_bin(static_cast<uint32_t>(b.size()));
    pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
  } else if (v.is_array()) {
    pk.pack_array(static_cast<uint32_t>(v.as_array().size()));
    for (const Value& item : v.as_array()) PackValue(pk, buf_, item);
  } else {
    pk.pack_map(static_cast<uint32_t>(v.as_map().size()));
    for (const auto& [key, item] : v.as_map()) {
      pk.pack_str(static_cast<uint32_t>(key.size()));
      pk.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
      PackValue(pk, buf_, item);
    }
  }
}

bool Convert(const msgpack::object& o, int depth, Value* out, std::string* error) {
  if (depth > kMaxDepth) {
    *error = "nesting too deep";
    return false;
  }
  switch (o.type) {
    case msgpack::type::NIL:
      *out = Value();
      return true;
    case msgpack::type::BOOLEAN:
      *out = Value(o.via.boolean);
      return true;
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        *error = "integer out of range";
        return false;
      }
      *out = Value(static_cast<int64_t>(o.via.u64));
      return true;
    case msgpack::type::NEGATIVE_INTEGER:
      *out = Value(static_cast<int64_t>(o.via.i64));
      return true;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      *out = Value(o.via.f64);
      return true;
    case msgpack::type::STR:
      *out = Value(std::string(o.via.str.ptr, o.via.str.size));
      return true;
    case msgpack::type::BIN:
      *out = Value(Binary{std::string(o.via.bin.ptr, o.via.bin.size)});
      return true;
    case msgpack::type::ARRAY: {
      Array items;
      items.reserve(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i) {
        Value item;
        if (!Convert(o.via.array.ptr[i], depth + 1, &item, error)) return false;
        items.push_back(std::move(item));
      }
      *out = Value(std::move(items));
      return true;
    }
    case msgpack::type::MAP: {
      Map items;
      items.reserve(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object_kv& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) {
          *error = "map key is not a string";
          return false;
        }
        Value item;
        if (!Convert(kv.val, depth + 1, &item, error)) return false;
        items.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), std::move(item));
      }
      *out = Value(std::move(items));
      return true;
    }
    default:
      *error = "unsupported msgpack type";
      return false;
  }
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Validate one UTF-8 sequence strictly (RFC 3629: no overlong forms, no surrogates, nothing
    // above U+10FFFF); copy it through if well formed, else emit U+FFFD.
    int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len >= 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      if (c == 0xE0) ok = c1 >= 0xA0;        // overlong 3-byte
      if (c == 0xED) ok = c1 <= 0x9F;        // surrogates
      if (c == 0xF0) ok = c1 >= 0x90;        // overlong 4-byte
      if (c == 0xF4) ok = c1 <= 0x8F;        // above U+10FFFF
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  out.push_back('"');
}

void AppendJson(std::string& out, const Value& v) {
  if (v.is_nil()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_double()) {
    double d = v.as_double();
    if (!std::isfinite(d)) {
      out += "null";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", d);
      out += buf;
    }
  } else if (v.is_string()) {
    AppendJsonString(out, v.as_string());
  } else if (v.is_binary()) {
    out += "{\"bytes\":" + std::to_string(v.as_binary().size()) + "}";
  } else if (v.is_array()) {
    out.push_back('[');
    bool first = true;
    for (const Value& item : v.as_array()) {
      if (!first) out.push_back(',');
      first = false;
      AppendJson(out, item);
    }
    out.push_back(']');
  } else {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, item] : v.as_map()) {
      if (!first) out.push_back(',');
      first = false;
      AppendJsonString(out, key);
      out.push_back(':');
      AppendJson(out, item);
    }
    out.push_back('}');
  }
}

const Value* Lookup(const Value& map, std::string_view key, std::string* error) {
  const Value* v = map.Find(key);
  if (v == nullptr || v->is_nil()) {
    *error = "missing field '" + std::string(key) + "'";
    return nullptr;
  }
  return v;
}

bool WrongType(std::string_view key, const char* want, std::string* error) {
  *error = "field '" + std::string(key) + "' is not " + want;
  return false;
}

}  // namespace

const Value* Value::Find(std::string_view key) const {
  if (!is_map()) return nullptr;
  for (const auto& [k, v] : as_map()) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Value::Set(std::string key, Value value) {
  if (is_nil()) v_ = Map{};
  Map& m = as_map();
  for (auto& [k, v] : m) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  m.emplace_back(std::move(key), std::move(value));
}

std::string Pack(const Value& value) {
  msgpack::sbuffer buf(256);  // most messages are small; it doubles as needed
  msgpack::packer<msgpack::sbuffer> pk(buf);
  PackValue(pk, &buf, value);
  return std::string(buf.data(), buf.size());
}

std::optional<Value> Unpack(std::string_view bytes, std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  if (bytes.empty()) {
    *error = "empty message";
    return std::nullopt;
  }
  try {
    std::size_t offset = 0;
    // msgpack-c reserves room for a container as soon as it reads the header, so a few bytes of
    // nested headers could reserve gigabytes: no container may declare more items than there
    // are bytes left to hold them.
    std::size_t items = std::min(kMaxContainerItems, bytes.size());
    msgpack::unpack_limit limit(items, items, kMaxStringBytes, kMaxStringBytes, 0, kMaxDepth);
    msgpack::object_handle handle =
        msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr, limit);
    if (offset != bytes.size()) {
      *error = "trailing bytes after message";
      return std::nullopt;
    }
    Value out;
    if (!Convert(handle.get(), 0, &out, error)) return std::nullopt;
    return out;
  } catch (const std::exception& e) {
    *error = std::string("malformed msgpack: ") + e.what();
    return std::nullopt;
  }
}

std::string ToJson(const Value& value) {
  std::string out;
  AppendJson(out, value);
  return out;
}

bool ReadString(const Value& map, std::string_view key, std::string* out, std::string* error) {
  const Value* v = Lookup(map, key, error);
  if (v == nullptr) return false;
  if (!v->is_string()) return WrongType(key, "a string", error);
  *out = v->as_string();
  return true;
}

bool ReadBytes(const Value& map, std::string_view key, std::string* out, std::string* error) {
  const Value* v = Lookup(map, key, error);
  if (v == nullptr) return false;
  if (v->is_binary()) {
    *out = v->as_binary();
  } else if (v->is_string()) {
    *out = v->as_string();
  } else {
    return WrongType(key, "bytes", error);
  }
  return true;
}

bool ReadInt(const Value& map, std::string_view key, int64_t* out, std::string* error) {
  const Value* v = Lookup(map, key, error);
  if (v == nullptr) return false;
  if (!v->is_int()) return WrongType(key, "an integer", error);
  *out = v->as_int();
  return true;
}

bool ReadDouble(const Value& map, std::string_view key, double* out, std::string* error) {
  const Value* v = Lookup(map, key, error);
  if (v == nullptr) return false;
  if (!v->is_number()) return WrongType(key, "a number", error);
  *out = v->as_double();
  return true;
}

bool ReadBool(const Value& map, std::string_view key, bool* out, std::string* error) {
  const Value* v = Lookup(map, key, error);
  if (v == nullptr) return false;
  if (!v->is_bool()) return WrongType(key, "a boolean", error);
  *out = v->as_bool();
  return true;
}

bool ReadOptString(const Value& map, std::string_view key, std::string* out, std::string* error) {
  const Value* v = map.Find(key);
  if (v == nullptr || v->is_nil()) return true;
  return ReadString(map, key, out, error);
}

bool ReadOptInt(const Value& map, std::string_view key, int64_t* out, std::string* error) {
  const Value* v = map.Find(key);
  if (v == nullptr || v->is_nil()) return true;
  return ReadInt(map, key, out, error);
}

bool ReadOptDouble(const Value& map, std::string_view key, double* out, std::string* error) {
  const Value* v = map.Find(key);
  if (v == nullptr || v->is_nil()) return true;
  return ReadDouble(map, key, out, error);
}

bool ReadOptBool(const Value& map, std::string_view key, bool* out, std::string* error) {
  const Value* v = map.Find(key);
  if (v == nullptr || v->is_nil()) return true;
  return ReadBool(map, key, out, error);
}

}  // namespace zmr
