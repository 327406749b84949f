#include "common/posix/io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace zmr {

std::string ErrnoText(int err) { return std::generic_category().message(err); }

bool WriteAll(int fd, std::string_view data, int* err, int64_t* written) {
  int64_t total = 0;
  int failure = 0;
  bool ok = true;
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = n < 0 ? errno : 0;
      ok = false;
      break;
    }
    total += n;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  if (err != nullptr) *err = failure;
  if (written != nullptr) *written = total;
  return ok;
}

namespace {

// Calls read_some(buf + done, n - done, done) until n bytes, end of file or an error other than
// EINTR; the shape of ReadFull and PreadFull.
template <typename ReadSome>
ssize_t ReadUntilFull(char* buf, std::size_t n, int* err, ReadSome read_some) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = read_some(buf + done, n - done, done);
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return -1;
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

ssize_t ReadSome(int fd, char* buf, std::size_t n, int* err) {
  for (;;) {
    const ssize_t r = ::read(fd, buf, n);
    if (r >= 0) return r;
    if (errno != EINTR) {
      *err = errno;
      return -1;
    }
  }
}

ssize_t ReadFull(int fd, char* buf, std::size_t n, int* err) {
  return ReadUntilFull(buf, n, err, [fd](char* p, std::size_t left, std::size_t) {
    return ::read(fd, p, left);
  });
}

ssize_t PreadFull(int fd, char* buf, std::size_t n, off_t offset, int* err) {
  return ReadUntilFull(buf, n, err, [fd, offset](char* p, std::size_t left, std::size_t done) {
    return ::pread(fd, p, left, offset + static_cast<off_t>(done));
  });
}

int ReadExactly(int fd, char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      return got == 0 ? 0 : -1;
    } else if (errno != EINTR) {
      return -1;
    }
  }
  return 1;
}

bool ReadAvailable(int fd, std::string* out) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out->append(buf, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof(buf)) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // end of file or a real error
  }
}

bool SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool SetCloseOnExec(int fd) { return ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0; }

bool MakePipe(UniqueFd* read_end, UniqueFd* write_end, std::string* error, int min_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = "cannot create a pipe: " + ErrnoText(errno);
    return false;
  }
  UniqueFd ends[2] = {UniqueFd(fds[0]), UniqueFd(fds[1])};
  for (UniqueFd& end : ends) {
    if (end.get() >= min_fd) continue;
    const int moved = ::fcntl(end.get(), F_DUPFD_CLOEXEC, min_fd);
    if (moved < 0) {
      *error = "cannot create a pipe: " + ErrnoText(errno);
      return false;
    }
    end = UniqueFd(moved);
  }
  *read_end = std::move(ends[0]);
  *write_end = std::move(ends[1]);
  return true;
}

}  // namespace zmr
