// Registered participant services: service name -> instance address. Persisted in the log's meta
// column family so a restarted coordinator can deliver decisions before participants re-register.
// Leases, several instances per service and load balancing build on this later.
//
// Thread-safety: none; used from the coordinator's I/O thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "log/log.h"

namespace treaty::coordinator {

// Longest service name accepted; names are keys and show up in logs and metrics.
inline constexpr size_t kMaxServiceNameBytes = 128;

class Registry {
 public:
  explicit Registry(log::EventLog& log) : log_(log) {}

  // Loads every persisted registration. CORRUPTION if a record does not parse.
  Status Load();

  // Records (service, address); persists only when the address changed. INVALID_ARGUMENT for an
  // empty or too long name or an unparsable address.
  Status Register(const std::string& service, const std::string& address, int64_t unix_ms);

  std::optional<std::string> AddressOf(const std::string& service) const;
  // "bank-a, bank-b" — for error messages.
  std::string Names() const;
  std::vector<v1::ServiceRecord> List() const;

 private:
  log::EventLog& log_;
  std::map<std::string, v1::ServiceRecord> services_;
};

}  // namespace treaty::coordinator
