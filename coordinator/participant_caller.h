// Every call from the coordinator to a participant goes through here:
//   bulkhead (per service: bounded calls in flight)
//   -> circuit breaker (per instance: fail fast while the instance keeps failing)
//   -> the RPC channel (per instance, pipelined, with the call's deadline).
// Retries are the protocol core's (it schedules them with resilience::BackoffMs), so a refused or
// failed call comes back as a status the core classifies:
//   breaker open, PREPARE   -> ABORTED (definitive: the transaction aborts at once)
//   breaker open, decision  -> UNAVAILABLE (retried after backoff: a decision is never dropped)
//   breaker open, saga step -> UNAVAILABLE (an action: a failed attempt, counted against the
//                              step's max attempts). The saga shell holds a compensation back
//                              while the breaker is open instead (it is not an attempt).
//   bulkhead full           -> RESOURCE_EXHAUSTED (transient: retried)
//
// Thread-safety: none; the coordinator's I/O thread only. Callbacks run on that thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "twopc/twopc_core.h"
#include "net/rpc.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
}  // namespace prometheus

namespace treaty::coordinator {

struct CallerOptions {
  // Circuit breaker of every participant instance (see resilience/breaker.h for defaults).
  resilience::BreakerOptions breaker;
  // Calls in flight per service; beyond it calls fail with RESOURCE_EXHAUSTED and are retried.
  // Default 1024: far above what a healthy service needs at full load, low enough that one slow
  // service cannot hold every transaction of the coordinator.
  uint32_t max_in_flight_per_service = 1024;
  // Budget of one COMMIT/ABORT call, milliseconds. Default 2000.
  int64_t decision_call_timeout_ms = 2000;
};

// One call through the bulkhead and the breaker.
struct CallSpec {
  std::string service;
  const char* method = nullptr;  // e.g. v1::methods::kAction
  std::string payload;           // the serialized request
  int64_t deadline_ms = 1;       // the call's budget
  // True for calls whose refusal ends the transaction (PREPARE): an open breaker answers ABORTED.
  // Otherwise an open breaker answers UNAVAILABLE.
  bool prepare_like = false;
  const char* phase = "";  // metrics label: prepare, commit, abort, action, compensate
  uint32_t attempt = 1;    // > 1 counts as a retry in the metrics
};

class ParticipantCaller {
 public:
  // registry may be null (no metrics).
  ParticipantCaller(asio::io_context& io, const Clock& clock, CallerOptions options,
                    prometheus::Registry* registry);
  ~ParticipantCaller();
  ParticipantCaller(const ParticipantCaller&) = delete;
  ParticipantCaller& operator=(const ParticipantCaller&) = delete;

  // Sends c (PREPARE, COMMIT or ABORT) to instance. done runs exactly once on the I/O thread,
  // possibly before Call returns (refused calls).
  void Call(const twopc::CallParticipant& c, const std::string& instance, net::Callback done);
  // Sends any participant call (saga steps). done runs exactly once on the I/O thread.
  void Send(CallSpec spec, const std::string& instance, net::Callback done);

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

  asio::io_context& io_;
  const Clock& clock_;
  CallerOptions options_;
  std::map<std::string, std::unique_ptr<Instance>> instances_;              // by address
  std::map<std::string, std::unique_ptr<resilience::Bulkhead>> bulkheads_;  // by service
  prometheus::Family<prometheus::Counter>* calls_ = nullptr;
  prometheus::Family<prometheus::Counter>* rejections_ = nullptr;
  prometheus::Family<prometheus::Counter>* transitions_ = nullptr;
  prometheus::Family<prometheus::Gauge>* breaker_state_ = nullptr;
};

}  // namespace treaty::coordinator
