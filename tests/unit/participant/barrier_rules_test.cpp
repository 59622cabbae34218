// The pure barrier rules (participant/barrier_rules.h): every recorded state against every
// request, with no storage.
#include "participant/barrier_rules.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace treaty::participant {
namespace {

const BarrierTarget kTarget{"svc", "tx-1", 3};

BarrierRecord Branch(v1::BranchState state, v1::Vote vote, std::string reason = {}) {
  BarrierRecord rec;
  rec.state = state;
  rec.vote = vote;
  rec.reason = std::move(reason);
  if (vote == v1::YES) {
    rec.prepared_unix_ms = 1'700'000'000'000;
    rec.op = "debit";
    rec.payload = state == v1::BRANCH_PREPARED ? "{\"amount\":5}" : "";
  }
  return rec;
}

BarrierRecord Prepared() { return Branch(v1::BRANCH_PREPARED, v1::YES); }
BarrierRecord Committed() { return Branch(v1::BRANCH_COMMITTED, v1::YES); }
BarrierRecord ReadOnly() { return Branch(v1::BRANCH_READ_ONLY, v1::READ_ONLY); }
BarrierRecord NullAborted() { return Branch(v1::BRANCH_ABORTED, v1::VOTE_UNSPECIFIED); }
BarrierRecord VotedNo() { return Branch(v1::BRANCH_ABORTED, v1::NO, "insufficient funds"); }
BarrierRecord AbortedAfterYes() { return Branch(v1::BRANCH_ABORTED, v1::YES); }

// ---- PREPARE ----

TEST(PrepareRuleTest, PrepareOfAnUnknownBranchRunsTheHandler) {
  EXPECT_EQ(OnPrepare(std::nullopt).kind, PrepareRule::Kind::kRunHandler);
}

TEST(PrepareRuleTest, PrepareOfAPreparedOrCommittedBranchRepeatsYes) {
  for (const BarrierRecord& rec : {Prepared(), Committed()}) {
    const PrepareRule rule = OnPrepare(rec);
    EXPECT_EQ(rule.kind, PrepareRule::Kind::kRepeat) << BranchStateName(rec.state);
    EXPECT_EQ(rule.vote, v1::YES) << BranchStateName(rec.state);
  }
}

TEST(PrepareRuleTest, PrepareOfAReadOnlyBranchRepeatsReadOnly) {
  const PrepareRule rule = OnPrepare(ReadOnly());
  EXPECT_EQ(rule.kind, PrepareRule::Kind::kRepeat);
  EXPECT_EQ(rule.vote, v1::READ_ONLY);
}

TEST(PrepareRuleTest, PrepareOfABranchThatVotedNoRepeatsNoWithItsReason) {
  const PrepareRule rule = OnPrepare(VotedNo());
  EXPECT_EQ(rule.kind, PrepareRule::Kind::kRepeat);
  EXPECT_EQ(rule.vote, v1::NO);
  EXPECT_EQ(rule.reason, "insufficient funds");
}

TEST(PrepareRuleTest, PrepareAfterANullAbortVotesNoWithoutRunningTheHandler) {
  const PrepareRule rule = OnPrepare(NullAborted());
  EXPECT_EQ(rule.kind, PrepareRule::Kind::kRefuseAborted) << "anti-hanging: no handler may run";
  EXPECT_EQ(rule.vote, v1::NO);
  EXPECT_EQ(rule.reason, kAbortedBeforePrepare);
}

TEST(PrepareRuleTest, PrepareOfAnAbortedBranchVotesNo) {
  const PrepareRule rule = OnPrepare(AbortedAfterYes());
  EXPECT_EQ(rule.kind, PrepareRule::Kind::kRefuseAborted);
  EXPECT_EQ(rule.vote, v1::NO)
      << "a branch that voted YES and was then aborted must not vote YES again, or a coordinator "
         "that resumes the prepare would commit it";
  EXPECT_EQ(rule.reason, kAlreadyAborted);
}

TEST(PrepareRuleTest, EveryAbortedBranchVotesNoAndNoOtherDoes) {
  for (const BarrierRecord& rec :
       {Prepared(), Committed(), ReadOnly(), NullAborted(), VotedNo(), AbortedAfterYes()}) {
    EXPECT_EQ(OnPrepare(rec).vote == v1::NO, rec.state == v1::BRANCH_ABORTED)
        << BranchStateName(rec.state) << " vote " << v1::Vote_Name(rec.vote);
  }
}

TEST(PrepareRuleTest, YesVoteRecordsPreparedWithWhatTheDecisionNeeds) {
  const BarrierRecord rec = RecordVote(PrepareResult::Yes(), "debit", "{}", 42);
  EXPECT_EQ(rec.state, v1::BRANCH_PREPARED);
  EXPECT_EQ(rec.vote, v1::YES);
  EXPECT_EQ(rec.prepared_unix_ms, 42);
  EXPECT_EQ(rec.op, "debit");
  EXPECT_EQ(rec.payload, "{}");
  EXPECT_EQ(OnPrepare(rec).vote, v1::YES) << "a repeated prepare answers the same vote";
}

TEST(PrepareRuleTest, NoVoteRecordsAbortedWithTheReasonAndNothingElse) {
  const BarrierRecord rec = RecordVote(PrepareResult::No("closed"), "debit", "{}", 42);
  EXPECT_EQ(rec.state, v1::BRANCH_ABORTED);
  EXPECT_EQ(rec.vote, v1::NO);
  EXPECT_EQ(rec.reason, "closed");
  EXPECT_EQ(rec.prepared_unix_ms, 0) << "a branch that voted NO was never prepared";
  EXPECT_TRUE(rec.op.empty() && rec.payload.empty()) << "nothing is kept for a decision";
  EXPECT_EQ(OnPrepare(rec).reason, "closed") << "a repeated prepare answers the same reason";
}

TEST(PrepareRuleTest, ReadOnlyVoteRecordsReadOnly) {
  const BarrierRecord rec = RecordVote(PrepareResult::ReadOnly(), "debit", "{}", 42);
  EXPECT_EQ(rec.state, v1::BRANCH_READ_ONLY);
  EXPECT_EQ(rec.vote, v1::READ_ONLY);
  EXPECT_EQ(rec.prepared_unix_ms, 0);
  EXPECT_TRUE(rec.payload.empty());
}

// ---- COMMIT and ABORT ----

TEST(DecisionRuleTest, CommitOfAPreparedBranchRunsTheHandlerAndRecordsCommitted) {
  const DecisionRule rule = OnCommit(kTarget, Prepared());
  ASSERT_EQ(rule.kind, DecisionRule::Kind::kRunHandler);
  EXPECT_EQ(rule.record.state, v1::BRANCH_COMMITTED);
  EXPECT_EQ(rule.record.vote, v1::YES);
}

TEST(DecisionRuleTest, AbortOfAPreparedBranchRunsTheHandlerAndRecordsAborted) {
  const DecisionRule rule = OnAbort(kTarget, Prepared());
  ASSERT_EQ(rule.kind, DecisionRule::Kind::kRunHandler);
  EXPECT_EQ(rule.record.state, v1::BRANCH_ABORTED);
}

TEST(DecisionRuleTest, RecordAfterADecisionKeepsTheVoteAndOpAndDropsThePayload) {
  for (const bool commit : {true, false}) {
    const BarrierRecord rec = RecordDecision(Prepared(), commit);
    EXPECT_EQ(rec.state, commit ? v1::BRANCH_COMMITTED : v1::BRANCH_ABORTED);
    EXPECT_EQ(rec.vote, v1::YES);
    EXPECT_EQ(rec.op, "debit");
    EXPECT_EQ(rec.prepared_unix_ms, Prepared().prepared_unix_ms);
    EXPECT_TRUE(rec.payload.empty()) << "the payload is needed only while the decision is pending";
  }
}

TEST(DecisionRuleTest, RecordAfterAbortAnswersALaterPrepareNoAndRefusesACommit) {
  const BarrierRecord aborted = RecordDecision(Prepared(), /*commit=*/false);
  EXPECT_EQ(OnPrepare(aborted).vote, v1::NO);
  EXPECT_EQ(OnCommit(kTarget, aborted).kind, DecisionRule::Kind::kRefuse);
  const BarrierRecord committed = RecordDecision(Prepared(), /*commit=*/true);
  EXPECT_EQ(OnPrepare(committed).vote, v1::YES);
  EXPECT_EQ(OnAbort(kTarget, committed).kind, DecisionRule::Kind::kRefuse);
}

TEST(DecisionRuleTest, RepeatedCommitOrCommitOfAReadOnlyBranchIsAcknowledged) {
  EXPECT_EQ(OnCommit(kTarget, Committed()).kind, DecisionRule::Kind::kAcknowledge);
  EXPECT_EQ(OnCommit(kTarget, ReadOnly()).kind, DecisionRule::Kind::kAcknowledge);
}

TEST(DecisionRuleTest, RepeatedAbortOrAbortOfAReadOnlyBranchIsAcknowledged) {
  for (const BarrierRecord& rec : {NullAborted(), VotedNo(), AbortedAfterYes(), ReadOnly()}) {
    EXPECT_EQ(OnAbort(kTarget, rec).kind, DecisionRule::Kind::kAcknowledge)
        << BranchStateName(rec.state) << " vote " << v1::Vote_Name(rec.vote);
  }
}

TEST(DecisionRuleTest, CommitOfAnUnknownBranchIsAProtocolViolation) {
  const DecisionRule rule = OnCommit(kTarget, std::nullopt);
  ASSERT_EQ(rule.kind, DecisionRule::Kind::kRefuse);
  EXPECT_EQ(rule.refusal.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rule.refusal.message(), "xid=tx-1 branch=3 was never prepared at svc");
  EXPECT_EQ(rule.violation, "commit of a branch that was never prepared here");
}

TEST(DecisionRuleTest, CommitOfAnAbortedBranchIsAProtocolViolation) {
  for (const BarrierRecord& rec : {NullAborted(), VotedNo(), AbortedAfterYes()}) {
    const DecisionRule rule = OnCommit(kTarget, rec);
    ASSERT_EQ(rule.kind, DecisionRule::Kind::kRefuse) << "vote " << v1::Vote_Name(rec.vote);
    EXPECT_EQ(rule.refusal.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(rule.refusal.message(), "xid=tx-1 branch=3 is aborted at svc; commit refused");
    EXPECT_EQ(rule.violation, "commit of an aborted branch");
  }
}

TEST(DecisionRuleTest, AbortOfAnUnknownBranchRecordsANullAbortThatRefusesALatePrepare) {
  const DecisionRule rule = OnAbort(kTarget, std::nullopt);
  ASSERT_EQ(rule.kind, DecisionRule::Kind::kRecordNullAbort);
  EXPECT_EQ(rule.record.state, v1::BRANCH_ABORTED);
  EXPECT_EQ(rule.record.vote, v1::VOTE_UNSPECIFIED);
  EXPECT_EQ(OnPrepare(rule.record).vote, v1::NO);
  EXPECT_EQ(OnCommit(kTarget, rule.record).kind, DecisionRule::Kind::kRefuse);
}

TEST(DecisionRuleTest, AbortOfACommittedBranchIsAProtocolViolation) {
  const DecisionRule rule = OnAbort(kTarget, Committed());
  ASSERT_EQ(rule.kind, DecisionRule::Kind::kRefuse);
  EXPECT_EQ(rule.refusal.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rule.refusal.message(), "xid=tx-1 branch=3 is committed at svc; abort refused");
  EXPECT_EQ(rule.violation, "abort of a committed branch");
}

// ---- Saga ACTION ----

StepRecord Step(int state, std::string op, std::string reason = {}) {
  return {state, std::move(op), std::move(reason)};
}
StepRecord ActionDone() { return Step(v1::STEP_ACTION_DONE, "reserve"); }
StepRecord ActionRefused() { return Step(v1::STEP_ACTION_REFUSED, "reserve", "sold out"); }
// Every compensation record, each with the action record it can follow.
std::vector<std::pair<std::optional<StepRecord>, StepRecord>> Compensated() {
  return {{ActionDone(), Step(v1::STEP_COMPENSATION_DONE, "release")},
          {std::nullopt, Step(v1::STEP_COMPENSATION_NULL, "release")},
          {ActionRefused(), Step(v1::STEP_COMPENSATION_SKIPPED, "release")}};
}

TEST(ActionRuleTest, ActionWithNothingRecordedRunsTheHandler) {
  EXPECT_EQ(OnAction(std::nullopt, std::nullopt).kind, ActionRule::Kind::kRunHandler);
}

TEST(ActionRuleTest, RepeatedActionAnswersItsRecordedOutcome) {
  const ActionRule done = OnAction(ActionDone(), std::nullopt);
  EXPECT_EQ(done.kind, ActionRule::Kind::kRepeat);
  EXPECT_EQ(done.outcome, v1::STEP_DONE);
  const ActionRule refused = OnAction(ActionRefused(), std::nullopt);
  EXPECT_EQ(refused.kind, ActionRule::Kind::kRepeat);
  EXPECT_EQ(refused.outcome, v1::STEP_REFUSED);
  EXPECT_EQ(refused.reason, "sold out");
}

TEST(ActionRuleTest, ActionAfterItsCompensationIsRefusedWhateverWasRecorded) {
  for (const auto& [action, compensation] : Compensated()) {
    const ActionRule rule = OnAction(action, compensation);
    EXPECT_EQ(rule.kind, ActionRule::Kind::kRefuseCompensatedFirst) << compensation.state;
    EXPECT_EQ(rule.outcome, v1::STEP_REFUSED) << compensation.state;
    EXPECT_EQ(rule.reason, kCompensatedFirst) << compensation.state;
  }
}

TEST(ActionRuleTest, ActionResultsRecordDoneOrRefusedWithTheReason) {
  const StepRecord done = RecordAction(StepResult::Done(), "reserve");
  EXPECT_EQ(done.state, v1::STEP_ACTION_DONE);
  EXPECT_EQ(done.op, "reserve");
  const StepRecord refused = RecordAction(StepResult::Refused("sold out"), "reserve");
  EXPECT_EQ(refused.state, v1::STEP_ACTION_REFUSED);
  EXPECT_EQ(refused.op, "reserve");
  EXPECT_EQ(refused.reason, "sold out");
  EXPECT_EQ(OnAction(refused, std::nullopt).reason, "sold out");
}

// ---- Saga COMPENSATE ----

CompensateRule Compensate(const std::optional<StepRecord>& action,
                          const std::optional<StepRecord>& compensation = std::nullopt) {
  return OnCompensate(kTarget, "release", "reserve", action, compensation);
}

TEST(CompensateRuleTest, CompensationOfADoneActionRunsTheHandlerAndRecordsDone) {
  const CompensateRule rule = Compensate(ActionDone());
  ASSERT_EQ(rule.kind, CompensateRule::Kind::kRunCompensation);
  EXPECT_EQ(rule.record.state, v1::STEP_COMPENSATION_DONE);
  EXPECT_EQ(rule.record.op, "release");
}

TEST(CompensateRuleTest, CompensationBeforeItsActionRecordsANullCompensationThatRefusesIt) {
  const CompensateRule rule = Compensate(std::nullopt);
  ASSERT_EQ(rule.kind, CompensateRule::Kind::kRecordNull);
  EXPECT_EQ(rule.record.state, v1::STEP_COMPENSATION_NULL);
  EXPECT_EQ(rule.record.op, "release");
  EXPECT_EQ(OnAction(std::nullopt, rule.record).kind, ActionRule::Kind::kRefuseCompensatedFirst);
}

TEST(CompensateRuleTest, CompensationOfARefusedActionIsSkipped) {
  const CompensateRule rule = Compensate(ActionRefused());
  ASSERT_EQ(rule.kind, CompensateRule::Kind::kRecordSkipped);
  EXPECT_EQ(rule.record.state, v1::STEP_COMPENSATION_SKIPPED);
}

TEST(CompensateRuleTest, RepeatedCompensationIsAcknowledgedWhateverWasRecorded) {
  for (const auto& [action, compensation] : Compensated()) {
    EXPECT_EQ(Compensate(action, compensation).kind, CompensateRule::Kind::kRepeat)
        << compensation.state;
  }
}

TEST(CompensateRuleTest, CompensationOfAnotherStepsActionIsAProtocolViolation) {
  const CompensateRule rule = Compensate(Step(v1::STEP_ACTION_DONE, "ship"));
  ASSERT_EQ(rule.kind, CompensateRule::Kind::kRefuse);
  EXPECT_EQ(rule.refusal.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rule.refusal.message(),
            "xid=tx-1 step=3 ran action ship at svc; compensation release undoes reserve");
  EXPECT_EQ(rule.violation,
            "compensation release of action reserve for a step whose action was ship");
}

}  // namespace
}  // namespace treaty::participant
