// SagaCore: failures, turning around, compensation order and retries, STUCK, operator
// resolution, log failures and recovery. Includes the named regressions of issue 5.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "saga/saga_core.h"
#include "tests/unit/saga/saga_fixture.h"

namespace treaty::saga {
namespace {

using testing_util::Called;
using testing_util::Def;
using testing_util::Describe;
using testing_util::Events;
using testing_util::Merge;
using testing_util::Strings;
using SagaFailureTest = testing_util::SagaCoreTest;
using SagaCompensationTest = testing_util::SagaCoreTest;
using SagaResolveTest = testing_util::SagaCoreTest;
using SagaRecoveryTest = testing_util::SagaCoreTest;

v1::TxnRecord Record(const std::string& xid, const v1::SagaDefinition& def, v1::SagaState state,
                     const std::vector<v1::StepState>& steps) {
  v1::TxnRecord rec;
  rec.set_xid(xid);
  rec.set_mode("saga");
  *rec.mutable_saga() = def;
  rec.set_saga_state(state);
  rec.set_reason("earlier reason");
  for (v1::StepState s : steps) {
    v1::StepRecord* r = rec.add_steps();
    r->set_state(s);
    r->set_attempts(1);
  }
  return rec;
}

// ---- Forward failures ----

TEST_F(SagaFailureTest, BusinessRefusalIsCompensatedAtOnceNotRetried) {
  const v1::SagaDefinition def = Def({"a", "b", "c:a,b"});
  Started("s1", def, /*wait=*/true, 5);
  Effects refused = Reply("s1", 0, Phase::kAction, v1::STEP_REFUSED, "out of stock");
  EXPECT_EQ(Describe(Events(refused), def),
            (Strings{"a:STEP_FAILED", "c:STEP_SKIPPED", "saga:SAGA_COMPENSATING"}));
  EXPECT_TRUE(refused.timers.empty()) << "a business failure is never retried";
  EXPECT_TRUE(Called(refused, Phase::kAction).empty());
  EXPECT_TRUE(refused.calls.empty()) << "compensation waits for the turn-around to be durable";
  Effects turned = Durable("s1", refused);
  EXPECT_EQ(Called(turned, Phase::kCompensate), (std::vector<uint32_t>{0, 1}))
      << "a (refused: a null compensation at worst) and b (in flight: may have executed)";
  EXPECT_EQ(turned.calls[0].op, "undo-a");

  Effects end = ReplyDurably("s1", 0, Phase::kCompensate);
  Merge(end, ReplyDurably("s1", 1, Phase::kCompensate));
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::SAGA_COMPENSATED);
  ASSERT_EQ(end.replies.size(), 1u);
  EXPECT_EQ(end.replies[0].state, v1::SAGA_COMPENSATED);
  EXPECT_NE(end.replies[0].reason.find("refused: out of stock"), std::string::npos)
      << "the waiter learns why: " << end.replies[0].reason;
}

// Regression: an ambiguous reply (timeout after send, connection reset, error body) is retried
// and never treated as success; once retries are exhausted the step may have executed, so it is
// compensated.
TEST_F(SagaFailureTest, AmbiguousFailuresAreRetriedAndNeverTreatedAsSuccess) {
  struct Case {
    const char* name;
    std::function<Effects(const std::string&, uint32_t)> inject;
  };
  const std::vector<Case> cases = {
      {"timeout after send",
       [this](const std::string& xid, uint32_t attempt) {
         return Fail(xid, 0, Phase::kAction, Status::DeadlineExceeded("no response"), attempt);
       }},
      {"connection reset",
       [this](const std::string& xid, uint32_t attempt) {
         return Fail(xid, 0, Phase::kAction, Status::Unavailable("connection reset"), attempt);
       }},
      {"error body",
       [this](const std::string& xid, uint32_t) {
         return Reply(xid, 0, Phase::kAction, v1::STEP_OUTCOME_UNSPECIFIED);
       }},
  };
  const v1::SagaDefinition def = Def({"a", "b:a"});
  for (const Case& c : cases) {
    const std::string xid = std::string("s-") + c.name;
    Started(xid, def);
    for (uint32_t attempt = 1; attempt < 3; ++attempt) {
      Effects e = c.inject(xid, attempt);
      EXPECT_TRUE(e.appends.empty()) << c.name << ": attempt " << attempt << " must not be logged "
                                     << "as an outcome";
      EXPECT_TRUE(e.calls.empty()) << c.name << ": b must not start";
      ASSERT_EQ(e.timers.size(), 1u) << c.name << ": a retry must be scheduled";
      EXPECT_GE(e.timers[0].delay_ms, 1);
      Effects retry = Fire(xid, e.timers[0].timer_id);
      ASSERT_EQ(retry.calls.size(), 1u) << c.name;
      EXPECT_EQ(retry.calls[0].step, 0u);
      EXPECT_EQ(retry.calls[0].attempt, attempt + 1) << c.name;
    }
    Effects exhausted = c.inject(xid, 3);
    EXPECT_EQ(Describe(Events(exhausted), def),
              (Strings{"a:STEP_FAILED", "b:STEP_SKIPPED", "saga:SAGA_COMPENSATING"}))
        << c.name << ": after 3 attempts (the default) the step fails";
    Effects turned = Durable(xid, exhausted);
    EXPECT_EQ(Called(turned, Phase::kCompensate), (std::vector<uint32_t>{0}))
        << c.name << ": a may have executed, so it is compensated";
    EXPECT_NE(core_.Get(xid)->reason().find("gave up after 3 attempts"), std::string::npos)
        << core_.Get(xid)->reason();
  }
}

TEST_F(SagaFailureTest, DefinitiveErrorFailsTheStepAtOnce) {
  const v1::SagaDefinition def = Def({"a"});
  Started("s1", def);
  Effects e = Fail("s1", 0, Phase::kAction, Status::NotFound("no handler for do-a"), 1);
  EXPECT_EQ(Describe(Events(e), def), (Strings{"a:STEP_FAILED", "saga:SAGA_COMPENSATING"}));
  EXPECT_TRUE(e.timers.empty());
  EXPECT_NE(core_.Get("s1")->reason().find("NOT_FOUND: no handler"), std::string::npos);
}

TEST_F(SagaFailureTest, StepRetryPolicyBoundsAttemptsAndBackoff) {
  v1::SagaDefinition def = Def({"a"});
  def.mutable_steps(0)->mutable_retry()->set_max_attempts(2);
  def.mutable_steps(0)->mutable_retry()->set_initial_backoff_ms(5);
  Started("s1", def);
  Effects first = Fail("s1", 0, Phase::kAction, Status::Unavailable("busy"), 1);
  ASSERT_EQ(first.timers.size(), 1u);
  EXPECT_LE(first.timers[0].delay_ms, 5) << "the step's initial backoff bounds the first retry";
  Fire("s1", first.timers[0].timer_id);
  Effects second = Fail("s1", 0, Phase::kAction, Status::Unavailable("busy"), 2);
  EXPECT_TRUE(second.timers.empty()) << "max_attempts 2 reached";
  EXPECT_FALSE(second.appends.empty());
}

TEST_F(SagaFailureTest, StaleFailureOfAnEarlierAttemptIsIgnored) {
  Started("s1", Def({"a"}));
  Effects first = Fail("s1", 0, Phase::kAction, Status::DeadlineExceeded("slow"), 1);
  ASSERT_EQ(first.timers.size(), 1u);
  Fire("s1", first.timers[0].timer_id);
  EXPECT_TRUE(Fail("s1", 0, Phase::kAction, Status::DeadlineExceeded("slow"), 1).empty())
      << "a second failure report of attempt 1 must not count against attempt 2";
}

// ---- Compensation ----

TEST_F(SagaCompensationTest, CompensationFollowsReverseDependencyOrder) {
  const v1::SagaDefinition def = Def({"a", "b:a", "c:b", "d:b"});
  Started("s1", def);
  ReplyDurably("s1", 0, Phase::kAction);
  ReplyDurably("s1", 1, Phase::kAction);
  ReplyDurably("s1", 2, Phase::kAction);
  Effects turned = ReplyDurably("s1", 3, Phase::kAction, v1::STEP_REFUSED, "declined");
  EXPECT_EQ(Called(turned, Phase::kCompensate), (std::vector<uint32_t>{2, 3}))
      << "c and d come after b and nothing comes after them: they go first, in parallel";
  Effects c_done = ReplyDurably("s1", 2, Phase::kCompensate);
  EXPECT_TRUE(Called(c_done, Phase::kCompensate).empty()) << "b still waits for d";
  Effects d_done = ReplyDurably("s1", 3, Phase::kCompensate);
  EXPECT_EQ(Called(d_done, Phase::kCompensate), (std::vector<uint32_t>{1}));
  Effects b_done = ReplyDurably("s1", 1, Phase::kCompensate);
  EXPECT_EQ(Called(b_done, Phase::kCompensate), (std::vector<uint32_t>{0}));
  Effects a_done = ReplyDurably("s1", 0, Phase::kCompensate);
  ASSERT_EQ(a_done.finished.size(), 1u);
  EXPECT_EQ(a_done.finished[0].state, v1::SAGA_COMPENSATED);
}

TEST_F(SagaCompensationTest, ActionInFlightAtTurnAroundIsCompensatedAndItsLateReplyIgnored) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Started("s1", def);
  Effects turned = ReplyDurably("s1", 0, Phase::kAction, v1::STEP_REFUSED, "no");
  EXPECT_EQ(Called(turned, Phase::kCompensate), (std::vector<uint32_t>{0, 1}))
      << "b's action is not waited for; the barrier refuses it if it arrives late";
  EXPECT_TRUE(Reply("s1", 1, Phase::kAction).empty()) << "a late action DONE changes nothing";
  EXPECT_TRUE(Fail("s1", 1, Phase::kAction, Status::Unavailable("x")).empty());
  EXPECT_EQ(core_.Get("s1")->steps(1).state(), v1::STEP_COMPENSATING);
}

