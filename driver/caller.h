// Every call from a coordinator to a participant goes through here:
//   bulkhead (per service: bounded calls in flight)
//   -> circuit breaker (per instance: fail fast while the instance keeps failing)
//   -> the transport (TransportPort) with the call's deadline.
// A call refused before it is sent comes back with CallOutcome::refusal set: the protocol cores
// decide what a refusal means (a PREPARE refused by an open breaker aborts, a decision is retried,
// a saga compensation waits for the breaker without spending its budget). Retries are the cores'.
//
// Thread-safety: none; the driver's thread only. Completions run on that thread, never inside
// Call (refusals are deferred through the TimerPort).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "driver/ports.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"

namespace treaty::driver {

struct CallerOptions {
  // Circuit breaker of every participant instance (see resilience/breaker.h for defaults).
  resilience::BreakerOptions breaker;
  // Calls in flight per service; beyond it calls are refused (RESOURCE_EXHAUSTED) and the core
  // retries them. Default 1024: far above what a healthy service needs at full load, low enough
  // that one slow service cannot hold every transaction of the coordinator.
  uint32_t max_in_flight_per_service = 1024;
};

// One call through the bulkhead and the breaker.
struct CallSpec {
  std::string service;
  std::string instance;
  const char* method = nullptr;  // a participant.* method
  std::string payload;           // the serialized request
  int64_t deadline_ms = 1;       // the call's budget
  const char* phase = "";        // metrics label: prepare, commit, abort, action, compensate
  uint32_t attempt = 1;          // > 1 counts as a retry in the metrics
};

// Why a call was refused here, never sent (so it cannot have had an effect).
enum class Refusal {
  kNone,          // sent
  kBulkheadFull,  // response: RESOURCE_EXHAUSTED
  kBreakerOpen,   // response: UNAVAILABLE
};

struct CallOutcome {
  Result<std::string> response;  // the participant's answer, or why there is none
  Refusal refusal = Refusal::kNone;
};

// What the caller reports for metrics (coordinator/metrics implements it). All optional.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  // result: "ok", "error" or "retry" (a call with attempt > 1 is counted once as "retry" too).
  virtual void OnCall(const std::string& service, const char* phase, const char* result) = 0;
  // The first call to an instance (its breaker starts closed).
  virtual void OnNewInstance(const std::string& instance) = 0;
  // reason: "bulkhead" or "breaker".
  virtual void OnRefused(const std::string& service, const char* reason) = 0;
  virtual void OnBreaker(const std::string& instance, resilience::BreakerState from,
                         resilience::BreakerState to) = 0;
};

class Caller {
 public:
  // transport, timers, clock and observer (may be null) must outlive the Caller.
  Caller(TransportPort& transport, TimerPort& timers, const Clock& clock, CallerOptions options,
         CallObserver* observer);
  ~Caller();
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;

  // Sends spec to spec.instance; done runs exactly once on the driver's thread, after Call
  // returned.
  void Call(CallSpec spec, std::function<void(CallOutcome)> done);

  // Whether new work may be sent to the instance (its breaker is not open).
  bool Usable(const std::string& instance) const;
  // Calls in flight to the instance.
  uint32_t Outstanding(const std::string& instance) const;

  struct InstanceStats {
    std::string breaker;  // closed / open / half_open
    uint32_t in_flight = 0;
    uint64_t rejected = 0;
  };
  InstanceStats StatsOf(const std::string& instance) const;
  uint32_t ServiceInFlight(const std::string& service) const;
  uint32_t max_in_flight_per_service() const { return options_.max_in_flight_per_service; }

 private:
  struct Instance;
  Instance& InstanceFor(const std::string& address);
  resilience::Bulkhead& BulkheadFor(const std::string& service);

  TransportPort& transport_;
  TimerPort& timers_;
  const Clock& clock_;
  CallerOptions options_;
  CallObserver* observer_;
  std::map<std::string, std::unique_ptr<Instance>> instances_;              // by address
  std::map<std::string, std::unique_ptr<resilience::Bulkhead>> bulkheads_;  // by service
};

}  // namespace treaty::driver
