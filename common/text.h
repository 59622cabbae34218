// Parsing the text people type into flags, query parameters and files: integers, durations and
// RFC 3339 times. One implementation for the CLI, treatyd and the example services.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treaty {

// The whole of text as a base-10 integer; nullopt otherwise (empty, sign only, trailing text).
std::optional<int64_t> ParseInt64(std::string_view text);

// "500ms", "90s", "10m", "2h", "7d" in milliseconds. bare_number_is_ms: a number without a unit
// ("0", "250") is milliseconds; otherwise the unit is required. INVALID_ARGUMENT (with examples)
// for anything else, negative or overflowing values included.
Result<int64_t> ParseDurationMs(std::string_view text, bool bare_number_is_ms);

// The shortest form ParseDurationMs reads back: "30d", "36h", "90s", "1500ms"; "0" for 0.
// REQUIRES: ms >= 0.
std::string FormatDurationMs(int64_t ms);

// "2026-01-02T15:04:05.123Z": unix_ms as an RFC 3339 time in UTC, with milliseconds.
std::string FormatRfc3339Ms(int64_t unix_ms);

// "2026-01-02T15:04:05Z", with an optional fraction of a second and "Z" or a "+hh:mm"/"-hh:mm"
// offset, as Unix milliseconds; nullopt when text is not such a time.
std::optional<int64_t> ParseRfc3339Ms(std::string_view text);

}  // namespace treaty
