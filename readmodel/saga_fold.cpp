// Fold of saga events into a summary and the saga's client view (mirrors log/fold.cpp, whose
// checks have already accepted every event in the log; what it would refuse changes nothing).

#include <fmt/format.h>

#include "readmodel/fold.h"

namespace treaty::readmodel::internal {
namespace {

bool IsSagaFinished(v1::SagaState state) {
  return state == v1::SAGA_COMPLETED || state == v1::SAGA_COMPENSATED;
}

// A step that was (or may have been) sent its action and is not compensated yet.
bool NeedsCompensation(v1::StepState state) {
  return state == v1::STEP_RUNNING || state == v1::STEP_SUCCEEDED || state == v1::STEP_FAILED ||
         state == v1::STEP_COMPENSATING;
}

// Whether a step is done with in the summary's terms (its branch "acknowledged").
bool StepSettled(v1::StepState state) {
  return state == v1::STEP_SUCCEEDED || state == v1::STEP_COMPENSATED || state == v1::STEP_SKIPPED;
}

void FoldSagaBegun(const v1::LogEvent& event, std::optional<v1::SummaryRecord>* rec,
                   std::optional<v1::Transaction>* saga) {
  const v1::SagaDefinition& def = event.saga_begun().saga();
  *rec = v1::SummaryRecord();
  v1::TxSummary* s = (*rec)->mutable_summary();
  s->set_xid(event.xid());
  s->set_mode(kModeSaga);
  s->set_created_unix_ms(event.unix_ms());
  *saga = v1::Transaction();
  v1::Transaction* view = &**saga;
  view->set_xid(event.xid());
  view->set_mode(kModeSaga);
  view->set_saga_state(v1::SAGA_RUNNING);
  for (int i = 0; i < def.steps_size(); ++i) {
    const v1::SagaStep& step = def.steps(i);
    v1::BranchStatus* b = s->add_branches();
    b->set_branch_id(static_cast<uint32_t>(i));
    b->set_service(step.service());
    b->set_op(step.action());
    b->set_instance(step.instance());
    v1::StepStatus* st = view->add_steps();
    st->set_id(step.id());
    st->set_service(step.service());
    st->set_action(step.action());
    st->set_compensation(step.compensation());
    st->set_state(v1::STEP_PENDING);
  }
}

// Sets the step's state, attempts and error in both records. REQUIRES: step in range.
void SetStep(uint32_t step, v1::StepState state, uint32_t attempts, const std::string& error,
             v1::TxSummary* s, v1::Transaction* view) {
  v1::StepStatus* st = view->mutable_steps(static_cast<int>(step));
  st->set_state(state);
  st->set_attempts(attempts);
  st->set_last_error(error);
  if (static_cast<int>(step) < s->branches_size()) {
    v1::BranchStatus* b = s->mutable_branches(static_cast<int>(step));
    b->set_attempts(attempts);
    b->set_last_error(error);
    b->set_acknowledged(StepSettled(state));
  }
}

// Moves the saga to state, keeping the summary's state, decision and finish times in step.
// Returns true if the saga just finished.
bool SetSagaState(v1::SagaState state, int64_t unix_ms, v1::TxSummary* s, v1::Transaction* view) {
  const bool was_finished = IsSagaFinished(view->saga_state());
  view->set_saga_state(state);
  s->set_state(SummaryStateOf(state));
  if (state != v1::SAGA_RUNNING && s->decided_unix_ms() == 0) s->set_decided_unix_ms(unix_ms);
  if (!IsSagaFinished(state) || was_finished) return false;
  s->set_finished_unix_ms(unix_ms);
  return true;
}

void SetReason(const std::string& reason, v1::TxSummary* s, v1::Transaction* view) {
  s->set_reason(reason);
  view->set_reason(reason);
}

bool FoldResolved(const v1::LogEvent& event, v1::TxSummary* s, v1::Transaction* view) {
  const v1::Resolved& resolved = event.resolved();
  const v1::SagaState state = view->saga_state();
  const std::string by =
      fmt::format("{} by {}: {}", resolved.action(), resolved.who(), resolved.why());
  if (resolved.action() == "retry") {
    if (state != v1::SAGA_RUNNING) SetSagaState(v1::SAGA_COMPENSATING, event.unix_ms(), s, view);
  } else if (resolved.action() == "abort") {
    if (state == v1::SAGA_RUNNING) {
      SetSagaState(v1::SAGA_COMPENSATING, event.unix_ms(), s, view);
      SetReason(by, s, view);
    }
  } else if (resolved.action() == "mark-compensated") {
    if (resolved.step() >= static_cast<uint32_t>(view->steps_size())) return false;
    if (state == v1::SAGA_RUNNING) return false;
    const v1::StepStatus& st = view->steps(static_cast<int>(resolved.step()));
    if (!NeedsCompensation(st.state())) return false;
    SetStep(resolved.step(), v1::STEP_COMPENSATED, st.attempts(), by, s, view);
    SetSagaState(v1::SAGA_COMPENSATING, event.unix_ms(), s, view);
  }
  return false;
}

}  // namespace

bool IsSagaEvent(const v1::LogEvent& event) {
  const v1::LogEvent::EventCase c = event.event_case();
  return c == v1::LogEvent::kSagaBegun || c == v1::LogEvent::kStepChanged ||
         c == v1::LogEvent::kSagaChanged || c == v1::LogEvent::kResolved;
}

v1::TxState SummaryStateOf(v1::SagaState state) {
  switch (state) {
    case v1::SAGA_COMPENSATING:
    case v1::SAGA_STUCK:
      return v1::ABORTING;
    case v1::SAGA_COMPLETED:
      return v1::COMMITTED;
    case v1::SAGA_COMPENSATED:
      return v1::ABORTED;
    default:
      return v1::PREPARING;
  }
}

bool IsStuck(const std::optional<v1::Transaction>& saga) {
  return saga.has_value() && saga->saga_state() == v1::SAGA_STUCK;
}

bool FoldSagaEvent(const v1::LogEvent& event, std::optional<v1::SummaryRecord>* rec,
                   std::optional<v1::Transaction>* saga) {
  if (event.event_case() == v1::LogEvent::kSagaBegun) {
    FoldSagaBegun(event, rec, saga);
    (*rec)->mutable_summary()->set_state(v1::PREPARING);
    return false;
  }
  v1::TxSummary* s = (*rec)->mutable_summary();
  v1::Transaction* view = &**saga;
  if (IsSagaFinished(view->saga_state())) return false;  // refused by the log
  switch (event.event_case()) {
    case v1::LogEvent::kStepChanged: {
      const v1::StepChanged& changed = event.step_changed();
      if (changed.step() >= static_cast<uint32_t>(view->steps_size())) return false;
      SetStep(changed.step(), changed.state(), changed.attempts(), changed.error(), s, view);
      return false;
    }
    case v1::LogEvent::kSagaChanged: {
      const v1::SagaChanged& changed = event.saga_changed();
      if (changed.state() < v1::SAGA_RUNNING || changed.state() > v1::SAGA_STUCK) return false;
      const bool finished = SetSagaState(changed.state(), event.unix_ms(), s, view);
      if (!changed.reason().empty()) SetReason(changed.reason(), s, view);
      return finished;
    }
    case v1::LogEvent::kResolved:
      return FoldResolved(event, s, view);
    default:
      return false;
  }
}

}  // namespace treaty::readmodel::internal
