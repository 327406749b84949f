// Sampling for the sort app. One read per sampled range (at most region_read_bytes + 1), so a
// 512 MiB input costs 100 small reads, not a scan.
#include "apps/sort_sampler.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>
#include <utility>

#include "apps/sort_keys.h"

namespace zmr {

namespace {

// Keys of the lines of `file` starting in [begin, end) (file offsets), from the front, within
// the limits of `options`.
bool SampleRange(const InputFile& file, int64_t begin, int64_t end, std::size_t key_bytes,
                 const SampleOptions& options, std::vector<std::string>* keys,
                 std::string* error) {
  std::ifstream in(file.path, std::ios::binary);
  // One byte before the range says whether a line starts at its first byte.
  const int64_t read_from = begin > 0 ? begin - 1 : 0;
  const std::size_t want = static_cast<std::size_t>(
      std::min<int64_t>(static_cast<int64_t>(options.region_read_bytes) + 1,
                        file.size - read_from));
  std::string buffer(want, '\0');
  if (in) in.seekg(read_from);
  if (in) in.read(buffer.data(), static_cast<std::streamsize>(want));
  if (!in && !in.eof()) {
    *error = "cannot sample " + file.path + ": " + std::generic_category().message(errno);
    return false;
  }
  const int64_t got = in.gcount();
  buffer.resize(static_cast<std::size_t>(got));
  // The buffer ends the file when it reached its (measured) end.
  const bool at_eof = read_from + got >= file.size;

  std::size_t pos = 0;  // buffer index of the next line's start
  if (begin > 0) {
    std::size_t newline = buffer.find('\n');
    if (newline == std::string::npos) return true;  // no line starts within what was read
    pos = newline + 1;
  }
  int taken = 0;
  while (pos < buffer.size() && taken < options.keys_per_region &&
         read_from + static_cast<int64_t>(pos) < end) {
    std::size_t newline = buffer.find('\n', pos);
    std::string_view line(buffer.data() + pos,
                          (newline == std::string::npos ? buffer.size() : newline) - pos);
    if (newline == std::string::npos && !at_eof && line.size() < key_bytes) break;  // cut short
    if (newline != std::string::npos && !line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    keys->emplace_back(apps::sort::KeyOf(line, key_bytes));
    ++taken;
    if (newline == std::string::npos) break;
    pos = newline + 1;
  }
  return true;
}

}  // namespace

bool SampleKeys(const std::vector<InputFile>& files, std::size_t key_bytes,
                const SampleOptions& options, std::vector<std::string>* keys,
                std::string* error) {
  int64_t total = 0;
  for (const InputFile& f : files) total += f.size;
  if (total == 0) return true;
  const int64_t regions = std::clamp<int64_t>(options.regions, 1, total);
  std::size_t file_index = 0;
  int64_t file_start = 0;  // offset of files[file_index] in the concatenation
  for (int64_t r = 0; r < regions; ++r) {
    const int64_t begin = r * total / regions;
    const int64_t end = (r + 1) * total / regions;
    // The file holding the range's first byte (ranges move forward, so does the file).
    while (file_start + files[file_index].size <= begin) {
      file_start += files[file_index].size;
      ++file_index;
    }
    const InputFile& file = files[file_index];
    if (!SampleRange(file, begin - file_start, std::min(end - file_start, file.size), key_bytes,
                     options, keys, error)) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> ChooseSplitPoints(std::vector<std::string> samples, int64_t partitions) {
  std::vector<std::string> points;
  if (samples.empty() || partitions <= 1) return points;
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  for (int64_t i = 1; i < partitions; ++i) {
    std::size_t k = static_cast<std::size_t>(static_cast<uint64_t>(i) * n /
                                             static_cast<uint64_t>(partitions));
    while (k < n && !points.empty() && !(points.back() < samples[k])) ++k;
    if (k >= n) break;
    points.push_back(samples[k]);
  }
  return points;
}

}  // namespace zmr
