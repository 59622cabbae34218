// Helpers for the read model's saga tests: saga event builders and seeded random saga streams
// with their independent replay (the expected views, computed without the read model's code).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/random.h"
#include "readmodel_test_util.h"
#include "treaty/v1/log.pb.h"

namespace treaty::readmodel::testing {

// A saga whose step i is "s<i>" on services[i] (action "do-<service>", compensation
// "undo-<service>"), without dependencies.
inline v1::LogEvent SagaBegun(const std::string& xid, int64_t unix_ms,
                              const std::vector<std::string>& services) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::SagaDefinition* saga = event.mutable_saga_begun()->mutable_saga();
  for (size_t i = 0; i < services.size(); ++i) {
    v1::SagaStep* step = saga->add_steps();
    step->set_id("s" + std::to_string(i));
    step->set_service(services[i]);
    step->set_action("do-" + services[i]);
    step->set_compensation("undo-" + services[i]);
    step->set_payload("{}");
  }
  return event;
}

inline v1::LogEvent StepChanged(const std::string& xid, int64_t unix_ms, uint32_t step,
                                v1::StepState state, uint32_t attempts = 1,
                                const std::string& error = "") {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::StepChanged* changed = event.mutable_step_changed();
  changed->set_step(step);
  changed->set_state(state);
  changed->set_attempts(attempts);
  changed->set_error(error);
  return event;
}

inline v1::LogEvent SagaChanged(const std::string& xid, int64_t unix_ms, v1::SagaState state,
                                const std::string& reason = "") {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  event.mutable_saga_changed()->set_state(state);
  event.mutable_saga_changed()->set_reason(reason);
  return event;
}

inline v1::LogEvent Resolved(const std::string& xid, int64_t unix_ms, const std::string& action,
                             uint32_t step = 0) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::Resolved* resolved = event.mutable_resolved();
  resolved->set_action(action);
  resolved->set_step(step);
  resolved->set_who("ops");
  resolved->set_why("checked by hand");
  return event;
}

struct ExpectedStep {
  std::string service;
  v1::StepState state = v1::STEP_PENDING;
  uint32_t attempts = 0;
  std::string error;
};

// What one saga of a generated stream is expected to look like after all its events.
struct ExpectedSaga {
  std::string xid;
  v1::SagaState state = v1::SAGA_RUNNING;
  std::vector<ExpectedStep> steps;
  std::string reason;
  int64_t created = 0, updated = 0, decided = 0, finished = 0;

  // The summary's TxState (the mapping documented in readmodel.h).
  v1::TxState tx_state() const {
    switch (state) {
      case v1::SAGA_COMPLETED:
        return v1::COMMITTED;
      case v1::SAGA_COMPENSATED:
        return v1::ABORTED;
      case v1::SAGA_COMPENSATING:
      case v1::SAGA_STUCK:
        return v1::ABORTING;
      default:
        return v1::PREPARING;
    }
  }
  // The saga as a finished-or-not transaction for ExpectedCounters.
  ExpectedTx AsTx() const {
    ExpectedTx tx;
    tx.xid = xid;
    tx.state = tx_state();
    for (const ExpectedStep& s : steps) tx.services.push_back(s.service);
    tx.reason = reason;
    tx.created = created;
    tx.updated = updated;
    tx.decided = decided;
    tx.finished = finished;
    return tx;
  }
};

struct SagaStream {
  std::vector<v1::LogEvent> events;              // in log order
  std::map<std::string, ExpectedSaga> expected;  // by xid
};

// Records one event of a saga being generated and replays it into the expectation.
class SagaBuilder {
 public:
  SagaBuilder(ExpectedSaga* saga, int64_t t0, Random& random) : s_(saga), t_(t0), r_(random) {}
  std::vector<v1::LogEvent> events;

  void Begin(const std::vector<std::string>& services) {
    events.push_back(SagaBegun(s_->xid, t_, services));
    s_->created = s_->updated = t_;
    for (const std::string& service : services) {
      ExpectedStep step;
      step.service = service;
      s_->steps.push_back(step);
    }
  }
  void Step(uint32_t i, v1::StepState state, uint32_t attempts = 1, const std::string& error = "") {
    events.push_back(StepChanged(s_->xid, Tick(), i, state, attempts, error));
    s_->steps[i] = {s_->steps[i].service, state, attempts, error};
  }
  void Saga(v1::SagaState state, const std::string& reason = "") {
    events.push_back(SagaChanged(s_->xid, Tick(), state, reason));
    s_->state = state;
    if (!reason.empty()) s_->reason = reason;
    if (s_->decided == 0) s_->decided = t_;
    if (state == v1::SAGA_COMPLETED || state == v1::SAGA_COMPENSATED) s_->finished = t_;
  }
  void MarkCompensated(uint32_t i) {
    events.push_back(Resolved(s_->xid, Tick(), "mark-compensated", i));
    s_->steps[i].state = v1::STEP_COMPENSATED;
    s_->steps[i].error = "mark-compensated by ops: checked by hand";
    s_->state = v1::SAGA_COMPENSATING;
  }