// Regression: a duplicate compensation reply (the first call's late answer and the retry's
// answer both arrive) is a no-op.
TEST_F(SagaCompensationTest, DuplicateCompensationReplyFromARetryTimerIsANoOp) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Started("s1", def);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");
  Effects failed = Fail("s1", 0, Phase::kCompensate, Status::DeadlineExceeded("slow"), 1);
  ASSERT_EQ(failed.timers.size(), 1u);
  Effects retry = Fire("s1", failed.timers[0].timer_id);
  ASSERT_EQ(Called(retry, Phase::kCompensate), (std::vector<uint32_t>{0}));
  EXPECT_EQ(retry.calls[0].attempt, 2u);
  Effects late_first = Reply("s1", 0, Phase::kCompensate);
  EXPECT_EQ(Describe(Events(late_first), def), (Strings{"a:STEP_COMPENSATED"}));
  EXPECT_TRUE(Reply("s1", 0, Phase::kCompensate).empty())
      << "the retry's DONE must not log a second COMPENSATED";
  EXPECT_TRUE(Fail("s1", 0, Phase::kCompensate, Status::Unavailable("x"), 2).empty());
}

TEST_F(SagaCompensationTest, CompensationRetriesUntilItsBudgetThenTheSagaIsStuckAndVisible) {
  const v1::SagaDefinition def = Def({"a", "b"}, /*max_compensation_attempts=*/3);
  Started("s1", def, /*wait=*/true, 4);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");
  ReplyDurably("s1", 1, Phase::kCompensate);
  Effects last;
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    last = Fail("s1", 0, Phase::kCompensate, Status::Unavailable("db down"), attempt);
    if (attempt < 3) {
      ASSERT_EQ(last.timers.size(), 1u) << "compensation retries (attempt " << attempt << ")";
      Effects again = Fire("s1", last.timers[0].timer_id);
      ASSERT_EQ(again.calls.size(), 1u);
    }
  }
  EXPECT_TRUE(last.timers.empty()) << "no retry once the budget is spent";
  EXPECT_EQ(Describe(Events(last), def), (Strings{"a:STEP_COMPENSATING", "saga:SAGA_STUCK"}));
  Effects stuck = Durable("s1", last);
  ASSERT_EQ(stuck.replies.size(), 1u);
  EXPECT_EQ(stuck.replies[0].state, v1::SAGA_STUCK) << "the waiter learns the saga is stuck";
  EXPECT_NE(stuck.replies[0].reason.find("failed 3 times"), std::string::npos)
      << stuck.replies[0].reason;
  EXPECT_TRUE(stuck.finished.empty());
  EXPECT_EQ(core_.active(), 1u) << "a STUCK saga stays held";
  std::optional<v1::Transaction> view = core_.Get("s1");
  EXPECT_EQ(view->saga_state(), v1::SAGA_STUCK);
  EXPECT_EQ(view->steps(0).attempts(), 3u);
  EXPECT_EQ(view->steps(0).last_error(), "UNAVAILABLE: db down");
}

