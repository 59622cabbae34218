#include "participant/barrier_rules.h"

#include <cassert>
#include <utility>

namespace treaty::participant {
namespace {

PrepareRule Answer(PrepareRule::Kind kind, v1::Vote vote, std::string reason) {
  return {kind, vote, std::move(reason)};
}

DecisionRule Refuse(const BarrierTarget& target, std::string_view what, std::string violation) {
  DecisionRule rule;
  rule.kind = DecisionRule::Kind::kRefuse;
  rule.refusal = Status::FailedPrecondition("xid=" + std::string(target.xid) + " branch=" +
                                            std::to_string(target.id) + std::string(what));
  rule.violation = std::move(violation);
  return rule;
}

std::string At(const BarrierTarget& target) { return " at " + std::string(target.service); }

}  // namespace

PrepareRule OnPrepare(const std::optional<BarrierRecord>& existing) {
  if (!existing.has_value()) return {};
  const BarrierRecord& rec = *existing;
  switch (rec.state) {
    case v1::BRANCH_PREPARED:
    case v1::BRANCH_COMMITTED:
      return Answer(PrepareRule::Kind::kRepeat, v1::YES, rec.reason);
    case v1::BRANCH_READ_ONLY:
      return Answer(PrepareRule::Kind::kRepeat, v1::READ_ONLY, rec.reason);
    default:  // BRANCH_ABORTED (NO is also the safe answer to a state no stored record holds)
      if (rec.vote == v1::NO) return Answer(PrepareRule::Kind::kRepeat, v1::NO, rec.reason);
      return Answer(PrepareRule::Kind::kRefuseAborted, v1::NO,
                    rec.vote == v1::VOTE_UNSPECIFIED ? kAbortedBeforePrepare : kAlreadyAborted);
  }
}

BarrierRecord RecordVote(const PrepareResult& vote, std::string_view op, std::string_view payload,
                         int64_t now_unix_ms) {
  BarrierRecord rec;
  switch (vote.vote) {
    case Vote::kYes:
      rec.state = v1::BRANCH_PREPARED;
      rec.vote = v1::YES;
      rec.prepared_unix_ms = now_unix_ms;
      rec.op = op;
      rec.payload = payload;
      return rec;
    case Vote::kNo:
      rec.state = v1::BRANCH_ABORTED;
      rec.vote = v1::NO;
      break;
    case Vote::kReadOnly:
      rec.state = v1::BRANCH_READ_ONLY;
      rec.vote = v1::READ_ONLY;
      break;
  }
  rec.reason = vote.reason;
  return rec;
}

DecisionRule OnCommit(const BarrierTarget& target, const std::optional<BarrierRecord>& existing) {
  if (!existing.has_value()) {
    return Refuse(target, " was never prepared" + At(target),
                  "commit of a branch that was never prepared here");
  }
  switch (existing->state) {
    case v1::BRANCH_PREPARED:
      return {DecisionRule::Kind::kRunHandler, RecordDecision(*existing, /*commit=*/true), {}, {}};
    case v1::BRANCH_COMMITTED:
    case v1::BRANCH_READ_ONLY:
      return {};
    default:  // BRANCH_ABORTED
      return Refuse(target, " is aborted" + At(target) + "; commit refused",
                    "commit of an aborted branch");
  }
}

DecisionRule OnAbort(const BarrierTarget& target, const std::optional<BarrierRecord>& existing) {
  if (!existing.has_value()) {
    BarrierRecord null_abort;
    null_abort.state = v1::BRANCH_ABORTED;
    return {DecisionRule::Kind::kRecordNullAbort, std::move(null_abort), {}, {}};
  }
  switch (existing->state) {
    case v1::BRANCH_PREPARED:
      return {DecisionRule::Kind::kRunHandler, RecordDecision(*existing, /*commit=*/false), {}, {}};
    case v1::BRANCH_ABORTED:
    case v1::BRANCH_READ_ONLY:
      return {};
    default:  // BRANCH_COMMITTED
      return Refuse(target, " is committed" + At(target) + "; abort refused",
                    "abort of a committed branch");
  }
}

BarrierRecord RecordDecision(const BarrierRecord& prepared, bool commit) {
  assert(prepared.state == v1::BRANCH_PREPARED);
  BarrierRecord rec = prepared;
  rec.state = commit ? v1::BRANCH_COMMITTED : v1::BRANCH_ABORTED;
  rec.payload.clear();
  return rec;
}

ActionRule OnAction(const std::optional<StepRecord>& action,
                    const std::optional<StepRecord>& compensation) {
  if (compensation.has_value()) {
    return {ActionRule::Kind::kRefuseCompensatedFirst, v1::STEP_REFUSED, kCompensatedFirst};
  }
  if (!action.has_value()) return {};
  const bool done = action->state == v1::STEP_ACTION_DONE;
  return {ActionRule::Kind::kRepeat, done ? v1::STEP_DONE : v1::STEP_REFUSED, action->reason};
}

StepRecord RecordAction(const StepResult& result, std::string_view action) {
  StepRecord rec;
  rec.op = action;
  if (result.outcome == StepOutcome::kDone) {
    rec.state = v1::STEP_ACTION_DONE;
  } else {
    rec.state = v1::STEP_ACTION_REFUSED;
    rec.reason = result.reason;
  }
  return rec;
}

CompensateRule OnCompensate(const BarrierTarget& target, std::string_view compensation,
                            std::string_view undoes, const std::optional<StepRecord>& action,
                            const std::optional<StepRecord>& compensation_record) {
  if (compensation_record.has_value()) return {};
  CompensateRule rule;
  rule.record.op = compensation;
  if (!action.has_value()) {
    rule.kind = CompensateRule::Kind::kRecordNull;
    rule.record.state = v1::STEP_COMPENSATION_NULL;
  } else if (action->state == v1::STEP_ACTION_REFUSED) {
    rule.kind = CompensateRule::Kind::kRecordSkipped;
    rule.record.state = v1::STEP_COMPENSATION_SKIPPED;
  } else if (action->op == undoes) {
    rule.kind = CompensateRule::Kind::kRunCompensation;
    rule.record.state = v1::STEP_COMPENSATION_DONE;
  } else {
    rule.kind = CompensateRule::Kind::kRefuse;
    rule.record = {};
    rule.refusal = Status::FailedPrecondition(
        "xid=" + std::string(target.xid) + " step=" + std::to_string(target.id) + " ran action " +
        action->op + At(target) + "; compensation " + std::string(compensation) + " undoes " +
        std::string(undoes));
    rule.violation = "compensation " + std::string(compensation) + " of action " +
                     std::string(undoes) + " for a step whose action was " + action->op;
  }
  return rule;
}

}  // namespace treaty::participant
