// TwoPcCore: an operator's `treaty tx resolve` of a 2PC transaction (input Resolve).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/twopc/twopc_fixture.h"
#include "twopc/twopc_core.h"

namespace treaty::twopc {
namespace {

using testing_util::CallBranches;
using testing_util::CountCalls;

class TwoPcResolveTest : public testing_util::TwoPcCoreTest {
 protected:
  Effects DoResolve(const std::string& xid, ResolveAction action, uint64_t client = 50) {
    return core_.Handle(Resolve{xid, action, "ops", "bank-b fixed", client});
  }

  // COMMITTING with branch 0 acknowledged and branch 1 failing its COMMIT `failures` times
  // (each retry fired). Returns the id of the retry timer now pending for branch 1.
  uint64_t StuckInDelivery(const std::string& xid, int failures) {
    ToCommitting(xid, {"a", "b"});
    Ack(xid, 0, Phase::kCommit);
    uint64_t timer = 0;
    for (int i = 0; i < failures; ++i) {
      Effects failed = Fail(xid, 1, Phase::kCommit, Status::Unavailable("injected fault"));
      EXPECT_EQ(failed.timers.size(), 1u) << "a failed COMMIT must schedule its retry";
      if (failed.timers.empty()) return 0;
      timer = failed.timers[0].timer_id;
      if (i + 1 == failures) break;
      clock_.AdvanceMs(failed.timers[0].delay_ms);
      Effects retried = Fire(xid, timer);
      EXPECT_EQ(CountCalls(retried, Phase::kCommit), 1u);
    }
    return timer;
  }

