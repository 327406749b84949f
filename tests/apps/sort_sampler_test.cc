#include "apps/sort_sampler.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/sort_keys.h"

namespace zmr {
namespace {

namespace fs = std::filesystem;

// Input files written for one test case under a fresh directory, removed at the end.
class SampleInputs {
 public:
  SampleInputs() {
    static int counter = 0;
    dir_ = fs::temp_directory_path() / ("zmr_sampler_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~SampleInputs() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  SampleInputs(const SampleInputs&) = delete;
  SampleInputs& operator=(const SampleInputs&) = delete;

  // Adds a file holding `content` to the inputs (in the order added).
  void Add(const std::string& content) {
    const fs::path path = dir_ / ("in-" + std::to_string(files_.size()) + ".txt");
    std::ofstream(path, std::ios::binary) << content;
    files_.push_back(InputFile{path.string(), static_cast<int64_t>(content.size())});
  }
  const std::vector<InputFile>& files() const { return files_; }

 private:
  fs::path dir_;
  std::vector<InputFile> files_;
};

std::vector<std::string> Sample(const SampleInputs& in, std::size_t key_bytes,
                                SampleOptions options = {}) {
  std::vector<std::string> keys;
  std::string error;
  REQUIRE_MESSAGE(SampleKeys(in.files(), key_bytes, options, &keys, &error), error);
  return keys;
}

using Keys = std::vector<std::string>;

TEST_CASE("a small input is sampled whole: every line's key once, in input order") {
  SampleInputs in;
  in.Add("banana split\napple pie\r\nab\r\n\nzebra");
  in.Add("");
  in.Add("cherry tart\n");
  CHECK(Sample(in, 5) == Keys{"banan", "apple", "ab", "", "zebra", "cherr"});
  CHECK(Sample(in, 100) ==
        Keys{"banana split", "apple pie", "ab", "", "zebra", "cherry tart"});
}

TEST_CASE("a large input is sampled at spread-out places, a bounded number of keys from each") {
  SampleInputs in;
  // 100,000 lines "NNNNNNN rest": keys 0000000 .. 0099999 in order, 13 bytes each.
  std::string text;
  for (int i = 0; i < 100000; ++i) {
    char line[32];
    std::snprintf(line, sizeof line, "%07d rest\n", i);
    text += line;
  }
  in.Add(text.substr(0, 650000));
  in.Add(text.substr(650000));
  SampleOptions options;
  options.regions = 50;
  options.keys_per_region = 20;
  const Keys keys = Sample(in, 7, options);
  CHECK(keys.size() == 50 * 20);
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  CHECK(std::adjacent_find(keys.begin(), keys.end()) == keys.end());  // no line read twice
  // Region r starts at line 2000 r: the first key of each region is that line (the regions are
  // line-aligned here, 26,000 bytes each), in whichever file it falls.
  for (int r = 0; r < 50; ++r) {
    char want[16];
    std::snprintf(want, sizeof want, "%07d", 2000 * r);
    CHECK(keys[static_cast<std::size_t>(r) * 20] == want);
  }
}

TEST_CASE("a region starting mid-line samples from the next line, and long lines stop a region") {
  SampleInputs in;
  in.Add("aaaa\nbbbb\ncccc\ndddd\n");  // 20 bytes, two regions of 10: [0,10) and [10,20)
  SampleOptions options;
  options.regions = 2;
  CHECK(Sample(in, 2, options) == Keys{"aa", "bb", "cc", "dd"});
  options.regions = 3;  // [0,6) [6,13) [13,20): lines start at 0, 5 | 10 | 15
  CHECK(Sample(in, 2, options) == Keys{"aa", "bb", "cc", "dd"});
  // Only the first bytes of each region are read: [0,5) "aaaa\n", [5,10) "bbbb\n" (no line
  // starts after its newline within the region), [12,17) "cc\ndd": "dd" is cut but its key whole.
  options.region_read_bytes = 4;
  CHECK(Sample(in, 2, options) == Keys{"aa", "dd"});
  CHECK(Sample(in, 3, options) == Keys{"aaa"});  // "dd" is cut before its third byte
}

TEST_CASE("an empty input gives no sample and no split points; a missing file is an error") {
  SampleInputs in;
  CHECK(Sample(in, 10).empty());
  in.Add("");
  CHECK(Sample(in, 10).empty());
  CHECK(ChooseSplitPoints({}, 4).empty());

  std::vector<InputFile> missing = {{"/nonexistent/zmr-sampler-input", 10}};
  std::vector<std::string> keys;
  std::string error;
  CHECK_FALSE(SampleKeys(missing, 10, {}, &keys, &error));
  CHECK(error.find("/nonexistent/zmr-sampler-input") != std::string::npos);
}

TEST_CASE("split points are the R-1 quantiles of the sorted sample") {
  Keys samples;
  for (char c = 'j'; c >= 'a'; --c) samples.push_back(std::string(1, c));  // 10 keys, reversed
  CHECK(ChooseSplitPoints(samples, 2) == Keys{"f"});
  CHECK(ChooseSplitPoints(samples, 5) == Keys{"c", "e", "g", "i"});
  CHECK(ChooseSplitPoints(samples, 10) == Keys{"b", "c", "d", "e", "f", "g", "h", "i", "j"});
  CHECK(ChooseSplitPoints(samples, 1).empty());
}

TEST_CASE("duplicate samples never give equal split points, and few distinct keys give fewer") {
  CHECK(ChooseSplitPoints(Keys(100, "same"), 4) == Keys{"same"});
  // 90% one key: the quantiles inside the run move up to the next larger key.
  Keys skewed(90, "m");
  for (int i = 0; i < 5; ++i) skewed.push_back("a");
  for (int i = 0; i < 5; ++i) skewed.push_back("z");
  CHECK(ChooseSplitPoints(skewed, 4) == Keys{"m", "z"});
  // More partitions than distinct keys.
  CHECK(ChooseSplitPoints(Keys{"x", "y"}, 8) == Keys{"x", "y"});
  CHECK(ChooseSplitPoints(Keys{"only"}, 3) == Keys{"only"});
  const Keys points = ChooseSplitPoints(skewed, 50);
  CHECK(std::adjacent_find(points.begin(), points.end(),
                           [](const std::string& a, const std::string& b) { return !(a < b); }) ==
        points.end());
}

TEST_CASE("split points survive the trip through the split_points param, any bytes") {
  const Keys points = {std::string("\0\x01", 2), "A,b", "\xff\xfe"};
  const std::string text = apps::sort::EncodeSplitPoints(points);
  CHECK(text == "0001,412c62,fffe");
  Keys back;
  CHECK(apps::sort::ParseSplitPoints(text, &back).empty());
  CHECK(back == points);
  CHECK(apps::sort::ParseSplitPoints("", &back).empty());
  CHECK(back.empty());
  CHECK(apps::sort::ParseSplitPoints("0g", &back).find("not hex") != std::string::npos);
  CHECK(apps::sort::ParseSplitPoints("61,,62", &back).find("point 2") != std::string::npos);
  CHECK(apps::sort::ParseSplitPoints("abc", &back).find("even-length") != std::string::npos);
  CHECK(apps::sort::ParseSplitPoints("62,61", &back).find("increase") != std::string::npos);
  CHECK(apps::sort::ParseSplitPoints("61,61", &back).find("increase") != std::string::npos);
}

}  // namespace
}  // namespace zmr
