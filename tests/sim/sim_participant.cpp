#include "tests/sim/sim_participant.h"

#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::sim {

using participant::BarrierRecord;
using participant::BarrierTarget;
using participant::StepKind;
using participant::StepRecord;

namespace {

std::string PrepareReply(v1::Vote vote, const std::string& reason) {
  v1::PrepareResponse response;
  response.set_vote(vote);
  response.set_reason(reason);
  return response.SerializeAsString();
}

std::string StepReply(v1::StepOutcome outcome, const std::string& reason = {}) {
  v1::StepResponse response;
  response.set_outcome(outcome);
  response.set_reason(reason);
  return response.SerializeAsString();
}

}  // namespace

Result<std::string> SimParticipant::Serve(const std::string& method, const std::string& payload,
                                          const HandlerMix& mix, bool faults, Random& random,
                                          int64_t now_unix_ms) {
  if (method == v1::methods::kPrepare) return Prepare(payload, mix, faults, random, now_unix_ms);
  if (method == v1::methods::kCommit || method == v1::methods::kAbort) {
    v1::DecisionRequest req;
    if (!req.ParseFromString(payload)) return Status::InvalidArgument("bad DecisionRequest");
    return Decide(req.xid(), req.branch_id(), method == v1::methods::kCommit);
  }
  if (method == v1::methods::kAction) return Action(payload, mix, faults, random);
  if (method == v1::methods::kCompensate) return Compensate(payload, mix, faults, random);
  return Status::NotFound("no method " + method);
}

std::optional<BarrierRecord> SimParticipant::BranchRecord(const Key& key) const {
  auto it = branches_.find(key);
  if (it == branches_.end()) return std::nullopt;
  return it->second;
}

std::optional<StepRecord> SimParticipant::StepRecordOf(const std::string& xid, uint32_t step,
                                                       StepKind kind) const {
  auto it = steps_.find({xid, step, kind});
  if (it == steps_.end()) return std::nullopt;
  return it->second;
}

Result<std::string> SimParticipant::Prepare(const std::string& payload, const HandlerMix& mix,
                                            bool faults, Random& random, int64_t now_unix_ms) {
  v1::PrepareRequest req;
  if (!req.ParseFromString(payload)) return Status::InvalidArgument("bad PrepareRequest");
  const Key key{req.xid(), req.branch_id()};
  const participant::PrepareRule rule = participant::OnPrepare(BranchRecord(key));
  if (rule.kind != participant::PrepareRule::Kind::kRunHandler) {
    return PrepareReply(rule.vote, rule.reason);
  }
  // The simulated prepare handler.
  const auto roll = static_cast<int>(random.Uniform(100));
  int edge = mix.no_pct;
  participant::PrepareResult vote = participant::PrepareResult::Yes();
  if (roll < edge) {
    vote = participant::PrepareResult::No("insufficient funds");
  } else if (roll < (edge += mix.read_only_pct)) {
    vote = participant::PrepareResult::ReadOnly();
  } else if (roll < (edge += mix.refuse_pct)) {
    return Status::FailedPrecondition("account frozen");
  } else if (roll < (edge += mix.transient_pct) && faults) {
    return Status::Unavailable("database busy");
  }
  const BarrierRecord rec = participant::RecordVote(vote, req.op(), req.payload(), now_unix_ms);
  branches_[key] = rec;
  if (rec.state == v1::BRANCH_PREPARED) ++effects_[key].prepared;
  return PrepareReply(rec.vote, rec.reason);
}

Result<std::string> SimParticipant::Decide(const std::string& xid, uint32_t branch, bool commit) {
  const Key key{xid, branch};
  const BarrierTarget target{service_, xid, branch};
  const std::optional<BarrierRecord> existing = BranchRecord(key);
  const participant::DecisionRule rule =
      commit ? participant::OnCommit(target, existing) : participant::OnAbort(target, existing);
  switch (rule.kind) {
    case participant::DecisionRule::Kind::kAcknowledge:
      break;
    case participant::DecisionRule::Kind::kRecordNullAbort:
      branches_[key] = rule.record;
      break;
    case participant::DecisionRule::Kind::kRunHandler:
      if (commit) observer_.BeforeCommit(xid, branch);
      ++(commit ? effects_[key].committed : effects_[key].aborted);
      branches_[key] = rule.record;
      break;
    case participant::DecisionRule::Kind::kRefuse:
      observer_.ParticipantViolation(xid, service_ + ": protocol violation: " + rule.violation);
      return rule.refusal;
  }
  return v1::DecisionResponse().SerializeAsString();
}

