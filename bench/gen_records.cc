// gen_records: deterministic 100-byte text records for the sort benchmark (bench/run.sh), in the
// spirit of gensort -a.
//
//   gen_records --out FILE --records N [--seed X]
//
// Each record is one line of exactly 100 bytes: a 10-character key of random [A-Za-z0-9], two
// spaces, the record's index as 32 hex digits, two spaces, 53 filler characters derived from the
// index, '\n'. Keys are what a sort orders by; the index makes every record distinct, so a sort's
// output is one well-defined sequence whatever its stability.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr, "gen_records: %s\nusage: gen_records --out FILE --records N [--seed X]\n",
               why);
  std::exit(2);
}

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr char kKeyChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr int kKeyAlphabet = 62;
constexpr int kRecordBytes = 100;
constexpr int kKeyBytes = 10;
constexpr int kFillerBytes = 53;

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  uint64_t records = 0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) Usage("missing value");
    const char* value = argv[++i];
    if (flag == "--out") out = value;
    else if (flag == "--records") records = std::strtoull(value, nullptr, 10);
    else if (flag == "--seed") seed = std::strtoull(value, nullptr, 10);
    else Usage("unknown flag");
  }
  if (out.empty() || records == 0) Usage("--out and --records are required");
  std::FILE* f = std::fopen(out.c_str(), "wb");
  if (f == nullptr) Usage("cannot write --out");

  std::string buffer;
  buffer.reserve(1 << 20);
  uint64_t state = seed;
  char record[kRecordBytes + 1];
  for (uint64_t r = 0; r < records; ++r) {
    uint64_t bits = SplitMix64(&state);
    uint64_t more = SplitMix64(&state);
    for (int k = 0; k < kKeyBytes; ++k) {
      // 6 bits of randomness per character from two 64-bit draws (10 x 6 = 60 bits).
      if (k == 5) bits = more;
      record[k] = kKeyChars[(bits & 63) % kKeyAlphabet];
      bits >>= 6;
    }
    std::snprintf(record + kKeyBytes, sizeof(record) - kKeyBytes, "  %032llX  ",
                  static_cast<unsigned long long>(r));
    char* filler = record + kKeyBytes + 2 + 32 + 2;
    for (int k = 0; k < kFillerBytes; ++k) {
      filler[k] = static_cast<char>('A' + (r + static_cast<uint64_t>(k)) % 26);
    }
    record[kRecordBytes - 1] = '\n';
    buffer.append(record, kRecordBytes);
    if (buffer.size() >= (1u << 20)) {
      if (std::fwrite(buffer.data(), 1, buffer.size(), f) != buffer.size()) Usage("write failed");
      buffer.clear();
    }
  }
  if (std::fwrite(buffer.data(), 1, buffer.size(), f) != buffer.size() || std::fclose(f) != 0) {
    Usage("write failed");
  }
  return 0;
}