// ---- Resolution ----

class SagaStuckTest : public testing_util::SagaCoreTest {
 protected:
  // s1: a's compensation failed once with a budget of 1: STUCK; b compensated.
  void SetUp() override {
    Started("s1", def_);
    ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");
    ReplyDurably("s1", 1, Phase::kCompensate);
    Durable("s1", Fail("s1", 0, Phase::kCompensate, Status::Unavailable("db down"), 1));
    ASSERT_EQ(core_.Get("s1")->saga_state(), v1::SAGA_STUCK);
  }
  Effects Resolved(ResolveAction action, uint32_t step = 0, uint64_t client = 77) {
    return core_.Handle(Resolve{"s1", action, step, "ops", "fixed the db", client});
  }
  const v1::SagaDefinition def_ = Def({"a", "b"}, /*max_compensation_attempts=*/1);
};

TEST_F(SagaStuckTest, ResolveRetryGivesAFreshBudgetAndCompensationContinues) {
  Effects resolved = Resolved(ResolveAction::kRetry);
  EXPECT_EQ(Describe(Events(resolved), def_), (Strings{"resolved:retry"}));
  EXPECT_TRUE(resolved.calls.empty()) << "calls resume once the resolution is durable";
  EXPECT_EQ(Events(resolved)[0].resolved().who(), "ops");
  Effects resumed = Durable("s1", resolved);
  ASSERT_EQ(resumed.replies.size(), 1u);
  EXPECT_EQ(resumed.replies[0].client, 77u);
  EXPECT_TRUE(resumed.replies[0].status.ok());
  ASSERT_EQ(Called(resumed, Phase::kCompensate), (std::vector<uint32_t>{0}));
  EXPECT_EQ(core_.Get("s1")->steps(0).attempts(), 1u) << "the attempt budget starts over";
  EXPECT_EQ(resumed.calls[0].attempt, 2u)
      << "call numbers go on, so a late failure of an earlier call is recognised as stale";
  Effects end = ReplyDurably("s1", 0, Phase::kCompensate);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::SAGA_COMPENSATED);
}

