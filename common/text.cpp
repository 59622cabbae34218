#include "common/text.h"

#include <cctype>
#include <charconv>
#include <climits>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>

namespace treaty {

std::optional<int64_t> ParseInt64(std::string_view text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<int64_t> ParseDurationMs(std::string_view text, bool bare_number_is_ms) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::optional<int64_t> n = ParseInt64(text.substr(0, digits));
  const std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "ms" || (unit.empty() && bare_number_is_ms)) scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (unit == "d") scale = 86'400'000;
  if (!n || scale == 0 || *n > INT64_MAX / scale) {
    return Status::InvalidArgument(
        "'" + std::string(text) + "' is not a duration (examples: " +
        (bare_number_is_ms ? "0, 500ms, 90s, 10m, 24h, 7d)" : "500ms, 90s, 10m, 2h, 7d)"));
  }
  return *n * scale;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms == 0) return "0";
  for (const auto& [unit, scale] : {std::pair{"d", 86'400'000}, std::pair{"h", 3'600'000},
                                    std::pair{"m", 60'000}, std::pair{"s", 1000}}) {
    if (ms % scale == 0) return std::to_string(ms / scale) + unit;
  }
  return std::to_string(ms) + "ms";
}

std::string FormatRfc3339Ms(int64_t unix_ms) {
  // Floor division, so that times before 1970 get a non-negative fraction too.
  const int64_t millis = ((unix_ms % 1000) + 1000) % 1000;
  const auto seconds = static_cast<std::time_t>((unix_ms - millis) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
  return std::string(text, n) + fraction;
}

std::optional<int64_t> ParseRfc3339Ms(std::string_view text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, consumed = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
                  &second, &consumed) != 6 ||
      consumed != 19 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::string_view rest = text.substr(19);
  int64_t millis = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    for (int64_t scale = 100; i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]));
         ++i, scale /= 10) {
      millis += (rest[i] - '0') * scale;
    }
    if (i == 1) return std::nullopt;
    rest = rest.substr(i);
  }
  int64_t offset_min = 0;
  if (rest != "Z" && rest != "z") {
    if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':') {
      return std::nullopt;
    }
    const auto h = ParseInt64(rest.substr(1, 2));
    const auto m = ParseInt64(rest.substr(4, 2));
    if (!h || !m) return std::nullopt;
    offset_min = (*h * 60 + *m) * (rest[0] == '-' ? -1 : 1);
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return (static_cast<int64_t>(timegm(&tm)) - offset_min * 60) * 1000 + millis;
}

}  // namespace treaty
