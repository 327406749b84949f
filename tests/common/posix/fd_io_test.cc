#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <doctest/doctest.h>

#include "common/posix/fd.h"
#include "common/posix/io.h"
#include "common/posix/signals.h"

namespace zmr {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST_CASE("a UniqueFd closes its descriptor when it goes away, and a move hands it on") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  close(fds[1]);
  int raw = fds[0];
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    CHECK_FALSE(a.valid());
    CHECK(b.get() == raw);
    CHECK(IsOpen(raw));
  }
  CHECK_FALSE(IsOpen(raw));

  REQUIRE(pipe(fds) == 0);
  UniqueFd kept(fds[0]);
  const int released = kept.Release();
  CHECK_FALSE(kept.valid());
  CHECK(IsOpen(released));
  close(released);
  UniqueFd closing(fds[1]);
  CHECK(closing.Close() == 0);
  CHECK_FALSE(IsOpen(fds[1]));
}

TEST_CASE("MakePipe gives close-on-exec ends numbered at least min_fd") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error, 20));
  CHECK(r.get() >= 20);
  CHECK(w.get() >= 20);
  CHECK((fcntl(r.get(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(w.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("SetCloseOnExec marks a descriptor close-on-exec and fails on a closed one") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);  // no O_CLOEXEC
  UniqueFd r(fds[0]), w(fds[1]);
  CHECK((fcntl(r.get(), F_GETFD) & FD_CLOEXEC) == 0);
  CHECK(SetCloseOnExec(r.get()));
  CHECK((fcntl(r.get(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(w.get(), F_GETFD) & FD_CLOEXEC) == 0);
  const int closed = w.Release();
  close(closed);
  errno = 0;
  CHECK_FALSE(SetCloseOnExec(closed));
  CHECK(errno == EBADF);
}

TEST_CASE("WriteAll and ReadExactly move a buffer larger than a pipe holds") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error));
  const std::string data(1 << 20, 'x');
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    r.Reset();
    _exit(WriteAll(w.get(), data) ? 0 : 1);
  }
  w.Reset();
  std::string got(data.size(), '\0');
  CHECK(ReadExactly(r.get(), got.data(), got.size()) == 1);
  CHECK(got == data);
  char one;
  CHECK(ReadExactly(r.get(), &one, 1) == 0);  // end of file before the first byte
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(status == 0);
}

TEST_CASE("ReadExactly reports a stream that ends inside the bytes asked for") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error));
  REQUIRE(WriteAll(w.get(), "abc"));
  w.Reset();
  char buf[8];
  CHECK(ReadExactly(r.get(), buf, sizeof(buf)) == -1);
}

TEST_CASE("ReadFull stops only at end of file and PreadFull leaves the position alone") {
  char path[] = "/tmp/zmr-io-test-XXXXXX";
  UniqueFd fd(mkstemp(path));
  REQUIRE(fd.valid());
  unlink(path);
  REQUIRE(WriteAll(fd.get(), "0123456789"));
  REQUIRE(lseek(fd.get(), 0, SEEK_SET) == 0);
  char buf[32];
  int err = 0;
  CHECK(PreadFull(fd.get(), buf, 4, 6, &err) == 4);
  CHECK(std::string(buf, 4) == "6789");
  CHECK(ReadFull(fd.get(), buf, sizeof(buf), &err) == 10);
  CHECK(std::string(buf, 10) == "0123456789");
  CHECK(ReadFull(-1, buf, 1, &err) == -1);
  CHECK(err == EBADF);
}

TEST_CASE("ReadSome returns what one read gets, then 0 at end of file") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error));
  REQUIRE(WriteAll(w.get(), "abc"));
  char buf[32];
  int err = 0;
  CHECK(ReadSome(r.get(), buf, sizeof(buf), &err) == 3);  // does not wait for more
  CHECK(std::string(buf, 3) == "abc");
  w.Reset();
  CHECK(ReadSome(r.get(), buf, sizeof(buf), &err) == 0);
  CHECK(ReadSome(-1, buf, 1, &err) == -1);
  CHECK(err == EBADF);
}

TEST_CASE("ReadAvailable takes what a non-blocking pipe has and says when it is closed") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error));
  REQUIRE(SetNonBlocking(r.get()));
  std::string out;
  CHECK(ReadAvailable(r.get(), &out));  // nothing yet: still open
  CHECK(out.empty());
  REQUIRE(WriteAll(w.get(), "hello"));
  CHECK(ReadAvailable(r.get(), &out));
  CHECK(out == "hello");
  w.Reset();
  CHECK_FALSE(ReadAvailable(r.get(), &out));
  CHECK(out == "hello");
}

TEST_CASE("WriteAll to a pipe nobody reads fails with EPIPE under a SIGPIPE block") {
  UniqueFd r, w;
  std::string error;
  REQUIRE(MakePipe(&r, &w, &error));
  r.Reset();
  int err = 0;
  int64_t written = -1;
  {
    ScopedSigpipeBlock block;
    CHECK_FALSE(WriteAll(w.get(), "lost", &err, &written));
  }
  CHECK(err == EPIPE);
  CHECK(written == 0);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  CHECK_FALSE(sigismember(&mask, SIGPIPE));  // the block is over
}

TEST_CASE("errno values and signals have their usual names") {
  CHECK(ErrnoText(ENOENT) == "No such file or directory");
  CHECK(SignalName(SIGSEGV) == "SIGSEGV");
  CHECK(SignalName(SIGKILL) == "SIGKILL");
  CHECK(SignalName(200) == "signal 200");
  CHECK(SignalDescription(SIGKILL) == "SIGKILL (Killed)");
}

}  // namespace
}  // namespace zmr
