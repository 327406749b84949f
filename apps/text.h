// Text helpers shared by the built-in apps: ASCII word splitting without per-word allocation and
// the summing reducer. Header-only so each plugin library compiles its own copy.
#pragma once

#include <zmr/api.h>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace zmr::apps {

// Maps a byte to its lower-case ASCII letter, or 0 for anything that is not [A-Za-z].
constexpr std::array<char, 256> MakeLetterTable() {
  std::array<char, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = static_cast<char>(c);
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = static_cast<char>(c - 'A' + 'a');
  return table;
}
inline constexpr std::array<char, 256> kLetter = MakeLetterTable();

inline char LowerLetter(char c) { return kLetter[static_cast<unsigned char>(c)]; }

// Calls fn(word) for every maximal run of ASCII letters in `line`, lower-cased into *buffer (the
// view passed to fn is valid until the next call). Each byte is looked up once, and *buffer grows
// at most once per line.
template <typename Fn>
void ForEachWord(std::string_view line, std::string* buffer, Fn&& fn) {
  const std::size_t n = line.size();
  if (buffer->size() < n) buffer->resize(n);
  char* const out = buffer->data();
  std::size_t i = 0;
  while (i < n) {
    char c = LowerLetter(line[i]);
    if (c == 0) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    do {
      out[len++] = c;
      ++i;
    } while (i < n && (c = LowerLetter(line[i])) != 0);
    fn(std::string_view(out, len));
  }
}

// Sums decimal integer values and emits the sum; doubles as the combiner. A value that is not a
// decimal integer counts as 0 (map output of the built-in apps is always numeric; this keeps
// garbage from stopping a job).
class SumReducer : public api::Reducer {
 public:
  void Reduce(std::string_view key, api::Values& values, api::Context& ctx) override {
    int64_t sum = 0;
    std::string_view value;
    while (values.Next(&value)) {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec == std::errc() && ptr == value.data() + value.size()) sum += v;
    }
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), sum);
    (void)ec;  // 24 bytes always hold an int64
    ctx.Emit(key, std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }
};

}  // namespace zmr::apps
