// SagaSimWorld: the network between the coordinator and its participants, the checks made when
// a call goes out, and the invariants checked at quiescence.
#include <string>
#include <utility>

#include "tests/sim/saga_sim_world.h"

namespace treaty::sim {

using saga::CallStep;
using saga::Phase;

namespace {

bool NeedsCompensation(v1::StepState state) {
  return state == v1::STEP_RUNNING || state == v1::STEP_SUCCEEDED || state == v1::STEP_FAILED ||
         state == v1::STEP_COMPENSATING;
}

}  // namespace

SagaSimParticipant& SagaSimWorld::ParticipantFor(const std::string& service) {
  return participants_.at(std::stoul(service.substr(1)));  // "s<index>"
}

// An action goes out only once the log says the step is RUNNING in a RUNNING saga; a compensation
// only once the log says the saga is COMPENSATING and every step after it is compensated.
void SagaSimWorld::CheckCallAllowed(const CallStep& call) {
  auto it = records_.find(call.xid);
  if (it == records_.end()) {
    Violation(call.xid,
              std::string(saga::PhaseName(call.phase)) + " sent before SagaBegun is durable");
    return;
  }
  const v1::TxnRecord& rec = it->second;
  const std::string what = std::string(saga::PhaseName(call.phase)) + " of step " +
                           std::to_string(call.step) + " sent while the log says the saga is " +
                           v1::SagaState_Name(rec.saga_state()) + " and the step is " +
                           v1::StepState_Name(rec.steps(static_cast<int>(call.step)).state());
  const v1::StepState step = rec.steps(static_cast<int>(call.step)).state();
  if (call.phase == Phase::kAction) {
    if (rec.saga_state() != v1::SAGA_RUNNING || step != v1::STEP_RUNNING) Violation(call.xid, what);
    return;
  }
  if (rec.saga_state() != v1::SAGA_COMPENSATING || !NeedsCompensation(step)) {
    Violation(call.xid, what);
    return;
  }
  const std::string& id = rec.saga().steps(static_cast<int>(call.step)).id();
  for (int j = 0; j < rec.saga().steps_size(); ++j) {
    for (const std::string& after : rec.saga().steps(j).after()) {
      if (after == id && NeedsCompensation(rec.steps(j).state())) {
        Violation(call.xid, "step " + std::to_string(call.step) + " compensated before step " +
                                std::to_string(j) + " which comes after it (" +
                                v1::StepState_Name(rec.steps(j).state()) + ")");
      }
    }
  }
}

void SagaSimWorld::Call(const CallStep& call) {
  CheckCallAllowed(call);
  const uint64_t id = next_call_id_++;
  open_calls_.insert(id);
  AtCoordinator(Now() + call.deadline_ms, [this, id, call] {
    if (open_calls_.erase(id) == 0) return;
    Feed(saga::CallFailed{call.xid, call.step, call.phase, call.attempt,
                          Status::DeadlineExceeded("no response within " +
                                                   std::to_string(call.deadline_ms) + " ms")});
  });
  if (faults_ && random_.Chance(options_.drop_request)) {
    ++result_.stats.dropped_messages;
    return;
  }
  int copies = 1;
  if (faults_ && random_.Chance(options_.duplicate_request)) {
    ++result_.stats.duplicated_messages;
    copies = 2;
  }
  const uint64_t incarnation = incarnation_;
  for (int i = 0; i < copies; ++i) {
    int64_t delay = NetDelay();
    if (faults_ && random_.Chance(options_.slow_request)) {
      ++result_.stats.slow_requests;
      delay += static_cast<int64_t>(random_.Uniform(400));
    }
    // Not tied to the incarnation: a request in flight still arrives after the caller died.
    At(Now() + delay, [this, id, call, incarnation] { Serve(id, call, incarnation); });
  }
}

void SagaSimWorld::Serve(uint64_t call_id, const CallStep& call, uint64_t incarnation) {
  SagaSimParticipant& p = ParticipantFor(call.service);
  std::function<void()> respond;
  if (p.down(Now())) {
    if (random_.Chance(0.5)) return;  // silence: the caller times out
    respond = [this, call] {
      Feed(saga::CallFailed{call.xid, call.step, call.phase, call.attempt,
                            Status::Unavailable("connection refused by " + call.service)});
    };
  } else {
    StepAnswer answer = call.phase == Phase::kAction
                            ? p.Action(call.xid, call.step, options_.steps, faults_, random_)
                            : p.Compensate(call.xid, call.step, options_.steps, faults_, random_);
    respond = [this, call, answer = std::move(answer)] {
      if (!answer.status.ok()) {
        Feed(saga::CallFailed{call.xid, call.step, call.phase, call.attempt, answer.status});
      } else {
        Feed(saga::StepReplied{call.xid, call.step, call.phase, answer.outcome, answer.reason});
      }
    };
  }
  if (faults_ && random_.Chance(options_.drop_response)) {
    ++result_.stats.dropped_messages;
    return;
  }
  At(Now() + NetDelay(), [this, call_id, incarnation, respond = std::move(respond)] {
    if (!Alive(incarnation) || open_calls_.erase(call_id) == 0) return;
    respond();
  });
}

void SagaSimWorld::CheckQuiescent() {
  if (!up_) Violation("-", "coordinator down at quiescence");
  if (core_ != nullptr && core_->active() != 0) {
    Violation("-", "the core still holds " + std::to_string(core_->active()) +
                       " saga(s) with nothing left to happen");
  }
  for (const auto& [xid, rec] : records_) {
    if (client_of_xid_.count(xid) == 0) Violation(xid, "logged but never submitted");
  }
  for (const SagaSimParticipant& p : participants_) {
    result_.stats.barred_actions += p.barred_actions();
    result_.stats.null_compensations += p.null_compensations();
  }
  for (const Client& c : clients_) {
    if (!c.satisfied) Violation(c.xid, "the client never got its reply");
    auto it = records_.find(c.xid);
    if (it == records_.end()) {
      if (c.satisfied) Violation(c.xid, "the client got an OK reply but nothing was logged");
      continue;
    }
    const v1::TxnRecord& rec = it->second;
    const v1::SagaState final_state = rec.saga_state();
    if (final_state != v1::SAGA_COMPLETED && final_state != v1::SAGA_COMPENSATED) {
      Violation(c.xid, "unfinished at quiescence: " + v1::SagaState_Name(final_state));
      continue;
    }
    ++(final_state == v1::SAGA_COMPLETED ? result_.stats.completed : result_.stats.compensated);
    if (c.wait && !c.reported.has_value()) {
      Violation(c.xid, "a waiting client was satisfied without a final state");
    }
    if (c.reported.has_value()) {
      if (*c.reported == v1::SAGA_STUCK ? ever_stuck_.count(c.xid) == 0
                                        : *c.reported != final_state) {
        Violation(c.xid, "the client was told " + v1::SagaState_Name(*c.reported) +
                             " but the log says " + v1::SagaState_Name(final_state));
      }
    }
    for (int i = 0; i < rec.saga().steps_size(); ++i) {
      const auto step = static_cast<uint32_t>(i);
      const SagaSimParticipant& p = ParticipantFor(rec.saga().steps(i).service());
      const StepFate fate = p.FateOf(c.xid, step);
      const std::string where = "step " + std::to_string(i) + " (" +
                                v1::StepState_Name(rec.steps(i).state()) + ", participant " +
                                StepFateName(fate) + ")";
      if (p.Applied(c.xid, step) > 1 || p.Undone(c.xid, step) > 1) {
        Violation(c.xid, where + ": an effect took place twice");
      }
      if (final_state == v1::SAGA_COMPLETED) {
        if (fate != StepFate::kApplied) Violation(c.xid, where + " in a COMPLETED saga");
      } else if (fate == StepFate::kApplied) {
        Violation(c.xid, where + ": applied but never compensated in a COMPENSATED saga");
      } else if (fate == StepFate::kNone && rec.steps(i).state() != v1::STEP_SKIPPED) {
        Violation(c.xid, where + ": logged compensated but the participant never saw it");
      }
    }
  }
}

}  // namespace treaty::sim
