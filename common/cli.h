// Helpers shared by the three programs' main(): flag parsing errors, signal-driven shutdown.
#pragma once

#include <atomic>
#include <string>

#include <cxxopts.hpp>

namespace zmr {

// Exit status for usage errors (unknown flag, bad value, missing argument).
inline constexpr int kExitUsage = 2;

// Set by SIGINT/SIGTERM once InstallStopHandlers() has run.
std::atomic<bool>& StopFlag();

// Installs SIGINT/SIGTERM handlers that set StopFlag() (without SA_RESTART, so blocking calls see
// EINTR), and ignores SIGPIPE.
void InstallStopHandlers();

// Parses argv with `options`; on any error prints "<program>: <reason> (see --help)" to stderr and
// returns false. Positional arguments are an error unless allow_positional.
bool ParseFlags(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult* result,
                bool allow_positional = false);

// Prints "<program>: <message>" to stderr and returns kExitUsage.
int UsageError(const std::string& program, const std::string& message);

}  // namespace zmr
