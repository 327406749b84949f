#include "common/inputs.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/posix/fd.h"
#include "common/posix/io.h"

namespace zmr {

namespace fs = std::filesystem;

namespace {

// Hadoop's hidden-file rule: such names are never read when walking a directory or a glob.
bool IsHiddenName(const std::string& name) {
  return !name.empty() && (name[0] == '.' || name[0] == '_');
}

bool IsGlob(const std::string& spec) { return spec.find_first_of("*?[") != std::string::npos; }

std::string JoinSpecs(const std::vector<std::string>& specs) {
  std::string joined;
  for (const std::string& spec : specs) {
    if (!joined.empty()) joined += ", ";
    joined += spec;
  }
  return joined;
}

enum class OpenResult { kOk, kNotFound, kNotRegular, kUnreadable };

// Opens `path` for reading to prove it is readable and learns its size. O_NONBLOCK keeps a FIFO
// from blocking the open; it is then rejected as not a regular file.
OpenResult OpenAndStat(const std::string& path, int64_t* size, int* err) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    *err = errno;
    return (errno == ENOENT || errno == ENOTDIR) ? OpenResult::kNotFound : OpenResult::kUnreadable;
  }
  struct stat st;
  const int rc = ::fstat(fd.get(), &st);
  *err = errno;
  if (rc != 0) return OpenResult::kUnreadable;
  if (!S_ISREG(st.st_mode)) return OpenResult::kNotRegular;
  *size = static_cast<int64_t>(st.st_size);
  return OpenResult::kOk;
}

// Adds the regular file `path` (absolute). `spec` is what the user named, for messages.
bool AddFile(const std::string& path, const std::string& spec, std::vector<InputFile>* files,
             std::string* error) {
  int64_t size = 0;
  int err = 0;
  const std::string from = (path == spec) ? std::string() : " (from " + spec + ")";
  switch (OpenAndStat(path, &size, &err)) {
    case OpenResult::kOk:
      files->push_back(InputFile{path, size});
      return true;
    case OpenResult::kNotFound:
      *error = "input not found: " + path + from;
      return false;
    case OpenResult::kNotRegular:
      *error = "input is not a regular file: " + path + from;
      return false;
    case OpenResult::kUnreadable:
      *error = "cannot read input: " + path + from + ": " + ErrnoText(err);
      return false;
  }
  return false;
}

// Adds the regular files under directory `dir` (absolute), skipping hidden entries. Directory
// symlinks are not followed (no cycles); file symlinks are read through.
bool AddDirectory(const std::string& dir, const std::string& spec, std::vector<InputFile>* files,
                  std::string* error) {
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    if (IsHiddenName(entry.path().filename().string())) {
      if (entry.is_directory(ec)) it.disable_recursion_pending();
      ec.clear();
      continue;
    }
    std::error_code type_ec;
    if (entry.is_directory(type_ec) || !entry.is_regular_file(type_ec)) continue;
    if (!AddFile(entry.path().string(), spec, files, error)) return false;
  }
  if (ec) {
    *error = "cannot read input directory: " + dir + " (from " + spec + "): " + ec.message();
    return false;
  }
  return true;
}

// Adds what one path names: a regular file, or a directory's files.
bool AddPath(const std::string& path, const std::string& spec, std::vector<InputFile>* files,
             std::string* error) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) {
    *error = "input not found: " + spec;
    return false;
  }
  if (ec) {
    *error = "cannot read input: " + spec + ": " + ec.message();
    return false;
  }
  if (status.type() == fs::file_type::directory) return AddDirectory(path, spec, files, error);
  return AddFile(path, spec, files, error);
}

// Expands a glob spec. Matches with hidden names are skipped unless the pattern's last component
// itself starts with '.' or '_' (the user asked for them).
bool AddGlob(const std::string& spec, std::vector<InputFile>* files, std::string* error) {
  const std::string pattern = AbsolutePath(spec);
  glob_t matches;
  std::memset(&matches, 0, sizeof(matches));
  const int rc = ::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &matches);
  std::vector<std::string> paths;
  if (rc == 0) {
    for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  }
  ::globfree(&matches);
  if (rc != 0 && rc != GLOB_NOMATCH) {
    *error = "cannot expand input glob: " + spec;
    return false;
  }
  const bool wants_hidden = IsHiddenName(fs::path(pattern).filename().string());
  bool matched = false;
  for (const std::string& path : paths) {
    const std::string name = fs::path(path).filename().string();
    if (name == "." || name == "..") continue;  // glob(3) lets ".*" match them
    if (!wants_hidden && IsHiddenName(name)) continue;
    matched = true;
    if (!AddPath(AbsolutePath(path), spec, files, error)) return false;
  }
  if (!matched) {
    *error = "no input files matched: " + spec;
    return false;
  }
  return true;
}

void SortAndDedup(std::vector<InputFile>* files) {
  std::sort(files->begin(), files->end(),
            [](const InputFile& a, const InputFile& b) { return a.path < b.path; });
  files->erase(std::unique(files->begin(), files->end(),
                           [](const InputFile& a, const InputFile& b) { return a.path == b.path; }),
               files->end());
}

}  // namespace

bool ExpandInputs(const std::vector<std::string>& specs, std::vector<InputFile>* files,
                  std::string* error) {
  std::vector<InputFile> found;
  for (const std::string& spec : specs) {
    if (spec.empty()) {
      *error = "empty input path";
      return false;
    }
    const bool ok = IsGlob(spec) ? AddGlob(spec, &found, error)
                                 : AddPath(AbsolutePath(spec), spec, &found, error);
    if (!ok) return false;
  }
  if (found.empty()) {
    *error = specs.empty() ? "no input files" : "no input files: " + JoinSpecs(specs);
    return false;
  }
  SortAndDedup(&found);
  *files = std::move(found);
  return true;
}

bool StatInputs(const std::vector<std::string>& paths, std::vector<InputFile>* files,
                std::string* error) {
  std::vector<InputFile> found;
  found.reserve(paths.size());
  for (const std::string& path : paths) {
    if (path.empty() || path[0] != '/') {
      *error = "input path is not absolute: " + path;
      return false;
    }
    if (!AddFile(path, path, &found, error)) return false;
  }
  *files = std::move(found);
  return true;
}

bool CheckOutputDir(const std::string& output, std::string* error) {
  if (output.empty()) {
    *error = "output path is empty";
    return false;
  }
  const fs::path path(AbsolutePath(output));
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::directory) {
    const bool empty = fs::is_empty(path, ec);
    if (ec) {
      *error = "cannot read output directory: " + output + ": " + ec.message();
      return false;
    }
    if (!empty) {
      *error = "output already exists: " + output;
      return false;
    }
    return true;
  }
  if (status.type() != fs::file_type::not_found) {
    if (ec) {
      *error = "cannot check output: " + output + ": " + ec.message();
    } else {
      *error = "output already exists: " + output;
    }
    return false;
  }
  const fs::path parent = path.parent_path();
  const fs::file_status parent_status = fs::status(parent, ec);
  if (parent_status.type() == fs::file_type::not_found) {
    *error = "output parent directory does not exist: " + parent.string();
    return false;
  }
  if (parent_status.type() == fs::file_type::none) {
    *error = "cannot check output parent directory: " + parent.string() + ": " + ec.message();
    return false;
  }
  if (parent_status.type() != fs::file_type::directory) {
    *error = "output parent is not a directory: " + parent.string();
    return false;
  }
  return true;
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(path), ec);
  if (ec) absolute = fs::path(path);
  std::string normal = absolute.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

}  // namespace zmr
