#include "common/layout.h"

#include <cstdio>

namespace zmr::layout {

namespace {

std::string Join(std::string_view a, std::string_view b) {
  std::string path(a);
  path += '/';
  path += b;
  return path;
}

}  // namespace

bool IsSafeComponent(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string_view::npos &&
         s.find('\0') == std::string_view::npos;
}

std::string TaskId(TaskKind kind, int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%c-%05lld", kind == TaskKind::kMap ? 'm' : 'r',
                static_cast<long long>(index));
  return buf;
}

bool ParseTaskId(std::string_view task_id, TaskKind* kind, int64_t* index) {
  if (task_id.size() < 3 || task_id[1] != '-') return false;
  if (task_id[0] == 'm') {
    *kind = TaskKind::kMap;
  } else if (task_id[0] == 'r') {
    *kind = TaskKind::kReduce;
  } else {
    return false;
  }
  int64_t value = 0;
  for (std::size_t i = 2; i < task_id.size(); ++i) {
    const char c = task_id[i];
    if (c < '0' || c > '9' || value > 100000000) return false;
    value = value * 10 + (c - '0');
  }
  *index = value;
  return true;
}

std::string AttemptName(std::string_view task_id, int64_t attempt) {
  std::string name(task_id);
  name += ".a";
  name += std::to_string(attempt);
  return name;
}

std::string AttemptName(const AttemptRef& ref) { return AttemptName(ref.task_id, ref.attempt); }

std::string PartFileName(int64_t partition) {
  char name[32];
  std::snprintf(name, sizeof(name), "part-%05lld", static_cast<long long>(partition));
  return name;
}

bool IsPartFileName(std::string_view name) {
  constexpr std::string_view kPrefix = "part-";
  if (name.size() <= kPrefix.size() || name.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : name.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string OutputTemporaryDir(std::string_view output) { return Join(output, kTemporaryDir); }

std::string AttemptOutputDir(std::string_view output, std::string_view task_id, int64_t attempt) {
  return Join(OutputTemporaryDir(output), AttemptName(task_id, attempt));
}

std::string CommittedPartPath(std::string_view output, int64_t partition) {
  return Join(output, PartFileName(partition));
}

std::string SuccessPath(std::string_view output) { return Join(output, kSuccessFile); }

std::string JobsDir(std::string_view work_dir) { return Join(work_dir, "jobs"); }

std::string JobWorkDir(std::string_view work_dir, std::string_view job_id) {
  return Join(JobsDir(work_dir), job_id);
}

std::string AttemptDir(std::string_view work_dir, const AttemptRef& ref) {
  return Join(Join(JobWorkDir(work_dir, ref.job_id), "attempts"), AttemptName(ref));
}

std::string JobLogsDir(std::string_view work_dir, std::string_view job_id) {
  return Join(JobWorkDir(work_dir, job_id), kLogsDirName);
}

std::string AttemptLogPath(std::string_view work_dir, const AttemptRef& ref) {
  return Join(JobLogsDir(work_dir, ref.job_id), AttemptName(ref) + ".log");
}

std::string SucceededLogPath(std::string_view work_dir, std::string_view job_id) {
  return Join(JobLogsDir(work_dir, job_id), kSucceededLogName);
}

std::string MapRunPath(std::string_view work_dir, std::string_view job_id, std::string_view task_id,
                       int64_t attempt, int64_t partition) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), ".p%05lld.run", static_cast<long long>(partition));
  return Join(JobWorkDir(work_dir, job_id), AttemptName(task_id, attempt) + suffix);
}

std::string MapSpillDir(std::string_view work_dir, std::string_view job_id,
                        std::string_view task_id, int64_t attempt) {
  return Join(JobWorkDir(work_dir, job_id), AttemptName(task_id, attempt) + ".spill");
}

std::string BlobCacheDir(std::string_view work_dir) { return Join(work_dir, "cache"); }

std::string BlobPath(std::string_view cache_dir, std::string_view sha256) {
  return Join(cache_dir, sha256);
}

std::string ShippedFilePath(std::string_view attempt_dir, std::string_view name) {
  return Join(attempt_dir, name);
}

std::string TempSpillDirName(std::string_view job_id, std::string_view task_id, int64_t attempt,
                             int64_t pid) {
  std::string name = "zmr-spill-";
  name += job_id;
  name += '-';
  name += AttemptName(task_id, attempt);
  name += '-';
  name += std::to_string(pid);
  return name;
}

std::string SpillRunPath(std::string_view spill_dir, std::string_view prefix, int64_t seq,
                         int64_t partition) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), "-%06lld.p%05lld.run", static_cast<long long>(seq),
                static_cast<long long>(partition));
  std::string path = Join(spill_dir, prefix);
  path += suffix;
  return path;
}

std::string TempPathFor(std::string_view path) {
  std::string tmp(path);
  tmp += kTempSuffix;
  return tmp;
}

std::string UniqueTempPathFor(std::string_view path, int64_t pid, uint64_t serial) {
  std::string tmp = TempPathFor(path);
  tmp += '.';
  tmp += std::to_string(pid);
  tmp += '.';
  tmp += std::to_string(serial);
  return tmp;
}

}  // namespace zmr::layout
