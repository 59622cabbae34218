// The saga barrier (participant.h, "Saga barrier"; the rules are barrier_rules.h): the worker's
// participant.Action and participant.Compensate.
#include <spdlog/spdlog.h>

#include "participant/barrier_rules.h"
#include "participant/guarded.h"
#include "participant/worker.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::participant {
namespace {

std::string StepReply(v1::StepOutcome outcome, const std::string& reason = {}) {
  v1::StepResponse response;
  response.set_outcome(outcome);
  response.set_reason(reason);
  return response.SerializeAsString();
}

// The action and compensation records of r's step.
Status ReadStepRecords(Store& store, const Request& r, std::optional<StepRecord>* action,
                       std::optional<StepRecord>* compensation) {
  Result<std::optional<StepRecord>> a = store.ReadStep(r.xid, r.branch_id, StepKind::kAction);
  if (!a.ok()) return a.status();
  Result<std::optional<StepRecord>> c = store.ReadStep(r.xid, r.branch_id, StepKind::kCompensation);
  if (!c.ok()) return c.status();
  *action = std::move(*a);
  *compensation = std::move(*c);
  return Status::Ok();
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
  std::optional<StepRecord> action;
  std::optional<StepRecord> compensation;
  TREATY_RETURN_IF_ERROR(ReadStepRecords(store_, r, &action, &compensation));
  const ActionRule rule = OnAction(action, compensation);
  switch (rule.kind) {
    case ActionRule::Kind::kRefuseCompensatedFirst:
      late_actions_refused_.fetch_add(1);
      spdlog::info("participant service={} xid={} step={} action {} refused: {}", options_.service,
                   r.xid, r.branch_id, r.op, rule.reason);
      return StepReply(rule.outcome, rule.reason);
    case ActionRule::Kind::kRepeat:
      spdlog::debug("participant service={} xid={} step={} repeated action {}, answered {}",
                    options_.service, r.xid, r.branch_id, r.op,
                    rule.outcome == v1::STEP_DONE ? "DONE" : "REFUSED");
      return StepReply(rule.outcome, rule.reason);
    case ActionRule::Kind::kRunHandler:
      break;
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
  const StepRecord rec = RecordAction(*result, r.op);
  const bool done = rec.state == v1::STEP_ACTION_DONE;
  if (!done) txn = store_.BeginTxn();  // a refused action leaves no effects behind
  txn->PutStep(r.xid, r.branch_id, StepKind::kAction, rec);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} step={} action write failed: {}", options_.service,
                  r.xid, r.branch_id, written.ToString());
    return written;
  }
  spdlog::debug("participant service={} xid={} step={} action {} {}", options_.service, r.xid,
                r.branch_id, r.op, done ? "done" : "refused: " + rec.reason);
  return StepReply(done ? v1::STEP_DONE : v1::STEP_REFUSED, rec.reason);
}

Status Worker::Undo(const Request& r, const SagaStepHandlers& step, StoreTxn& txn) {
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
  std::optional<StepRecord> action;
  std::optional<StepRecord> compensation;
  TREATY_RETURN_IF_ERROR(ReadStepRecords(store_, r, &action, &compensation));
  const BarrierTarget target{options_.service, r.xid, r.branch_id};
  const CompensateRule rule =
      OnCompensate(target, r.op, step->second->action, action, compensation);
  switch (rule.kind) {
    case CompensateRule::Kind::kRepeat:
      spdlog::debug("participant service={} xid={} step={} repeated compensation {}",
                    options_.service, r.xid, r.branch_id, r.op);
      return StepReply(v1::STEP_DONE);
    case CompensateRule::Kind::kRefuse:
      spdlog::error("participant service={} xid={} step={} protocol violation: {}",
                    options_.service, r.xid, r.branch_id, rule.violation);
      return rule.refusal;
    case CompensateRule::Kind::kRecordNull:
    case CompensateRule::Kind::kRecordSkipped:
    case CompensateRule::Kind::kRunCompensation:
      break;
  }

  std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
  if (rule.kind == CompensateRule::Kind::kRunCompensation) {
    TREATY_RETURN_IF_ERROR(Undo(r, *step->second, *txn));
  }
  txn->PutStep(r.xid, r.branch_id, StepKind::kCompensation, rule.record);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} step={} compensation write failed: {}",
                  options_.service, r.xid, r.branch_id, written.ToString());
    return written;
  }
  if (rule.kind == CompensateRule::Kind::kRecordNull) {
    null_compensations_.fetch_add(1);
    spdlog::info(
        "participant service={} xid={} step={} compensation {} before its action: null "
        "compensation recorded",
        options_.service, r.xid, r.branch_id, r.op);
  } else {
    spdlog::debug(
        "participant service={} xid={} step={} compensation {} recorded ({})", options_.service,
        r.xid, r.branch_id, r.op,
        v1::StepCompensationState_Name(static_cast<v1::StepCompensationState>(rule.record.state)));
  }
  return StepReply(v1::STEP_DONE);
}

}  // namespace treaty::participant
