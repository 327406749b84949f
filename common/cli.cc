#include "common/cli.h"

#include <csignal>
#include <cstdio>
#include <iostream>

#include "common/posix/signals.h"

namespace zmr {

namespace {

void OnStopSignal(int) { StopFlag().store(true); }

}  // namespace

std::atomic<bool>& StopFlag() {
  static std::atomic<bool> stop{false};
  return stop;
}

void InstallStopHandlers() {
  SetSignalHandler(SIGINT, OnStopSignal);
  SetSignalHandler(SIGTERM, OnStopSignal);
  IgnoreSignal(SIGPIPE);
}

bool ParseFlags(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult* result,
                bool allow_positional) {
  try {
    *result = options.parse(argc, argv);
  } catch (const std::exception& e) {
    UsageError(options.program(), std::string(e.what()) + " (see --help)");
    return false;
  }
  if (!allow_positional && !result->unmatched().empty()) {
    UsageError(options.program(),
               "unexpected argument '" + result->unmatched().front() + "' (see --help)");
    return false;
  }
  return true;
}

int UsageError(const std::string& program, const std::string& message) {
  std::cerr << program << ": " << message << std::endl;
  return kExitUsage;
}

}  // namespace zmr