 private:
  int64_t Tick() {
    t_ += 1 + static_cast<int64_t>(r_.Uniform(1'000));
    s_->updated = t_;
    return t_;
  }
  ExpectedSaga* s_;
  int64_t t_;
  Random& r_;
};

// Sagas of 1..3 steps in every state: running, completed, compensating, compensated, stuck, and
// stuck then resolved by marking the step compensated; events interleaved across sagas.
inline SagaStream RandomSagaStream(Random& random, int sagas, int64_t base_unix_ms) {
  static const std::vector<std::string> kServices = {"svc-a", "svc-b", "svc-c"};
  SagaStream stream;
  std::vector<std::vector<v1::LogEvent>> per_saga;
  for (int i = 0; i < sagas; ++i) {
    ExpectedSaga saga;
    saga.xid = "saga-" + std::to_string(i);
    const int64_t t0 = base_unix_ms + static_cast<int64_t>(random.Uniform(60'000));
    SagaBuilder b(&saga, t0, random);
    const auto steps = static_cast<uint32_t>(1 + random.Uniform(3));
    std::vector<std::string> services;
    for (uint32_t s = 0; s < steps; ++s) services.push_back(kServices[random.Uniform(3)]);
    b.Begin(services);
    const uint64_t path = random.Uniform(6);
    if (path == 0) {  // running: a prefix of the steps done, the next one maybe running
      const uint32_t done = static_cast<uint32_t>(random.Uniform(steps));
      for (uint32_t s = 0; s < done; ++s) {
        b.Step(s, v1::STEP_RUNNING);
        b.Step(s, v1::STEP_SUCCEEDED, 2);
      }
      if (random.Chance(0.5)) b.Step(done, v1::STEP_RUNNING, 1, "timeout");
    } else if (path == 1) {  // completed
      for (uint32_t s = 0; s < steps; ++s) {
        b.Step(s, v1::STEP_RUNNING);
        b.Step(s, v1::STEP_SUCCEEDED);
      }
      b.Saga(v1::SAGA_COMPLETED);
    } else {  // the last step fails; the others succeeded and are compensated
      for (uint32_t s = 0; s + 1 < steps; ++s) {
        b.Step(s, v1::STEP_RUNNING);
        b.Step(s, v1::STEP_SUCCEEDED);
      }
      b.Step(steps - 1, v1::STEP_RUNNING);
      b.Step(steps - 1, v1::STEP_FAILED, 1, "refused: out of stock");
      b.Saga(v1::SAGA_COMPENSATING, "step s" + std::to_string(steps - 1) + " failed");
      if (path == 3) {
        // stays compensating
      } else if (path == 2) {
        for (uint32_t s = steps; s-- > 0;) b.Step(s, v1::STEP_COMPENSATED, 1);
        b.Saga(v1::SAGA_COMPENSATED);
      } else {  // stuck on the first step's compensation
        for (uint32_t s = steps; s-- > 1;) b.Step(s, v1::STEP_COMPENSATED, 1);
        b.Step(0, v1::STEP_COMPENSATING, 10, "unavailable");
        b.Saga(v1::SAGA_STUCK, "compensation of s0 failed 10 times");
        if (path == 5) {
          b.MarkCompensated(0);
          b.Saga(v1::SAGA_COMPENSATED);
        }
      }
    }
    stream.expected[saga.xid] = saga;
    per_saga.push_back(std::move(b.events));
  }
  std::vector<size_t> next(per_saga.size(), 0);
  std::vector<size_t> open;
  for (size_t i = 0; i < per_saga.size(); ++i) open.push_back(i);
  while (!open.empty()) {
    const size_t pick = random.Uniform(open.size());
    const size_t saga = open[pick];
    stream.events.push_back(per_saga[saga][next[saga]++]);
    if (next[saga] == per_saga[saga].size()) {
      open[pick] = open.back();
      open.pop_back();
    }
  }
  return stream;
}

}  // namespace treaty::readmodel::testing
