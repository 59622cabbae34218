// TwoPcCore: call failures, retries and backoff, timers, log failures and recovery.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/twopc/twopc_fixture.h"
#include "twopc/twopc_core.h"
#include "twopc/twopc_rules.h"

namespace treaty::twopc {
namespace {

using testing_util::CallBranches;
using testing_util::CountCalls;
using TwoPcPrepareFailureTest = testing_util::TwoPcCoreTest;
using TwoPcRetryTest = testing_util::TwoPcCoreTest;
using TwoPcLogFailureTest = testing_util::TwoPcCoreTest;
using TwoPcRecoveryTest = testing_util::TwoPcCoreTest;

// ---- Prepare failures and the prepare deadline ----

TEST_F(TwoPcPrepareFailureTest, DefinitiveFailureAbortsWithTheStatusAsReason) {
  for (StatusCode code :
       {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kFailedPrecondition,
        StatusCode::kAborted, StatusCode::kAlreadyExists}) {
    const std::string xid = "x" + std::to_string(static_cast<int>(code));
    Started(xid, {"a", "b"});
    Effects e = Fail(xid, 1, Phase::kPrepare, Status(code, "no such op"));
    ASSERT_EQ(e.appends.size(), 1u) << StatusCodeName(code) << " must decide at once";
    const v1::TxDecided& d = e.appends[0].event.decided();
    EXPECT_EQ(d.decision(), v1::ABORT) << StatusCodeName(code);
    EXPECT_NE(d.reason().find(Status(code, "no such op").ToString()), std::string::npos)
        << "reason should carry the status, got: " << d.reason();
    EXPECT_EQ(CallBranches(e, Phase::kAbort), (std::vector<uint32_t>{0, 1}));
    EXPECT_TRUE(e.timers.empty()) << "no prepare retry after a definitive failure";
  }
}

TEST_F(TwoPcPrepareFailureTest, TransientFailureRetriesPrepareWithinTheDeadline) {
  for (StatusCode code : {StatusCode::kUnavailable, StatusCode::kDeadlineExceeded,
                          StatusCode::kResourceExhausted, StatusCode::kInternal}) {
    const std::string xid = "x" + std::to_string(static_cast<int>(code));
    Started(xid, {"a"});
    clock_.AdvanceMs(1000);
    Effects e = Fail(xid, 0, Phase::kPrepare, Status(code, "flaky"));
    EXPECT_TRUE(e.appends.empty()) << StatusCodeName(code) << " is transient: no decision";
    ASSERT_EQ(e.timers.size(), 1u) << StatusCodeName(code) << " must schedule a retry";
    const int64_t backoff = e.timers[0].delay_ms;
    EXPECT_GE(backoff, 1);
    EXPECT_LE(backoff, 20) << "the first retry waits at most retry_initial_ms";
    clock_.AdvanceMs(backoff);
    Effects retry = Fire(xid, e.timers[0].timer_id);
    ASSERT_EQ(retry.calls.size(), 1u);
    EXPECT_EQ(retry.calls[0].phase, Phase::kPrepare);
    EXPECT_EQ(retry.calls[0].attempt, 2u);
    EXPECT_EQ(retry.calls[0].deadline_ms, 5000 - 1000 - backoff)
        << "a retried PREPARE gets only the remaining budget";
  }
}

TEST_F(TwoPcPrepareFailureTest, TransientFailureTooCloseToTheDeadlineWaitsForTheTimer) {
  Effects begun = Started("x", {"a"});
  clock_.AdvanceMs(4999);
  Effects e = Fail("x", 0, Phase::kPrepare, Status::Unavailable("down"));
  EXPECT_TRUE(e.empty()) << "no retry can start before the deadline";
  clock_.AdvanceMs(1);
  Effects timeout = Fire("x", begun.timers.at(0).timer_id);
  ASSERT_EQ(timeout.appends.size(), 1u);
  EXPECT_EQ(timeout.appends[0].event.decided().decision(), v1::ABORT);
}

TEST_F(TwoPcPrepareFailureTest, PrepareDeadlineAbortsNamingTheSilentBranches) {
  DoSubmit("x", {"a", "b", "c"}, /*wait=*/true);
  Effects begun = Logged("x", LogStep::kBegin);
  VoteOn("x", 1, v1::YES);
  clock_.AdvanceMs(5000);
  Effects e = Fire("x", begun.timers.at(0).timer_id);
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].event.decided().reason(),
            "prepare timed out after 5000 ms; no vote from a, c");
  EXPECT_EQ(CallBranches(e, Phase::kAbort), (std::vector<uint32_t>{0, 1, 2}));
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].state, v1::ABORTING);
}