// Found by the simulation: a compensation still in flight when the saga went STUCK, failing
// after an operator's retry, was taken for a stale attempt and never followed up: the saga stayed
// COMPENSATING forever.
TEST_F(SagaResolveTest, ACompensationInFlightAcrossAnOperatorsRetryIsFollowedUp) {
  const v1::SagaDefinition def = Def({"a", "b"}, /*max_compensation_attempts=*/1);
  Started("s1", def);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");  // both compensations go out
  Durable("s1", Fail("s1", 0, Phase::kCompensate, Status::Unavailable("db down"), 1));
  ASSERT_EQ(core_.Get("s1")->saga_state(), v1::SAGA_STUCK) << "b's compensation is in flight";
  Durable("s1", core_.Handle(Resolve{"s1", ResolveAction::kRetry, 0, "ops", "", 77}));
  Effects late = Fail("s1", 1, Phase::kCompensate, Status::Unavailable("timeout"), 1);
  EXPECT_EQ(late.timers.size(), 1u) << "the failed compensation of b must be retried";
  EXPECT_EQ(core_.Get("s1")->steps(1).last_error(), "UNAVAILABLE: timeout");
}

// The mark-compensated race (simulation seed 50906): a compensation held back by an open breaker
// must not run after an operator undid the step by hand and marked it compensated.
TEST_F(SagaResolveTest, MarkCompensatedCancelsACompensationHeldByAnOpenBreaker) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Started("s1", def);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");  // both compensations go out
  Effects held = core_.Handle(CallFailed{"s1", 0, Phase::kCompensate, 1,
                                         Status::Unavailable("circuit breaker open"), true});
  ASSERT_EQ(held.timers.size(), 1u) << "the refused compensation waits for the breaker";
  EXPECT_EQ(core_.Get("s1")->steps(0).attempts(), 0u) << "a refusal is not an attempt";
  Effects marked = Durable(
      "s1", core_.Handle(Resolve{"s1", ResolveAction::kMarkCompensated, 0, "ops", "by hand", 7}));
  ASSERT_EQ(marked.replies.size(), 1u);
  EXPECT_TRUE(marked.replies[0].status.ok()) << marked.replies[0].status.ToString();
  Effects fired = core_.Handle(TimerFired{"s1", held.timers[0].timer_id});
  EXPECT_TRUE(Called(fired, Phase::kCompensate).empty())
      << "the held compensation of a step marked compensated must not be sent";
}

