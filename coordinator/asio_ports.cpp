#include "coordinator/asio_ports.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>

#include "coordinator/transactions.h"

namespace treaty::coordinator {

void IoTimers::After(int64_t delay_ms, std::function<void()> fn) {
  if (delay_ms <= 0) {
    asio::post(io_, std::move(fn));
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(delay_ms));
  timer->async_wait([timer, fn = std::move(fn)](const asio::error_code& ec) {
    if (!ec) fn();
  });
}

void RpcTransport::Send(driver::Request request, std::function<void(Result<std::string>)> done) {
  std::shared_ptr<net::RpcChannel>& channel = channels_[request.instance];
  if (!channel) channel = net::RpcChannel::Create(io_, request.instance);
  channel->Call(request.method, std::move(request.payload), request.deadline_ms, std::move(done));
}

void EventLogPort::Append(std::vector<v1::LogEvent> events,
                          std::function<void(driver::Appended)> done) {
  log_.Append(
      std::move(events), pending_.Track([this, done = std::move(done)](Status s, uint64_t) mutable {
        // On the log's thread: classify now (the log's state may change later).
        const bool fatal = !s.ok() && (log_.stopped_after_failure() || gate_.LeadershipLost(s));
        asio::post(io_, [done = std::move(done), s = std::move(s), fatal] {
          done(driver::Appended{s, fatal});
        });
      }));
}

void EventLogPort::Barrier(std::function<void(Status)> done) {
  if (!gate_.clustered()) {
    asio::post(io_, [done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  log_.Barrier(pending_.Track([this, done = std::move(done)](Status s, uint64_t) mutable {
    asio::post(io_, [done = std::move(done), s = std::move(s)] { done(s); });
  }));
}

Result<std::optional<v1::Outcome>> EventLogPort::RememberedOutcome(std::string_view xid) const {
  Result<std::optional<log::UsedXid>> used = log_.FindUsedXid(xid);
  if (!used.ok()) return used.status();
  if (!used->has_value()) return std::optional<v1::Outcome>();
  return std::optional<v1::Outcome>(OutcomeOfUsedXid(**used));
}

Result<std::string> RegistryRouter::AnyInstance(const std::string& service,
                                                const std::string& key) {
  return registry_.Pick(
      service, key, clock_.NowMs(), [](const std::string&) { return true; },
      [](const std::string&) { return 0u; });
}

namespace {

double StateValue(resilience::BreakerState s) {
  switch (s) {
    case resilience::BreakerState::kClosed:
      return 0;
    case resilience::BreakerState::kHalfOpen:
      return 1;
    case resilience::BreakerState::kOpen:
      return 2;
  }
  return 0;
}

}  // namespace

CallMetrics::CallMetrics(prometheus::Registry& registry)
    : calls_(&prometheus::BuildCounter()
                  .Name("treaty_participant_calls_total")
                  .Help("Calls to participants by service, phase and result (ok, error, retry)")
                  .Register(registry)),
      refusals_(
          &prometheus::BuildCounter()
               .Name("treaty_participant_calls_refused_total")
               .Help("Calls refused before sending, by service and reason (bulkhead, breaker)")
               .Register(registry)),
      transitions_(&prometheus::BuildCounter()
                        .Name("treaty_breaker_transitions_total")
                        .Help("Circuit breaker state changes by instance and new state")
                        .Register(registry)),
      breaker_state_(&prometheus::BuildGauge()
                          .Name("treaty_breaker_state")
                          .Help("Circuit breaker state by instance: 0 closed, 1 half-open, 2 open")
                          .Register(registry)) {}

void CallMetrics::OnCall(const std::string& service, const char* phase, const char* result) {
  calls_->Add({{"service", service}, {"phase", phase}, {"result", result}}).Increment();
}

void CallMetrics::OnNewInstance(const std::string& instance) {
  breaker_state_->Add({{"instance", instance}}).Set(StateValue(resilience::BreakerState::kClosed));
}

void CallMetrics::OnRefused(const std::string& service, const char* reason) {
  refusals_->Add({{"service", service}, {"reason", reason}}).Increment();
}

void CallMetrics::OnBreaker(const std::string& instance, resilience::BreakerState /*from*/,
                            resilience::BreakerState to) {
  transitions_->Add({{"instance", instance}, {"to", resilience::BreakerStateName(to)}}).Increment();
  breaker_state_->Add({{"instance", instance}}).Set(StateValue(to));
}

}  // namespace treaty::coordinator
