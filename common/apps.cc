// The built-in apps. Each Map is written to avoid per-record allocation where it matters
// (wordcount and invertedindex lower-case through a table into a reused buffer); grep uses
// std::regex because its users ask for ECMAScript patterns.
#include "common/apps.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmr {

void App::Combine(std::string_view key, ValueStream& values, Emitter& out) {
  // Identity: a combiner that combines nothing is always correct.
  std::string_view value;
  while (values.Next(&value)) out.Emit(key, value);
}

namespace {

// Maps a byte to its lower-case ASCII letter, or 0 for anything that is not [A-Za-z].
constexpr std::array<char, 256> MakeLetterTable() {
  std::array<char, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = static_cast<char>(c);
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = static_cast<char>(c - 'A' + 'a');
  return table;
}
constexpr std::array<char, 256> kLetter = MakeLetterTable();

inline char LowerLetter(char c) { return kLetter[static_cast<unsigned char>(c)]; }

// Calls fn(word) for every maximal run of ASCII letters in `line`, lower-cased into *buffer (the
// view passed to fn is valid until the next call).
template <typename Fn>
void ForEachWord(std::string_view line, std::string* buffer, Fn&& fn) {
  const std::size_t n = line.size();
  std::size_t i = 0;
  while (i < n) {
    while (i < n && LowerLetter(line[i]) == 0) ++i;
    if (i == n) break;
    std::size_t start = i;
    while (i < n && LowerLetter(line[i]) != 0) ++i;
    buffer->resize(i - start);
    char* dst = buffer->data();
    for (std::size_t j = start; j < i; ++j) *dst++ = LowerLetter(line[j]);
    fn(std::string_view(*buffer));
  }
}

// Sums decimal integer values and emits the sum. A value that is not a decimal integer counts as
// 0 (map output of the built-in apps is always numeric; this keeps garbage from stopping a job).
void EmitSum(std::string_view key, ValueStream& values, Emitter& out) {
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
  out.Emit(key, std::string_view(buf, static_cast<std::size_t>(end - buf)));
}

class WordCountApp : public App {
 public:
  void Map(std::string_view line, const MapContext&, Emitter& out) override {
    ForEachWord(line, &word_, [&](std::string_view word) { out.Emit(word, "1"); });
  }
  bool HasCombiner() const override { return true; }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitSum(key, values, out);
  }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitSum(key, values, out);
  }

 private:
  std::string word_;  // reused lower-case buffer
};

class GrepApp : public App {
 public:
  explicit GrepApp(std::regex pattern) : pattern_(std::move(pattern)) {}

  // std::regex_iterator advances past an empty match by itself (it retries with match_not_null at
  // the same position, then steps one character), so patterns like "a*" terminate. Empty matches
  // are not counted: they carry no text to count.
  void Map(std::string_view line, const MapContext&, Emitter& out) override {
    using Iter = std::regex_iterator<std::string_view::const_iterator>;
    for (Iter it(line.begin(), line.end(), pattern_), end; it != end; ++it) {
      const auto& match = (*it)[0];
      if (match.length() == 0) continue;
      out.Emit(std::string_view(&*match.first, static_cast<std::size_t>(match.length())), "1");
    }
  }
  bool HasCombiner() const override { return true; }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitSum(key, values, out);
  }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitSum(key, values, out);
  }

 private:
  std::regex pattern_;
};

class InvertedIndexApp : public App {
 public:
  // Emits each distinct word of the line once, with the file's base name.
  void Map(std::string_view line, const MapContext& ctx, Emitter& out) override {
    lower_.clear();
    words_.clear();
    // Lower-case the whole line once so the words can be views into one buffer.
    lower_.resize(line.size());
    for (std::size_t i = 0; i < line.size(); ++i) lower_[i] = LowerLetter(line[i]);
    const std::size_t n = lower_.size();
    std::size_t i = 0;
    while (i < n) {
      while (i < n && lower_[i] == 0) ++i;
      if (i == n) break;
      std::size_t start = i;
      while (i < n && lower_[i] != 0) ++i;
      words_.emplace_back(lower_.data() + start, i - start);
    }
    std::sort(words_.begin(), words_.end());
    words_.erase(std::unique(words_.begin(), words_.end()), words_.end());
    for (std::string_view word : words_) out.Emit(word, ctx.input_name);
  }
  bool HasCombiner() const override { return true; }
  void Combine(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitNameList(key, values, out);
  }
  void Reduce(std::string_view key, ValueStream& values, Emitter& out) override {
    EmitNameList(key, values, out);
  }

 private:
  // Values are file names or comma-separated lists of them (combiner output); emits the sorted,
  // de-duplicated union as one comma-separated list.
  void EmitNameList(std::string_view key, ValueStream& values, Emitter& out) {
    names_.clear();
    std::string_view value;
    while (values.Next(&value)) {
      std::size_t pos = 0;
      while (pos <= value.size()) {
        std::size_t comma = value.find(',', pos);
        if (comma == std::string_view::npos) comma = value.size();
        if (comma > pos) names_.emplace_back(value.substr(pos, comma - pos));
        pos = comma + 1;
      }
    }
    std::sort(names_.begin(), names_.end());
    names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
    joined_.clear();
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (i > 0) joined_ += ',';
      joined_ += names_[i];
    }
    out.Emit(key, joined_);
  }

  std::string lower_;                   // the current line, letters lower-cased, others 0
  std::vector<std::string_view> words_;  // views into lower_
  std::vector<std::string> names_;       // copies: value views die at the next ValueStream::Next
  std::string joined_;
};

constexpr const char* kWordCount = "wordcount";
constexpr const char* kGrep = "grep";
constexpr const char* kInvertedIndex = "invertedindex";

std::string KnownAppsText() {
  std::string text;
  for (const std::string& name : BuiltinAppNames()) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

// Compiles grep's pattern; false with a one-line error when it is missing or invalid.
bool CompileGrepPattern(const Params& params, std::regex* out, std::string* error) {
  auto it = params.find("pattern");
  if (it == params.end()) {
    *error = "app 'grep' requires the parameter 'pattern'";
    return false;
  }
  try {
    *out = std::regex(it->second, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    *error = "invalid grep pattern '" + it->second + "': " + e.what();
    return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> BuiltinAppNames() { return {kGrep, kInvertedIndex, kWordCount}; }

bool ValidateApp(const std::string& name, const Params& params, std::string* error) {
  std::string ignored;
  return MakeApp(name, params, error ? error : &ignored) != nullptr;
}

std::unique_ptr<App> MakeApp(const std::string& name, const Params& params, std::string* error) {
  if (name == kWordCount) return std::make_unique<WordCountApp>();
  if (name == kInvertedIndex) return std::make_unique<InvertedIndexApp>();
  if (name == kGrep) {
    std::regex pattern;
    if (!CompileGrepPattern(params, &pattern, error)) return nullptr;
    return std::make_unique<GrepApp>(std::move(pattern));
  }
  *error = "unknown app '" + name + "' (known: " + KnownAppsText() + ")";
  return nullptr;
}

}  // namespace zmr
