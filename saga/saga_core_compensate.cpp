// SagaCore: participant calls and their outcomes, retries, turning around, compensation order,
// STUCK, operator resolution and timers.
#include <algorithm>
#include <utility>

#include "resilience/retry.h"
#include "saga/saga_core.h"
#include "saga/saga_rules.h"

namespace treaty::saga {

using internal::IsFinal;
using internal::NeedsCompensation;

namespace {

std::string Describe(const v1::SagaStep& step, Phase phase) {
  return "step " + step.id() + " (" + step.service() + " " +
         (phase == Phase::kAction ? step.action() : step.compensation()) + ")";
}

}  // namespace

// ---- Sending ----

void SagaCore::SendCalls(Saga& saga, Effects& out) {
  if (saga.state == v1::SAGA_RUNNING && saga.durable == v1::SAGA_RUNNING) {
    for (uint32_t i = 0; i < saga.steps.size(); ++i) {
      const Step& s = saga.steps[i];
      // An action goes out only once its RUNNING is durable.
      if (s.state == v1::STEP_RUNNING && s.durable == v1::STEP_RUNNING && !s.in_flight &&
          s.retry_timer == 0) {
        SendCall(saga, i, Phase::kAction, out);
      }
    }
  } else if (saga.state == v1::SAGA_COMPENSATING && saga.durable == v1::SAGA_COMPENSATING) {
    for (uint32_t i = 0; i < saga.steps.size(); ++i) {
      Step& s = saga.steps[i];
      if (!NeedsCompensation(s.state) || s.in_flight || s.retry_timer != 0 ||
          !DependentsCompensated(saga, i)) {
        continue;
      }
      if (s.state != v1::STEP_COMPENSATING) {
        s.state = v1::STEP_COMPENSATING;  // in memory only; its outcome is what gets logged
        s.attempts = s.budget_base = 0;
      }
      SendCall(saga, i, Phase::kCompensate, out);
    }
  }
}

bool SagaCore::DependentsCompensated(const Saga& saga, uint32_t step) const {
  return std::all_of(
      saga.graph.dependents[step].begin(), saga.graph.dependents[step].end(), [&](uint32_t d) {
        return !NeedsCompensation(saga.steps[d].state) && !NeedsCompensation(saga.steps[d].durable);
      });
}

void SagaCore::SendCall(Saga& saga, uint32_t step, Phase phase, Effects& out) {
  Step& s = saga.steps[step];
  const v1::SagaStep& def = saga.definition.steps(static_cast<int>(step));
  ++s.attempts;
  s.in_flight = true;
  Touch(saga);
  out.calls.push_back({saga.xid, step, phase, def.service(),
                       phase == Phase::kAction ? def.action() : def.compensation(), def.payload(),
                       def.routing_key(), def.instance(), s.attempts,
                       static_cast<int64_t>(TimeoutMs(def))});
}

// ---- Outcomes ----

Effects SagaCore::Handle(const StepReplied& in) {
  Effects out;
  Saga* found = Find(in.xid);
  if (found == nullptr || in.step >= found->steps.size()) return out;
  Saga& saga = *found;
  Step& s = saga.steps[in.step];
  const v1::SagaStep& def = saga.definition.steps(static_cast<int>(in.step));
  if (in.phase == Phase::kAction) {
    // A duplicate, a reply to an earlier attempt after the outcome, or a late reply after the
    // saga turned around (the step is compensated whatever the action did).
    if (saga.state != v1::SAGA_RUNNING || s.state != v1::STEP_RUNNING) return out;
    if (in.outcome == v1::STEP_DONE) {
      s.in_flight = false;
      CancelRetry(saga, in.step);
      s.state = v1::STEP_SUCCEEDED;
      QueueStep(saga, in.step, v1::STEP_SUCCEEDED);
    } else if (in.outcome == v1::STEP_REFUSED) {
      s.in_flight = false;
      CancelRetry(saga, in.step);
      FailStep(saga, in.step, Describe(def, Phase::kAction) + " refused: " + in.reason);
    } else {
      if (!s.in_flight) return out;
      s.in_flight = false;
      OnActionFailed(saga, in.step,
                     Status::Internal("reply without an outcome (the action may have executed)"),
                     out);
    }
  } else {
    if (s.state != v1::STEP_COMPENSATING) return out;  // a duplicate (already COMPENSATED)
    if (in.outcome == v1::STEP_DONE) {
      s.in_flight = false;
      CancelRetry(saga, in.step);
      s.state = v1::STEP_COMPENSATED;
      QueueStep(saga, in.step, v1::STEP_COMPENSATED);
    } else {
      if (!s.in_flight) return out;
      s.in_flight = false;
      OnCompensationFailed(
          saga, in.step,
          in.outcome == v1::STEP_REFUSED ? "refused: " + in.reason : "reply without an outcome",
          out);
    }
  }
  Touch(saga);
  Advance(saga, out);
  return out;
}

Effects SagaCore::Handle(const CallFailed& in) {
  Effects out;
  Saga* found = Find(in.xid);
  if (found == nullptr || in.step >= found->steps.size()) return out;
  Saga& saga = *found;
  Step& s = saga.steps[in.step];
  if (!s.in_flight || (in.attempt != 0 && in.attempt != s.attempts)) return out;  // stale
  if (in.phase == Phase::kAction) {
    if (saga.state != v1::SAGA_RUNNING || s.state != v1::STEP_RUNNING) return out;
    s.in_flight = false;
    OnActionFailed(saga, in.step, in.status, out);
  } else {
    if (s.state != v1::STEP_COMPENSATING) return out;
    s.in_flight = false;
    if (in.breaker_open) {
      // Never sent: hold it until the breaker may let it through, without spending the budget.
      ++s.budget_base;
      s.last_error = in.status.ToString();
      if (saga.state == v1::SAGA_COMPENSATING && s.retry_timer == 0) {
        s.retry_timer =
            ArmTimer(saga, {TimerKind::kRetryCall, in.step}, options_.breaker_wait_ms, out);
      }
    } else {
      OnCompensationFailed(saga, in.step, in.status.ToString(), out);
    }
  }
  Touch(saga);
  Advance(saga, out);
  return out;
}

void SagaCore::OnActionFailed(Saga& saga, uint32_t step, const Status& status, Effects& out) {
  Step& s = saga.steps[step];
  const v1::SagaStep& def = saga.definition.steps(static_cast<int>(step));
  s.last_error = status.ToString();
  if (!resilience::IsRetryable(status)) {
    FailStep(saga, step, Describe(def, Phase::kAction) + " failed: " + status.ToString());
  } else if (s.attempts >= MaxActionAttempts(def)) {
    FailStep(saga, step,
             Describe(def, Phase::kAction) + " gave up after " + std::to_string(s.attempts) +
                 " attempts: " + status.ToString());
  } else {
    RetryLater(saga, step, out);
  }
}

void SagaCore::OnCompensationFailed(Saga& saga, uint32_t step, const std::string& error,
                                    Effects& out) {
  Step& s = saga.steps[step];
  s.last_error = error;
  if (saga.state != v1::SAGA_COMPENSATING) return;  // STUCK: no more calls until resolved
  const uint32_t used = s.attempts - s.budget_base;
  if (used < MaxCompensationAttempts(saga.definition)) {
    RetryLater(saga, step, out);
    return;
  }
  saga.state = v1::SAGA_STUCK;
  saga.reason = "compensation of " +
                Describe(saga.definition.steps(static_cast<int>(step)), Phase::kCompensate) +
                " failed " + std::to_string(used) + " times, last: " + error +
                "; resolve with `treaty tx resolve " + saga.xid + "`";
  CancelAllRetries(saga);
  QueueStep(saga, step, v1::STEP_COMPENSATING);
  QueueSaga(saga, v1::SAGA_STUCK);
}

void SagaCore::FailStep(Saga& saga, uint32_t step, std::string error) {
  Step& s = saga.steps[step];
  s.state = v1::STEP_FAILED;
  s.last_error = error;
  QueueStep(saga, step, v1::STEP_FAILED);
  TurnAround(saga, std::move(error), /*by_resolve=*/false);
}

void SagaCore::TurnAround(Saga& saga, std::string reason, bool by_resolve) {
  saga.state = v1::SAGA_COMPENSATING;
  saga.reason = std::move(reason);
  CancelAllRetries(saga);
  for (uint32_t i = 0; i < saga.steps.size(); ++i) {
    Step& s = saga.steps[i];
    s.in_flight = false;  // an action still in flight is not waited for (see saga_core.h)
    if (s.state == v1::STEP_PENDING) {
      s.state = v1::STEP_SKIPPED;
      QueueStep(saga, i, v1::STEP_SKIPPED);
    }
  }
  if (!by_resolve) QueueSaga(saga, v1::SAGA_COMPENSATING);
}

// ---- Retries and timers ----

void SagaCore::RetryLater(Saga& saga, uint32_t step, Effects& out) {
  Step& s = saga.steps[step];
  if (s.retry_timer != 0) return;
  const resilience::RetryPolicy policy =
      BackoffPolicy(saga.definition.steps(static_cast<int>(step)));
  s.retry_timer = ArmTimer(saga, {TimerKind::kRetryCall, step},
                           resilience::BackoffMs(policy, s.attempts - s.budget_base, random_), out);
}

uint64_t SagaCore::ArmTimer(Saga& saga, TimerPurpose purpose, int64_t delay_ms, Effects& out) {
  const uint64_t id = next_timer_id_++;
  saga.timers.emplace(id, purpose);
  out.timers.push_back({saga.xid, id, delay_ms});
  return id;
}

void SagaCore::CancelRetry(Saga& saga, uint32_t step) {
  Step& s = saga.steps[step];
  if (s.retry_timer != 0) saga.timers.erase(s.retry_timer);
  s.retry_timer = 0;
}

void SagaCore::CancelAllRetries(Saga& saga) {
  for (uint32_t i = 0; i < saga.steps.size(); ++i) CancelRetry(saga, i);
}

void SagaCore::ResetCompensationBudgets(Saga& saga) {
  for (Step& s : saga.steps) {
    if (s.state == v1::STEP_COMPENSATING) s.budget_base = s.attempts;
  }
}

Effects SagaCore::Handle(const TimerFired& in) {
  Effects out;
  Saga* found = Find(in.xid);
  if (found == nullptr) return out;
  Saga& saga = *found;
  auto it = saga.timers.find(in.timer_id);
  if (it == saga.timers.end()) return out;  // stale
  const TimerPurpose purpose = it->second;
  saga.timers.erase(it);
  if (purpose.kind == TimerKind::kRetryCall) {
    saga.steps[purpose.step].retry_timer = 0;  // Advance sends the call again if still due
  } else if (saga.log_retry_pending) {
    saga.log_retry_pending = false;
    saga.appending.token = next_token_++;
    out.appends.push_back({saga.appending.token, saga.appending.events});
  }
  Advance(saga, out);
  return out;
}

// ---- Operator resolution ----

Effects SagaCore::Handle(const Resolve& in) {
  Effects out;
  auto refuse = [&](Status status) {
    out.replies.push_back({in.client, in.xid, std::move(status), v1::SAGA_STATE_UNSPECIFIED, ""});
    return out;
  };
  Saga* found = Find(in.xid);
  if (found == nullptr) return refuse(Status::NotFound("xid=" + in.xid + " is not an active saga"));
  Saga& saga = *found;
  const std::string prefix = "xid=" + in.xid + " ";
  if (saga.durable == v1::SAGA_STATE_UNSPECIFIED) {
    return refuse(Status::FailedPrecondition(prefix + "is still being logged; retry shortly"));
  }
  if (IsFinal(saga.state)) {
    return refuse(
        Status::FailedPrecondition(prefix + "is finishing as " + v1::SagaState_Name(saga.state)));
  }
  const std::string by =
      std::string(ResolveActionName(in.action)) + " by " + in.who + ": " + in.why;
  v1::LogEvent event = NewEvent(saga);
  v1::Resolved* resolved = event.mutable_resolved();
  resolved->set_action(ResolveActionName(in.action));
  resolved->set_step(in.step);
  resolved->set_who(in.who);
  resolved->set_why(in.why);
  switch (in.action) {
    case ResolveAction::kRetry:
      if (saga.state == v1::SAGA_RUNNING) {
        return refuse(Status::FailedPrecondition(
            prefix + "is RUNNING: there is no compensation to retry (abort turns it around)"));
      }
      Queue(saga, std::move(event));
      saga.state = v1::SAGA_COMPENSATING;
      ResetCompensationBudgets(saga);
      break;
    case ResolveAction::kMarkCompensated: {
      if (in.step >= saga.steps.size()) {
        return refuse(Status::InvalidArgument(prefix + "has no step " + std::to_string(in.step) +
                                              " (it has " + std::to_string(saga.steps.size()) +
                                              ")"));
      }
      if (saga.state == v1::SAGA_RUNNING) {
        return refuse(Status::FailedPrecondition(
            prefix + "is RUNNING: abort it before marking a step compensated"));
      }
      Step& s = saga.steps[in.step];
      if (s.in_flight && s.state == v1::STEP_COMPENSATING) {
        return refuse(Status::FailedPrecondition(
            prefix + "step " + saga.definition.steps(static_cast<int>(in.step)).id() +
            ": a compensation call is in flight and may still undo it; ask again when it has "
            "finished (`treaty tx get` shows its attempts)"));
      }
      if (!NeedsCompensation(s.state) && s.state != v1::STEP_COMPENSATED) {
        return refuse(Status::FailedPrecondition(
            prefix + "step " + saga.definition.steps(static_cast<int>(in.step)).id() + " is " +
            v1::StepState_Name(s.state) + ": it has nothing to compensate"));
      }
      Queue(saga, std::move(event));
      CancelRetry(saga, in.step);
      s.in_flight = false;
      if (s.state != v1::STEP_COMPENSATED) {
        s.state = v1::STEP_COMPENSATED;
        s.last_error = by;
      }
      if (saga.state == v1::SAGA_STUCK) ResetCompensationBudgets(saga);
      saga.state = v1::SAGA_COMPENSATING;
      break;
    }
    case ResolveAction::kAbort:
      if (saga.state != v1::SAGA_RUNNING) {
        return refuse(Status::FailedPrecondition(prefix + "is already " +
                                                 v1::SagaState_Name(saga.state) +
                                                 " (retry or mark-compensated apply)"));
      }
      Queue(saga, std::move(event));
      TurnAround(saga, by, /*by_resolve=*/true);
      break;
  }
  saga.queued.resolve_clients.push_back(in.client);
  Touch(saga);
  Advance(saga, out);
  return out;
}

}  // namespace treaty::saga
