#include "coordinator/participant_caller.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <asio.hpp>

#include "resilience/retry.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::coordinator {
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

// A participant's answer counts against its breaker only when it says the instance is unwell
// (transport failures, timeouts, overload, internal errors); a refusal or a NO vote is healthy.
bool CountsAsFailure(const Status& s) { return !s.ok() && resilience::IsRetryable(s); }

}  // namespace

struct ParticipantCaller::Instance {
  explicit Instance(const resilience::BreakerOptions& o) : breaker(o) {}
  resilience::CircuitBreaker breaker;
  std::shared_ptr<net::RpcChannel> channel;
  uint32_t in_flight = 0;
  uint64_t rejected = 0;
  prometheus::Gauge* state_gauge = nullptr;
};

ParticipantCaller::ParticipantCaller(asio::io_context& io, const Clock& clock,
                                     CallerOptions options, prometheus::Registry* registry)
    : io_(io), clock_(clock), options_(std::move(options)) {
  if (registry == nullptr) return;
  calls_ = &prometheus::BuildCounter()
                .Name("treaty_participant_calls_total")
                .Help("Calls to participants by service, phase and result (ok, error, retry)")
                .Register(*registry);
  rejections_ =
      &prometheus::BuildCounter()
           .Name("treaty_participant_calls_refused_total")
           .Help("Calls refused before sending, by service and reason (bulkhead, breaker)")
           .Register(*registry);
  transitions_ = &prometheus::BuildCounter()
                      .Name("treaty_breaker_transitions_total")
                      .Help("Circuit breaker state changes by instance and new state")
                      .Register(*registry);
  breaker_state_ = &prometheus::BuildGauge()
                        .Name("treaty_breaker_state")
                        .Help("Circuit breaker state by instance: 0 closed, 1 half-open, 2 open")
                        .Register(*registry);
}

ParticipantCaller::~ParticipantCaller() = default;

ParticipantCaller::Instance& ParticipantCaller::InstanceFor(const std::string& address) {
  auto& slot = instances_[address];
  if (!slot) {
    slot = std::make_unique<Instance>(options_.breaker);
    slot->channel = net::RpcChannel::Create(io_, address);
    Instance* inst = slot.get();
    if (breaker_state_ != nullptr)
      inst->state_gauge = &breaker_state_->Add({{"instance", address}});
    inst->breaker.set_on_transition(
        [this, inst, address](resilience::BreakerState from, resilience::BreakerState to) {
          spdlog::warn("circuit breaker instance={} {} -> {}", address,
                       resilience::BreakerStateName(from), resilience::BreakerStateName(to));
          if (transitions_ != nullptr) {
            transitions_->Add({{"instance", address}, {"to", resilience::BreakerStateName(to)}})
                .Increment();
          }
          if (inst->state_gauge != nullptr) inst->state_gauge->Set(StateValue(to));
        });
  }
  return *slot;
}

resilience::Bulkhead& ParticipantCaller::BulkheadFor(const std::string& service) {
  auto& slot = bulkheads_[service];
  if (!slot) slot = std::make_unique<resilience::Bulkhead>(options_.max_in_flight_per_service);
  return *slot;
}

void ParticipantCaller::Call(const twopc::CallParticipant& c, const std::string& address,
                             net::Callback done) {
  CallSpec spec;
  spec.service = c.service;
  spec.phase = twopc::PhaseName(c.phase);
  spec.attempt = c.attempt;
  spec.deadline_ms = options_.decision_call_timeout_ms;
  if (c.phase == twopc::Phase::kPrepare) {
    v1::PrepareRequest req;
    req.set_xid(c.xid);
    req.set_branch_id(c.branch);
    req.set_op(c.op);
    req.set_payload(c.payload);
    spec.payload = req.SerializeAsString();
    spec.method = v1::methods::kPrepare;
    spec.deadline_ms = std::max<int64_t>(1, c.deadline_ms);
    spec.prepare_like = true;
  } else {
    v1::DecisionRequest req;
    req.set_xid(c.xid);
    req.set_branch_id(c.branch);
    spec.payload = req.SerializeAsString();
    spec.method = c.phase == twopc::Phase::kCommit ? v1::methods::kCommit : v1::methods::kAbort;
  }
  Send(std::move(spec), address, std::move(done));
}

