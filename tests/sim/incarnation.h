// World::Incarnation: one run of a coordinator process in the simulated world. Private to
// tests/sim/world*.cpp.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/sim/world.h"

namespace treaty::sim {

// One run of a coordinator process on a node: the production drivers, the Caller, and this
// incarnation's view of every port. Followers run no coordinator and are not modelled.
struct World::Incarnation final : Clock,
                                  driver::LogPort,
                                  driver::TransportPort,
                                  driver::TimerPort,
                                  driver::RouterPort,
                                  driver::CallObserver {
  Incarnation(World& w, uint64_t id_, int node_, uint64_t seed)
      : world(w),
        id(id_),
        node(node_),
        random(seed),
        caller(*this, *this, *this, CallerOptionsFor(), this) {}

  static driver::CallerOptions CallerOptionsFor() {
    driver::CallerOptions o;
    // Short enough that breakers open and close within a simulated run.
    o.breaker.consecutive_failures = 4;
    o.breaker.reset_timeout_ms = 150;
    o.max_in_flight_per_service = 64;
    return o;
  }

  // Clock: this node's clocks (a per-node monotonic epoch; a skewed wall clock).
  int64_t NowMs() const override { return world.Now() + world.mono_offset_ms_[node]; }
  int64_t UnixMs() const override {
    return 1'700'000'000'000 + world.Now() + world.wall_skew_ms_[node];
  }
  // LogPort.
  void Append(std::vector<v1::LogEvent> events,
              std::function<void(driver::Appended)> done) override {
    world.log_.Append(id, std::move(events), std::move(done));
  }
  void Barrier(std::function<void(Status)> done) override {
    world.log_.Barrier(id, std::move(done));
  }
  Result<std::optional<v1::TxnRecord>> Find(std::string_view xid) const override {
    return world.log_.Find(id, xid);
  }
  // The simulated log keeps every record (no retention).
  Result<std::optional<v1::Outcome>> RememberedOutcome(std::string_view) const override {
    return std::optional<v1::Outcome>();
  }
  // TransportPort.
  void Send(driver::Request request, std::function<void(Result<std::string>)> done) override {
    world.Send(id, std::move(request), std::move(done));
  }
  // TimerPort.
  void After(int64_t delay_ms, std::function<void()> fn) override {
    world.AtIncarnation(id, world.Now() + std::max<int64_t>(0, delay_ms), std::move(fn));
  }
  // RouterPort: one instance per service, named like it.
  Result<std::string> AnyInstance(const std::string& service, const std::string&) override {
    return service;
  }
  // CallObserver.
  void OnCall(const std::string&, const char*, const char*) override {}
  void OnNewInstance(const std::string&) override {}
  void OnRefused(const std::string&, const char* reason) override {
    if (std::string_view(reason) == "breaker") ++world.result_.stats.breaker_refusals;
  }
  void OnBreaker(const std::string&, resilience::BreakerState, resilience::BreakerState) override {}

  World& world;
  const uint64_t id;
  const int node;
  SeededRandom random;  // the cores' backoff jitter
  driver::Caller caller;
  std::unique_ptr<driver::TwoPcDriver> twopc;
  std::unique_ptr<driver::SagaDriver> sagas;
  int64_t frozen_until_ms = 0;  // paused (SIGSTOP) until then
  bool deposed = false;         // the world knows it lost the leadership; it does not yet
  bool stopping = false;        // a driver stopped after a fatal append; being retired
};

}  // namespace treaty::sim
