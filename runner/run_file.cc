// Run files: their writer and reader, and the CRC32C over their records.
//
// Reading is defensive: a run comes from another process (possibly killed mid-write, possibly on a
// bad disk), so every length is checked against the bytes left before the record region ends, the
// trailer is located from the file size, and the count and CRC32C are verified at the end.
#include "runner/run_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "common/layout.h"
#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "runner/varint.h"

namespace zmr {

namespace {

// ---------------------------------------------------------------------------------------------
// CRC32C: slicing-by-8 over tables built at compile time, or the SSE 4.2 instruction.

constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // Castagnoli, reflected

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? kCrc32cPoly : 0u);
    t[0][i] = crc;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  }
  return t;
}

constexpr CrcTables kCrcTables = MakeCrcTables();

inline uint32_t LoadLe32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

inline uint64_t LoadLe64(const unsigned char* p) {
  return static_cast<uint64_t>(LoadLe32(p)) | (static_cast<uint64_t>(LoadLe32(p + 4)) << 32);
}

void StoreLe32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

void StoreLe64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

// ---------------------------------------------------------------------------------------------
// File format constants.

constexpr char kHeaderMagic[4] = {'Z', 'M', 'R', 'I'};
constexpr char kTrailerMagic[4] = {'Z', 'M', 'R', 'E'};
constexpr int64_t kHeaderSize = 8;    // magic + u32 version
constexpr int64_t kTrailerSize = 16;  // magic + u64 count + u32 crc

constexpr std::size_t kWriteBufferSize = 1 << 20;  // 1 MiB: few syscalls, bounded memory
constexpr std::size_t kInitialWriteBufferSize = 4 << 10;
constexpr std::size_t kMinReadBufferSize = 4 << 10;

// Errors that say nothing about the file: this process ran out of something.
ReadFault FaultOfErrno(int err) {
  return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS ? ReadFault::kLocal
                                                                          : ReadFault::kBadData;
}