TEST_F(TwoPcPrepareFailureTest, PrepareFailureAfterTheBranchVotedIsIgnored) {
  Started("x", {"a", "b"});
  VoteOn("x", 0, v1::YES);
  EXPECT_TRUE(Fail("x", 0, Phase::kPrepare, Status::Aborted("late")).empty());
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING);
}

// ---- Stale timers ----

TEST_F(TwoPcRetryTest, StaleTimersAreIgnored) {
  Effects begun = Started("x", {"a", "b"});
  const uint64_t deadline_timer = begun.timers.at(0).timer_id;
  Effects failed = Fail("x", 1, Phase::kPrepare, Status::Unavailable("down"));
  const uint64_t retry_timer = failed.timers.at(0).timer_id;
  VoteOn("x", 1, v1::YES);  // the branch answered after all (a reply to the first call)
  EXPECT_TRUE(Fire("x", retry_timer).empty()) << "retry timer of a branch that has voted";
  VoteOn("x", 0, v1::YES);
  EXPECT_TRUE(Fire("x", deadline_timer).empty()) << "deadline timer after the decision";
  EXPECT_TRUE(Fire("x", 999999).empty()) << "unknown timer id";
  EXPECT_TRUE(Fire("nope", deadline_timer).empty()) << "unknown xid";
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING) << "COMMIT decision still being written";
}

TEST_F(TwoPcRetryTest, RetryTimerOfAnAcknowledgedBranchIsIgnored) {
  ToCommitting("x", {"a", "b"});
  Effects failed = Fail("x", 0, Phase::kCommit, Status::Unavailable("down"));
  Ack("x", 0, Phase::kCommit);
  EXPECT_TRUE(Fire("x", failed.timers.at(0).timer_id).empty());
}

// ---- Decision delivery retries ----

TEST_F(TwoPcRetryTest, CommitDeliveryIsRetriedForeverWithCappedJitteredBackoff) {
  ToCommitting("x", {"a"});
  int64_t cap = 20;
  for (uint32_t attempt = 1; attempt <= 40; ++attempt) {
    Effects failed = Fail("x", 0, Phase::kCommit, Status::Unavailable("refused"));
    ASSERT_EQ(failed.timers.size(), 1u) << "attempt " << attempt << " must schedule a retry";
    const int64_t delay = failed.timers[0].delay_ms;
    EXPECT_GE(delay, 1) << "attempt " << attempt;
    EXPECT_LE(delay, cap) << "attempt " << attempt << ": backoff above min(max, initial*2^(n-1))";
    cap = std::min<int64_t>(cap * 2, 2000);
    clock_.AdvanceMs(delay);
    Effects retry = Fire("x", failed.timers[0].timer_id);
    ASSERT_EQ(retry.calls.size(), 1u);
    EXPECT_EQ(retry.calls[0].phase, Phase::kCommit);
    EXPECT_EQ(retry.calls[0].attempt, attempt + 1);
  }
  auto tx = core_.Get("x");
  EXPECT_EQ(tx->branches(0).attempts(), 41u);
  EXPECT_EQ(tx->branches(0).last_error(), "UNAVAILABLE: refused");
  EXPECT_EQ(tx->state(), v1::COMMITTING) << "delivery never gives up";
}

