#include "runner/intermediate.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace zmr {
namespace {

namespace fs = std::filesystem;

using Records = std::vector<std::pair<std::string, std::string>>;

// The path of `name` in `dir`, as the string the run API takes.
std::string FileIn(const TempDir& dir, const std::string& name) { return (dir / name).string(); }

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void WriteRun(const std::string& path, const Records& records) {
  std::string error;
  auto writer = RunWriter::Create(path, &error);
  REQUIRE_MESSAGE(writer != nullptr, error);
  for (const auto& [key, value] : records) REQUIRE_MESSAGE(writer->Add(key, value, &error), error);
  REQUIRE_MESSAGE(writer->Finish(&error), error);
}

// Reads a whole run; returns false with *error if opening or reading fails.
bool ReadRun(const std::string& path, Records* records, std::string* error) {
  auto reader = RunReader::Open(path, error);
  if (!reader) return false;
  std::string_view key, value;
  while (reader->Next(&key, &value)) records->emplace_back(key, value);
  *error = reader->error();
  return error->empty();
}

std::string RandomString(std::mt19937& rng, std::size_t max_len) {
  std::uniform_int_distribution<std::size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

// Random records sorted by key (bytewise, like the runs).
Records RandomSortedRecords(std::mt19937& rng, std::size_t count, std::size_t max_key,
                            std::size_t max_value) {
  Records records;
  for (std::size_t i = 0; i < count; ++i) {
    records.emplace_back(RandomString(rng, max_key), RandomString(rng, max_value));
  }
  std::stable_sort(records.begin(), records.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return records;
}

// Bit-at-a-time CRC32C, as an independent reference.
uint32_t SlowCrc32c(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return ~crc;
}

TEST_CASE("crc32c matches the standard check value and a bitwise reference") {
  CHECK(Crc32c(0, "123456789", 9) == 0xE3069283u);
  CHECK(Crc32c(0, "", 0) == 0u);
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string data = RandomString(rng, 100);
    uint32_t whole = Crc32c(0, data.data(), data.size());
    CHECK(whole == SlowCrc32c(data));
    std::size_t cut = data.size() / 3;
    uint32_t parts = Crc32c(Crc32c(0, data.data(), cut), data.data() + cut, data.size() - cut);
    CHECK(parts == whole);
  }
}

TEST_CASE("random records written to a run read back identically") {
  TempDir dir;
  std::mt19937 rng(42);
  Records records = RandomSortedRecords(rng, 5000, 20, 300);
  // Keys after every random key (at most 20 bytes): a value larger than both buffers, then empty.
  records.emplace_back(std::string(21, '\xFF') + "big", std::string(3 << 20, 'v'));
  records.emplace_back(std::string(22, '\xFF'), "");
  const std::string path = FileIn(dir, "run.run");
  std::string error;
  {
    auto writer = RunWriter::Create(path, &error);
    REQUIRE(writer != nullptr);
    for (const auto& [key, value] : records) REQUIRE(writer->Add(key, value, &error));
    CHECK(writer->records() == static_cast<int64_t>(records.size()));
    CHECK(fs::exists(path + ".tmp"));
    CHECK_FALSE(fs::exists(path));
    REQUIRE(writer->Finish(&error));
    CHECK_FALSE(fs::exists(path + ".tmp"));
    CHECK(writer->bytes() == static_cast<int64_t>(fs::file_size(path)));
  }
  Records back;
  CHECK_MESSAGE(ReadRun(path, &back, &error), error);
  CHECK(back == records);

  auto reader = RunReader::Open(path, &error);
  REQUIRE(reader != nullptr);
  CHECK(reader->path() == path);
  CHECK(reader->size() == static_cast<int64_t>(fs::file_size(path)));
  std::string_view key, value;
  while (reader->Next(&key, &value)) {
  }
  CHECK(reader->error().empty());
  CHECK(reader->bytes_read() == reader->size());
}

TEST_CASE("an empty run is valid and has no records") {
  TempDir dir;
  const std::string path = FileIn(dir, "empty.run");
  WriteRun(path, {});
  Records back;
  std::string error;
  CHECK_MESSAGE(ReadRun(path, &back, &error), error);
  CHECK(back.empty());
}

TEST_CASE("a run writer rejects a key smaller than the previous one") {
  TempDir dir;
  const std::string path = FileIn(dir, "order.run");
  std::string error;
  auto writer = RunWriter::Create(path, &error);
  REQUIRE(writer != nullptr);
  CHECK(writer->Add("b", "1", &error));
  CHECK(writer->Add("b", "2", &error));  // equal keys are fine
  CHECK_FALSE(writer->Add("a", "3", &error));
  CHECK(error.find("order") != std::string::npos);
  error.clear();
  CHECK(writer->Add("\x80", "", &error));  // bytewise: 0x80 sorts after 'b'
}

TEST_CASE("an unfinished run writer leaves no file behind") {
  TempDir dir;
  const std::string path = FileIn(dir, "abandoned.run");
  std::string error;
  {
    auto writer = RunWriter::Create(path, &error);
    REQUIRE(writer != nullptr);
    CHECK(writer->Add("k", "v", &error));
    CHECK(fs::exists(path + ".tmp"));
  }
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("a run writer whose directory is missing fails with the path") {
  TempDir dir;
  std::string error;
  CHECK(RunWriter::Create(FileIn(dir, "missing/x.run"), &error) == nullptr);
  CHECK(error.find(FileIn(dir, "missing/x.run")) != std::string::npos);
}

TEST_CASE("every truncation of a run is reported as an error naming the file") {
  TempDir dir;
  const std::string good = FileIn(dir, "good.run");
  WriteRun(good, {{"", "x"}, {"alpha", "1"}, {"beta", "22"}, {"beta", "333"}, {"gamma", ""}});
  const std::string bytes = ReadBytes(good);
  const std::string path = FileIn(dir, "cut.run");
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    WriteBytes(path, bytes.substr(0, len));
    Records back;
    std::string error;
    CHECK_FALSE(ReadRun(path, &back, &error));
    CHECK(error.find(path) != std::string::npos);
  }
  WriteBytes(path, bytes.substr(0, bytes.size() - 3));
  Records back;
  std::string error;
  CHECK_FALSE(ReadRun(path, &back, &error));
  CHECK(error == "truncated intermediate file " + path + " (no trailer)");
}

TEST_CASE("a changed byte anywhere in a run is reported as an error naming the file") {
  TempDir dir;
  const std::string good = FileIn(dir, "good.run");
  WriteRun(good, {{"", "x"}, {"alpha", "1"}, {"beta", "22"}, {"beta", "333"}, {"gamma", ""}});
  const std::string bytes = ReadBytes(good);
  const std::string path = FileIn(dir, "flipped.run");
  for (std::size_t pos = 0; pos < bytes.size(); ++pos) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      CAPTURE(pos);
      CAPTURE(static_cast<int>(mask));
      std::string bad = bytes;
      bad[pos] = static_cast<char>(bad[pos] ^ mask);
      WriteBytes(path, bad);
      Records back;
      std::string error;
      CHECK_FALSE(ReadRun(path, &back, &error));
      CHECK(error.find(path) != std::string::npos);
    }
  }
  // A change inside a value is caught by the checksum.
  std::string bad = bytes;
  std::size_t at = bad.find("333");
  REQUIRE(at != std::string::npos);
  bad[at] = '4';
  WriteBytes(path, bad);
  Records back;
  std::string error;
  CHECK_FALSE(ReadRun(path, &back, &error));
  CHECK(error == "corrupt intermediate file " + path + ": checksum mismatch");
}

