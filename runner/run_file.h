// The on-disk format of a sorted run of key/value records (intermediate data: map outputs, spills,
// a reduce's intermediate merges), its writer and its reader, and the CRC32C that guards it.
// Writers and readers are single-threaded; one instance belongs to one task attempt. Crc32c is a
// pure function, callable from any thread.
//
// Run file format (little endian):
//   header  : "ZMRI" (4 bytes), u32 format version (1)
//   records : varint key length, key bytes, varint value length, value bytes   (repeated)
//   trailer : "ZMRE" (4 bytes), u64 record count, u32 CRC32C of all record bytes
// Records are sorted by key bytewise. A reader reports an error for a bad header, a truncated file,
// a record count or checksum that does not match the trailer. The varint is runner/varint.h's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace zmr {

inline constexpr uint32_t kRunFormatVersion = 1;
// Default read buffer of one RunReader; a reduce may merge many runs at once.
inline constexpr std::size_t kRunReadBufferBytes = 256 << 10;

// Why reading a run failed. kBadData: the run is missing, truncated, corrupt or unreadable (an
// I/O error): whoever produced it must produce it again. kLocal: this process could not read it
// for reasons of its own (out of file descriptors or memory): the data may well be fine.
enum class ReadFault { kNone, kBadData, kLocal };

// CRC32C (Castagnoli) of data, continuing from crc (0 to start).
uint32_t Crc32c(uint32_t crc, const void* data, std::size_t size);

// Writes one run file. The file appears under its final path only after Finish() succeeds (it is
// written to path + ".tmp" and renamed), so a killed writer never leaves a partial run.
class RunWriter {
 public:
  // Returns nullptr with *error if the temporary file cannot be created.
  static std::unique_ptr<RunWriter> Create(const std::string& path, std::string* error);
  ~RunWriter();  // removes the temporary file if Finish() was not called or failed
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;

  // Appends a record; keys must be added in non-decreasing bytewise order.
  bool Add(std::string_view key, std::string_view value, std::string* error);
  // Writes the trailer, flushes and renames into place.
  bool Finish(std::string* error);

  int64_t records() const;
  int64_t bytes() const;  // file size so far, including header (and trailer once finished)

 private:
  RunWriter();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streams the records of one run file with a bounded buffer.
class RunReader {
 public:
  // Returns nullptr with *error (and *fault, when given) if the file cannot be opened or its header
  // or trailer is invalid. buffer_bytes bounds the read buffer (a larger record still fits).
  static std::unique_ptr<RunReader> Open(const std::string& path, std::string* error,
                                         ReadFault* fault = nullptr,
                                         std::size_t buffer_bytes = kRunReadBufferBytes);
  ~RunReader();
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  // Sets the next record (views valid until the next call). Returns false at the end or on error;
  // at the end the trailer has been verified, and error() is empty only if it matched.
  bool Next(std::string_view* key, std::string_view* value);
  const std::string& error() const;
  ReadFault fault() const;  // kNone unless error() is set
  int64_t bytes_read() const;
  int64_t size() const;  // file size
  const std::string& path() const;

 private:
  RunReader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zmr
