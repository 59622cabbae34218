// The rule for ABORT where a prepare can be resumed (Recovery::kResumePrepare, a cluster): an
// ABORT is delivered, replied and reported only once durable. Sequences A and B of the review
// that found the hole, at the level of the cores; and the single node's presumed abort, which
// keeps delivering ABORT at once.
#include <gtest/gtest.h>

#include "tests/unit/twopc/twopc_fixture.h"
#include "twopc/twopc_core.h"

namespace treaty::twopc {
namespace {

using testing_util::CallBranches;
using testing_util::CountCalls;
using testing_util::MakeBranch;

CoreOptions ClusterOptions() {
  CoreOptions o;
  o.recovery = Recovery::kResumePrepare;
  return o;
}

Submit Transfer(uint64_t client) {
  Submit in;
  in.xid = "t";
  in.branches = {MakeBranch("bank-a"), MakeBranch("bank-b")};
  in.prepare_timeout_ms = 1000;
  in.wait = true;
  in.client = client;
  return in;
}

// Everything the core emitted, merged.
struct Seen {
  size_t abort_calls = 0;
  size_t commit_calls = 0;
  std::vector<Reply> replies;
  std::vector<AppendLog> appends;
  void Add(const Effects& e) {
    abort_calls += CountCalls(e, Phase::kAbort);
    commit_calls += CountCalls(e, Phase::kCommit);
    replies.insert(replies.end(), e.replies.begin(), e.replies.end());
    appends.insert(appends.end(), e.appends.begin(), e.appends.end());
  }
};

// Sequence A: the leader decides ABORT (bank-b's breaker is open) after bank-a voted YES and dies
// before the ABORT is committed by Raft. The next leader finds the transaction PREPARING and
// resumes it; bank-a's barrier answers YES again, bank-b (now reachable) votes YES: COMMIT.
// Before the fix the first leader had already sent ABORT to bank-a and told the client ABORTING.
TEST(TwoPcFailoverTest, SequenceAAnAbortThatIsNotDurableIsNeitherSentNorReported) {
  FakeClock clock;
  SeededRandom random(1);
  TwoPcCore leader1(ClusterOptions(), clock, random);
  Seen seen;
  seen.Add(leader1.Handle(Transfer(7)));
  seen.Add(leader1.Handle(LogDone{"t", LogStep::kBegin, Status::Ok()}));
  seen.Add(leader1.Handle(VoteReceived{"t", 0, v1::YES, ""}));
  seen.Add(leader1.Handle(
      CallFailed{"t", 1, Phase::kPrepare, Status::Unavailable("circuit breaker open"), true}));
  ASSERT_EQ(seen.appends.back().event.decided().decision(), v1::ABORT) << "ABORT is decided";
  EXPECT_EQ(seen.abort_calls, 0u) << "ABORT sent before it is durable";
  EXPECT_TRUE(seen.replies.empty()) << "the client was answered before the ABORT is durable";
  EXPECT_EQ(leader1.OutcomeOf("t"), v1::OUTCOME_PENDING)
      << "an in-doubt participant was told ABORT";
  EXPECT_EQ(leader1.Get("t")->state(), v1::PREPARING);
  EXPECT_TRUE(leader1.CheckInvariants().ok()) << leader1.CheckInvariants().ToString();

  // leader1 dies; only BEGIN is durable. leader2 resumes and commits: nobody heard of an ABORT.
  v1::TxnRecord rec;
  rec.set_xid("t");
  rec.set_state(v1::PREPARING);
  *rec.add_branches() = MakeBranch("bank-a");
  *rec.add_branches() = MakeBranch("bank-b");
  rec.set_prepare_timeout_ms(1000);
  TwoPcCore leader2(ClusterOptions(), clock, random);
  Effects resumed = leader2.Recover({rec});
  EXPECT_EQ(CallBranches(resumed, Phase::kPrepare), (std::vector<uint32_t>{0, 1}));
  leader2.Handle(VoteReceived{"t", 0, v1::YES, ""});
  Effects decided = leader2.Handle(VoteReceived{"t", 1, v1::YES, ""});
  ASSERT_EQ(decided.appends.size(), 1u);
  EXPECT_EQ(decided.appends[0].event.decided().decision(), v1::COMMIT);
}

// Sequence B: a leader cut off from the majority still believes it leads. Its prepare deadline
// fires; the ABORT it decides can never commit (the append fails: leadership lost). Before the
// fix it sent that ABORT to a branch the new leader had meanwhile prepared and committed.
TEST(TwoPcFailoverTest, SequenceBADeposedLeadersDeadlineSendsNothing) {
  FakeClock clock;
  SeededRandom random(2);
  TwoPcCore deposed(ClusterOptions(), clock, random);
  Seen seen;
  deposed.Handle(Transfer(7));
  Effects begun = deposed.Handle(LogDone{"t", LogStep::kBegin, Status::Ok()});
  deposed.Handle(VoteReceived{"t", 0, v1::YES, ""});
  ASSERT_FALSE(begun.timers.empty());
  clock.AdvanceMs(1000);
  seen.Add(deposed.Handle(TimerFired{"t", begun.timers.back().timer_id}));
  ASSERT_EQ(seen.appends.size(), 1u);
  EXPECT_EQ(seen.appends[0].event.decided().decision(), v1::ABORT);
  seen.Add(
      deposed.Handle(LogDone{"t", LogStep::kDecision, Status::Unavailable("leadership was lost")}));
  EXPECT_EQ(seen.abort_calls, 0u) << "a deposed leader sent an ABORT that is not durable";
  EXPECT_TRUE(seen.replies.empty());
  EXPECT_EQ(deposed.OutcomeOf("t"), v1::OUTCOME_PENDING);
  EXPECT_TRUE(deposed.CheckInvariants().ok()) << deposed.CheckInvariants().ToString();
}

TEST(TwoPcFailoverTest, AnAbortIsDeliveredAndRepliedOnceDurable) {
  FakeClock clock;
  SeededRandom random(3);
  TwoPcCore core(ClusterOptions(), clock, random);
  core.Handle(Transfer(7));
  core.Handle(LogDone{"t", LogStep::kBegin, Status::Ok()});
  core.Handle(VoteReceived{"t", 0, v1::YES, ""});
  core.Handle(VoteReceived{"t", 1, v1::NO, "insufficient funds"});
  Effects durable = core.Handle(LogDone{"t", LogStep::kDecision, Status::Ok()});
  EXPECT_EQ(CallBranches(durable, Phase::kAbort), (std::vector<uint32_t>{0}))
      << "ABORT goes to the YES voter, not to the NO voter";
  ASSERT_EQ(durable.replies.size(), 1u);
  EXPECT_EQ(durable.replies[0].state, v1::ABORTING);
  EXPECT_EQ(core.OutcomeOf("t"), v1::OUTCOME_ABORT);
}

TEST(TwoPcFailoverTest, ASingleNodeStillDeliversAbortAtOnce) {
  FakeClock clock;
  SeededRandom random(4);
  TwoPcCore core(CoreOptions{}, clock, random);  // Recovery::kPresumeAbort
  core.Handle(Transfer(7));
  core.Handle(LogDone{"t", LogStep::kBegin, Status::Ok()});
  core.Handle(VoteReceived{"t", 0, v1::YES, ""});
  Effects decided = core.Handle(VoteReceived{"t", 1, v1::NO, "insufficient funds"});
  EXPECT_EQ(CallBranches(decided, Phase::kAbort), (std::vector<uint32_t>{0}))
      << "presumed abort: a single node may deliver ABORT before it is durable";
  ASSERT_EQ(decided.replies.size(), 1u);
  EXPECT_EQ(core.OutcomeOf("t"), v1::OUTCOME_ABORT);
}

}  // namespace
}  // namespace treaty::twopc
