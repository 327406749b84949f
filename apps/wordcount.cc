// wordcount: every maximal run of ASCII letters, lower-cased, counted. The reducer doubles as the
// combiner. The mapper lower-cases into one reused buffer and emits views of it: no allocation per
// word.
#include <zmr/api.h>

#include <string>
#include <string_view>

#include "apps/builtin.h"
#include "apps/text.h"

namespace zmr::apps {
namespace {

class WordCountMapper final : public api::Mapper {
 public:
  void Map(std::string_view line, api::Context& ctx) override {
    ForEachWord(line, &word_, [&](std::string_view word) { ctx.Emit(word, "1"); });
  }

 private:
  std::string word_;  // reused lower-case buffer
};

}  // namespace

const api::PluginInfo& WordCountPluginInfo() {
  static constexpr api::PluginInfo kInfo =
      api::MakePluginInfo<WordCountMapper, SumReducer, SumReducer>("wordcount");
  return kInfo;
}

}  // namespace zmr::apps

#ifdef ZMR_PLUGIN_BUILD
ZMR_PLUGIN("wordcount", zmr::apps::WordCountMapper, zmr::apps::SumReducer, zmr::apps::SumReducer);
#endif