TEST_F(TwoPcRetryTest, BackoffUsesTheWholeJitterRangeUpToTheCap) {
  // Full jitter: over many first retries the delays should spread over [1, retry_initial_ms].
  int64_t lo = 1 << 30, hi = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string xid = "x" + std::to_string(i);
    ToCommitting(xid, {"a"});
    Effects e = Fail(xid, 0, Phase::kCommit, Status::Unavailable("down"));
    lo = std::min(lo, e.timers.at(0).delay_ms);
    hi = std::max(hi, e.timers.at(0).delay_ms);
  }
  EXPECT_EQ(lo, 1) << "0 ms jitter is raised to 1 ms";
  EXPECT_EQ(hi, 20) << "the cap retry_initial_ms must be reachable";
}

TEST_F(TwoPcRetryTest, AbortDeliveryIsRetriedAndDuplicateFailuresScheduleOneRetry) {
  Started("x", {"a", "b"});
  VoteOn("x", 1, v1::NO);
  Effects first = Fail("x", 0, Phase::kAbort, Status::DeadlineExceeded("slow"));
  ASSERT_EQ(first.timers.size(), 1u);
  EXPECT_TRUE(Fail("x", 0, Phase::kAbort, Status::DeadlineExceeded("slow")).empty())
      << "a second failure while a retry is pending must not schedule another";
  EXPECT_TRUE(Fail("x", 0, Phase::kCommit, Status::Unavailable("?")).empty())
      << "failure of a COMMIT call on an aborting transaction";
  Effects retry = Fire("x", first.timers[0].timer_id);
  EXPECT_EQ(CallBranches(retry, Phase::kAbort), (std::vector<uint32_t>{0}));
}

// ---- Log failures ----

TEST_F(TwoPcLogFailureTest, CommitDecisionFailureRetriesTheSameAppendAndSendsNoCommit) {
  DoSubmit("x", {"a", "b"}, /*wait=*/true);
  Logged("x", LogStep::kBegin);
  VoteOn("x", 0, v1::YES);
  Effects decided = VoteOn("x", 1, v1::YES);
  Effects failed = Logged("x", LogStep::kDecision, Status::Unavailable("fsync failed"));
  EXPECT_TRUE(failed.calls.empty()) << "COMMIT must not be sent: nothing is durable";
  EXPECT_TRUE(failed.replies.empty());
  ASSERT_EQ(failed.timers.size(), 1u);
  EXPECT_EQ(failed.timers[0].delay_ms, 100);
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_PENDING);
  EXPECT_TRUE(Logged("x", LogStep::kDecision).empty()) << "no append in flight to complete";

  Effects retry = Fire("x", failed.timers[0].timer_id);
  ASSERT_EQ(retry.appends.size(), 1u);
  EXPECT_EQ(retry.appends[0].step, LogStep::kDecision);
  EXPECT_EQ(retry.appends[0].event.SerializeAsString(),
            decided.appends.at(0).event.SerializeAsString())
      << "the retried append must be the same event";
  EXPECT_TRUE(retry.calls.empty());

  Effects durable = Logged("x", LogStep::kDecision);
  EXPECT_EQ(CountCalls(durable, Phase::kCommit), 2u);
  EXPECT_EQ(durable.replies.size(), 1u);
}

TEST_F(TwoPcLogFailureTest, AbortDecisionFailureIsRetriedAndEndWaitsForIt) {
  Started("x", {"a", "b"});
  VoteOn("x", 1, v1::NO);
  Effects failed = Logged("x", LogStep::kDecision, Status::Unavailable("fsync failed"));
  ASSERT_EQ(failed.timers.size(), 1u);
  EXPECT_TRUE(Ack("x", 0, Phase::kAbort).empty())
      << "END must not be appended before the ABORT decision is durable";
  Effects retry = Fire("x", failed.timers[0].timer_id);
  ASSERT_EQ(retry.appends.size(), 1u);
  EXPECT_EQ(retry.appends[0].event.decided().decision(), v1::ABORT);
  Effects durable = Logged("x", LogStep::kDecision);
  ASSERT_EQ(durable.appends.size(), 1u) << "every branch had acked: END follows at once";
  EXPECT_EQ(durable.appends[0].step, LogStep::kEnd);
}

