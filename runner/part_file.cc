// Part files: creating one under the attempt's _temporary directory, writing it out with
// common/posix's WriteAll, and removing it and the directories again unless it was finished.
#include "runner/part_file.h"

#include <fcntl.h>

#include <cerrno>
#include <string_view>
#include <system_error>

#include "common/layout.h"
#include "common/posix/io.h"

namespace zmr {

namespace fs = std::filesystem;

std::unique_ptr<PartFileWriter> PartFileWriter::Create(const fs::path& tmp_dir,
                                                       const std::string& file_name,
                                                       std::string* error) {
  std::unique_ptr<PartFileWriter> w(new PartFileWriter());
  w->tmp_dir_ = tmp_dir;
  w->path_ = (tmp_dir / file_name).string();
  for (int tries = 0;; ++tries) {
    std::error_code ec;
    fs::create_directories(tmp_dir, ec);
    if (ec && tries < 3) continue;
    if (ec) {
      *error = "cannot create directory " + tmp_dir.string() + ": " + ec.message();
      return nullptr;
    }
    w->fd_ = UniqueFd(::open(w->path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (w->fd_.valid()) break;
    int err = errno;
    if (err == ENOENT && tries < 3) continue;
    *error = "cannot create " + w->path_ + ": " + ErrnoText(err);
    return nullptr;
  }
  w->buffer_.reserve(kPartBufferSize);
  return w;
}

PartFileWriter::~PartFileWriter() {
  fd_.Reset();  // closed before the file is removed
  if (!kept_) {
    std::error_code ec;
    if (!path_.empty()) fs::remove(path_, ec);
    RemoveTempDirs();
  }
}

bool PartFileWriter::Finish(std::string* error) {
  Flush();
  if (fd_.Close() != 0 && failure_.empty()) {
    failure_ = "cannot write " + path_ + ": " + ErrnoText(errno);
  }
  if (!failure_.empty()) {
    *error = failure_;
    return false;
  }
  kept_ = true;
  return true;
}

void PartFileWriter::Flush() {
  if (buffer_.empty() || !failure_.empty()) {
    buffer_.clear();
    return;
  }
  int err = 0;
  if (!WriteAll(fd_.get(), std::string_view(buffer_.data(), buffer_.size()), &err)) {
    failure_ = "cannot write " + path_ + ": " + ErrnoText(err);
  }
  buffer_.clear();
}

void PartFileWriter::RemoveTempDirs() {
  std::error_code ec;
  if (tmp_dir_.empty()) return;
  fs::remove(tmp_dir_, ec);
  fs::remove(tmp_dir_.parent_path(), ec);
}

std::unique_ptr<PartFileWriter> CreatePartFile(const AssignMsg& task, std::string* error) {
  std::error_code ec;
  fs::path output = fs::absolute(task.output_dir, ec);
  if (ec) output = task.output_dir;
  return PartFileWriter::Create(
      output.lexically_normal() / layout::kTemporaryDir /
          layout::AttemptName(task.task_id, task.attempt),
      layout::PartFileName(task.partition), error);
}

}  // namespace zmr
