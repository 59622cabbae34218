// Waiting for a service's registered instances (coordinator.ListServices), so bench/run.sh can
// start a measurement once the instances it expects are in (or out of) the rotation.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace treaty::bench {

struct WaitInstancesOptions {
  // Coordinator client address host:port, or a cluster's addresses comma-separated. Required.
  std::string coordinator;
  // Service whose instances are counted. Required.
  std::string service;
  // Live instances (lease not expired) wanted. Default 1.
  int live = 1;
  // How long to keep asking, milliseconds. Default 30000.
  int64_t wait_ms = 30000;
};

// Polls ListServices every 100 ms until exactly options.live instances of the service are live.
// Returns one line per instance ("address live=1 lease_age_ms=.. breaker=.."), or
// DEADLINE_EXCEEDED with the last listing when the wait ran out.
Result<std::string> WaitForLiveInstances(const WaitInstancesOptions& options);

}  // namespace treaty::bench
