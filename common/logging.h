// Process-wide logging setup: spdlog to stderr with a fixed pattern. Call once from main().
#pragma once

#include <string>

namespace zmr {

// Sets the default logger to stderr at `level` (trace, debug, info, warn, error, critical, off).
// Returns false if the level name is unknown.
bool SetupLogging(const std::string& program, const std::string& level);

// Whether `level` names a spdlog level.
bool IsLogLevel(const std::string& level);

}  // namespace zmr
