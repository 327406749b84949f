// zmr-task: a runner process that zmr-worker starts to run task attempts one at a time, out of the
// worker's own process (runner/runner.h; the pipe protocol is runner/protocol.h).
#include "runner/runner.h"

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer a crash in user code must still end this process by its signal (the
// worker reports "killed by signal SIGSEGV"), not turn into an ASan report and exit status 1.
extern "C" const char* __asan_default_options() {
  return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0";
}
#endif

int main(int argc, char** argv) { return zmr::RunTaskRunner(argc, argv); }
