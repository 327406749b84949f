// The sort app's rules, shared by the app itself (apps/sort.cc, also built as a plugin) and the
// submission side that samples the input (apps/sort_sampler.h, apps/registry.cc): what a line's key
// is, how split points are written in the job's params, and which partition a key belongs to.
// Header-only and dependent on the standard library alone, so the plugin build compiles its own
// copy. Pure functions; callable from any thread.
//
// Params of the sort app:
//   key_bytes     the key is the first key_bytes bytes of a line (a shorter line's key is the whole
//                 line); a decimal integer in [1, kMaxKeyBytes], default kDefaultKeyBytes.
//   split_points  the range partitioner's boundaries: keys written as lower-case hex, separated by
//                 ',' (empty: none), strictly increasing bytewise, at most R-1 of them. Partition i
//                 holds the keys k with points[i-1] <= k < points[i]. `zmr submit` fills it in by
//                 sampling the input when R > 1 and it was not given.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zmr::apps::sort {

inline constexpr const char* kAppName = "sort";
inline constexpr const char* kKeyBytesParam = "key_bytes";
inline constexpr const char* kSplitPointsParam = "split_points";
inline constexpr std::size_t kDefaultKeyBytes = 10;
inline constexpr std::size_t kMaxKeyBytes = 4096;

// The key of a line (the line without its terminator).
inline std::string_view KeyOf(std::string_view line, std::size_t key_bytes) {
  return line.substr(0, std::min(line.size(), key_bytes));
}

// Reads the key_bytes param (nullptr: absent, the default) into *key_bytes. Returns the one-line
// error, or "" when it is valid.
inline std::string ParseKeyBytes(const std::string* text, std::size_t* key_bytes) {
  *key_bytes = kDefaultKeyBytes;
  if (text == nullptr) return {};
  const std::string bad = "app 'sort': key_bytes must be an integer from 1 to " +
                          std::to_string(kMaxKeyBytes) + ", got '" + *text + "'";
  if (text->empty() || text->size() > 5) return bad;
  std::size_t n = 0;
  for (char c : *text) {
    if (c < '0' || c > '9') return bad;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  if (n < 1 || n > kMaxKeyBytes) return bad;
  *key_bytes = n;
  return {};
}

// The split_points param for these points (each key as hex, joined by ',').
inline std::string EncodeSplitPoints(const std::vector<std::string>& points) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (const std::string& point : points) {
    if (!text.empty()) text += ',';
    for (unsigned char c : point) {
      text += kHex[c >> 4];
      text += kHex[c & 15];
    }
  }
  return text;
}

// Parses the split_points param into *points. Returns the one-line error ("" when valid): bad hex,
// an empty point, or points not strictly increasing.
inline std::string ParseSplitPoints(std::string_view text, std::vector<std::string>* points) {
  points->clear();
  if (text.empty()) return {};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    std::string_view hex = text.substr(start, comma == std::string_view::npos ? text.npos
                                                                             : comma - start);
    const std::string where = "app 'sort': split point " + std::to_string(points->size() + 1);
    if (hex.empty() || hex.size() % 2 != 0) {
      return where + " is not a non-empty even-length hex string";
    }
    std::string point;
    point.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      int hi = nibble(hex[i]);
      int lo = nibble(hex[i + 1]);
      if (hi < 0 || lo < 0) return where + " has a character that is not hex";
      point += static_cast<char>(hi * 16 + lo);
    }
    if (!points->empty() && !(points->back() < point)) {
      return where + " does not sort after the previous one (split points must increase)";
    }
    points->push_back(std::move(point));
    if (comma == std::string_view::npos) return {};
    start = comma + 1;
  }
}

// The partition of `key`: the number of split points <= key (so 0..points.size()). Monotone in the
// key. Requires points sorted strictly increasing.
inline std::size_t PartitionOfKey(const std::vector<std::string>& points, std::string_view key) {
  auto it = std::upper_bound(points.begin(), points.end(), key,
                             [](std::string_view k, const std::string& p) { return k < p; });
  return static_cast<std::size_t>(it - points.begin());
}

// Checks the sort app's params for a job with `reduces` reduce tasks (-1: not known here). Returns
// the one-line error, or "" when the job can run.
inline std::string CheckParams(const std::string* key_bytes, const std::string* split_points,
                               int64_t reduces) {
  std::size_t n = 0;
  std::string error = ParseKeyBytes(key_bytes, &n);
  if (!error.empty()) return error;
  std::vector<std::string> points;
  if (split_points != nullptr) {
    error = ParseSplitPoints(*split_points, &points);
    if (!error.empty()) return error;
  }
  if (reduces < 0) return {};
  if (reduces == 0) {
    return "app 'sort' needs at least one reduce (its output is sorted by the reduces)";
  }
  if (reduces > 1 && split_points == nullptr) {
    return "app 'sort' with " + std::to_string(reduces) + " reduces needs the parameter " +
           "split_points (zmr submit computes it by sampling the input)";
  }
  if (static_cast<int64_t>(points.size()) > reduces - 1) {
    return "app 'sort': " + std::to_string(points.size()) + " split points for " +
           std::to_string(reduces) + " reduces (at most " + std::to_string(reduces - 1) + ")";
  }
  return {};
}

}  // namespace zmr::apps::sort
