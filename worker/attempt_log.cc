#include "worker/attempt_log.h"

#include <fcntl.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/clock.h"
#include "common/layout.h"
#include "common/posix/io.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// A stderr line kept for the tail is cut to this many bytes; the joined tail to kTailBytes.
constexpr std::size_t kTailLineBytes = 500;
constexpr std::size_t kTailBytes = 2000;

}  // namespace

std::string QuietAttemptLog(const std::string& succeeded_log, const AttemptRef& ref) {
  const std::string prefix = layout::AttemptName(ref) + " ";
  std::string out;
  std::size_t at = 0;
  while (at < succeeded_log.size()) {
    std::size_t end = succeeded_log.find('\n', at);
    end = end == std::string::npos ? succeeded_log.size() : end + 1;
    if (succeeded_log.compare(at, prefix.size(), prefix) == 0) {
      out.append(succeeded_log, at + prefix.size(), end - at - prefix.size());
    }
    at = end;
  }
  return out;
}

AttemptLog::~AttemptLog() {
  if (!quiet_taken_) Materialise();
}

std::string AttemptLog::TakeQuiet() {
  if (fd_.valid() || create_failed_) return "";
  quiet_taken_ = true;
  return std::move(pending_);
}

void AttemptLog::AppendChild(std::string_view data) {
  if (!data.empty()) Materialise();
  for (char c : data) {
    if (c == '\n') {
      PushLine();
    } else if (partial_.size() < kTailLineBytes) {
      partial_ += c;
    } else {
      partial_cut_ = true;
    }
  }
  if (truncated_) return;
  int64_t room = kAttemptLogCapBytes - written_;
  if (static_cast<int64_t>(data.size()) > room) {
    Write(data.substr(0, static_cast<std::size_t>(std::max<int64_t>(room, 0))));
    Write("\n[log truncated]\n");
    truncated_ = true;
    return;
  }
  Write(data);
}

void AttemptLog::Note(const std::string& line) {
  std::string text = "[zmr-worker " + std::to_string(WallMs()) + "] " + line + "\n";
  if (!fd_.valid() && !create_failed_) {
    pending_ += text;
    if (pending_.size() > kQuietLogMaxBytes) Materialise();
    return;
  }
  if (fd_.valid()) WriteAll(fd_.get(), text);
}

void AttemptLog::Flush() {
  if (!partial_.empty() || partial_cut_) PushLine();
}

std::string AttemptLog::Tail() const {
  std::string joined;
  for (auto it = tail_.rbegin(); it != tail_.rend(); ++it) {
    std::string next = joined.empty() ? *it : *it + "; " + joined;
    if (next.size() > kTailBytes) break;
    joined = std::move(next);
  }
  return joined;
}

void AttemptLog::Materialise() {
  if (fd_.valid() || create_failed_ || quiet_taken_) return;
  std::error_code ec;
  fs::create_directories(fs::path(path_).parent_path(), ec);
  fd_ = UniqueFd(open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
  if (!fd_.valid()) {
    create_failed_ = true;
    spdlog::warn("cannot create attempt log {}: {}", path_, ErrnoText(errno));
    return;
  }
  std::string pending = std::move(pending_);
  pending_.clear();
  WriteAll(fd_.get(), pending);
}

void AttemptLog::PushLine() {
  std::string line = std::move(partial_);
  partial_.clear();
  if (partial_cut_) line += "...";
  partial_cut_ = false;
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return;
  tail_.push_back(std::move(line));
  if (tail_.size() > static_cast<std::size_t>(kStderrTailLines)) tail_.pop_front();
}

void AttemptLog::Write(std::string_view data) {
  int64_t written = 0;
  if (fd_.valid()) WriteAll(fd_.get(), data, /*err=*/nullptr, &written);
  written_ += written;
}

void SucceededLogs::Append(const AttemptRef& ref, const std::string& notes) {
  if (notes.empty()) return;
  const std::string prefix = layout::AttemptName(ref) + " ";
  std::string text;
  text.reserve(notes.size() + 4 * prefix.size());
  std::size_t at = 0;
  while (at < notes.size()) {
    std::size_t end = notes.find('\n', at);
    end = end == std::string::npos ? notes.size() : end + 1;
    text += prefix;
    text.append(notes, at, end - at);
    at = end;
  }
  if (text.back() != '\n') text += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(ref.job_id);
  if (it == files_.end()) {
    const std::string path = layout::SucceededLogPath(work_dir_, ref.job_id);
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!fd.valid()) {
      spdlog::warn("cannot open {}: {}", path, ErrnoText(errno));
      return;
    }
    it = files_.emplace(ref.job_id, std::move(fd)).first;
  }
  // One write per attempt, to an O_APPEND file: lines of attempts never interleave.
  WriteAll(it->second.get(), text);
}

void SucceededLogs::Close(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  files_.erase(job_id);
}

}  // namespace zmr
