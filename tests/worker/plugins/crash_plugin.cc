// A test-only plugin whose Map dies of SIGSEGV on the line "crash" (and maps every other line to
// (line, 1)): the attempt process must fail with "killed by signal SIGSEGV" while the process that
// started it carries on. Built by tests/CMakeLists.txt as a module; used by attempt_process_test.
#include <zmr/api.h>

#include <csignal>
#include <string_view>

namespace {

class CrashMapper : public zmr::api::Mapper {
 public:
  void Map(std::string_view line, zmr::api::Context& ctx) override {
    if (line == "crash") std::raise(SIGSEGV);  // what a wild pointer would do, deterministically
    ctx.Emit(line, "1");
  }
};

}  // namespace

ZMR_PLUGIN("crash", CrashMapper, void, void);
