// TwoPcCore: submission, prepare, votes, decisions and END (the failure-free paths and votes).
#include "twopc/twopc_core.h"

#include <gtest/gtest.h>

#include "tests/unit/twopc/twopc_fixture.h"

namespace treaty::twopc {
namespace {

using testing_util::CallBranches;
using testing_util::CountCalls;
using testing_util::MakeBranch;
using TwoPcSubmitTest = testing_util::TwoPcCoreTest;
using TwoPcVoteTest = testing_util::TwoPcCoreTest;
using TwoPcDecisionTest = testing_util::TwoPcCoreTest;

// ---- Submit ----

TEST_F(TwoPcSubmitTest, InvalidSubmissionsAreRefusedWithoutLogging) {
  Submit no_xid{"", {MakeBranch("a")}, 0, false, 1};
  Submit no_branches{"x1", {}, 0, false, 2};
  Submit no_op{"x2", {MakeBranch("a", "")}, 0, false, 3};
  Submit no_service{"x3", {MakeBranch("", "op")}, 0, false, 4};
  Submit too_many{"x4", std::vector<v1::Branch>(kMaxBranches + 1, MakeBranch("a")), 0, false, 5};
  for (const Submit& in : {no_xid, no_branches, no_op, no_service, too_many}) {
    Effects e = core_.Handle(in);
    ASSERT_EQ(e.replies.size(), 1u) << "client " << in.client << " must get exactly one reply";
    EXPECT_EQ(e.replies[0].client, in.client);
    EXPECT_EQ(e.replies[0].status.code(), StatusCode::kInvalidArgument)
        << "client " << in.client << ": " << e.replies[0].status.ToString();
    EXPECT_TRUE(e.appends.empty()) << "an invalid submission must not be logged";
    EXPECT_TRUE(e.calls.empty());
  }
  EXPECT_EQ(core_.active(), 0u);
}

TEST_F(TwoPcSubmitTest, NewXidAppendsBeginWithBranchesAndDefaultTimeout) {
  Effects e = DoSubmit("x", {"a", "b"});
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].step, LogStep::kBegin);
  const v1::LogEvent& ev = e.appends[0].event;
  EXPECT_EQ(ev.xid(), "x");
  EXPECT_EQ(ev.unix_ms(), clock_.UnixMs());
  ASSERT_TRUE(ev.has_begun());
  ASSERT_EQ(ev.begun().branches_size(), 2);
  EXPECT_EQ(ev.begun().branches(1).service(), "b");
  EXPECT_EQ(ev.begun().prepare_timeout_ms(), 5000u) << "0 must mean the default timeout";
  EXPECT_TRUE(e.calls.empty()) << "no PREPARE before BEGIN is durable";
  EXPECT_TRUE(e.replies.empty()) << "no reply before BEGIN is durable";
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING);
  EXPECT_EQ(core_.active(), 1u);
}

TEST_F(TwoPcSubmitTest, RequestedPrepareTimeoutIsLoggedAndUsed) {
  Effects e = DoSubmit("x", {"a"}, false, 1, 750);
  EXPECT_EQ(e.appends.at(0).event.begun().prepare_timeout_ms(), 750u);
  Effects begun = Logged("x", LogStep::kBegin);
  ASSERT_EQ(begun.calls.size(), 1u);
  EXPECT_EQ(begun.calls[0].deadline_ms, 750);
  ASSERT_EQ(begun.timers.size(), 1u);
  EXPECT_EQ(begun.timers[0].delay_ms, 750);
}

TEST_F(TwoPcSubmitTest, BeginDurableRepliesPreparingAndSendsPrepareToEveryBranch) {
  DoSubmit("x", {"a", "b", "c"}, /*wait=*/false, /*client=*/9);
  Effects e = Logged("x", LogStep::kBegin);
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].client, 9u);
  EXPECT_TRUE(e.replies[0].status.ok());
  EXPECT_EQ(e.replies[0].state, v1::PREPARING);
  EXPECT_EQ(CallBranches(e, Phase::kPrepare), (std::vector<uint32_t>{0, 1, 2}));
  for (const CallParticipant& c : e.calls) {
    EXPECT_EQ(c.attempt, 1u);
    EXPECT_EQ(c.deadline_ms, 5000) << "the first PREPARE gets the whole prepare budget";
    EXPECT_EQ(c.op, "op");
    EXPECT_EQ(c.payload, "{}");
  }
  EXPECT_EQ(e.calls[1].service, "b");
  ASSERT_EQ(e.timers.size(), 1u) << "one prepare deadline timer";
  EXPECT_EQ(e.timers[0].delay_ms, 5000);
}