TEST_CASE("garbage lengths in a run are rejected without allocating them") {
  TempDir dir;
  const std::string path = FileIn(dir, "garbage.run");
  std::string header("ZMRI\x01\x00\x00\x00", 8);
  std::string trailer = std::string("ZMRE") + std::string(12, '\0');
  // A 10-byte varint of 2^63 as the key length, then a varint that never ends.
  for (const std::string& body :
       {std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10),
        std::string(20, '\xFF'), std::string("\x05" "ab", 3), std::string("\x01" "a" "\x7F", 3),
        std::string("\xFF\xFF\xFF\xFF\x0F", 5)}) {
    WriteBytes(path, header + body + trailer);
    Records back;
    std::string error;
    CHECK_FALSE(ReadRun(path, &back, &error));
    CHECK(error.find("corrupt intermediate file " + path) == 0);
  }
  WriteBytes(path, "not a run file at all, just some text that is long enough");
  Records back;
  std::string error;
  CHECK_FALSE(ReadRun(path, &back, &error));
  CHECK(error.find(path) != std::string::npos);
  CHECK_FALSE(ReadRun(FileIn(dir, "does-not-exist.run"), &back, &error));
  CHECK(error.find(FileIn(dir, "does-not-exist.run")) != std::string::npos);
}

TEST_CASE("a merge of sorted runs equals a stable sort of all their records") {
  TempDir dir;
  std::mt19937 rng(1234);
  for (int round = 0; round < 5; ++round) {
    std::uniform_int_distribution<int> run_count(0, 12);
    int n = run_count(rng);
    Records all;
    std::vector<std::unique_ptr<RunReader>> readers;
    for (int r = 0; r < n; ++r) {
      std::uniform_int_distribution<std::size_t> size(0, 400);
      Records records;
      std::size_t count = size(rng);
      // Small key alphabet so equal keys across runs are common.
      std::uniform_int_distribution<int> letter('a', 'e');
      std::uniform_int_distribution<std::size_t> len(0, 3);
      for (std::size_t i = 0; i < count; ++i) {
        std::string key(len(rng), 'a');
        for (char& c : key) c = static_cast<char>(letter(rng));
        records.emplace_back(key, std::string("r").append(std::to_string(r)) + "#" + std::to_string(i));
      }
      std::stable_sort(records.begin(), records.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      const std::string path = FileIn(dir, "run-" + std::to_string(round) + "-" + std::to_string(r));
      WriteRun(path, records);
      all.insert(all.end(), records.begin(), records.end());
      std::string error;
      readers.push_back(RunReader::Open(path, &error));
      REQUIRE_MESSAGE(readers.back() != nullptr, error);
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    MergeReader merge(std::move(readers));
    Records merged;
    std::string_view key, value;
    while (merge.Next(&key, &value)) merged.emplace_back(key, value);
    CHECK(merge.error().empty());
    CHECK(merged == all);
    CHECK(merge.bytes_read() == merge.total_bytes());
    CHECK_FALSE(merge.Next(&key, &value));
  }
}

TEST_CASE("a merge stops with the error of a corrupt run") {
  TempDir dir;
  const std::string a = FileIn(dir, "a.run");
  const std::string b = FileIn(dir, "b.run");
  WriteRun(a, {{"a", "1"}, {"c", "1"}, {"e", "1"}});
  WriteRun(b, {{"b", "1"}, {"d", "1"}, {"f", "1"}});
  std::string bytes = ReadBytes(b);
  bytes[bytes.find('d')] = 'D';
  WriteBytes(b, bytes);
  std::string error;
  std::vector<std::unique_ptr<RunReader>> readers;
  readers.push_back(RunReader::Open(a, &error));
  readers.push_back(RunReader::Open(b, &error));
  REQUIRE(readers[0] != nullptr);
  REQUIRE(readers[1] != nullptr);
  MergeReader merge(std::move(readers));
  std::string_view key, value;
  while (merge.Next(&key, &value)) {
  }
  CHECK(merge.error() == "corrupt intermediate file " + b + ": checksum mismatch");
  CHECK(merge.failed_run() == 1);
  CHECK(merge.fault() == ReadFault::kBadData);
}

TEST_CASE("a reader says when the data is at fault") {
  TempDir dir;
  const std::string good = FileIn(dir, "good.run");
  WriteRun(good, {{"a", "1"}, {"b", "2"}});
  std::string error;
  ReadFault fault = ReadFault::kLocal;
  auto reader = RunReader::Open(good, &error, &fault);
  REQUIRE(reader != nullptr);
  CHECK(fault == ReadFault::kNone);
  std::string_view key, value;
  while (reader->Next(&key, &value)) {
  }
  CHECK(reader->error().empty());
  CHECK(reader->fault() == ReadFault::kNone);

  fault = ReadFault::kNone;
  CHECK(RunReader::Open(FileIn(dir, "missing.run"), &error, &fault) == nullptr);
  CHECK(fault == ReadFault::kBadData);
  const std::string bytes = ReadBytes(good);
  const std::string cut = FileIn(dir, "cut.run");
  WriteBytes(cut, bytes.substr(0, bytes.size() - 1));
  fault = ReadFault::kNone;
  CHECK(RunReader::Open(cut, &error, &fault) == nullptr);
  CHECK(fault == ReadFault::kBadData);

  std::string flipped = bytes;
  flipped[9] ^= 0x01;  // the first record's key
  WriteBytes(cut, flipped);
  reader = RunReader::Open(cut, &error, &fault);
  REQUIRE(reader != nullptr);
  while (reader->Next(&key, &value)) {
  }
  CHECK_FALSE(reader->error().empty());
  CHECK(reader->fault() == ReadFault::kBadData);
}

TEST_CASE("a reader with a small buffer still reads records larger than it") {
  TempDir dir;
  std::mt19937 rng(5);
  Records records = RandomSortedRecords(rng, 300, 30, 20000);
  const std::string path = FileIn(dir, "big.run");
  WriteRun(path, records);
  std::string error;
  auto reader = RunReader::Open(path, &error, nullptr, 1);
  REQUIRE_MESSAGE(reader != nullptr, error);
  Records back;
  std::string_view key, value;
  while (reader->Next(&key, &value)) back.emplace_back(key, value);
  CHECK(reader->error().empty());
  CHECK(back == records);
}

TEST_CASE("the local file store lays out runs per job, task and attempt") {
  TempDir dir;
  LocalFileStore store(dir.path().string());
  std::string location, error;
  auto writer = store.CreatePartition("job_1", "m-00002", 3, 7, &location, &error);
  REQUIRE_MESSAGE(writer != nullptr, error);
  CHECK(location == (dir.path() / "jobs/job_1/m-00002.a3.p00007.run").string());
  CHECK(writer->Add("k", "v", &error));
  CHECK(writer->Finish(&error));

  ReadFault fault = ReadFault::kLocal;
  auto reader = store.OpenPartition(location, &error, &fault);
  REQUIRE(reader != nullptr);
  CHECK(fault == ReadFault::kNone);
  std::string_view key, value;
  REQUIRE(reader->Next(&key, &value));
  CHECK(key == "k");
  CHECK(value == "v");
  reader.reset();

  CHECK(store.CreatePartition("../x", "m-00000", 1, 0, &location, &error) == nullptr);
  CHECK(store.CreatePartition("job_1", "a/b", 1, 0, &location, &error) == nullptr);

  store.RemoveJob("job_1");
  CHECK_FALSE(fs::exists(dir.path() / "jobs/job_1"));
  store.RemoveJob("job_1");  // missing data is not an error
  CHECK(store.OpenPartition(location, &error, &fault) == nullptr);
  CHECK(fault == ReadFault::kBadData);
}

}  // namespace
}  // namespace zmr
