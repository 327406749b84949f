#include "client/views_read.h"

namespace zmr::client {

std::string GetString(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  return v && v->is_string() ? v->as_string() : std::string();
}

int64_t GetInt(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  if (!v) return 0;
  if (v->is_int()) return v->as_int();
  if (v->is_double()) return static_cast<int64_t>(v->as_double());
  return 0;
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace zmr::client