TEST_F(TwoPcLogFailureTest, EndFailureIsRetriedAndTheTransactionIsKept) {
  ToCommitting("x", {"a"});
  Ack("x", 0, Phase::kCommit);
  Effects failed = Logged("x", LogStep::kEnd, Status::Internal("write failed"));
  EXPECT_TRUE(failed.finished.empty());
  ASSERT_EQ(failed.timers.size(), 1u);
  EXPECT_EQ(core_.active(), 1u) << "the transaction is never forgotten before END is durable";
  Effects retry = Fire("x", failed.timers[0].timer_id);
  ASSERT_EQ(retry.appends.size(), 1u);
  EXPECT_EQ(retry.appends[0].step, LogStep::kEnd);
  Effects end = Logged("x", LogStep::kEnd);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::COMMITTED);
}

TEST_F(TwoPcLogFailureTest, CompletionOfAStepNotInFlightIsIgnored) {
  DoSubmit("x", {"a"});
  EXPECT_TRUE(Logged("x", LogStep::kDecision).empty());
  EXPECT_TRUE(Logged("x", LogStep::kEnd).empty());
  EXPECT_TRUE(Logged("nope", LogStep::kBegin).empty());
  EXPECT_EQ(Logged("x", LogStep::kBegin).calls.size(), 1u);
  EXPECT_TRUE(Logged("x", LogStep::kBegin).empty()) << "duplicate BEGIN completion";
}

// ---- Recovery ----

v1::TxnRecord Record(const std::string& xid, v1::TxState state, const std::vector<v1::Vote>& votes,
                     int branches) {
  v1::TxnRecord rec;
  rec.set_xid(xid);
  rec.set_state(state);
  for (int b = 0; b < branches; ++b)
    *rec.add_branches() = testing_util::MakeBranch("s" + std::to_string(b));
  for (v1::Vote v : votes) rec.add_votes(v);
  rec.set_prepare_timeout_ms(1000);
  rec.set_created_unix_ms(42);
  return rec;
}

TEST_F(TwoPcRecoveryTest, PreparingTransactionIsAbortedAndEveryBranchGetsAbort) {
  Effects e = core_.Recover({Record("x", v1::PREPARING, {}, 3)});
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(e.appends[0].step, LogStep::kDecision);
  EXPECT_EQ(e.appends[0].event.decided().decision(), v1::ABORT);
  EXPECT_EQ(e.appends[0].event.decided().reason(), "coordinator restarted before a decision");
  EXPECT_EQ(CallBranches(e, Phase::kAbort), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_TRUE(e.replies.empty()) << "no client is attached after a restart";
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_ABORT);
  EXPECT_EQ(core_.Get("x")->created_unix_ms(), 42);
}

