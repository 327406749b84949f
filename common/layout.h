// The name of every file and folder zmr creates, in one place (as leveldb's db/filename.h): task
// and attempt ids, a worker's WORK_DIR (jobs, attempt dirs, logs, map runs, spills, the shipped-file
// cache) and a job's OUTPUT (part files, _temporary, _SUCCESS). Code asks here; nobody formats a
// path by hand. Pure functions of their arguments; any thread.
//
// WORK_DIR (a worker's own, never shared):
//   cache/<sha256>                           shipped files and plugins (worker/blob_cache.h)
//   cache/<sha256>.tmp.<pid>.<n>             one being written (renamed to cache/<sha256>)
//   jobs/<job>/<task>.a<N>.p<NNNNN>.run      a map attempt's run for one partition
//   jobs/<job>/<task>.a<N>.spill/            a built-in map's spills (no attempt dir)
//   jobs/<job>/attempts/<task>.a<N>/         the working directory of an attempt of user code
//   jobs/<job>/attempts/<task>.a<N>/<name>   a shipped file, copied from cache/ under its own name
//   jobs/<job>/attempts/<task>.a<N>/.zmr-spill/  its spills
//   jobs/<job>/logs/<task>.a<N>.log          an attempt's log
//   jobs/<job>/logs/succeeded.log            the notes of attempts that succeeded quietly
//   jobs/<job>/.cleaned                      the job's data is gone, its logs/ kept; the marker's
//                                            age is the logs' retention clock
// TMPDIR (the system temp directory):
//   zmr-spill-<job>-<task>.a<N>-<pid>/       the spills of an attempt with neither an attempt dir
//                                            nor a local work dir
// In a spill directory (any of the three above):
//   <prefix>-<NNNNNN>.p<NNNNN>.run           a spill or merge run (prefix "spill" or "merge",
//                                            NNNNNN its sequence number in the directory, then
//                                            the partition)
// OUTPUT (the job's, on a file system the coordinator and workers see):
//   _temporary/<task>.a<N>/part-<NNNNN>      an attempt's uncommitted part file
//   part-<NNNNN>                             a committed part file (NNNNN: the reduce partition,
//                                            or the map index of a map-only job)
//   _SUCCESS                                 written last, when the job completed
// Anywhere: <file>.tmp is <file> being written, renamed to <file> once complete (runs, the
// coordinator's ready file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/protocol.h"

namespace zmr::layout {

// Whether `s` can name a file inside a directory without leaving it: not empty, not "." or "..",
// no '/' and no NUL. Job ids, task ids and shipped file names from the wire are checked with it
// before they become part of a path.
bool IsSafeComponent(std::string_view s);

// "m-00004" / "r-00000": the id of the task of that kind and index.
std::string TaskId(TaskKind kind, int64_t index);
// The kind and index of a task id: a letter m or r, '-', and decimal digits (leading zeros or not,
// at most about 10^9); false for anything else.
bool ParseTaskId(std::string_view task_id, TaskKind* kind, int64_t* index);

// "m-00004.a2": one attempt of a task, in file names and messages.
std::string AttemptName(std::string_view task_id, int64_t attempt);
std::string AttemptName(const AttemptRef& ref);

// "part-00003".
inline constexpr const char* kPartFilePrefix = "part-";
std::string PartFileName(int64_t partition);
// Whether `name` is a file name PartFileName makes (part- and digits).
bool IsPartFileName(std::string_view name);

inline constexpr const char* kTemporaryDir = "_temporary";  // OUTPUT/_temporary
inline constexpr const char* kSuccessFile = "_SUCCESS";     // OUTPUT/_SUCCESS
inline constexpr const char* kSpillSubdir = ".zmr-spill";   // inside an attempt dir
inline constexpr const char* kSucceededLogName = "succeeded.log";
inline constexpr const char* kCleanedMarker = ".cleaned";  // WORK_DIR/jobs/<job>/.cleaned

// OUTPUT/_temporary, OUTPUT/_temporary/<task>.a<N>, OUTPUT/part-NNNNN, OUTPUT/_SUCCESS.
std::string OutputTemporaryDir(std::string_view output);
std::string AttemptOutputDir(std::string_view output, std::string_view task_id, int64_t attempt);
std::string CommittedPartPath(std::string_view output, int64_t partition);
std::string SuccessPath(std::string_view output);

// WORK_DIR/jobs and WORK_DIR/jobs/<job>.
std::string JobsDir(std::string_view work_dir);
std::string JobWorkDir(std::string_view work_dir, std::string_view job_id);
// WORK_DIR/jobs/<job>/attempts/<task>.a<N>.
std::string AttemptDir(std::string_view work_dir, const AttemptRef& ref);
// WORK_DIR/jobs/<job>/logs, .../logs/<task>.a<N>.log, .../logs/succeeded.log.
inline constexpr const char* kLogsDirName = "logs";
std::string JobLogsDir(std::string_view work_dir, std::string_view job_id);
std::string AttemptLogPath(std::string_view work_dir, const AttemptRef& ref);
std::string SucceededLogPath(std::string_view work_dir, std::string_view job_id);
// WORK_DIR/jobs/<job>/<task>.a<N>.p<NNNNN>.run.
std::string MapRunPath(std::string_view work_dir, std::string_view job_id, std::string_view task_id,
                       int64_t attempt, int64_t partition);
// WORK_DIR/jobs/<job>/<task>.a<N>.spill.
std::string MapSpillDir(std::string_view work_dir, std::string_view job_id,
                        std::string_view task_id, int64_t attempt);
// WORK_DIR/cache.
std::string BlobCacheDir(std::string_view work_dir);
// CACHE_DIR/<sha256>: a cached blob (the caller checks that sha256 is one).
std::string BlobPath(std::string_view cache_dir, std::string_view sha256);

// ATTEMPT_DIR/<name>: a shipped file in an attempt dir (the caller checks name with
// IsSafeComponent).
std::string ShippedFilePath(std::string_view attempt_dir, std::string_view name);

// "zmr-spill-<job>-<task>.a<N>-<pid>": the spill directory, inside the system temp directory, of
// an attempt that has neither an attempt dir nor a local work dir.
std::string TempSpillDirName(std::string_view job_id, std::string_view task_id, int64_t attempt,
                             int64_t pid);

// SPILL_DIR/<prefix>-<NNNNNN>.p<NNNNN>.run: the run number `seq` of a spill directory, for one
// partition.
std::string SpillRunPath(std::string_view spill_dir, std::string_view prefix, int64_t seq,
                         int64_t partition);

// "<path>.tmp": the file a writer fills before renaming it to path.
inline constexpr const char* kTempSuffix = ".tmp";
std::string TempPathFor(std::string_view path);
// "<path>.tmp.<pid>.<serial>": the same for writers that may race on one path (pid and a serial
// that is unique within the process tell them apart).
std::string UniqueTempPathFor(std::string_view path, int64_t pid, uint64_t serial);

}  // namespace zmr::layout
