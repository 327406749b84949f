#include "common/posix/signals.h"

#include <pthread.h>

#include <cstring>
#include <ctime>
#include <mutex>

namespace zmr {

std::string SignalName(int signal_number) {
  const char* abbrev = sigabbrev_np(signal_number);
  if (abbrev == nullptr) return "signal " + std::to_string(signal_number);
  return std::string("SIG") + abbrev;
}

std::string SignalDescription(int signal_number) {
  std::string text = SignalName(signal_number);
  const char* descr = sigdescr_np(signal_number);
  if (descr != nullptr) text += std::string(" (") + descr + ")";
  return text;
}

void SetSignalHandler(int signal_number, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART
  sigaction(signal_number, &action, nullptr);
}

void IgnoreSignal(int signal_number) { SetSignalHandler(signal_number, SIG_IGN); }

void IgnoreSigpipeUnlessHandled() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) != 0) return;
    if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
      IgnoreSignal(SIGPIPE);
    }
  });
}

void RaiseWithDefaultAction(int signal_number) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(signal_number, &dfl, nullptr);
  raise(signal_number);
}

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old_);
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  sigset_t pending;
  sigemptyset(&pending);
  if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) &&
      !sigismember(&old_, SIGPIPE)) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace zmr