void SimParticipant::ApplyOutcome(const std::string& xid, uint32_t branch, bool commit) {
  (void)Decide(xid, branch, commit);
}

std::vector<SimParticipant::PreparedBranch> SimParticipant::Prepared() const {
  std::vector<PreparedBranch> out;
  for (const auto& [key, rec] : branches_) {
    if (rec.state == v1::BRANCH_PREPARED)
      out.push_back({key.first, key.second, rec.prepared_unix_ms});
  }
  return out;
}

Result<std::string> SimParticipant::Action(const std::string& payload, const HandlerMix& mix,
                                           bool faults, Random& random) {
  v1::StepRequest req;
  if (!req.ParseFromString(payload)) return Status::InvalidArgument("bad StepRequest");
  const participant::ActionRule rule =
      participant::OnAction(StepRecordOf(req.xid(), req.step(), StepKind::kAction),
                            StepRecordOf(req.xid(), req.step(), StepKind::kCompensation));
  if (rule.kind == participant::ActionRule::Kind::kRefuseCompensatedFirst) ++barred_actions_;
  if (rule.kind != participant::ActionRule::Kind::kRunHandler) {
    return StepReply(rule.outcome, rule.reason);
  }
  // The simulated action handler.
  const auto roll = static_cast<int>(random.Uniform(100));
  participant::StepResult result = participant::StepResult::Done();
  if (roll < mix.action_refuse_pct) {
    result = participant::StepResult::Refused("out of stock");
  } else if (faults && roll < mix.action_refuse_pct + mix.action_transient_pct) {
    return Status::Unavailable("database busy");
  }
  const StepRecord rec = participant::RecordAction(result, req.op());
  steps_[{req.xid(), req.step(), StepKind::kAction}] = rec;
  const bool done = rec.state == v1::STEP_ACTION_DONE;
  if (done) ++effects_[{req.xid(), req.step()}].applied;
  if (done && faults && static_cast<int>(random.Uniform(100)) < mix.garbled_reply_pct) {
    return StepReply(v1::STEP_OUTCOME_UNSPECIFIED);  // applied, but the reply says nothing
  }
  return StepReply(done ? v1::STEP_DONE : v1::STEP_REFUSED, rec.reason);
}

Result<std::string> SimParticipant::Compensate(const std::string& payload, const HandlerMix& mix,
                                               bool faults, Random& random) {
  v1::StepRequest req;
  if (!req.ParseFromString(payload)) return Status::InvalidArgument("bad StepRequest");
  const BarrierTarget target{service_, req.xid(), req.step()};
  const participant::CompensateRule rule = participant::OnCompensate(
      target, req.op(), kSimAction, StepRecordOf(req.xid(), req.step(), StepKind::kAction),
      StepRecordOf(req.xid(), req.step(), StepKind::kCompensation));
  switch (rule.kind) {
    case participant::CompensateRule::Kind::kRepeat:
      break;
    case participant::CompensateRule::Kind::kRecordNull:
      ++null_compensations_;
      [[fallthrough]];
    case participant::CompensateRule::Kind::kRecordSkipped:
      steps_[{req.xid(), req.step(), StepKind::kCompensation}] = rule.record;
      break;
    case participant::CompensateRule::Kind::kRunCompensation:
      if (faults && static_cast<int>(random.Uniform(100)) < mix.compensate_transient_pct) {
        return Status::Unavailable("compensation store down");
      }
      ++effects_[{req.xid(), req.step()}].undone;
      steps_[{req.xid(), req.step(), StepKind::kCompensation}] = rule.record;
      break;
    case participant::CompensateRule::Kind::kRefuse:
      observer_.ParticipantViolation(req.xid(),
                                     service_ + ": protocol violation: " + rule.violation);
      return rule.refusal;
  }
  return StepReply(v1::STEP_DONE);
}

const BarrierRecord* SimParticipant::Branch(const std::string& xid, uint32_t branch) const {
  auto it = branches_.find({xid, branch});
  return it == branches_.end() ? nullptr : &it->second;
}

const StepRecord* SimParticipant::Step(const std::string& xid, uint32_t step, StepKind kind) const {
  auto it = steps_.find({xid, step, kind});
  return it == steps_.end() ? nullptr : &it->second;
}

SimParticipant::Effects SimParticipant::EffectsOf(const std::string& xid, uint32_t id) const {
  auto it = effects_.find({xid, id});
  return it == effects_.end() ? Effects{} : it->second;
}

}  // namespace treaty::sim
