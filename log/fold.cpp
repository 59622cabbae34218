// Fold: how one log event changes a transaction record (presumed-abort 2PC, and sagas).

#include <fmt/format.h>

#include "log/log.h"

namespace treaty::log {
namespace {

constexpr char kTwoPcMode[] = "2pc";
constexpr char kSagaMode[] = "saga";

bool IsSaga(const v1::TxnRecord& rec) { return rec.mode() == kSagaMode; }

bool IsEmpty(const v1::TxnRecord& rec) {
  return rec.state() == v1::TX_STATE_UNSPECIFIED && !IsSaga(rec);
}

bool IsSagaEvent(v1::LogEvent::EventCase c) {
  return c == v1::LogEvent::kSagaBegun || c == v1::LogEvent::kStepChanged ||
         c == v1::LogEvent::kSagaChanged;
}

bool IsKnownState(v1::TxState state) { return state >= v1::PREPARING && state <= v1::ABORTED; }

// The decision a state implies, or DECISION_UNSPECIFIED while preparing.
v1::Decision DecisionOf(v1::TxState state) {
  switch (state) {
    case v1::COMMITTING:
    case v1::COMMITTED:
      return v1::COMMIT;
    case v1::ABORTING:
    case v1::ABORTED:
      return v1::ABORT;
    default:
      return v1::DECISION_UNSPECIFIED;
  }
}

Status FoldBegun(const v1::LogEvent& event, v1::TxnRecord* rec) {
  if (!IsEmpty(*rec)) {
    return Status::FailedPrecondition(
        fmt::format("xid={} already has state {}; refusing a second BEGIN", event.xid(),
                    v1::TxState_Name(rec->state())));
  }
  rec->set_xid(event.xid());
  rec->set_mode(kTwoPcMode);
  rec->set_state(v1::PREPARING);
  *rec->mutable_branches() = event.begun().branches();
  rec->set_prepare_timeout_ms(event.begun().prepare_timeout_ms());
  rec->set_created_unix_ms(event.unix_ms());
  return Status::Ok();
}

Status FoldDecided(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::TxDecided& decided = event.decided();
  const v1::Decision decision = decided.decision();
  if (decision != v1::COMMIT && decision != v1::ABORT) {
    return Status::InvalidArgument(fmt::format("xid={}: decision event carries no decision ({})",
                                               event.xid(), static_cast<int>(decision)));
  }
  if (IsEmpty(*rec)) {
    if (decision == v1::COMMIT) {
      return Status::FailedPrecondition(
          fmt::format("xid={} was never begun; refusing COMMIT", event.xid()));
    }
    // Presumed abort: aborting an unknown transaction is always allowed.
    rec->set_xid(event.xid());
    rec->set_mode(kTwoPcMode);
    rec->set_state(v1::ABORTING);
    rec->set_reason(decided.reason());
    rec->set_created_unix_ms(event.unix_ms());
    return Status::Ok();
  }
  const v1::Decision prior = DecisionOf(rec->state());
  if (prior == decision) return Status::Ok();  // a repeated decision changes nothing
  if (prior != v1::DECISION_UNSPECIFIED) {
    return Status::FailedPrecondition(fmt::format("xid={} already decided {}; refusing {}",
                                                  event.xid(), v1::Decision_Name(prior),
                                                  v1::Decision_Name(decision)));
  }
  if (decision == v1::COMMIT) {
    rec->set_state(v1::COMMITTING);
    *rec->mutable_votes() = decided.votes();
  } else {
    rec->set_state(v1::ABORTING);
  }
  rec->set_reason(decided.reason());
  return Status::Ok();
}

Status FoldEnded(const v1::LogEvent& event, v1::TxnRecord* rec) {
  switch (rec->state()) {
    case v1::COMMITTING:
      rec->set_state(v1::COMMITTED);
      return Status::Ok();
    case v1::ABORTING:
      rec->set_state(v1::ABORTED);
      return Status::Ok();
    case v1::COMMITTED:
    case v1::ABORTED:
      return Status::Ok();  // a repeated END changes nothing
    case v1::PREPARING:
      return Status::FailedPrecondition(
          fmt::format("xid={} has no decision yet (state PREPARING); refusing END", event.xid()));
    default:
      return Status::FailedPrecondition(
          fmt::format("xid={} was never begun; refusing END", event.xid()));
  }
}

// An operator's resolution of a 2PC transaction. Only "retry" is logged as a Resolved event for
// 2PC (an operator's abort is the ABORT decision itself, its reason naming who and why): it is
// the record of who redelivered the decision and why, and changes no state.
Status FoldTwoPcResolved(const v1::LogEvent& event, const v1::TxnRecord& rec) {
  const v1::Resolved& resolved = event.resolved();
  if (resolved.action() != "retry") {
    return Status::InvalidArgument(
        fmt::format("xid={} is a 2PC transaction; refusing resolve \"{}\" (only retry is logged "
                    "for 2PC)",
                    event.xid(), resolved.action()));
  }
  if (rec.state() != v1::COMMITTING && rec.state() != v1::ABORTING) {
    return Status::FailedPrecondition(
        fmt::format("xid={} is {}; refusing resolve retry (only a decided transaction still "
                    "delivering its decision can be retried)",
                    event.xid(), v1::TxState_Name(rec.state())));
  }
  return Status::Ok();
}

// ---- Sagas ----

bool IsKnownSagaState(v1::SagaState state) {
  return state >= v1::SAGA_RUNNING && state <= v1::SAGA_STUCK;
}

bool IsKnownStepState(v1::StepState state) {
  return state >= v1::STEP_PENDING && state <= v1::STEP_SKIPPED;
}

bool IsSagaFinished(v1::SagaState state) {
  return state == v1::SAGA_COMPLETED || state == v1::SAGA_COMPENSATED;
}

// A step that was (or may have been) sent its action and is not compensated yet.
bool NeedsCompensation(v1::StepState state) {
  return state == v1::STEP_RUNNING || state == v1::STEP_SUCCEEDED || state == v1::STEP_FAILED ||
         state == v1::STEP_COMPENSATING;
}

std::string StepName(const v1::TxnRecord& rec, uint32_t step) {
  return fmt::format("step {} ({})", step, rec.saga().steps(static_cast<int>(step)).id());
}

Status FoldSagaBegun(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::SagaDefinition& saga = event.saga_begun().saga();
  if (saga.steps().empty()) {
    return Status::InvalidArgument(fmt::format("xid={}: SagaBegun has no steps", event.xid()));
  }
  rec->set_xid(event.xid());
  rec->set_mode(kSagaMode);
  *rec->mutable_saga() = saga;
  rec->set_saga_state(v1::SAGA_RUNNING);
  for (int i = 0; i < saga.steps_size(); ++i) rec->add_steps()->set_state(v1::STEP_PENDING);
  rec->set_created_unix_ms(event.unix_ms());
  return Status::Ok();
}

// Whether every step step waits for (its `after` ids) has SUCCEEDED in rec.
bool DependenciesSucceeded(const v1::TxnRecord& rec, uint32_t step) {
  const v1::SagaStep& def = rec.saga().steps(static_cast<int>(step));
  for (const std::string& dep : def.after()) {
    for (int i = 0; i < rec.saga().steps_size(); ++i) {
      if (rec.saga().steps(i).id() == dep && rec.steps(i).state() != v1::STEP_SUCCEEDED) {
        return false;
      }
    }
  }
  return true;
}

// Whether a step may move from `from` to `to` while the saga is in `saga`. Same-state repeats are
// handled by the caller.
bool StepMoveAllowed(v1::StepState from, v1::StepState to, v1::SagaState saga) {
  const bool running = saga == v1::SAGA_RUNNING;
  const bool compensating = saga == v1::SAGA_COMPENSATING || saga == v1::SAGA_STUCK;
  switch (to) {
    case v1::STEP_RUNNING:
      return running && from == v1::STEP_PENDING;
    case v1::STEP_SUCCEEDED:
    case v1::STEP_FAILED:
      return running && from == v1::STEP_RUNNING;
    case v1::STEP_SKIPPED:
      return (running || compensating) && from == v1::STEP_PENDING;
    case v1::STEP_COMPENSATING:
      return compensating && NeedsCompensation(from);
    case v1::STEP_COMPENSATED:
      return compensating && NeedsCompensation(from);
    default:
      return false;
  }
}

Status FoldStepChanged(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::StepChanged& changed = event.step_changed();
  if (changed.step() >= static_cast<uint32_t>(rec->steps_size())) {
    return Status::InvalidArgument(
        fmt::format("xid={}: StepChanged names step {} of a {}-step saga", event.xid(),
                    changed.step(), rec->steps_size()));
  }
  if (!IsKnownStepState(changed.state())) {
    return Status::InvalidArgument(fmt::format("xid={}: StepChanged carries no valid state ({})",
                                               event.xid(), static_cast<int>(changed.state())));
  }
  v1::StepRecord* step = rec->mutable_steps(static_cast<int>(changed.step()));
  const v1::StepState from = step->state();
  if (IsSagaFinished(rec->saga_state())) {
    return Status::FailedPrecondition(
        fmt::format("xid={} already finished ({}); refusing {} for {}", event.xid(),
                    v1::SagaState_Name(rec->saga_state()), v1::StepState_Name(changed.state()),
                    StepName(*rec, changed.step())));
  }
  if (from != changed.state()) {
    if (!StepMoveAllowed(from, changed.state(), rec->saga_state())) {
      return Status::FailedPrecondition(
          fmt::format("xid={}: {} is {} while the saga is {}; refusing {}", event.xid(),
                      StepName(*rec, changed.step()), v1::StepState_Name(from),
                      v1::SagaState_Name(rec->saga_state()), v1::StepState_Name(changed.state())));
    }
    if (changed.state() == v1::STEP_RUNNING && !DependenciesSucceeded(*rec, changed.step())) {
      return Status::FailedPrecondition(
          fmt::format("xid={}: {} cannot run before every step it comes after succeeded",
                      event.xid(), StepName(*rec, changed.step())));
    }
  }
  step->set_state(changed.state());
  step->set_attempts(changed.attempts());
  step->set_error(changed.error());
  return Status::Ok();
}

Status FoldSagaChanged(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::SagaChanged& changed = event.saga_changed();
  const v1::SagaState from = rec->saga_state();
  const v1::SagaState to = changed.state();
  if (!IsKnownSagaState(to)) {
    return Status::InvalidArgument(fmt::format("xid={}: SagaChanged carries no valid state ({})",
                                               event.xid(), static_cast<int>(to)));
  }
  auto refuse = [&](const std::string& why) {
    return Status::FailedPrecondition(fmt::format("xid={} is {}; refusing {}{}", event.xid(),
                                                  v1::SagaState_Name(from), v1::SagaState_Name(to),
                                                  why));
  };
  if (from != to) {
    switch (to) {
      case v1::SAGA_COMPENSATING:
        if (from != v1::SAGA_RUNNING && from != v1::SAGA_STUCK) return refuse("");
        break;
      case v1::SAGA_STUCK:
        if (from != v1::SAGA_COMPENSATING) return refuse("");
        break;
      case v1::SAGA_COMPLETED:
        if (from != v1::SAGA_RUNNING) return refuse("");
        for (int i = 0; i < rec->steps_size(); ++i) {
          if (rec->steps(i).state() != v1::STEP_SUCCEEDED) {
            return refuse(": " + StepName(*rec, static_cast<uint32_t>(i)) + " is " +
                          v1::StepState_Name(rec->steps(i).state()));
          }
        }
        break;
      case v1::SAGA_COMPENSATED:
        if (from != v1::SAGA_COMPENSATING && from != v1::SAGA_STUCK) return refuse("");
        for (int i = 0; i < rec->steps_size(); ++i) {
          if (NeedsCompensation(rec->steps(i).state())) {
            return refuse(": " + StepName(*rec, static_cast<uint32_t>(i)) + " is " +
                          v1::StepState_Name(rec->steps(i).state()));
          }
        }
        break;
      default:
        return refuse("");
    }
  }
  // A repeated state changes nothing but the reason; a finished saga keeps its reason.
  if (from == to && IsSagaFinished(from)) return Status::Ok();
  rec->set_saga_state(to);
  if (!changed.reason().empty()) rec->set_reason(changed.reason());
  return Status::Ok();
}

Status FoldResolved(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::Resolved& resolved = event.resolved();
  const v1::SagaState state = rec->saga_state();
  if (IsSagaFinished(state)) {
    return Status::FailedPrecondition(
        fmt::format("xid={} already finished ({}); refusing resolve {}", event.xid(),
                    v1::SagaState_Name(state), resolved.action()));
  }
  const std::string by =
      fmt::format("{} by {}: {}", resolved.action(), resolved.who(), resolved.why());
  if (resolved.action() == "retry") {
    if (state == v1::SAGA_RUNNING) {
      return Status::FailedPrecondition(
          fmt::format("xid={} is RUNNING; there is no compensation to retry", event.xid()));
    }
    rec->set_saga_state(v1::SAGA_COMPENSATING);
    return Status::Ok();
  }
  if (resolved.action() == "abort") {
    // Aborting a saga that already turned around changes nothing.
    if (state == v1::SAGA_RUNNING) {
      rec->set_saga_state(v1::SAGA_COMPENSATING);
      rec->set_reason(by);
    }
    return Status::Ok();
  }
  if (resolved.action() == "mark-compensated") {
    if (resolved.step() >= static_cast<uint32_t>(rec->steps_size())) {
      return Status::InvalidArgument(
          fmt::format("xid={}: mark-compensated names step {} of a "
                      "{}-step saga",
                      event.xid(), resolved.step(), rec->steps_size()));
    }
    if (state == v1::SAGA_RUNNING) {
      return Status::FailedPrecondition(fmt::format(
          "xid={} is RUNNING; abort it before marking a step compensated", event.xid()));
    }
    v1::StepRecord* step = rec->mutable_steps(static_cast<int>(resolved.step()));
    if (step->state() == v1::STEP_COMPENSATED) return Status::Ok();
    if (!NeedsCompensation(step->state())) {
      return Status::FailedPrecondition(
          fmt::format("xid={}: {} is {}; it has nothing to compensate", event.xid(),
                      StepName(*rec, resolved.step()), v1::StepState_Name(step->state())));
    }
    step->set_state(v1::STEP_COMPENSATED);
    step->set_error(by);
    rec->set_saga_state(v1::SAGA_COMPENSATING);
    return Status::Ok();
  }
  return Status::InvalidArgument(
      fmt::format("xid={}: unknown resolve action \"{}\" (retry, mark-compensated or abort)",
                  event.xid(), resolved.action()));
}

// StepChanged, SagaChanged or Resolved on a saga record. rec is changed only on OK: each of
// these works on a copy.
Status FoldSagaEvent(const v1::LogEvent& event, v1::TxnRecord* rec) {
  v1::TxnRecord next = *rec;
  Status status;
  switch (event.event_case()) {
    case v1::LogEvent::kStepChanged:
      status = FoldStepChanged(event, &next);
      break;
    case v1::LogEvent::kSagaChanged:
      status = FoldSagaChanged(event, &next);
      break;
    case v1::LogEvent::kResolved:
      status = FoldResolved(event, &next);
      break;
    default:
      status = Status::Internal("not a saga event");
      break;
  }
  if (status.ok()) *rec = std::move(next);
  return status;
}

}  // namespace

Status Fold(const v1::LogEvent& event, uint64_t lsn, v1::TxnRecord* rec) {
  if (event.xid().empty()) return Status::InvalidArgument("log event has no xid");
  if (!IsEmpty(*rec)) {
    if (rec->xid() != event.xid()) {
      return Status::InvalidArgument(
          fmt::format("event of xid={} folded into the record of xid={}", event.xid(), rec->xid()));
    }
    // Resolved belongs to both modes.
    if (IsSaga(*rec) != IsSagaEvent(event.event_case()) &&
        event.event_case() != v1::LogEvent::EVENT_NOT_SET &&
        event.event_case() != v1::LogEvent::kResolved) {
      return Status::FailedPrecondition(
          fmt::format("xid={} is a {}; refusing a {} event", event.xid(),
                      IsSaga(*rec) ? "saga" : "2PC transaction", IsSaga(*rec) ? "2PC" : "saga"));
    }
    if (IsSaga(*rec)) {
      if (!IsKnownSagaState(rec->saga_state())) {
        return Status::FailedPrecondition(fmt::format("xid={} has an unknown saga state {}",
                                                      event.xid(),
                                                      static_cast<int>(rec->saga_state())));
      }
    } else if (!IsKnownState(rec->state())) {
      return Status::FailedPrecondition(fmt::format("xid={} has an unknown state {}", event.xid(),
                                                    static_cast<int>(rec->state())));
    }
  }
  // Each FoldX changes rec only when it returns OK.
  Status status;
  switch (event.event_case()) {
    case v1::LogEvent::kBegun:
      status = FoldBegun(event, rec);
      break;
    case v1::LogEvent::kDecided:
      status = FoldDecided(event, rec);
      break;
    case v1::LogEvent::kEnded:
      status = FoldEnded(event, rec);
      break;
    case v1::LogEvent::kSagaBegun:
      if (!IsEmpty(*rec)) {
        status = Status::FailedPrecondition(
            fmt::format("xid={} is already logged; refusing a second SagaBegun", event.xid()));
        break;
      }
      status = FoldSagaBegun(event, rec);
      break;
    case v1::LogEvent::kResolved:
      if (IsEmpty(*rec)) {
        status = Status::FailedPrecondition(
            fmt::format("xid={} was never begun; refusing resolve", event.xid()));
        break;
      }
      status = IsSaga(*rec) ? FoldSagaEvent(event, rec) : FoldTwoPcResolved(event, *rec);
      break;
    case v1::LogEvent::kStepChanged:
    case v1::LogEvent::kSagaChanged:
      if (IsEmpty(*rec)) {
        status = Status::FailedPrecondition(
            fmt::format("xid={} was never begun; refusing a saga event", event.xid()));
        break;
      }
      status = FoldSagaEvent(event, rec);
      break;
    case v1::LogEvent::EVENT_NOT_SET:
      status = Status::InvalidArgument(fmt::format("xid={}: log event sets no event", event.xid()));
      break;
  }
  if (!status.ok()) return status;
  rec->set_updated_unix_ms(event.unix_ms());
  rec->set_last_lsn(lsn);
  return Status::Ok();
}

bool IsFinished(const v1::TxnRecord& rec) {
  if (rec.mode() == "saga") {
    return rec.saga_state() == v1::SAGA_COMPLETED || rec.saga_state() == v1::SAGA_COMPENSATED;
  }
  return rec.state() == v1::COMMITTED || rec.state() == v1::ABORTED;
}

}  // namespace treaty::log