TEST_F(TwoPcSubmitTest, WaitingClientIsNotRepliedAtBegin) {
  DoSubmit("x", {"a"}, /*wait=*/true);
  Effects e = Logged("x", LogStep::kBegin);
  EXPECT_TRUE(e.replies.empty()) << "wait=true replies only at the decision";
  EXPECT_EQ(e.calls.size(), 1u);
}

TEST_F(TwoPcSubmitTest, DuplicateBeforeBeginDurableAttachesAndBothAreRepliedAtBegin) {
  DoSubmit("x", {"a", "b"}, false, 1);
  Effects dup = DoSubmit("x", {"a", "b"}, false, 2);
  EXPECT_TRUE(dup.appends.empty()) << "a duplicate must not log a second BEGIN";
  EXPECT_TRUE(dup.replies.empty()) << "BEGIN is not durable yet";
  Effects e = Logged("x", LogStep::kBegin);
  ASSERT_EQ(e.replies.size(), 2u);
  EXPECT_EQ(e.replies[0].client + e.replies[1].client, 3u);
  EXPECT_EQ(CountCalls(e, Phase::kPrepare), 2u)
      << "PREPARE is sent once per branch, not per client";
}

TEST_F(TwoPcSubmitTest, DuplicateAfterBeginDurableIsRepliedAtOnce) {
  Started("x", {"a"});
  Effects dup = DoSubmit("x", {"a"}, false, 2);
  ASSERT_EQ(dup.replies.size(), 1u);
  EXPECT_EQ(dup.replies[0].client, 2u);
  EXPECT_EQ(dup.replies[0].state, v1::PREPARING);
  EXPECT_TRUE(dup.appends.empty());
  EXPECT_TRUE(dup.calls.empty()) << "attaching must not restart the prepare phase";
}

TEST_F(TwoPcSubmitTest, DuplicateWaitingClientIsRepliedAtTheDecision) {
  Started("x", {"a"});
  EXPECT_TRUE(DoSubmit("x", {"a"}, /*wait=*/true, 2).replies.empty());
  VoteOn("x", 0, v1::YES);
  Effects e = Logged("x", LogStep::kDecision);
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].client, 2u);
  EXPECT_EQ(e.replies[0].state, v1::COMMITTING);
}

TEST_F(TwoPcSubmitTest, DuplicateWaitingClientAfterAbortIsRepliedAtOnceWithReason) {
  Started("x", {"a"});
  VoteOn("x", 0, v1::NO, "no stock");
  Effects dup = DoSubmit("x", {"a"}, /*wait=*/true, 2);
  ASSERT_EQ(dup.replies.size(), 1u);
  EXPECT_EQ(dup.replies[0].state, v1::ABORTING);
  EXPECT_EQ(dup.replies[0].reason, "a voted NO: no stock");
}

TEST_F(TwoPcSubmitTest, DuplicateWithDifferentBranchesIsAlreadyExists) {
  DoSubmit("x", {"a", "b"});
  Submit other{"x", {MakeBranch("a"), MakeBranch("b", "op", "{\"amount\":2}")}, 0, false, 2};
  Effects e = core_.Handle(other);
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].status.code(), StatusCode::kAlreadyExists) << "payload differs";
  Effects begun = Logged("x", LogStep::kBegin);
  ASSERT_EQ(begun.replies.size(), 1u) << "the refused client must not be attached";
  EXPECT_EQ(begun.replies[0].client, 1u);
}

