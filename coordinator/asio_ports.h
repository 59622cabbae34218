// treatyd's implementations of the drivers' ports (driver/ports.h): timers and participant calls
// on the coordinator's Asio I/O thread, the event log (single node or Raft) with its completions
// posted to that thread, the registry as the router, and the participant calls' Prometheus
// metrics. Private to coordinator/.
#pragma once

#include <asio.hpp>
#include <map>
#include <memory>
#include <string>

#include "coordinator/cluster_mode.h"
#include "coordinator/registry.h"
#include "driver/caller.h"
#include "driver/ports.h"
#include "log/log.h"
#include "net/rpc.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
}  // namespace prometheus

namespace treaty::coordinator {

// steady_timer on io.
class IoTimers final : public driver::TimerPort {
 public:
  explicit IoTimers(asio::io_context& io) : io_(io) {}
  void After(int64_t delay_ms, std::function<void()> fn) override;

 private:
  asio::io_context& io_;
};

// One pipelined RPC channel per participant instance, created on first use.
class RpcTransport final : public driver::TransportPort {
 public:
  explicit RpcTransport(asio::io_context& io) : io_(io) {}
  void Send(driver::Request request, std::function<void(Result<std::string>)> done) override;

 private:
  asio::io_context& io_;
  std::map<std::string, std::shared_ptr<net::RpcChannel>> channels_;  // by address
};

// The event log, completions posted to io and tracked by pending (the coordinator waits for
// them before it is destroyed). An append is fatal when the log stopped after a failed write or
// when gate says this node lost the leadership.
class EventLogPort final : public driver::LogPort {
 public:
  EventLogPort(log::EventLog& log, const ClusterGate& gate, asio::io_context& io,
               PendingCallbacks& pending)
      : log_(log), gate_(gate), io_(io), pending_(pending) {}
  void Append(std::vector<v1::LogEvent> events,
              std::function<void(driver::Appended)> done) override;
  void Barrier(std::function<void(Status)> done) override;
  Result<std::optional<v1::TxnRecord>> Find(std::string_view xid) const override {
    return log_.Find(xid);
  }
  Result<std::optional<v1::Outcome>> RememberedOutcome(std::string_view xid) const override;

 private:
  log::EventLog& log_;
  const ClusterGate& gate_;
  asio::io_context& io_;
  PendingCallbacks& pending_;
};

// Any live instance from the registry.
class RegistryRouter final : public driver::RouterPort {
 public:
  RegistryRouter(Registry& registry, const Clock& clock) : registry_(registry), clock_(clock) {}
  Result<std::string> AnyInstance(const std::string& service, const std::string& key) override;

 private:
  Registry& registry_;
  const Clock& clock_;
};

// treaty_participant_calls_total, treaty_participant_calls_refused_total,
// treaty_breaker_transitions_total and treaty_breaker_state.
class CallMetrics final : public driver::CallObserver {
 public:
  explicit CallMetrics(prometheus::Registry& registry);
  void OnCall(const std::string& service, const char* phase, const char* result) override;
  void OnNewInstance(const std::string& instance) override;
  void OnRefused(const std::string& service, const char* reason) override;
  void OnBreaker(const std::string& instance, resilience::BreakerState from,
                 resilience::BreakerState to) override;

 private:
  prometheus::Family<prometheus::Counter>* calls_;
  prometheus::Family<prometheus::Counter>* refusals_;
  prometheus::Family<prometheus::Counter>* transitions_;
  prometheus::Family<prometheus::Gauge>* breaker_state_;
};

}  // namespace treaty::coordinator
