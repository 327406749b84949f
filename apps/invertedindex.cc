// invertedindex: for every word, the sorted, de-duplicated list of the base names of the files it
// occurs in ("a.txt,b.txt"). The reducer doubles as the combiner (it accepts its own output).
#include <zmr/api.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "apps/builtin.h"
#include "apps/text.h"

namespace zmr::apps {
namespace {

class InvertedIndexMapper final : public api::Mapper {
 public:
  // Emits each distinct word of the line once, with the file's base name.
  void Map(std::string_view line, api::Context& ctx) override {
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
    const std::string_view name = ctx.InputName();
    for (std::string_view word : words_) ctx.Emit(word, name);
  }

 private:
  std::string lower_;                    // the current line, letters lower-cased, others 0
  std::vector<std::string_view> words_;  // views into lower_
};

// Values are file names or comma-separated lists of them (combiner output); emits the sorted,
// de-duplicated union as one comma-separated list.
class NameListReducer final : public api::Reducer {
 public:
  void Reduce(std::string_view key, api::Values& values, api::Context& ctx) override {
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
    ctx.Emit(key, joined_);
  }

 private:
  std::vector<std::string> names_;  // copies: value views die at the next Values::Next
  std::string joined_;
};

}  // namespace

const api::PluginInfo& InvertedIndexPluginInfo() {
  static constexpr api::PluginInfo kInfo =
      api::MakePluginInfo<InvertedIndexMapper, NameListReducer, NameListReducer>("invertedindex");
  return kInfo;
}

}  // namespace zmr::apps

#ifdef ZMR_PLUGIN_BUILD
ZMR_PLUGIN("invertedindex", zmr::apps::InvertedIndexMapper, zmr::apps::NameListReducer,
           zmr::apps::NameListReducer);
#endif