TEST(TwoPcFailoverTest, PreparingTransactionIsPreparedAgainWithAFullBudgetOnThisNodesClock) {
  FakeClock clock;
  SeededRandom random(7);
  CoreOptions options;
  options.recovery = Recovery::kResumePrepare;
  TwoPcCore core(options, clock, random);
  // Times written by other nodes' wall clocks say nothing about this node's: one record looks
  // recent, one looks long past its budget, one is from the future (a clock ahead).
  v1::TxnRecord recent = Record("recent", v1::PREPARING, {}, 2);
  recent.set_created_unix_ms(clock.UnixMs() - 400);
  v1::TxnRecord old = Record("old", v1::PREPARING, {}, 2);
  old.set_created_unix_ms(clock.UnixMs() - 1500);
  v1::TxnRecord ahead = Record("ahead", v1::PREPARING, {}, 2);
  ahead.set_created_unix_ms(clock.UnixMs() + 60'000);
  Effects e = core.Recover({recent, old, ahead});

  EXPECT_TRUE(e.appends.empty()) << "nothing is decided at a failover";
  EXPECT_EQ(CountCalls(e, Phase::kPrepare), 6u);
  for (const auto& call : e.calls) {
    EXPECT_EQ(call.deadline_ms, 1000) << call.xid << ": the full budget, on this node's clock";
  }
  EXPECT_EQ(core.OutcomeOf("old"), v1::OUTCOME_PENDING);

  // The votes arrive: the resumed transaction commits as if nothing had happened.
  core.Handle(VoteReceived{"old", 0, v1::YES, ""});
  Effects decided = core.Handle(VoteReceived{"old", 1, v1::YES, ""});
  ASSERT_EQ(decided.appends.size(), 1u);
  EXPECT_EQ(decided.appends[0].event.decided().decision(), v1::COMMIT);
  for (const auto& t : e.timers) {
    EXPECT_EQ(t.delay_ms, 1000) << t.xid << ": its deadline, 1000 ms of this node's time";
  }
}

TEST_F(TwoPcRecoveryTest, CommittingTransactionResendsCommitToYesBranchesOnly) {
  Effects e = core_.Recover({Record("x", v1::COMMITTING, {v1::YES, v1::READ_ONLY, v1::YES}, 3)});
  EXPECT_TRUE(e.appends.empty()) << "the COMMIT decision is already durable";
  EXPECT_EQ(CallBranches(e, Phase::kCommit), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_COMMIT);
  clock_.AdvanceMs(7);
  Ack("x", 0, Phase::kCommit);
  Effects end_append = Ack("x", 2, Phase::kCommit);
  ASSERT_EQ(end_append.appends.size(), 1u);
  Effects end = Logged("x", LogStep::kEnd);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::COMMITTED);
  EXPECT_EQ(end.finished[0].duration_ms, 7) << "duration counts from recovery";
}

TEST_F(TwoPcRecoveryTest, AbortingTransactionResendsAbortToPossiblyPreparedBranches) {
  Effects e = core_.Recover(
      {Record("x", v1::ABORTING, {v1::YES, v1::NO, v1::VOTE_UNSPECIFIED, v1::READ_ONLY}, 4)});
  EXPECT_TRUE(e.appends.empty()) << "the ABORT decision is already durable";
  EXPECT_EQ(CallBranches(e, Phase::kAbort), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(core_.OutcomeOf("x"), v1::OUTCOME_ABORT);
}

TEST_F(TwoPcRecoveryTest, DecidedTransactionWithNothingToDeliverEndsAtOnce) {
  Effects e = core_.Recover({Record("a", v1::ABORTING, {v1::NO, v1::READ_ONLY}, 2),
                             Record("c", v1::COMMITTING, {v1::READ_ONLY}, 1)});
  EXPECT_TRUE(e.calls.empty());
  ASSERT_EQ(e.appends.size(), 2u);
  EXPECT_EQ(e.appends[0].step, LogStep::kEnd);
  EXPECT_EQ(e.appends[1].step, LogStep::kEnd);
}

TEST_F(TwoPcRecoveryTest, FinishedRecordsAndHeldXidsAreSkipped) {
  Started("held", {"a"});
  Effects e = core_.Recover(
      {Record("done", v1::COMMITTED, {v1::YES}, 1), Record("held", v1::PREPARING, {}, 1)});
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(core_.active(), 1u);
  EXPECT_EQ(core_.OutcomeOf("held"), v1::OUTCOME_PENDING);
}

TEST_F(TwoPcRecoveryTest, SubmitForARecoveredTransactionAttachesAndIsRepliedAtOnce) {
  core_.Recover({Record("x", v1::COMMITTING, {v1::YES}, 1)});
  Submit again{"x", {testing_util::MakeBranch("s0")}, 0, /*wait=*/true, 5};
  Effects e = core_.Handle(again);
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].state, v1::COMMITTING);
  EXPECT_TRUE(e.appends.empty());
}

}  // namespace
}  // namespace treaty::twopc