TEST_F(TwoPcSubmitTest, WaitingClientsPerTransactionAreBounded) {
  DoSubmit("x", {"a"}, /*wait=*/true, 0);
  uint64_t client = 1;
  for (; client < 64; ++client) {
    ASSERT_TRUE(DoSubmit("x", {"a"}, true, client).replies.empty()) << "client " << client;
  }
  Effects e = DoSubmit("x", {"a"}, true, client);
  ASSERT_EQ(e.replies.size(), 1u) << "the 65th waiter must be refused, not queued";
  EXPECT_EQ(e.replies[0].status.code(), StatusCode::kResourceExhausted);
  Logged("x", LogStep::kBegin);
  VoteOn("x", 0, v1::NO);  // replies to every accepted waiter
  EXPECT_EQ(DoSubmit("x", {"a"}, true, 99).replies.at(0).state, v1::ABORTING)
      << "once the waiters were answered, new clients attach again";
}

TEST_F(TwoPcSubmitTest, BeginLogFailureRepliesTheErrorAndForgetsTheTransaction) {
  DoSubmit("x", {"a"}, true, 1);
  DoSubmit("x", {"a"}, false, 2);
  Effects e = Logged("x", LogStep::kBegin, Status::Unavailable("disk full"));
  ASSERT_EQ(e.replies.size(), 2u) << "every attached client learns of the failure";
  for (const Reply& r : e.replies) {
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
    EXPECT_NE(r.status.message().find("disk full"), std::string::npos) << r.status.ToString();
  }
  EXPECT_TRUE(e.calls.empty());
  EXPECT_EQ(core_.active(), 0u);
  EXPECT_FALSE(core_.OutcomeOf("x").has_value());
}

// ---- Votes ----

TEST_F(TwoPcVoteTest, AllYesLogsCommitButSendsNothingUntilItIsDurable) {
  DoSubmit("x", {"a", "b"}, /*wait=*/true);
  Logged("x", LogStep::kBegin);
  EXPECT_TRUE(VoteOn("x", 0, v1::YES).empty()) << "one vote of two decides nothing";
  Effects e = VoteOn("x", 1, v1::YES);
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].step, LogStep::kDecision);
  const v1::TxDecided& d = e.appends[0].event.decided();
  EXPECT_EQ(d.decision(), v1::COMMIT);
  ASSERT_EQ(d.votes_size(), 2);
  EXPECT_EQ(d.votes(0), v1::YES);
  EXPECT_TRUE(e.calls.empty()) << "COMMIT must not be sent before the decision is durable";
  EXPECT_TRUE(e.replies.empty());
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING) << "COMMIT being written is PENDING";
  EXPECT_EQ(StateOf("x"), v1::PREPARING);

  Effects durable = Logged("x", LogStep::kDecision);
  EXPECT_EQ(CallBranches(durable, Phase::kCommit), (std::vector<uint32_t>{0, 1}));
  ASSERT_EQ(durable.replies.size(), 1u);
  EXPECT_EQ(durable.replies[0].state, v1::COMMITTING);
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_COMMIT);
  EXPECT_EQ(StateOf("x"), v1::COMMITTING);
}

TEST_F(TwoPcVoteTest, NoVoteAbortsAtOnceWithReasonAndAbortsOnlyPossiblyPreparedBranches) {
  DoSubmit("x", {"a", "b", "c"}, /*wait=*/true);
  Logged("x", LogStep::kBegin);
  VoteOn("x", 0, v1::YES);
  Effects e = VoteOn("x", 1, v1::NO, "insufficient funds");
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].event.decided().decision(), v1::ABORT);
  EXPECT_EQ(e.appends[0].event.decided().reason(), "b voted NO: insufficient funds");
  EXPECT_EQ(CallBranches(e, Phase::kAbort), (std::vector<uint32_t>{0, 2}))
      << "ABORT goes to the YES branch and the one without a vote, not to the NO branch";
  ASSERT_EQ(e.replies.size(), 1u) << "presumed abort: the client is told at once";
  EXPECT_EQ(e.replies[0].state, v1::ABORTING);
  EXPECT_EQ(e.replies[0].reason, "b voted NO: insufficient funds");
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_ABORT);
}

