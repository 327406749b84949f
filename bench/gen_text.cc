// gen_text: deterministic English-like text for the word-count benchmarks (bench/run.sh).
//
//   gen_text --out DIR --bytes N [--files F] [--vocab V] [--zipf S] [--seed X]
//
// Writes DIR/part-000.txt .. part-(F-1).txt, together N bytes rounded up to whole lines (each file
// gets N/F bytes, plus less than one line), and DIR/_MANIFEST with the parameters and the number
// of words written (a leading '_' keeps it out of zmr's inputs). The text is unambiguous to
// tokenise: lower-case ASCII words separated by single spaces, lines of 60..100 characters ended
// by '\n', so "a maximal run of ASCII letters" (zmr's wordcount) and "split on whitespace" (awk,
// tr, Python's str.split) see the same words.
//
// Words: rank r of a vocabulary of V words is spelled from consonant-vowel syllables (100 of
// them, all two letters, so spellings are uniquely decodable: distinct ranks give distinct
// words); low ranks get short words, as in English. A rank is drawn from a Zipf distribution of
// exponent S over 1..V (S = 0: uniform, which needs no table and suits very large V for the
// high-cardinality memory benchmark). The generator is a fixed xoshiro256** seeded with splitmix64,
// so the same flags give the same bytes on every machine.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

namespace {

struct Options {
  std::string out;
  uint64_t bytes = 0;
  int files = 8;
  uint64_t vocab = 100000;
  double zipf = 1.0;
  uint64_t seed = 1;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "gen_text: %s\nusage: gen_text --out DIR --bytes N [--files F] [--vocab V] "
               "[--zipf S] [--seed X]\n",
               why);
  std::exit(2);
}

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman and Vigna), enough quality for text and fully specified.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& word : s_) word = SplitMix64(&seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) (n > 0); the bias of the plain modulo is far below anything measurable here.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

constexpr char kConsonants[] = "bcdfghjklmnprstvwxyz";  // 20
constexpr char kVowels[] = "aeiou";                      // 5
constexpr uint64_t kSyllables = 100;

// Appends the spelling of rank r (0-based) to *out: bijective base-100 numeration, so ranks
// 0..99 are one syllable, the next 10,000 two, and so on; within one length the rank is scrambled
// by an odd multiplier coprime to 100 (a bijection modulo 100^k) so that neighbouring ranks do not
// look alike.
void AppendWord(uint64_t r, std::string* out) {
  int len = 1;
  uint64_t block = kSyllables;  // number of words of length `len`
  while (r >= block) {
    r -= block;
    ++len;
    block *= kSyllables;
  }
  const uint64_t scrambled =
      static_cast<uint64_t>((static_cast<unsigned __int128>(r) * 7919u + 13u) % block);
  uint64_t v = scrambled;
  for (int i = 0; i < len; ++i) {
    const uint64_t syllable = v % kSyllables;
    v /= kSyllables;
    out->push_back(kConsonants[syllable / 5]);
    out->push_back(kVowels[syllable % 5]);
  }
}

// Draws ranks 0..V-1: Zipf(s) by binary search in a cumulative table, or uniform when s == 0.
class RankSampler {
 public:
  RankSampler(uint64_t vocab, double s) : vocab_(vocab) {
    if (s == 0) return;
    cdf_.resize(vocab);
    double sum = 0;
    for (uint64_t i = 0; i < vocab; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  uint64_t Draw(Rng* rng) const {
    if (cdf_.empty()) return rng->Below(vocab_);
    const double u = rng->NextDouble();
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return it == cdf_.end() ? vocab_ - 1 : static_cast<uint64_t>(it - cdf_.begin());
  }

 private:
  uint64_t vocab_;
  std::vector<double> cdf_;  // empty: uniform
};

constexpr size_t kMinLine = 60;
constexpr size_t kMaxLine = 100;

bool WriteAll(std::FILE* f, const std::string& data) {
  return std::fwrite(data.data(), 1, data.size(), f) == data.size();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) Usage("missing value");
    const char* value = argv[++i];
    if (flag == "--out") o.out = value;
    else if (flag == "--bytes") o.bytes = std::strtoull(value, nullptr, 10);
    else if (flag == "--files") o.files = std::atoi(value);
    else if (flag == "--vocab") o.vocab = std::strtoull(value, nullptr, 10);
    else if (flag == "--zipf") o.zipf = std::strtod(value, nullptr);
    else if (flag == "--seed") o.seed = std::strtoull(value, nullptr, 10);
    else Usage("unknown flag");
  }
  if (o.out.empty() || o.bytes == 0) Usage("--out and --bytes are required");
  if (o.files < 1 || o.vocab < 1 || o.zipf < 0) Usage("bad --files, --vocab or --zipf");
  if (o.zipf > 0 && o.vocab > 50000000) Usage("--vocab above 50,000,000 needs --zipf 0");
  if (mkdir(o.out.c_str(), 0755) != 0 && errno != EEXIST) Usage("cannot create --out");

  Rng rng(o.seed);
  RankSampler sampler(o.vocab, o.zipf);
  uint64_t words = 0;
  std::string pending;  // a drawn word that did not fit the previous line
  std::string line;
  std::string buffer;
  for (int file = 0; file < o.files; ++file) {
    const uint64_t target = o.bytes / o.files + (static_cast<uint64_t>(file) < o.bytes % o.files);
    char name[32];
    std::snprintf(name, sizeof(name), "/part-%03d.txt", file);
    const std::string path = o.out + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) Usage("cannot write an output file");
    uint64_t written = 0;
    while (written < target) {
      // One line: words until its length reaches a length drawn from [60, 100], never above 100.
      const size_t want = kMinLine + rng.Below(kMaxLine - kMinLine + 1);
      line.clear();
      for (;;) {
        if (pending.empty()) AppendWord(sampler.Draw(&rng), &pending);
        if (!line.empty() && line.size() + 1 + pending.size() > kMaxLine) break;
        if (!line.empty()) line.push_back(' ');
        line += pending;
        pending.clear();
        ++words;
        if (line.size() >= want) break;
      }
      line.push_back('\n');
      buffer += line;
      written += line.size();
      if (buffer.size() >= (1u << 20)) {
        if (!WriteAll(f, buffer)) Usage("write failed");
        buffer.clear();
      }
    }
    if (!WriteAll(f, buffer) || std::fclose(f) != 0) Usage("write failed");
    buffer.clear();
  }
  const std::string manifest = o.out + "/_MANIFEST";
  std::FILE* m = std::fopen(manifest.c_str(), "w");
  if (m == nullptr) Usage("cannot write _MANIFEST");
  std::fprintf(m, "bytes=%llu\nfiles=%d\nvocab=%llu\nzipf=%g\nseed=%llu\nwords=%llu\n",
               static_cast<unsigned long long>(o.bytes), o.files,
               static_cast<unsigned long long>(o.vocab), o.zipf,
               static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(words));
  std::fclose(m);
  return 0;
}
