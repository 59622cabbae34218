// Structured logging setup (spdlog). Components log with spdlog directly and put "xid=" in every
// transaction-related line.
#pragma once

#include <string>

namespace treaty {

// Configures the default spdlog logger: stderr, pattern with time, level and the component name.
// level: "trace", "debug", "info", "warn", "error" or "off". Unknown levels fall back to "info".
void SetupLogging(const std::string& component, const std::string& level);

}  // namespace treaty
