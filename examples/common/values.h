// Helpers the example services share: names and integers in flags and in their RocksDB values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "participant/participant.h"

namespace treaty::examples {

// A name usable in keys and name=value lists: non-empty, without '/', ',' or '='.
bool ValidName(std::string_view name);

// The whole of text as a base-10 integer; nullopt otherwise.
std::optional<int64_t> ParseInt(std::string_view text);

// The integer stored at key, nullopt if absent; CORRUPTION naming service and key if the stored
// bytes are not one.
Result<std::optional<int64_t>> ReadInt(participant::LocalReader& db, const std::string& key,
                                       std::string_view service);
// The same with fallback for an absent key.
Result<int64_t> ReadIntOr(participant::LocalReader& db, const std::string& key, int64_t fallback,
                          std::string_view service);

// How a name=value list is described in errors, and its bound.
struct NameValueList {
  const char* item;     // "account": "bad account 'x': ...", "account 'a' is listed twice"
  const char* value;    // "balance": "expected name=balance"
  const char* example;  // "alice=100"
  int64_t max = 0;      // values must lie in [0, max]
};

// Parses "a=1,b=2" (empty: none). INVALID_ARGUMENT naming the bad item.
Result<std::map<std::string, int64_t>> ParseNameValues(std::string_view spec,
                                                       const NameValueList& list);

}  // namespace treaty::examples