TEST_F(SagaResolveTest, MarkCompensatedIsRefusedWhileTheStepsCompensationIsInFlight) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Started("s1", def);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");  // a's compensation in flight
  Effects refused =
      core_.Handle(Resolve{"s1", ResolveAction::kMarkCompensated, 0, "ops", "by hand", 7});
  ASSERT_EQ(refused.replies.size(), 1u);
  EXPECT_EQ(refused.replies[0].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(refused.appends.empty());
}

TEST_F(SagaStuckTest, MarkCompensatedRecordsTheStepAndFinishesTheSaga) {
  Effects resolved = Resolved(ResolveAction::kMarkCompensated, 0);
  EXPECT_EQ(Describe(Events(resolved), def_),
            (Strings{"resolved:mark-compensated", "saga:SAGA_COMPENSATED"}));
  EXPECT_TRUE(resolved.calls.empty());
  Effects end = Durable("s1", resolved);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::SAGA_COMPENSATED);
}

TEST_F(SagaStuckTest, InapplicableResolutionsAreRefused) {
  EXPECT_EQ(Resolved(ResolveAction::kAbort).replies.at(0).status.code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Resolved(ResolveAction::kMarkCompensated, 9).replies.at(0).status.code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(core_.Handle(Resolve{"unknown", ResolveAction::kRetry, 0, "ops", "", 1})
                .replies.at(0)
                .status.code(),
            StatusCode::kNotFound);
}

TEST_F(SagaResolveTest, AbortTurnsARunningSagaAroundWithoutWaitingForItsActions) {
  const v1::SagaDefinition def = Def({"a", "b:a"});
  Started("s1", def);
  EXPECT_EQ(core_.Handle(Resolve{"s1", ResolveAction::kRetry, 0, "ops", "", 1})
                .replies.at(0)
                .status.code(),
            StatusCode::kFailedPrecondition)
      << "nothing to retry while RUNNING";
  EXPECT_EQ(core_.Handle(Resolve{"s1", ResolveAction::kMarkCompensated, 0, "ops", "", 1})
                .replies.at(0)
                .status.code(),
            StatusCode::kFailedPrecondition);
  Effects abort = core_.Handle(Resolve{"s1", ResolveAction::kAbort, 0, "ops", "customer left", 2});
  EXPECT_EQ(Describe(Events(abort), def), (Strings{"resolved:abort", "b:STEP_SKIPPED"}));
  Effects turned = Durable("s1", abort);
  EXPECT_EQ(Called(turned, Phase::kCompensate), (std::vector<uint32_t>{0}));
  ASSERT_EQ(turned.replies.size(), 1u);
  EXPECT_EQ(turned.replies[0].state, v1::SAGA_COMPENSATING);
  EXPECT_EQ(core_.Get("s1")->reason(), "abort by ops: customer left");
  EXPECT_TRUE(Reply("s1", 0, Phase::kAction).empty()) << "the late action reply is ignored";
}

// ---- The log ----

TEST_F(SagaFailureTest, FailedFirstAppendDropsTheSagaAndReportsTheError) {
  Effects submitted = core_.Handle(Submit{"s1", Def({"a"}), true, 3});
  Effects failed =
      core_.Handle(LogDone{"s1", submitted.appends.at(0).token, Status::Unavailable("disk")});
  ASSERT_EQ(failed.replies.size(), 1u);
  EXPECT_EQ(failed.replies[0].status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(failed.calls.empty());
  EXPECT_EQ(core_.active(), 0u);
}

// Regression: the log failing during compensation leaves the saga retrying, never forgotten.
TEST_F(SagaCompensationTest, LogFailureDuringCompensationRetriesTheSameEvents) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Started("s1", def, /*wait=*/true);
  ReplyDurably("s1", 1, Phase::kAction, v1::STEP_REFUSED, "no");
  Effects a_done = Reply("s1", 0, Phase::kCompensate);
  ASSERT_EQ(a_done.appends.size(), 1u);
  Effects failed =
      core_.Handle(LogDone{"s1", a_done.appends[0].token, Status::Unavailable("fsync failed")});
  ASSERT_EQ(failed.timers.size(), 1u) << "the append is retried";
  EXPECT_TRUE(failed.replies.empty() && failed.finished.empty());
  Effects b_done = Reply("s1", 1, Phase::kCompensate);
  EXPECT_TRUE(b_done.appends.empty()) << "queued behind the failed append";
  Effects retried = Fire("s1", failed.timers[0].timer_id);
  ASSERT_EQ(retried.appends.size(), 1u);
  EXPECT_EQ(Describe(retried.appends[0].events, def), Describe(a_done.appends[0].events, def));
  EXPECT_NE(retried.appends[0].token, a_done.appends[0].token);
  EXPECT_TRUE(core_.Handle(LogDone{"s1", a_done.appends[0].token, Status::Ok()}).empty())
      << "a completion of the failed append's token is stale";
  Effects end = Durable("s1", retried);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::SAGA_COMPENSATED);
}