TEST_F(TwoPcVoteTest, ReadOnlyBranchGetsNoCommit) {
  Started("x", {"a", "b"});
  VoteOn("x", 0, v1::YES);
  Effects decided = VoteOn("x", 1, v1::READ_ONLY);
  ASSERT_EQ(decided.appends.size(), 1u);
  EXPECT_EQ(decided.appends[0].event.decided().decision(), v1::COMMIT);
  Effects e = Logged("x", LogStep::kDecision);
  EXPECT_EQ(CallBranches(e, Phase::kCommit), (std::vector<uint32_t>{0}));
  Effects acked = Ack("x", 0, Phase::kCommit);
  ASSERT_EQ(acked.appends.size(), 1u) << "the READ_ONLY branch needs no ack";
  EXPECT_EQ(acked.appends[0].step, LogStep::kEnd);
}

TEST_F(TwoPcVoteTest, AllReadOnlyCommitsStraightToEnd) {
  Started("x", {"a", "b"});
  VoteOn("x", 0, v1::READ_ONLY);
  VoteOn("x", 1, v1::READ_ONLY);
  Effects e = Logged("x", LogStep::kDecision);
  EXPECT_TRUE(e.calls.empty());
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].step, LogStep::kEnd);
  Effects end = Logged("x", LogStep::kEnd);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::COMMITTED);
}

TEST_F(TwoPcVoteTest, DuplicateVoteIsIgnored) {
  Started("x", {"a", "b"});
  VoteOn("x", 0, v1::YES);
  EXPECT_TRUE(VoteOn("x", 0, v1::YES).empty()) << "a duplicate YES must not count twice";
  EXPECT_TRUE(VoteOn("x", 0, v1::NO).empty()) << "a changed vote must not override the first";
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING);
  EXPECT_EQ(VoteOn("x", 1, v1::YES).appends.size(), 1u);
}

TEST_F(TwoPcVoteTest, VotesForUnknownXidOrBranchOrBeforeBeginAreIgnored) {
  EXPECT_TRUE(VoteOn("nope", 0, v1::YES).empty());
  Started("x", {"a"});
  EXPECT_TRUE(VoteOn("x", 5, v1::NO).empty()) << "branch out of range";
  DoSubmit("y", {"a"});
  EXPECT_TRUE(VoteOn("y", 0, v1::NO).empty()) << "no PREPARE was sent before BEGIN durable";
}

TEST_F(TwoPcVoteTest, VoteWithoutAValueAborts) {
  Started("x", {"a"});
  Effects e = VoteOn("x", 0, v1::VOTE_UNSPECIFIED);
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].event.decided().decision(), v1::ABORT);
}

TEST_F(TwoPcVoteTest, LateYesAfterAbortKeepsTheBranchInTheAbortSet) {
  Started("x", {"a", "b"});
  VoteOn("x", 0, v1::NO);  // aborts; b had no vote and is sent ABORT
  Logged("x", LogStep::kDecision);
  EXPECT_TRUE(VoteOn("x", 1, v1::YES).empty()) << "the ABORT already in flight covers it";
  EXPECT_EQ(core_.Get("x")->branches(1).vote(), v1::YES);
  EXPECT_TRUE(Ack("x", 0, Phase::kAbort).empty()) << "branch 0 voted NO: its ack is not needed";
  Effects e = Ack("x", 1, Phase::kAbort);
  ASSERT_EQ(e.appends.size(), 1u) << "END only once the late-YES branch acknowledged ABORT";
  EXPECT_EQ(e.appends[0].step, LogStep::kEnd);
}

TEST_F(TwoPcVoteTest, LateNoOrReadOnlyAfterAbortNeedsNoAck) {
  Started("x", {"a", "b", "c"});
  Fail("x", 0, Phase::kPrepare, Status::Aborted("refused"));  // abort; all three in the set
  Logged("x", LogStep::kDecision);
  EXPECT_TRUE(VoteOn("x", 1, v1::NO).empty());
  EXPECT_TRUE(Ack("x", 0, Phase::kAbort).empty());
  Effects e = VoteOn("x", 2, v1::READ_ONLY);
  ASSERT_EQ(e.appends.size(), 1u) << "the last outstanding branch turned out to be READ_ONLY";
  EXPECT_EQ(e.appends[0].step, LogStep::kEnd);
}

