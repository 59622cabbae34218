#include "examples/common/values.h"

#include "common/text.h"

namespace treaty::examples {

bool ValidName(std::string_view name) {
  return !name.empty() && name.find_first_of("/,=") == std::string_view::npos;
}

std::optional<int64_t> ParseInt(std::string_view text) { return ParseInt64(text); }

Result<std::optional<int64_t>> ReadInt(participant::LocalReader& db, const std::string& key,
                                       std::string_view service) {
  Result<std::optional<std::string>> raw = db.Get(key);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<int64_t>();
  std::optional<int64_t> v = ParseInt(**raw);
  if (!v) {
    return Status::Corruption(std::string(service) + " key " + key + " holds '" + **raw +
                              "', not an integer");
  }
  return v;
}

Result<int64_t> ReadIntOr(participant::LocalReader& db, const std::string& key, int64_t fallback,
                          std::string_view service) {
  Result<std::optional<int64_t>> v = ReadInt(db, key, service);
  if (!v.ok()) return v.status();
  return v->value_or(fallback);
}

Result<std::map<std::string, int64_t>> ParseNameValues(std::string_view spec,
                                                       const NameValueList& list) {
  std::map<std::string, int64_t> out;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const size_t eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    std::optional<int64_t> value;
    if (eq != std::string_view::npos) value = ParseInt(item.substr(eq + 1));
    if (!ValidName(name) || !value || *value < 0 || *value > list.max) {
      return Status::InvalidArgument(std::string("bad ") + list.item + " '" + std::string(item) +
                                     "': expected name=" + list.value + ", e.g. " + list.example);
    }
    if (!out.emplace(std::string(name), *value).second) {
      return Status::InvalidArgument(std::string(list.item) + " '" + std::string(name) +
                                     "' is listed twice");
    }
  }
  return out;
}

}  // namespace treaty::examples
