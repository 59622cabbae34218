#include "driver/caller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "resilience/retry.h"

namespace treaty::driver {
namespace {

// A participant's answer counts against its breaker only when it says the instance is unwell
// (transport failures, timeouts, overload, internal errors); a refusal or a NO vote is healthy.
bool CountsAsFailure(const Status& s) { return !s.ok() && resilience::IsRetryable(s); }

}  // namespace

struct Caller::Instance {
  explicit Instance(const resilience::BreakerOptions& o) : breaker(o) {}
  resilience::CircuitBreaker breaker;
  uint32_t in_flight = 0;
  uint64_t rejected = 0;
};

Caller::Caller(TransportPort& transport, TimerPort& timers, const Clock& clock,
               CallerOptions options, CallObserver* observer)
    : transport_(transport),
      timers_(timers),
      clock_(clock),
      options_(std::move(options)),
      observer_(observer) {}

Caller::~Caller() = default;

Caller::Instance& Caller::InstanceFor(const std::string& address) {
  auto& slot = instances_[address];
  if (!slot) {
    slot = std::make_unique<Instance>(options_.breaker);
    slot->breaker.set_on_transition(
        [this, address](resilience::BreakerState from, resilience::BreakerState to) {
          spdlog::warn("circuit breaker instance={} {} -> {}", address,
                       resilience::BreakerStateName(from), resilience::BreakerStateName(to));
          if (observer_ != nullptr) observer_->OnBreaker(address, from, to);
        });
    if (observer_ != nullptr) observer_->OnNewInstance(address);
  }
  return *slot;
}

resilience::Bulkhead& Caller::BulkheadFor(const std::string& service) {
  auto& slot = bulkheads_[service];
  if (!slot) slot = std::make_unique<resilience::Bulkhead>(options_.max_in_flight_per_service);
  return *slot;
}

void Caller::Call(CallSpec spec, std::function<void(CallOutcome)> done) {
  auto refuse = [&](Refusal refusal, Status s) {
    if (observer_ != nullptr) {
      observer_->OnRefused(spec.service,
                           refusal == Refusal::kBulkheadFull ? "bulkhead" : "breaker");
    }
    timers_.After(0, [done = std::move(done), s = std::move(s), refusal]() mutable {
      done(CallOutcome{std::move(s), refusal});
    });
  };
  Instance& inst = InstanceFor(spec.instance);
  resilience::Bulkhead& bulkhead = BulkheadFor(spec.service);
  if (!bulkhead.TryAcquire()) {
    ++inst.rejected;
    return refuse(
        Refusal::kBulkheadFull,
        Status::ResourceExhausted("bulkhead full: " + std::to_string(bulkhead.in_flight()) +
                                  " calls in flight to service " + spec.service));
  }
  resilience::CircuitBreaker::Ticket ticket = 0;
  if (!inst.breaker.Allow(clock_.NowMs(), &ticket)) {
    bulkhead.Release();
    ++inst.rejected;
    return refuse(
        Refusal::kBreakerOpen,
        Status::Unavailable("circuit breaker open for " + spec.service + " at " + spec.instance));
  }
  if (observer_ != nullptr && spec.attempt > 1)
    observer_->OnCall(spec.service, spec.phase, "retry");
  ++inst.in_flight;
  Request request{spec.instance, spec.method, std::move(spec.payload),
                  std::max<int64_t>(1, spec.deadline_ms)};
  transport_.Send(std::move(request),
                  [this, &inst, &bulkhead, ticket, service = spec.service, phase = spec.phase,
                   done = std::move(done)](Result<std::string> r) mutable {
                    --inst.in_flight;
                    bulkhead.Release();
                    // Any answer counts as health, also one the participant gave from its barrier
                    // without running a handler: a half-open breaker whose only traffic is
                    // redelivered decisions must be able to close, or those decisions would wait
                    // forever.
                    if (CountsAsFailure(r.status())) {
                      inst.breaker.OnFailure(clock_.NowMs(), ticket);
                    } else {
                      inst.breaker.OnSuccess(clock_.NowMs(), ticket);
                    }
                    if (observer_ != nullptr)
                      observer_->OnCall(service, phase, r.ok() ? "ok" : "error");
                    done(CallOutcome{std::move(r), Refusal::kNone});
                  });
}

bool Caller::Usable(const std::string& instance) const {
  auto it = instances_.find(instance);
  if (it == instances_.end()) return true;
  return it->second->breaker.state(clock_.NowMs()) != resilience::BreakerState::kOpen;
}

uint32_t Caller::Outstanding(const std::string& instance) const {
  auto it = instances_.find(instance);
  return it == instances_.end() ? 0 : it->second->in_flight;
}

Caller::InstanceStats Caller::StatsOf(const std::string& instance) const {
  InstanceStats s;
  s.breaker = resilience::BreakerStateName(resilience::BreakerState::kClosed);
  auto it = instances_.find(instance);
  if (it == instances_.end()) return s;
  s.breaker = resilience::BreakerStateName(it->second->breaker.state(clock_.NowMs()));
  s.in_flight = it->second->in_flight;
  s.rejected = it->second->rejected;
  return s;
}

uint32_t Caller::ServiceInFlight(const std::string& service) const {
  auto it = bulkheads_.find(service);
  return it == bulkheads_.end() ? 0 : it->second->in_flight();
}

}  // namespace treaty::driver