  // Expects exactly one refusal of client 50 with `code` (message containing `text`) and
  // nothing else: no append, no call.
  static void ExpectRefused(const Effects& e, StatusCode code, const std::string& text) {
    ASSERT_EQ(e.resolve_replies.size(), 1u);
    const Reply& r = e.resolve_replies[0];
    EXPECT_EQ(r.client, 50u);
    EXPECT_EQ(r.status.code(), code) << r.status.ToString();
    EXPECT_NE(r.status.message().find(text), std::string::npos)
        << "message should say '" << text << "', got: " << r.status.ToString();
    EXPECT_TRUE(e.appends.empty()) << "a refused resolution must log nothing";
    EXPECT_TRUE(e.calls.empty()) << "a refused resolution must send nothing";
    EXPECT_TRUE(e.replies.empty()) << "resolve answers go to resolve_replies only";
  }
};

TEST_F(TwoPcResolveTest, RetryLogsWhoAndWhyThenRedeliversTheDecisionAtOnceWithBackoffReset) {
  const uint64_t old_timer = StuckInDelivery("t1", 6);
  ASSERT_NE(old_timer, 0u);
  ASSERT_EQ(core_.Get("t1")->branches(1).attempts(), 6u);

  Effects resolve = DoResolve("t1", ResolveAction::kRetry);
  ASSERT_EQ(resolve.appends.size(), 1u) << "the resolution is logged first";
  EXPECT_EQ(resolve.appends[0].step, LogStep::kResolve);
  const v1::Resolved& logged = resolve.appends[0].event.resolved();
  EXPECT_EQ(logged.action(), "retry");
  EXPECT_EQ(logged.who(), "ops");
  EXPECT_EQ(logged.why(), "bank-b fixed");
  EXPECT_TRUE(resolve.calls.empty()) << "redelivery waits for the Resolved event to be durable";
  EXPECT_TRUE(resolve.resolve_replies.empty());

  Effects durable = Logged("t1", LogStep::kResolve);
  ASSERT_EQ(CallBranches(durable, Phase::kCommit), (std::vector<uint32_t>{1}))
      << "only the unacknowledged branch gets COMMIT again, at once";
  EXPECT_EQ(durable.calls[0].attempt, 1u) << "the attempt count (and so the backoff) restarts";
  ASSERT_EQ(durable.resolve_replies.size(), 1u);
  EXPECT_TRUE(durable.resolve_replies[0].status.ok());
  EXPECT_EQ(durable.resolve_replies[0].client, 50u);
  EXPECT_EQ(durable.resolve_replies[0].state, v1::COMMITTING);
  EXPECT_NE(durable.resolve_replies[0].reason.find("COMMIT redelivered now to 1"),
            std::string::npos)
      << durable.resolve_replies[0].reason;

  EXPECT_TRUE(Fire("t1", old_timer).calls.empty()) << "the old backed-off retry is cancelled";
  Effects failed_again = Fail("t1", 1, Phase::kCommit, Status::Unavailable("still down"));
  ASSERT_EQ(failed_again.timers.size(), 1u);
  EXPECT_LE(failed_again.timers[0].delay_ms, Options().retry.initial_backoff_ms)
      << "after a resolve the backoff starts from the initial wait again";

  Effects acked = Ack("t1", 1, Phase::kCommit);
  ASSERT_EQ(acked.appends.size(), 1u);
  EXPECT_EQ(acked.appends[0].step, LogStep::kEnd);
  Effects ended = Logged("t1", LogStep::kEnd);
  ASSERT_EQ(ended.finished.size(), 1u);
  EXPECT_EQ(ended.finished[0].state, v1::COMMITTED);
}

TEST_F(TwoPcResolveTest, RetryOfAnAbortRedeliversAbortToUnacknowledgedBranches) {
  Started("t2", {"a", "b"});
  VoteOn("t2", 0, v1::YES);
  Effects no = VoteOn("t2", 1, v1::NO, "insufficient funds");
  ASSERT_EQ(CallBranches(no, Phase::kAbort), (std::vector<uint32_t>{0}));
  Logged("t2", LogStep::kDecision);
  Fail("t2", 0, Phase::kAbort, Status::Unavailable("down"));

  Effects resolve = DoResolve("t2", ResolveAction::kRetry);
  ASSERT_EQ(resolve.appends.size(), 1u);
  Effects durable = Logged("t2", LogStep::kResolve);
  EXPECT_EQ(CallBranches(durable, Phase::kAbort), (std::vector<uint32_t>{0}));
  ASSERT_EQ(durable.resolve_replies.size(), 1u);
  EXPECT_EQ(durable.resolve_replies[0].state, v1::ABORTING);
}

TEST_F(TwoPcResolveTest, AcknowledgementWhileTheResolutionIsLoggedEndsAfterIt) {
  StuckInDelivery("t3", 2);
  ASSERT_EQ(DoResolve("t3", ResolveAction::kRetry).appends.size(), 1u);
  // The scheduled retry succeeded meanwhile: END must wait (one append at a time).
  Effects acked = Ack("t3", 1, Phase::kCommit);
  EXPECT_TRUE(acked.appends.empty()) << "END is not appended while Resolved is being logged";
  Effects durable = Logged("t3", LogStep::kResolve);
  EXPECT_TRUE(durable.calls.empty()) << "nothing is left to redeliver";
  ASSERT_EQ(durable.resolve_replies.size(), 1u);
  EXPECT_TRUE(durable.resolve_replies[0].status.ok());
  ASSERT_EQ(durable.appends.size(), 1u);
  EXPECT_EQ(durable.appends[0].step, LogStep::kEnd);
}

TEST_F(TwoPcResolveTest, FailedLogOfTheResolutionIsReportedAndRedeliversNothing) {
  StuckInDelivery("t4", 2);
  ASSERT_EQ(DoResolve("t4", ResolveAction::kRetry).appends.size(), 1u);
  Effects failed = Logged("t4", LogStep::kResolve, Status::Unavailable("disk gone"));
  EXPECT_TRUE(failed.calls.empty());
  ASSERT_EQ(failed.resolve_replies.size(), 1u);
  EXPECT_EQ(failed.resolve_replies[0].status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(StateOf("t4"), v1::COMMITTING) << "scheduled delivery goes on";
  EXPECT_EQ(DoResolve("t4", ResolveAction::kRetry).appends.size(), 1u) << "and may be retried";
}

TEST_F(TwoPcResolveTest, RetryIsRefusedWhileThereIsNoDurableDecisionToRedeliver) {
  Started("p", {"a", "b"});
  ExpectRefused(DoResolve("p", ResolveAction::kRetry), StatusCode::kFailedPrecondition,
                "is PREPARING");
  VoteOn("p", 0, v1::YES);
  VoteOn("p", 1, v1::YES);  // COMMIT decided, not durable yet
  ExpectRefused(DoResolve("p", ResolveAction::kRetry), StatusCode::kFailedPrecondition,
                "try again in a moment");
}

TEST_F(TwoPcResolveTest, AbortWhilePreparingDecidesAbortNamingWhoAndWhy) {
  Started("a1", {"a", "b"});
  VoteOn("a1", 0, v1::YES);
  Effects abort = DoResolve("a1", ResolveAction::kAbort);
  ASSERT_EQ(abort.appends.size(), 1u);
  EXPECT_EQ(abort.appends[0].step, LogStep::kDecision);
  const v1::TxDecided& decided = abort.appends[0].event.decided();
  EXPECT_EQ(decided.decision(), v1::ABORT);
  EXPECT_EQ(decided.reason(), "aborted by ops: bank-b fixed");
  EXPECT_EQ(CallBranches(abort, Phase::kAbort), (std::vector<uint32_t>{0, 1}))
      << "presumed abort: ABORT goes at once to every branch that may have prepared";
  EXPECT_TRUE(abort.resolve_replies.empty()) << "answered once the decision is durable";
  EXPECT_EQ(StateOf("a1"), v1::ABORTING);

  // A late YES does not turn it into a commit.
  EXPECT_TRUE(VoteOn("a1", 1, v1::YES).appends.empty());
  Effects durable = Logged("a1", LogStep::kDecision);
  ASSERT_EQ(durable.resolve_replies.size(), 1u);
  EXPECT_TRUE(durable.resolve_replies[0].status.ok());
  EXPECT_EQ(durable.resolve_replies[0].state, v1::ABORTING);
}

TEST_F(TwoPcResolveTest, AbortOfADecidedTransactionIsRefused) {
  ToCommitting("c1", {"a", "b"});
  ExpectRefused(DoResolve("c1", ResolveAction::kAbort), StatusCode::kFailedPrecondition,
                "already decided COMMIT; use --retry");
  EXPECT_EQ(StateOf("c1"), v1::COMMITTING);
}

TEST_F(TwoPcResolveTest, MarkCompensatedIsInvalidForTwoPc) {
  ToCommitting("m1", {"a"});
  ExpectRefused(DoResolve("m1", ResolveAction::kMarkCompensated), StatusCode::kInvalidArgument,
                "no compensations");
}

TEST_F(TwoPcResolveTest, UnknownXidIsNotFound) {
  ExpectRefused(DoResolve("nope", ResolveAction::kRetry), StatusCode::kNotFound, "nope");
}

}  // namespace
}  // namespace treaty::twopc
