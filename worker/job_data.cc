#include "worker/job_data.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "common/layout.h"
#include "common/posix/io.h"
#include "worker/attempt_log.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// The directory in which an attempt writes its uncommitted part file,
// OUTPUT/_temporary/<task_id>.a<attempt> (layout::AttemptOutputDir, as runner/part_file.cc uses it), or "" when the
// attempt writes no job output (a map of a job with reduces) or that path would not be a
// directory strictly inside OUTPUT/_temporary (a relative output, an odd task id).
fs::path AttemptOutputDir(const AssignMsg& task) {
  if (task.kind != TaskKind::kReduce && task.num_reduces != 0) return {};
  const fs::path output(task.output_dir);
  // The coordinator sends absolute output paths; zmr-task would resolve a relative one against
  // its own working directory, not ours.
  if (!output.is_absolute()) return {};
  if (!layout::IsSafeComponent(task.task_id)) return {};
  const fs::path temporary = output.lexically_normal() / layout::kTemporaryDir;
  const fs::path dir = temporary / layout::AttemptName(task.task_id, task.attempt);
  if (dir.parent_path() != temporary || dir.filename() == "." || dir.filename() == "..") return {};
  return dir;
}

}  // namespace

void RemoveJobData(const std::string& work_dir, const std::string& job_id, bool keep_logs) {
  if (!layout::IsSafeComponent(job_id)) return;
  const fs::path dir = layout::JobWorkDir(work_dir, job_id);
  std::error_code ec;
  const fs::path logs = layout::JobLogsDir(work_dir, job_id);
  if (!keep_logs || !fs::is_directory(logs, ec) || fs::is_empty(logs, ec)) {
    fs::remove_all(dir, ec);
    return;
  }
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename() == layout::kLogsDirName) continue;
    std::error_code remove_ec;
    fs::remove_all(it->path(), remove_ec);
  }
  std::FILE* marker = std::fopen((dir / layout::kCleanedMarker).c_str(), "w");
  if (marker != nullptr) std::fclose(marker);
}

void SweepExpiredLogs(const std::string& work_dir, int64_t retention_s) {
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(layout::JobsDir(work_dir), ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code marker_ec;
    const auto cleaned = fs::last_write_time(it->path() / layout::kCleanedMarker, marker_ec);
    if (marker_ec || now - cleaned < std::chrono::seconds(retention_s)) continue;
    fs::remove_all(it->path(), marker_ec);
    spdlog::info("job {}: attempt logs removed after {} s", it->path().filename().string(),
                 retention_s);
  }
}

LogMsg ReadAttemptLog(const std::string& work_dir, const FetchLogMsg& fetch) {
  LogMsg log;
  log.request_id = fetch.request_id;
  log.ref = fetch.ref;
  if (!layout::IsSafeComponent(fetch.ref.job_id) || !layout::IsSafeComponent(fetch.ref.task_id)) {
    return log;
  }
  std::FILE* file = std::fopen(layout::AttemptLogPath(work_dir, fetch.ref).c_str(), "rb");
  if (file == nullptr) {
    std::ifstream in(layout::SucceededLogPath(work_dir, fetch.ref.job_id), std::ios::binary);
    if (!in) return log;
    const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string mine = QuietAttemptLog(all, fetch.ref);
    if (mine.empty()) return log;
    log.found = true;
    log.size = static_cast<int64_t>(mine.size());
    log.truncated = log.size > kLogFetchMaxBytes;
    log.data = log.truncated ? mine.substr(mine.size() - kLogFetchMaxBytes) : std::move(mine);
    return log;
  }
  log.found = true;
  if (std::fseek(file, 0, SEEK_END) == 0) log.size = std::ftell(file);
  const int64_t start = std::max<int64_t>(0, log.size - kLogFetchMaxBytes);
  log.truncated = start > 0;
  if (std::fseek(file, start, SEEK_SET) == 0) {
    log.data.resize(static_cast<std::size_t>(log.size - start));
    log.data.resize(std::fread(log.data.data(), 1, log.data.size(), file));
  }
  std::fclose(file);
  return log;
}

void RemoveUncommittedOutput(const AssignMsg& task) {
  const fs::path dir = AttemptOutputDir(task);
  if (dir.empty()) return;
  const fs::path temporary = dir.parent_path();
  std::error_code ec;
  // Only a real directory: never follow a symlink named _temporary out of the output dir.
  if (!fs::is_directory(fs::symlink_status(temporary, ec))) return;
  std::uintmax_t removed = fs::remove_all(dir, ec);
  if (ec) {
    spdlog::warn("job {} task {} attempt {}: cannot remove {}: {}", task.job_id, task.task_id,
                 task.attempt, dir.string(), ec.message());
    return;
  }
  if (removed > 0) {
    spdlog::info("job {} task {} attempt {}: removed uncommitted output {}", task.job_id,
                 task.task_id, task.attempt, dir.string());
  }
  if (::rmdir(temporary.c_str()) != 0 && errno != ENOTEMPTY && errno != EEXIST &&
      errno != ENOENT) {
    int err = errno;
    spdlog::debug("job {}: cannot remove {}: {}", task.job_id, temporary.string(),
                  ErrnoText(err));
  }
}

}  // namespace zmr