// CRC32C, slicing-by-8 over the tables: the portable path.
uint32_t Crc32cTables(uint32_t crc, const unsigned char* p, std::size_t size) {
  const auto& t = kCrcTables;
  crc = ~crc;
  while (size >= 8) {
    uint32_t lo = LoadLe32(p) ^ crc;
    uint32_t hi = LoadLe32(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

#if defined(__x86_64__)
// CRC32C with the SSE 4.2 instruction, 8 bytes at a time (several times the tables' speed), for
// CPUs that have it (checked once at start-up; the same values as Crc32cTables).
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t crc, const unsigned char* p,
                                                       std::size_t size) {
  uint64_t c = ~crc;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    size -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (size-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  if (kHaveSse42) return Crc32cSse42(crc, p, size);
#endif
  return Crc32cTables(crc, p, size);
}

// =============================================================================================
// RunWriter

struct RunWriter::Impl {
  std::string path;      // final path
  std::string tmp_path;  // layout::TempPathFor(path), renamed to path by Finish
  UniqueFd fd;
  std::string buffer;    // pending bytes, flushed at kWriteBufferSize
  std::string last_key;  // for the order check
  bool has_last_key = false;
  int64_t records = 0;
  int64_t bytes = 0;     // header + records (+ trailer), written or buffered
  uint32_t crc = 0;      // CRC32C of all record bytes
  bool finished = false;
  std::string failure;   // first error; once set, the writer only fails

  bool Flush() {
    if (buffer.empty()) return true;
    int err = 0;
    if (!WriteAll(fd.get(), std::string_view(buffer.data(), buffer.size()), &err)) {
      failure = "cannot write " + tmp_path + ": " + ErrnoText(err);
      return false;
    }
    buffer.clear();
    return true;
  }

  // Appends bytes, flushing as needed; large pieces bypass the buffer.
  bool Append(const char* data, std::size_t size) {
    bytes += static_cast<int64_t>(size);
    if (buffer.size() + size <= kWriteBufferSize) {
      buffer.append(data, size);
      return buffer.size() < kWriteBufferSize || Flush();
    }
    if (!Flush()) return false;
    if (size >= kWriteBufferSize / 2) {
      int err = 0;
      if (!WriteAll(fd.get(), std::string_view(data, size), &err)) {
        failure = "cannot write " + tmp_path + ": " + ErrnoText(err);
        return false;
      }
      return true;
    }
    buffer.append(data, size);
    return true;
  }

  bool AppendRecordPart(std::string_view part) {
    crc = Crc32c(crc, part.data(), part.size());
    return Append(part.data(), part.size());
  }
};

RunWriter::RunWriter() : impl_(std::make_unique<Impl>()) {}

RunWriter::~RunWriter() {
  if (impl_ && !impl_->finished) {
    impl_->fd.Reset();
    ::unlink(impl_->tmp_path.c_str());
  }
}

std::unique_ptr<RunWriter> RunWriter::Create(const std::string& path, std::string* error) {
  std::unique_ptr<RunWriter> writer(new RunWriter());
  Impl& w = *writer->impl_;
  w.path = path;
  w.tmp_path = layout::TempPathFor(path);
  int fd = ::open(w.tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot create " + w.tmp_path + ": " + ErrnoText(errno);
    w.finished = true;  // nothing of ours to remove (the file may belong to someone else)
    return nullptr;
  }
  w.fd = UniqueFd(fd);
  // The buffer grows as records come (up to kWriteBufferSize): a map with many partitions writes
  // many small runs, which should not each cost a megabyte.
  w.buffer.reserve(kInitialWriteBufferSize);
  char header[kHeaderSize];
  std::memcpy(header, kHeaderMagic, 4);
  StoreLe32(kRunFormatVersion, header + 4);
  w.Append(header, sizeof(header));
  return writer;
}

bool RunWriter::Add(std::string_view key, std::string_view value, std::string* error) {
  Impl& w = *impl_;
  if (w.finished) {
    *error = "run " + w.path + " is already finished";
    return false;
  }
  if (!w.failure.empty()) {
    *error = w.failure;
    return false;
  }
  if (w.has_last_key && key < std::string_view(w.last_key)) {
    *error = "keys out of order in run " + w.path + ": a key sorts before the previous key";
    return false;
  }
  w.last_key.assign(key.data(), key.size());
  w.has_last_key = true;

  // Common case: the whole record fits in the buffer; encode it in place and checksum it once.
  const std::size_t size =
      VarintSize(key.size()) + key.size() + VarintSize(value.size()) + value.size();
  if (w.buffer.size() + size <= kWriteBufferSize) {
    const std::size_t start = w.buffer.size();
    w.buffer.resize(start + size);
    char* p = w.buffer.data() + start;
    char* q = p + EncodeVarint(key.size(), p);
    if (!key.empty()) std::memcpy(q, key.data(), key.size());
    q += key.size();
    q += EncodeVarint(value.size(), q);
    if (!value.empty()) std::memcpy(q, value.data(), value.size());
    w.crc = Crc32c(w.crc, p, size);
    w.bytes += static_cast<int64_t>(size);
    ++w.records;
    if (w.buffer.size() >= kWriteBufferSize && !w.Flush()) {
      *error = w.failure;
      return false;
    }
    return true;
  }

  char len[kMaxVarintBytes];
  std::size_t n = EncodeVarint(key.size(), len);
  bool ok = w.AppendRecordPart(std::string_view(len, n)) && w.AppendRecordPart(key);
  n = EncodeVarint(value.size(), len);
  ok = ok && w.AppendRecordPart(std::string_view(len, n)) && w.AppendRecordPart(value);
  if (!ok) {
    *error = w.failure;
    return false;
  }
  ++w.records;
  return true;
}

bool RunWriter::Finish(std::string* error) {
  Impl& w = *impl_;
  if (w.finished) {
    *error = "run " + w.path + " is already finished";
    return false;
  }
  if (!w.failure.empty()) {
    *error = w.failure;
    return false;
  }
  char trailer[kTrailerSize];
  std::memcpy(trailer, kTrailerMagic, 4);
  StoreLe64(static_cast<uint64_t>(w.records), trailer + 4);
  StoreLe32(w.crc, trailer + 12);
  if (!w.Append(trailer, sizeof(trailer)) || !w.Flush()) {
    *error = w.failure;
    return false;
  }
  if (w.fd.Close() != 0) {
    w.failure = "cannot write " + w.tmp_path + ": " + ErrnoText(errno);
    *error = w.failure;
    return false;
  }
  if (::rename(w.tmp_path.c_str(), w.path.c_str()) != 0) {
    w.failure = "cannot rename " + w.tmp_path + " to " + w.path + ": " + ErrnoText(errno);
    *error = w.failure;
    return false;
  }
  w.finished = true;
  return true;
}

int64_t RunWriter::records() const { return impl_->records; }
int64_t RunWriter::bytes() const { return impl_->bytes; }

// =============================================================================================
// RunReader

struct RunReader::Impl {
  std::string path;
  UniqueFd fd;
  int64_t size = 0;           // file size
  int64_t records_end = 0;    // offset where the trailer starts
  int64_t file_pos = 0;       // offset of the next byte read() will return
  uint64_t expected_records = 0;  // from the trailer
  uint32_t expected_crc = 0;
  std::vector<char> buf;      // holds [buf_begin, buf_end) of the file
  std::size_t buf_pos = 0;    // next unparsed byte in buf
  std::size_t buf_len = 0;    // valid bytes in buf
  int64_t consumed = kHeaderSize;  // file offset of buf[buf_pos]
  uint64_t records = 0;
  uint32_t crc = 0;
  bool done = false;
  std::string error;
  ReadFault fault = ReadFault::kNone;

  bool Fail(std::string message, ReadFault why = ReadFault::kBadData) {
    error = std::move(message);
    fault = why;
    done = true;
    return false;
  }
  bool Corrupt(const std::string& what) {
    return Fail("corrupt intermediate file " + path + ": " + what);
  }

  // Makes at least `want` unparsed bytes available in buf (never past records_end). The caller
  // has checked that they exist in the file.
  bool Fill(std::size_t want) {
    std::size_t avail = buf_len - buf_pos;
    if (avail >= want) return true;
    if (buf_pos > 0) {
      std::memmove(buf.data(), buf.data() + buf_pos, avail);
      buf_pos = 0;
      buf_len = avail;
    }
    if (buf.size() < want) buf.resize(want);  // a record larger than the usual buffer
    int64_t left_in_region = records_end - file_pos;
    std::size_t room = buf.size() - buf_len;
    std::size_t to_read =
        static_cast<std::size_t>(std::min<int64_t>(static_cast<int64_t>(room), left_in_region));
    int err = 0;
    ssize_t n = ReadFull(fd.get(), buf.data() + buf_len, to_read, &err);
    if (n < 0) return Fail("cannot read " + path + ": " + ErrnoText(err), FaultOfErrno(err));
    if (static_cast<std::size_t>(n) < to_read) {
      // The file shrank since we measured it.
      return Fail("truncated intermediate file " + path);
    }
    buf_len += static_cast<std::size_t>(n);
    file_pos += n;
    if (buf_len - buf_pos < want) return Fail("truncated intermediate file " + path);
    return true;
  }

  // Parses a varint at the current position of the record region.
  bool ReadVarint(uint64_t* value, std::size_t* used) {
    for (;;) {
      const auto* p = reinterpret_cast<const unsigned char*>(buf.data() + buf_pos);
      const auto* end = reinterpret_cast<const unsigned char*>(buf.data() + buf_len);
      VarintResult r = DecodeVarint(p, end, value, used);
      if (r == VarintResult::kOk) return true;
      if (r == VarintResult::kBad) return Corrupt("bad length at offset " + std::to_string(consumed));
      std::size_t have = buf_len - buf_pos;
      int64_t left = records_end - consumed;
      if (static_cast<int64_t>(have) >= left) {
        return Corrupt("record runs past the end of the data at offset " +
                       std::to_string(consumed));
      }
      std::size_t want = std::min<std::size_t>(kMaxVarintBytes, static_cast<std::size_t>(left));
      if (!Fill(want)) return false;
    }
  }

  bool VerifyTrailer() {
    if (records != expected_records) {
      return Corrupt("record count mismatch (trailer says " + std::to_string(expected_records) +
                     ", read " + std::to_string(records) + ")");
    }
    if (crc != expected_crc) return Corrupt("checksum mismatch");
    done = true;
    return false;
  }
};

RunReader::RunReader() : impl_(std::make_unique<Impl>()) {}
RunReader::~RunReader() = default;

std::unique_ptr<RunReader> RunReader::Open(const std::string& path, std::string* error,
                                           ReadFault* fault, std::size_t buffer_bytes) {
  ReadFault ignored;
  if (fault == nullptr) fault = &ignored;
  *fault = ReadFault::kBadData;  // unless a failure below says otherwise
  std::unique_ptr<RunReader> reader(new RunReader());
  Impl& r = *reader->impl_;
  r.path = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    *error = "cannot open intermediate file " + path + ": " + ErrnoText(err);
    *fault = FaultOfErrno(err);
    return nullptr;
  }
  r.fd = UniqueFd(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    *error = "cannot stat intermediate file " + path + ": " + ErrnoText(err);
    *fault = FaultOfErrno(err);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = "intermediate file " + path + " is not a regular file";
    return nullptr;
  }
  r.size = st.st_size;

  char header[kHeaderSize];
  int err = 0;
  ssize_t n = PreadFull(fd, header, sizeof(header), 0, &err);
  if (n < 0) {
    *error = "cannot read intermediate file " + path + ": " + ErrnoText(err);
    *fault = FaultOfErrno(err);
    return nullptr;
  }
  std::size_t magic_len = std::min<std::size_t>(static_cast<std::size_t>(n), 4);
  if (std::memcmp(header, kHeaderMagic, magic_len) != 0) {
    *error = "not an intermediate file " + path + ": bad magic";
    return nullptr;
  }
  if (n < kHeaderSize) {
    *error = "truncated intermediate file " + path;
    return nullptr;
  }
  uint32_t version = LoadLe32(reinterpret_cast<const unsigned char*>(header + 4));
  if (version != kRunFormatVersion) {
    *error = "intermediate file " + path + " has format version " + std::to_string(version) +
             ", expected " + std::to_string(kRunFormatVersion);
    return nullptr;
  }
  if (r.size < kHeaderSize + kTrailerSize) {
    *error = "truncated intermediate file " + path;
    return nullptr;
  }
  char trailer[kTrailerSize];
  n = PreadFull(fd, trailer, sizeof(trailer), static_cast<off_t>(r.size - kTrailerSize), &err);
  if (n < 0) {
    *error = "cannot read intermediate file " + path + ": " + ErrnoText(err);
    *fault = FaultOfErrno(err);
    return nullptr;
  }
  if (n != kTrailerSize || std::memcmp(trailer, kTrailerMagic, 4) != 0) {
    *error = "truncated intermediate file " + path + " (no trailer)";
    return nullptr;
  }
  const auto* t = reinterpret_cast<const unsigned char*>(trailer);
  r.expected_records = LoadLe64(t + 4);
  r.expected_crc = LoadLe32(t + 12);
  r.records_end = r.size - kTrailerSize;
  if (::lseek(fd, kHeaderSize, SEEK_SET) != kHeaderSize) {
    int seek_err = errno;
    *error = "cannot seek in intermediate file " + path + ": " + ErrnoText(seek_err);
    *fault = FaultOfErrno(seek_err);
    return nullptr;
  }
  r.file_pos = kHeaderSize;
  buffer_bytes = std::max(buffer_bytes, kMinReadBufferSize);
  r.buf.resize(static_cast<std::size_t>(
      std::min<int64_t>(static_cast<int64_t>(buffer_bytes), r.records_end - kHeaderSize + 1)));
  *fault = ReadFault::kNone;
  return reader;
}

bool RunReader::Next(std::string_view* key, std::string_view* value) {
  Impl& r = *impl_;
  if (r.done) return false;
  if (r.consumed == r.records_end) return r.VerifyTrailer();

  // Key length.
  uint64_t key_len = 0;
  std::size_t key_len_bytes = 0;
  if (!r.ReadVarint(&key_len, &key_len_bytes)) return false;
  int64_t left = r.records_end - r.consumed - static_cast<int64_t>(key_len_bytes);
  // The value length takes at least one more byte.
  if (key_len >= static_cast<uint64_t>(left)) {
    return r.Corrupt("key length " + std::to_string(key_len) + " exceeds the data at offset " +
                     std::to_string(r.consumed));
  }
  // Make the key and (at least the first byte of) the value length available.
  std::size_t need = key_len_bytes + static_cast<std::size_t>(key_len) +
                     std::min<std::size_t>(kMaxVarintBytes,
                                           static_cast<std::size_t>(left) - key_len);
  if (!r.Fill(need)) return false;
  // Value length: parse in place (it is inside what Fill made available, up to 10 bytes).
  const auto* base = reinterpret_cast<const unsigned char*>(r.buf.data() + r.buf_pos);
  const auto* vlen_at = base + key_len_bytes + key_len;
  uint64_t value_len = 0;
  std::size_t value_len_bytes = 0;
  VarintResult vr = DecodeVarint(vlen_at, base + need, &value_len, &value_len_bytes);
  if (vr != VarintResult::kOk) {
    return r.Corrupt(vr == VarintResult::kBad
                         ? "bad length at offset " + std::to_string(r.consumed)
                         : "record runs past the end of the data at offset " +
                               std::to_string(r.consumed));
  }
  int64_t after_value_len = left - static_cast<int64_t>(key_len) -
                            static_cast<int64_t>(value_len_bytes);
  if (value_len > static_cast<uint64_t>(after_value_len)) {
    return r.Corrupt("value length " + std::to_string(value_len) +
                     " exceeds the data at offset " + std::to_string(r.consumed));
  }
  std::size_t record_size = key_len_bytes + static_cast<std::size_t>(key_len) + value_len_bytes +
                            static_cast<std::size_t>(value_len);
  if (!r.Fill(record_size)) return false;
  const char* rec = r.buf.data() + r.buf_pos;
  r.crc = Crc32c(r.crc, rec, record_size);
  *key = std::string_view(rec + key_len_bytes, static_cast<std::size_t>(key_len));
  *value = std::string_view(rec + key_len_bytes + key_len + value_len_bytes,
                            static_cast<std::size_t>(value_len));
  r.buf_pos += record_size;
  r.consumed += static_cast<int64_t>(record_size);
  ++r.records;
  if (r.records > r.expected_records) {
    return r.Corrupt("more records than the trailer's count " +
                     std::to_string(r.expected_records));
  }
  return true;
}

const std::string& RunReader::error() const { return impl_->error; }
ReadFault RunReader::fault() const { return impl_->fault; }
int64_t RunReader::bytes_read() const {
  const Impl& r = *impl_;
  return r.done && r.error.empty() ? r.size : r.consumed;
}
int64_t RunReader::size() const { return impl_->size; }
const std::string& RunReader::path() const { return impl_->path; }

}  // namespace zmr
