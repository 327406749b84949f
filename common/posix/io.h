// Reading and writing file descriptors the way every zmr program needs it: all of a buffer
// (retrying short writes and EINTR), exactly n bytes, whatever a non-blocking fd has, pipes that
// stay out of children, and errno as text. Part of zmr's POSIX layer (common/posix/). Plain
// functions; safe from any thread (they share nothing).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/posix/fd.h"

namespace zmr {

// The text of an errno value ("No such file or directory").
std::string ErrnoText(int err);

// Writes all of `data` to fd, retrying short writes and EINTR. Returns true when all was
// written; otherwise false with the errno in *err (0 when write returned 0). *written (if given)
// gets the bytes written either way (a log counts what it kept).
bool WriteAll(int fd, std::string_view data, int* err = nullptr, int64_t* written = nullptr);

// One read of up to n bytes into buf, retrying EINTR: what the fd has now (for a /proc file, all
// of it in one call; 0 at end of file). Returns the bytes read, or -1 with the errno in *err.
ssize_t ReadSome(int fd, char* buf, std::size_t n, int* err);

// Reads up to n bytes into buf (fewer only at end of file), retrying EINTR. Returns the bytes
// read, or -1 with the errno in *err.
ssize_t ReadFull(int fd, char* buf, std::size_t n, int* err);
// The same at `offset` (pread), leaving the file position alone.
ssize_t PreadFull(int fd, char* buf, std::size_t n, off_t offset, int* err);

// Reads exactly n bytes into buf, retrying EINTR. Returns 1 when all were read, 0 at end of file
// before the first byte, -1 on an error (errno set) or end of file after some bytes.
int ReadExactly(int fd, char* buf, std::size_t n);

// Appends what a non-blocking fd has now to *out. Returns false at end of file or on an error
// other than EAGAIN (the fd is then done), true otherwise.
bool ReadAvailable(int fd, std::string* out);

// Sets O_NONBLOCK on fd. Returns false (errno set) on failure.
bool SetNonBlocking(int fd);

// Sets FD_CLOEXEC on fd (no child started by exec inherits it). Returns false (errno set) on
// failure.
bool SetCloseOnExec(int fd);

// Makes a pipe whose two ends are close-on-exec (no child inherits them by accident) and numbered
// at least min_fd (so that a child's dup2 onto its low descriptors never meets one of them).
// Returns false with a one-line *error.
bool MakePipe(UniqueFd* read_end, UniqueFd* write_end, std::string* error, int min_fd = 3);

}  // namespace zmr
