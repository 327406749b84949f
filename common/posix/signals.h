// Signals the way zmr's programs use them: names for messages, handlers without SA_RESTART (so a
// blocking call returns EINTR and the loop looks at its stop flag at once), SIGPIPE turned into
// EPIPE, and re-raising a signal with its default action. Part of zmr's POSIX layer
// (common/posix/). Installing handlers affects the whole process: call that from main's thread
// before other threads start; the rest is safe from any thread.
#pragma once

#include <signal.h>

#include <string>

namespace zmr {

// "SIGSEGV" for SIGSEGV; "signal N" for numbers without a name.
std::string SignalName(int signal_number);

// SignalName plus the description when there is one: "SIGSEGV (Segmentation fault)".
std::string SignalDescription(int signal_number);

// Runs `handler` on `signal_number` (no SA_RESTART, empty mask).
void SetSignalHandler(int signal_number, void (*handler)(int));

// Ignores `signal_number` (SIG_IGN).
void IgnoreSignal(int signal_number);

// Ignores SIGPIPE unless someone installed a disposition of their own (once per process): a write
// to a closed pipe is then an EPIPE, not the death of the process.
void IgnoreSigpipeUnlessHandled();

// Restores the default action of `signal_number` and raises it: a handler's way to end the process
// "by that signal" after its own clean-up. Async-signal-safe.
void RaiseWithDefaultAction(int signal_number);

// Blocks SIGPIPE on the calling thread for its lifetime (a write to a child that died is an EPIPE,
// not the death of the process), then discards a SIGPIPE that arrived meanwhile and restores the
// thread's mask.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_;
};

}  // namespace zmr
