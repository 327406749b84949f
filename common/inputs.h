// Expanding the inputs a user names on `zmr submit --input` into the list of files a job reads.
// Used by the client (to expand and validate before submitting) and the coordinator (to check the
// files again and learn their sizes). Pure functions over the local filesystem.
#pragma once

#include <string>
#include <vector>

#include "common/splits.h"

namespace zmr {

// Expands each spec: a regular file is taken as is; a directory contributes its regular files
// recursively, skipping hidden entries (names starting with '.' or '_', as Hadoop does, so
// `_SUCCESS` and `_temporary` are never read); a spec containing '*', '?' or '[' is a glob whose
// matches are expanded the same way. Paths are made absolute, de-duplicated and sorted bytewise.
// Returns false with a one-line *error naming the spec when a spec matches nothing, a path does not
// exist, or a file cannot be opened for reading. An empty directory is an error only if no spec
// yields any file ("no input files").
bool ExpandInputs(const std::vector<std::string>& specs, std::vector<InputFile>* files,
                  std::string* error);

// Stats already-expanded absolute file paths (the coordinator's check). Same errors as above.
bool StatInputs(const std::vector<std::string>& paths, std::vector<InputFile>* files,
                std::string* error);

// Checks that `output` may be used as a job's output directory: it must not exist, or be an empty
// directory, and its parent must exist. Returns false with a one-line *error otherwise.
bool CheckOutputDir(const std::string& output, std::string* error);

// Absolute, lexically normalised form of a path (no filesystem access beyond the current dir).
std::string AbsolutePath(const std::string& path);

}  // namespace zmr