void ParticipantCaller::Send(CallSpec spec, const std::string& address, net::Callback done) {
  const char* phase = spec.phase;
  auto refuse = [&](const char* reason, Status s) {
    if (rejections_ != nullptr) {
      rejections_->Add({{"service", spec.service}, {"reason", reason}}).Increment();
    }
    asio::post(io_, [done = std::move(done), s = std::move(s)]() mutable { done(std::move(s)); });
  };
  Instance& inst = InstanceFor(address);
  resilience::Bulkhead& bulkhead = BulkheadFor(spec.service);
  if (!bulkhead.TryAcquire()) {
    ++inst.rejected;
    return refuse("bulkhead", Status::ResourceExhausted(
                                  "bulkhead full: " + std::to_string(bulkhead.in_flight()) +
                                  " calls in flight to service " + spec.service));
  }
  resilience::CircuitBreaker::Ticket ticket = 0;
  if (!inst.breaker.Allow(clock_.NowMs(), &ticket)) {
    bulkhead.Release();
    ++inst.rejected;
    std::string m = "circuit breaker open for " + spec.service + " at " + address;
    return refuse("breaker", spec.prepare_like ? Status::Aborted(m) : Status::Unavailable(m));
  }
  if (calls_ != nullptr && spec.attempt > 1) {
    calls_->Add({{"service", spec.service}, {"phase", phase}, {"result", "retry"}}).Increment();
  }
  ++inst.in_flight;
  inst.channel->Call(
      spec.method, std::move(spec.payload), std::max<int64_t>(1, spec.deadline_ms),
      [this, &inst, &bulkhead, ticket, service = spec.service, phase,
       done = std::move(done)](Result<std::string> r) mutable {
        --inst.in_flight;
        bulkhead.Release();
        // Any answer counts as health, also one the participant gave from its
        // barrier without running a handler: a half-open breaker whose only
        // traffic is redelivered decisions must be able to close, or those
        // decisions would wait forever.
        if (CountsAsFailure(r.status())) {
          inst.breaker.OnFailure(clock_.NowMs(), ticket);
        } else {
          inst.breaker.OnSuccess(clock_.NowMs(), ticket);
        }
        if (calls_ != nullptr) {
          calls_->Add({{"service", service}, {"phase", phase}, {"result", r.ok() ? "ok" : "error"}})
              .Increment();
        }
        done(std::move(r));
      });
}

bool ParticipantCaller::Usable(const std::string& instance) const {
  auto it = instances_.find(instance);
  if (it == instances_.end()) return true;
  return it->second->breaker.state(clock_.NowMs()) != resilience::BreakerState::kOpen;
}

uint32_t ParticipantCaller::Outstanding(const std::string& instance) const {
  auto it = instances_.find(instance);
  return it == instances_.end() ? 0 : it->second->in_flight;
}

ParticipantCaller::InstanceStats ParticipantCaller::StatsOf(const std::string& instance) const {
  InstanceStats s;
  s.breaker = resilience::BreakerStateName(resilience::BreakerState::kClosed);
  auto it = instances_.find(instance);
  if (it == instances_.end()) return s;
  s.breaker = resilience::BreakerStateName(it->second->breaker.state(clock_.NowMs()));
  s.in_flight = it->second->in_flight;
  s.rejected = it->second->rejected;
  return s;
}

uint32_t ParticipantCaller::ServiceInFlight(const std::string& service) const {
  auto it = bulkheads_.find(service);
  return it == bulkheads_.end() ? 0 : it->second->in_flight();
}

}  // namespace treaty::coordinator