// ---- Recovery ----

// Regression (second half): after a restart the durable record still says COMPENSATING, so
// compensation resumes; the saga is never forgotten.
TEST_F(SagaRecoveryTest, CompensatingSagaResumesCompensationAfterRestart) {
  const v1::SagaDefinition def = Def({"a", "b:a", "c:a"});
  Effects e = core_.Recover({Record("s1", def, v1::SAGA_COMPENSATING,
                                    {v1::STEP_SUCCEEDED, v1::STEP_FAILED, v1::STEP_SKIPPED})});
  EXPECT_EQ(Called(e, Phase::kCompensate), (std::vector<uint32_t>{1}))
      << "b first (it comes after a); c was skipped";
  EXPECT_EQ(core_.active(), 1u);
  EXPECT_EQ(core_.Get("s1")->saga_state(), v1::SAGA_COMPENSATING);
}

TEST_F(SagaRecoveryTest, RunningSagaResendsTheActionsOfRunningSteps) {
  const v1::SagaDefinition def = Def({"a", "b:a", "c:b"});
  Effects e = core_.Recover({Record("s1", def, v1::SAGA_RUNNING,
                                    {v1::STEP_SUCCEEDED, v1::STEP_RUNNING, v1::STEP_PENDING})});
  ASSERT_EQ(Called(e, Phase::kAction), (std::vector<uint32_t>{1}));
  EXPECT_EQ(e.calls[0].attempt, 2u) << "attempts continue from the logged count";
  EXPECT_TRUE(e.appends.empty());
}

