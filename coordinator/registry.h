// Registered participant instances: service -> instances (address, weight, lease), plus a load
// balancer per service. Registrations are persisted in the log's meta column family so a restarted
// coordinator can deliver decisions before participants re-register; a loaded instance starts with
// a fresh lease.
//
// Registration doubles as the heartbeat: an instance re-registers within its lease. An instance
// whose lease expired is no longer chosen for new branches, but decisions for branches it already
// prepared still go to it (its prepared state lives in its own database).
//
// Thread-safety: none; used from the coordinator's I/O thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/balancer.h"
#include "log/log.h"

namespace treaty::coordinator {

// Longest service name accepted; names are keys and show up in logs and metrics.
inline constexpr size_t kMaxServiceNameBytes = 128;
// Most instances per service; bounds the registry's memory and a balancer's scan.
inline constexpr size_t kMaxInstancesPerService = 256;

struct RegistryOptions {
  // How long a registration stays valid without a heartbeat, milliseconds. Default 6000
  // (participants heartbeat every 2000 ms by default).
  int64_t lease_ms = 6000;
  // Policy of services not named in `policies`. Default round-robin.
  LbPolicy default_policy = LbPolicy::kRoundRobin;
  // Per-service policy overrides.
  std::map<std::string, LbPolicy> policies;
};

class Registry {
 public:
  Registry(log::EventLog& log, RegistryOptions options);

  // Loads every persisted registration with a fresh lease from now_ms. CORRUPTION if a record
  // does not parse.
  Status Load(int64_t now_ms);

  // Registers or renews (service, address). Persists new instances and weight changes.
  // INVALID_ARGUMENT for an empty or too long name or an unparsable address,
  // RESOURCE_EXHAUSTED beyond kMaxInstancesPerService.
  Status Register(const std::string& service, const std::string& address, uint32_t weight,
                  int64_t now_ms, int64_t unix_ms);

  // True if the service ever registered (even if no instance is live now).
  bool Known(const std::string& service) const;

  // Picks a live instance for a new branch. usable(address) filters out instances that should
  // not get new work (e.g. an open circuit breaker); if it rejects every live instance, none is
  // returned. outstanding(address) feeds least-outstanding balancing.
  // NOT_FOUND for an unknown service, UNAVAILABLE when no live, usable instance exists.
  Result<std::string> Pick(const std::string& service, const std::string& key, int64_t now_ms,
                           const std::function<bool(const std::string&)>& usable,
                           const std::function<uint32_t(const std::string&)>& outstanding);

  struct InstanceView {
    std::string address;
    uint32_t weight = 1;
    int64_t lease_age_ms = 0;
    bool live = false;
  };
  struct ServiceView {
    std::string name;
    LbPolicy policy = LbPolicy::kRoundRobin;
    std::vector<InstanceView> instances;
  };
  std::vector<ServiceView> List(int64_t now_ms) const;

  // "bank-a, bank-b" — for error messages.
  std::string Names() const;
  int64_t lease_ms() const { return options_.lease_ms; }

 private:
  struct Instance {
    uint32_t weight = 1;
    int64_t heartbeat_ms = 0;
  };
  struct Service {
    std::map<std::string, Instance> instances;  // by address (sorted: stable balancing order)
    std::unique_ptr<Balancer> balancer;
  };
  Service& ServiceFor(const std::string& name);

  log::EventLog& log_;
  RegistryOptions options_;
  std::map<std::string, Service> services_;
};

}  // namespace treaty::coordinator
