// The saga barrier (participant.h, "Saga barrier"): the worker's participant.Action and
// participant.Compensate.
#include <spdlog/spdlog.h>

#include "participant/guarded.h"
#include "participant/worker.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::participant {
namespace {

// The answer to an action that arrives after its step was compensated (anti-hanging).
constexpr char kCompensatedFirst[] = "compensated before the action arrived";

std::string StepReply(v1::StepOutcome outcome, const std::string& reason = {}) {
  v1::StepResponse response;
  response.set_outcome(outcome);
  response.set_reason(reason);
  return response.SerializeAsString();
}

}  // namespace

Result<std::string> Worker::Action(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  auto step = steps_.find(r.op);
  if (step == steps_.end()) {
    spdlog::warn("participant service={} xid={} step={} unknown saga action '{}'", options_.service,
                 r.xid, r.branch_id, r.op);
    return Status::NotFound("service " + options_.service + " has no saga action " + r.op);
  }
  Result<std::optional<StepRecord>> compensation =
      store_.ReadStep(r.xid, r.branch_id, StepKind::kCompensation);
  if (!compensation.ok()) return compensation.status();
  if (compensation->has_value()) {
    late_actions_refused_.fetch_add(1);
    spdlog::info("participant service={} xid={} step={} action {} refused: {}", options_.service,
                 r.xid, r.branch_id, r.op, kCompensatedFirst);
    return StepReply(v1::STEP_REFUSED, kCompensatedFirst);
  }
  Result<std::optional<StepRecord>> recorded =
      store_.ReadStep(r.xid, r.branch_id, StepKind::kAction);
  if (!recorded.ok()) return recorded.status();
  if (recorded->has_value()) {
    const StepRecord& rec = **recorded;
    const bool done = rec.state == v1::STEP_ACTION_DONE;
    spdlog::debug("participant service={} xid={} step={} repeated action {}, answered {}",
                  options_.service, r.xid, r.branch_id, r.op, done ? "DONE" : "REFUSED");
    return StepReply(done ? v1::STEP_DONE : v1::STEP_REFUSED, rec.reason);
  }

  const StepContext ctx{r.xid, r.branch_id, r.op, r.payload};
  std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
  Result<StepResult> result =
      Guarded("action", [&]() -> Result<StepResult> { return step->second.run(ctx, *txn); });
  if (!result.ok()) {
    spdlog::warn("participant service={} xid={} step={} action {} failed: {}", options_.service,
                 r.xid, r.branch_id, r.op, result.status().ToString());
    return result.status();
  }
  StepRecord rec;
  rec.op = r.op;
  if (result->outcome == StepOutcome::kDone) {
    rec.state = v1::STEP_ACTION_DONE;
  } else {
    txn = store_.BeginTxn();  // a refused action leaves no effects behind
    rec.state = v1::STEP_ACTION_REFUSED;
    rec.reason = result->reason;
  }
  txn->PutStep(r.xid, r.branch_id, StepKind::kAction, rec);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} step={} action write failed: {}", options_.service,
                  r.xid, r.branch_id, written.ToString());
    return written;
  }
  const bool done = rec.state == v1::STEP_ACTION_DONE;
  spdlog::debug("participant service={} xid={} step={} action {} {}", options_.service, r.xid,
                r.branch_id, r.op, done ? "done" : "refused: " + rec.reason);
  return StepReply(done ? v1::STEP_DONE : v1::STEP_REFUSED, rec.reason);
}

Status Worker::Undo(const Request& r, const SagaStepHandlers& step, const StepRecord& action,
                    StoreTxn& txn) {
  if (action.op != step.action) {
    spdlog::error(
        "participant service={} xid={} step={} protocol violation: compensation {} of action {} "
        "for a step whose action was {}",
        options_.service, r.xid, r.branch_id, r.op, step.action, action.op);
    return Status::FailedPrecondition("xid=" + r.xid + " step=" + std::to_string(r.branch_id) +
                                      " ran action " + action.op + " at " + options_.service +
                                      "; compensation " + r.op + " undoes " + step.action);
  }
  const StepContext ctx{r.xid, r.branch_id, r.op, r.payload};
  Status undone = Guarded("compensation", [&]() -> Status { return step.undo(ctx, txn); });
  if (!undone.ok()) {
    spdlog::warn("participant service={} xid={} step={} compensation {} failed: {}",
                 options_.service, r.xid, r.branch_id, r.op, undone.ToString());
  }
  return undone;
}

Result<std::string> Worker::Compensate(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  auto step = compensations_.find(r.op);
  if (step == compensations_.end()) {
    spdlog::warn("participant service={} xid={} step={} unknown saga compensation '{}'",
                 options_.service, r.xid, r.branch_id, r.op);
    return Status::NotFound("service " + options_.service + " has no saga compensation " + r.op);
  }
  Result<std::optional<StepRecord>> recorded =
      store_.ReadStep(r.xid, r.branch_id, StepKind::kCompensation);
  if (!recorded.ok()) return recorded.status();
  if (recorded->has_value()) {
    spdlog::debug("participant service={} xid={} step={} repeated compensation {}",
                  options_.service, r.xid, r.branch_id, r.op);
    return StepReply(v1::STEP_DONE);
  }
  Result<std::optional<StepRecord>> action = store_.ReadStep(r.xid, r.branch_id, StepKind::kAction);
  if (!action.ok()) return action.status();

  std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
  StepRecord rec;
  rec.op = r.op;
  if (!action->has_value()) {
    rec.state = v1::STEP_COMPENSATION_NULL;  // refuses the action if it arrives later
  } else if ((*action)->state == v1::STEP_ACTION_REFUSED) {
    rec.state = v1::STEP_COMPENSATION_SKIPPED;  // the refused action left nothing to undo
  } else {
    TREATY_RETURN_IF_ERROR(Undo(r, *step->second, **action, *txn));
    rec.state = v1::STEP_COMPENSATION_DONE;
  }
  txn->PutStep(r.xid, r.branch_id, StepKind::kCompensation, rec);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} step={} compensation write failed: {}",
                  options_.service, r.xid, r.branch_id, written.ToString());
    return written;
  }
  if (rec.state == v1::STEP_COMPENSATION_NULL) {
    null_compensations_.fetch_add(1);
    spdlog::info(
        "participant service={} xid={} step={} compensation {} before its action: null "
        "compensation recorded",
        options_.service, r.xid, r.branch_id, r.op);
  } else {
    spdlog::debug(
        "participant service={} xid={} step={} compensation {} recorded ({})", options_.service,
        r.xid, r.branch_id, r.op,
        v1::StepCompensationState_Name(static_cast<v1::StepCompensationState>(rec.state)));
  }
  return StepReply(v1::STEP_DONE);
}

}  // namespace treaty::participant
