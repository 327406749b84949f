// grep: counts every non-empty match of the ECMAScript regular expression in the parameter
// `pattern` (std::regex, because its users ask for ECMAScript patterns). The reducer doubles as
// the combiner.
#include <zmr/api.h>

#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>

#include "apps/builtin.h"
#include "apps/text.h"

namespace zmr::apps {
namespace {

// Compiles grep's pattern into *out; returns the one-line error when it is absent or invalid.
std::string CompilePattern(const std::string* pattern, std::regex* out) {
  if (pattern == nullptr) return "app 'grep' requires the parameter 'pattern'";
  try {
    *out = std::regex(*pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return "invalid grep pattern '" + *pattern + "': " + e.what();
  }
  return {};
}

class GrepMapper final : public api::Mapper {
 public:
  void Setup(api::Context& ctx) override {
    std::string pattern(ctx.Param("pattern"));
    std::string error = CompilePattern(ctx.HasParam("pattern") ? &pattern : nullptr, &pattern_);
    if (!error.empty()) throw std::invalid_argument(error);
  }

  // std::regex_iterator advances past an empty match by itself (it retries with match_not_null at
  // the same position, then steps one character), so patterns like "a*" terminate. Empty matches
  // are not counted: they carry no text to count.
  void Map(std::string_view line, api::Context& ctx) override {
    using Iter = std::regex_iterator<std::string_view::const_iterator>;
    for (Iter it(line.begin(), line.end(), pattern_), end; it != end; ++it) {
      const auto& match = (*it)[0];
      if (match.length() == 0) continue;
      ctx.Emit(std::string_view(&*match.first, static_cast<std::size_t>(match.length())), "1");
    }
  }

 private:
  std::regex pattern_;
};

}  // namespace

std::string GrepPatternError(const std::string* pattern) {
  std::regex ignored;
  return CompilePattern(pattern, &ignored);
}

const api::PluginInfo& GrepPluginInfo() {
  static constexpr api::PluginInfo kInfo =
      api::MakePluginInfo<GrepMapper, SumReducer, SumReducer>("grep");
  return kInfo;
}

}  // namespace zmr::apps

#ifdef ZMR_PLUGIN_BUILD
ZMR_PLUGIN("grep", zmr::apps::GrepMapper, zmr::apps::SumReducer, zmr::apps::SumReducer);
#endif
