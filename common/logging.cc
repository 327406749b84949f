#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace zmr {

bool IsLogLevel(const std::string& level) {
  for (const char* name : {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"}) {
    if (level == name) return true;
  }
  return false;
}

bool SetupLogging(const std::string& program, const std::string& level) {
  if (!IsLogLevel(level)) return false;
  auto logger = spdlog::stderr_logger_mt(program);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level == "warning" ? "warn" : level));
  return true;
}

}  // namespace zmr