// ---- Acks and END ----

TEST_F(TwoPcDecisionTest, AllAckedLogsEndAndFinishesWithDuration) {
  ToCommitting("x", {"a", "b"});
  EXPECT_TRUE(Ack("x", 0, Phase::kCommit).empty());
  Effects e = Ack("x", 1, Phase::kCommit);
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].step, LogStep::kEnd);
  EXPECT_TRUE(e.appends[0].event.has_ended());
  clock_.AdvanceMs(3);
  Effects end = Logged("x", LogStep::kEnd);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::COMMITTED);
  EXPECT_EQ(end.finished[0].duration_ms, 3);
  EXPECT_EQ(core_.active(), 0u) << "a finished transaction is forgotten";
}

TEST_F(TwoPcDecisionTest, DuplicateAndLateAcksAreIgnored) {
  ToCommitting("x", {"a", "b"});
  Ack("x", 0, Phase::kCommit);
  EXPECT_TRUE(Ack("x", 0, Phase::kCommit).empty()) << "duplicate ack";
  EXPECT_TRUE(Ack("x", 1, Phase::kAbort).empty()) << "ack for the wrong decision";
  EXPECT_EQ(Ack("x", 1, Phase::kCommit).appends.size(), 1u);
  EXPECT_TRUE(Ack("x", 1, Phase::kCommit).empty()) << "ack while END is being written";
  Logged("x", LogStep::kEnd);
  EXPECT_TRUE(Ack("x", 0, Phase::kCommit).empty()) << "ack after the transaction finished";
}

TEST_F(TwoPcDecisionTest, CommitAckBeforeTheDecisionIsDurableIsIgnored) {
  Started("x", {"a"});
  VoteOn("x", 0, v1::YES);
  EXPECT_TRUE(Ack("x", 0, Phase::kCommit).empty());
  Effects e = Logged("x", LogStep::kDecision);
  EXPECT_EQ(CountCalls(e, Phase::kCommit), 1u) << "the bogus ack must not count";
}

TEST_F(TwoPcDecisionTest, AbortedTransactionFinishesAsAborted) {
  Started("x", {"a"});
  Started("y", {"a", "b"});
  VoteOn("y", 1, v1::NO);
  Logged("y", LogStep::kDecision);
  Effects e = Ack("y", 0, Phase::kAbort);
  ASSERT_EQ(e.appends.size(), 1u);
  Effects end = Logged("y", LogStep::kEnd);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::ABORTED);
  EXPECT_EQ(core_.active(), 1u) << "only y finished; x is still preparing";
}

TEST_F(TwoPcDecisionTest, GetReportsPerBranchProgress) {
  Started("x", {"a", "b"});
  clock_.AdvanceMs(10);
  VoteOn("x", 0, v1::YES);
  Fail("x", 1, Phase::kPrepare, Status::Unavailable("connection refused"));
  auto tx = core_.Get("x");
  ASSERT_TRUE(tx.has_value());
  EXPECT_EQ(tx->xid(), "x");
  EXPECT_EQ(tx->state(), v1::PREPARING);
  ASSERT_EQ(tx->branches_size(), 2);
  EXPECT_EQ(tx->branches(0).vote(), v1::YES);
  EXPECT_EQ(tx->branches(0).service(), "a");
  EXPECT_EQ(tx->branches(1).branch_id(), 1u);
  EXPECT_EQ(tx->branches(1).attempts(), 1u);
  EXPECT_EQ(tx->branches(1).last_error(), "UNAVAILABLE: connection refused");
  EXPECT_EQ(tx->created_unix_ms(), clock_.UnixMs() - 10);
  EXPECT_EQ(tx->updated_unix_ms(), clock_.UnixMs());
  EXPECT_FALSE(core_.Get("unknown").has_value());
  EXPECT_FALSE(core_.OutcomeOf("unknown").has_value());
}

}  // namespace
}  // namespace treaty::twopc
