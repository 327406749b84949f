// The local-file shuffle store: one directory per job under the work dir, paths from
// common/layout.h.
#include "runner/shuffle_store.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "common/layout.h"

namespace zmr {

LocalFileStore::LocalFileStore(std::string work_dir) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(work_dir, ec);
  work_dir_ = ec ? std::move(work_dir) : abs.lexically_normal().string();
}

std::unique_ptr<RunWriter> LocalFileStore::CreatePartition(const std::string& job_id,
                                                           const std::string& task_id,
                                                           int64_t attempt, int64_t partition,
                                                           std::string* location,
                                                           std::string* error) {
  if (!layout::IsSafeComponent(job_id) || !layout::IsSafeComponent(task_id)) {
    *error = "invalid job or task id '" + job_id + "' / '" + task_id + "'";
    return nullptr;
  }
  if (partition < 0) {
    *error = "invalid partition " + std::to_string(partition);
    return nullptr;
  }
  // One directory per job (not per attempt): a tiny map then creates one file, not a directory
  // and a file.
  const std::string dir = layout::JobWorkDir(work_dir_, job_id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create directory " + dir + ": " + ec.message();
    return nullptr;
  }
  std::string path = layout::MapRunPath(work_dir_, job_id, task_id, attempt, partition);
  auto writer = RunWriter::Create(path, error);
  if (writer) *location = path;
  return writer;
}

std::unique_ptr<RunReader> LocalFileStore::OpenPartition(const std::string& location,
                                                         std::string* error, ReadFault* fault) {
  return RunReader::Open(location, error, fault);
}

void LocalFileStore::RemoveJob(const std::string& job_id) {
  if (!layout::IsSafeComponent(job_id)) return;
  std::error_code ec;
  std::filesystem::remove_all(layout::JobWorkDir(work_dir_, job_id), ec);
}

}  // namespace zmr
