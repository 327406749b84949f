// An example zmr plugin: word count without stop words.
//
//   g++ -std=c++17 -O2 -shared -fPIC -I/path/to/zmr/include stopwords.cc -o libstopwords.so
//   zmr submit --plugin ./libstopwords.so --app stopwords --param stopwords=the,a,of
//       --input /data/books --output /data/out --wait      (one command line)
//
// Words are maximal runs of ASCII letters, lower-cased. The parameter `stopwords` (comma-separated,
// default below) lists words to skip; `min_length` (default 1) skips shorter words. Skipped words
// are counted in the user counter "stopwords/SKIPPED". See README.md in this directory.
#include <zmr/api.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

class StopWordsMapper : public zmr::api::Mapper {
 public:
  // Reads the parameters once per attempt. A bad parameter fails the attempt with this message.
  void Setup(zmr::api::Context& ctx) override {
    std::string_view list = ctx.HasParam("stopwords") ? ctx.Param("stopwords")
                                                       : std::string_view("a,an,and,in,of,the,to");
    while (!list.empty()) {
      std::string_view::size_type comma = list.find(',');
      std::string_view word = list.substr(0, comma);
      if (!word.empty()) stop_words_.emplace(word);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
    if (ctx.HasParam("min_length")) {
      std::string_view text = ctx.Param("min_length");
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), min_length_);
      if (ec != std::errc() || end != text.data() + text.size() || min_length_ < 1) {
        throw std::invalid_argument("min_length must be a positive integer, got '" +
                                    std::string(text) + "'");
      }
    }
  }

  void Map(std::string_view line, zmr::api::Context& ctx) override {
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && !std::isalpha(static_cast<unsigned char>(line[i]))) ++i;
      word_.clear();
      while (i < line.size() && std::isalpha(static_cast<unsigned char>(line[i]))) {
        word_ += static_cast<char>(std::tolower(static_cast<unsigned char>(line[i])));
        ++i;
      }
      if (word_.empty()) continue;
      if (word_.size() < min_length_ || stop_words_.count(word_) != 0) {
        ctx.IncrementCounter("stopwords", "SKIPPED", 1);
        continue;
      }
      ctx.Emit(word_, "1");  // zmr copies the bytes: reusing word_ is fine
    }
  }

 private:
  std::set<std::string, std::less<>> stop_words_;
  std::size_t min_length_ = 1;
  std::string word_;  // reused between words, so no allocation per word
};

// Sums the counts. It is associative and commutative, so it doubles as the combiner.
class SumReducer : public zmr::api::Reducer {
 public:
  void Reduce(std::string_view key, zmr::api::Values& values, zmr::api::Context& ctx) override {
    int64_t sum = 0;
    std::string_view value;
    while (values.Next(&value)) {
      int64_t n = 0;
      std::from_chars(value.data(), value.data() + value.size(), n);
      sum += n;
    }
    ctx.Emit(key, std::to_string(sum));
  }
};

}  // namespace

// App name, mapper, reducer, combiner (void for none).
ZMR_PLUGIN("stopwords", StopWordsMapper, SumReducer, SumReducer);