TEST_F(SagaRecoveryTest, RunningSagaWhoseStepsAllSucceededCompletes) {
  const v1::SagaDefinition def = Def({"a", "b"});
  Effects e = core_.Recover(
      {Record("s1", def, v1::SAGA_RUNNING, {v1::STEP_SUCCEEDED, v1::STEP_SUCCEEDED})});
  EXPECT_EQ(Describe(Events(e), def), (Strings{"saga:SAGA_COMPLETED"}));
  EXPECT_EQ(Durable("s1", e).finished.size(), 1u);
}

TEST_F(SagaRecoveryTest, StuckSagaStaysStuckUntilResolved) {
  const v1::SagaDefinition def = Def({"a"});
  Effects e = core_.Recover({Record("s1", def, v1::SAGA_STUCK, {v1::STEP_COMPENSATING})});
  EXPECT_TRUE(e.empty()) << "no calls and no events for a STUCK saga";
  EXPECT_EQ(core_.Get("s1")->saga_state(), v1::SAGA_STUCK);
  Effects resumed =
      Durable("s1", core_.Handle(Resolve{"s1", ResolveAction::kRetry, 0, "ops", "db is back", 1}));
  EXPECT_EQ(Called(resumed, Phase::kCompensate), (std::vector<uint32_t>{0}));
}

TEST_F(SagaRecoveryTest, OtherModesFinishedSagasAndHeldXidsAreIgnored) {
  const v1::SagaDefinition def = Def({"a"});
  v1::TxnRecord two_pc;
  two_pc.set_xid("t1");
  two_pc.set_mode("2pc");
  two_pc.set_state(v1::COMMITTING);
  Effects e = core_.Recover({two_pc, Record("s1", def, v1::SAGA_COMPLETED, {v1::STEP_SUCCEEDED})});
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(core_.active(), 0u);
  Started("s2", def);
  Effects again = core_.Recover({Record("s2", def, v1::SAGA_RUNNING, {v1::STEP_RUNNING})});
  EXPECT_TRUE(again.calls.empty()) << "an xid already held is not recovered twice";
}

TEST_F(SagaRecoveryTest, ViewFromARecordShowsLoggedStepProgress) {
  const v1::SagaDefinition def = Def({"a", "b"});
  v1::TxnRecord rec =
      Record("s1", def, v1::SAGA_COMPENSATED, {v1::STEP_COMPENSATED, v1::STEP_SKIPPED});
  rec.mutable_steps(0)->set_error("UNAVAILABLE: once");
  const v1::Transaction view = TransactionFromSagaRecord(rec);
  EXPECT_EQ(view.mode(), "saga");
  EXPECT_EQ(view.saga_state(), v1::SAGA_COMPENSATED);
  EXPECT_EQ(view.reason(), "earlier reason");
  ASSERT_EQ(view.steps_size(), 2);
  EXPECT_EQ(view.steps(0).id(), "a");
  EXPECT_EQ(view.steps(0).compensation(), "undo-a");
  EXPECT_EQ(view.steps(0).state(), v1::STEP_COMPENSATED);
  EXPECT_EQ(view.steps(0).attempts(), 1u);
  EXPECT_EQ(view.steps(0).last_error(), "UNAVAILABLE: once");
  EXPECT_EQ(view.steps(1).state(), v1::STEP_SKIPPED);
}

}  // namespace
}  // namespace treaty::saga
