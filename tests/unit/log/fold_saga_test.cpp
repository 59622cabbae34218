// Fold of saga events: SagaBegun on an empty record, StepChanged, SagaChanged and Resolved, the
// contradictions refused with FAILED_PRECONDITION, and where a saga's record is "finished".
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

constexpr char kXid[] = "saga-1";

// Three steps: a and b independent, c after both.
v1::LogEvent SagaBegun(const std::string& xid = kXid) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(1000);
  v1::SagaDefinition* saga = event.mutable_saga_begun()->mutable_saga();
  for (const char* id : {"a", "b", "c"}) {
    v1::SagaStep* step = saga->add_steps();
    step->set_id(id);
    step->set_service("svc-" + std::string(id));
    step->set_action("do");
    step->set_compensation("undo");
  }
  saga->mutable_steps(2)->add_after("a");
  saga->mutable_steps(2)->add_after("b");
  return event;
}

v1::LogEvent Step(uint32_t step, v1::StepState state, uint32_t attempts = 1,
                  const std::string& error = "") {
  v1::LogEvent event;
  event.set_xid(kXid);
  event.set_unix_ms(2000);
  v1::StepChanged* changed = event.mutable_step_changed();
  changed->set_step(step);
  changed->set_state(state);
  changed->set_attempts(attempts);
  changed->set_error(error);
  return event;
}

v1::LogEvent SagaTo(v1::SagaState state, const std::string& reason = "") {
  v1::LogEvent event;
  event.set_xid(kXid);
  event.set_unix_ms(3000);
  event.mutable_saga_changed()->set_state(state);
  event.mutable_saga_changed()->set_reason(reason);
  return event;
}

v1::LogEvent Resolved(const std::string& action, uint32_t step = 0) {
  v1::LogEvent event;
  event.set_xid(kXid);
  event.set_unix_ms(4000);
  v1::Resolved* resolved = event.mutable_resolved();
  resolved->set_action(action);
  resolved->set_step(step);
  resolved->set_who("ops");
  resolved->set_why("refunded by hand");
  return event;
}

// Folds every event, failing the test (with the event's position) on the first refusal.
v1::TxnRecord FoldAll(const std::vector<v1::LogEvent>& events) {
  v1::TxnRecord rec;
  uint64_t lsn = 0;
  for (const v1::LogEvent& event : events) {
    Status s = Fold(event, ++lsn, &rec);
    EXPECT_TRUE(s.ok()) << "event " << lsn << " (" << event.ShortDebugString()
                        << ") refused: " << s.ToString();
  }
  return rec;
}

// A saga turned around after a failed: a and b RUNNING, c SKIPPED, COMPENSATING.
v1::TxnRecord Compensating() {
  return FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Step(1, v1::STEP_RUNNING),
                  Step(0, v1::STEP_FAILED, 1, "refused"), Step(2, v1::STEP_SKIPPED),
                  SagaTo(v1::SAGA_COMPENSATING, "a refused")});
}

// Expects `event` refused with `code` and the record left exactly as it was.
void ExpectRefused(v1::TxnRecord rec, const v1::LogEvent& event, StatusCode code,
                   const std::string& what) {
  const std::string before = rec.SerializeAsString();
  Status s = Fold(event, 99, &rec);
  EXPECT_EQ(s.code(), code) << what << ": got " << s.ToString();
  EXPECT_EQ(rec.SerializeAsString(), before) << what << ": a refused event must not change rec";
}

TEST(FoldSagaTest, SagaBegunStartsASagaRecordWithPendingSteps) {
  v1::TxnRecord rec = FoldAll({SagaBegun()});
  EXPECT_EQ(rec.mode(), "saga");
  EXPECT_EQ(rec.xid(), kXid);
  EXPECT_EQ(rec.saga_state(), v1::SAGA_RUNNING);
  EXPECT_EQ(rec.state(), v1::TX_STATE_UNSPECIFIED) << "the 2PC state stays unset for a saga";
  ASSERT_EQ(rec.steps_size(), 3);
  for (const v1::StepRecord& s : rec.steps()) EXPECT_EQ(s.state(), v1::STEP_PENDING);
  EXPECT_EQ(rec.saga().steps(2).id(), "c");
  EXPECT_EQ(rec.created_unix_ms(), 1000);
  EXPECT_EQ(rec.last_lsn(), 1u);
}

TEST(FoldSagaTest, TwoPcBeginMarksTheRecordAsTwoPc) {
  v1::TxnRecord rec;
  ASSERT_TRUE(Fold(testing::Begun("t"), 1, &rec).ok());
  EXPECT_EQ(rec.mode(), "2pc");
}

TEST(FoldSagaTest, ForwardRunToCompletedRecordsEveryStep) {
  v1::TxnRecord rec =
      FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Step(1, v1::STEP_RUNNING),
               Step(0, v1::STEP_SUCCEEDED, 2, "UNAVAILABLE: once"), Step(1, v1::STEP_SUCCEEDED),
               Step(2, v1::STEP_RUNNING), Step(2, v1::STEP_SUCCEEDED), SagaTo(v1::SAGA_COMPLETED)});
  EXPECT_EQ(rec.saga_state(), v1::SAGA_COMPLETED);
  EXPECT_EQ(rec.steps(0).attempts(), 2u);
  EXPECT_EQ(rec.steps(0).error(), "UNAVAILABLE: once");
  EXPECT_EQ(rec.updated_unix_ms(), 3000);
}

TEST(FoldSagaTest, CompensationToCompensatedKeepsTheTurnAroundReason) {
  v1::TxnRecord rec = Compensating();
  EXPECT_EQ(rec.reason(), "a refused");
  for (const v1::LogEvent& e : {Step(1, v1::STEP_COMPENSATED), Step(0, v1::STEP_COMPENSATED),
                                SagaTo(v1::SAGA_COMPENSATED)}) {
    ASSERT_TRUE(Fold(e, 10, &rec).ok()) << e.ShortDebugString();
  }
  EXPECT_EQ(rec.saga_state(), v1::SAGA_COMPENSATED);
  EXPECT_EQ(rec.reason(), "a refused");
  EXPECT_EQ(rec.steps(2).state(), v1::STEP_SKIPPED);
}

TEST(FoldSagaTest, StepCannotRunBeforeItsDependenciesSucceeded) {
  v1::TxnRecord rec =
      FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Step(0, v1::STEP_SUCCEEDED)});
  ExpectRefused(rec, Step(2, v1::STEP_RUNNING), StatusCode::kFailedPrecondition,
                "c comes after a and b; b has not succeeded");
}

TEST(FoldSagaTest, ContradictoryStepTransitionsAreRefused) {
  v1::TxnRecord running = FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING)});
  ExpectRefused(running, Step(1, v1::STEP_SUCCEEDED), StatusCode::kFailedPrecondition,
                "a step that never ran cannot succeed");
  ExpectRefused(running, Step(0, v1::STEP_COMPENSATED), StatusCode::kFailedPrecondition,
                "no compensation while the saga runs forward");
  ExpectRefused(running, Step(0, v1::STEP_PENDING), StatusCode::kFailedPrecondition,
                "a step never goes back to PENDING");
  v1::TxnRecord succeeded =
      FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Step(0, v1::STEP_SUCCEEDED)});
  ExpectRefused(succeeded, Step(0, v1::STEP_FAILED), StatusCode::kFailedPrecondition,
                "a succeeded step cannot fail");
  v1::TxnRecord compensating = Compensating();
  ExpectRefused(compensating, Step(1, v1::STEP_SUCCEEDED), StatusCode::kFailedPrecondition,
                "no action outcome is logged after the saga turned around");
  ExpectRefused(compensating, Step(2, v1::STEP_COMPENSATED), StatusCode::kFailedPrecondition,
                "a SKIPPED step has nothing to compensate");
}

TEST(FoldSagaTest, RepeatedStepStateIsIdempotentAndUpdatesAttempts) {
  v1::TxnRecord rec = Compensating();
  ASSERT_TRUE(Fold(Step(1, v1::STEP_COMPENSATED, 3), 10, &rec).ok());
  ASSERT_TRUE(Fold(Step(1, v1::STEP_COMPENSATED, 3), 11, &rec).ok())
      << "a re-appended COMPENSATED (after an ambiguous log failure) must be accepted";
  EXPECT_EQ(rec.steps(1).attempts(), 3u);
}

TEST(FoldSagaTest, SagaStateContradictionsAreRefused) {
  v1::TxnRecord running = FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING)});
  ExpectRefused(running, SagaTo(v1::SAGA_COMPLETED), StatusCode::kFailedPrecondition,
                "COMPLETED needs every step SUCCEEDED");
  ExpectRefused(running, SagaTo(v1::SAGA_COMPENSATED), StatusCode::kFailedPrecondition,
                "COMPENSATED needs a turn-around first");
  ExpectRefused(running, SagaTo(v1::SAGA_STUCK), StatusCode::kFailedPrecondition,
                "only compensation gets stuck");
  v1::TxnRecord compensating = Compensating();
  ExpectRefused(compensating, SagaTo(v1::SAGA_COMPENSATED), StatusCode::kFailedPrecondition,
                "a and b are not compensated yet");
  ExpectRefused(compensating, SagaTo(v1::SAGA_RUNNING), StatusCode::kFailedPrecondition,
                "a saga never turns forward again");
  ExpectRefused(running, SagaTo(v1::SAGA_STATE_UNSPECIFIED), StatusCode::kInvalidArgument,
                "a SagaChanged without a state");
}

TEST(FoldSagaTest, FinishedSagaRefusesEverythingButARepeatOfItsFinalState) {
  v1::TxnRecord done =
      FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Step(1, v1::STEP_RUNNING),
               Step(0, v1::STEP_SUCCEEDED), Step(1, v1::STEP_SUCCEEDED), Step(2, v1::STEP_RUNNING),
               Step(2, v1::STEP_SUCCEEDED), SagaTo(v1::SAGA_COMPLETED)});
  v1::TxnRecord again = done;
  EXPECT_TRUE(Fold(SagaTo(v1::SAGA_COMPLETED), 20, &again).ok());
  ExpectRefused(done, SagaTo(v1::SAGA_COMPENSATING), StatusCode::kFailedPrecondition,
                "a COMPLETED saga cannot turn around");
  ExpectRefused(done, Step(0, v1::STEP_COMPENSATED), StatusCode::kFailedPrecondition,
                "no step changes after the saga finished");
  ExpectRefused(done, Resolved("retry"), StatusCode::kFailedPrecondition,
                "resolving a finished saga");
  ExpectRefused(done, SagaBegun(), StatusCode::kFailedPrecondition, "a second SagaBegun");
}

TEST(FoldSagaTest, StuckThenResolveRetryResumesCompensation) {
  v1::TxnRecord rec = Compensating();
  ASSERT_TRUE(Fold(Step(1, v1::STEP_COMPENSATING, 10, "UNAVAILABLE: down"), 10, &rec).ok());
  ASSERT_TRUE(Fold(SagaTo(v1::SAGA_STUCK, "compensation of b failed 10 times"), 11, &rec).ok());
  EXPECT_EQ(rec.saga_state(), v1::SAGA_STUCK);
  EXPECT_EQ(rec.steps(1).attempts(), 10u);
  ASSERT_TRUE(Fold(Resolved("retry"), 12, &rec).ok());
  EXPECT_EQ(rec.saga_state(), v1::SAGA_COMPENSATING);
}

TEST(FoldSagaTest, MarkCompensatedRecordsTheStepAndWhoDidIt) {
  v1::TxnRecord rec = Compensating();
  ASSERT_TRUE(Fold(SagaTo(v1::SAGA_STUCK, "stuck"), 10, &rec).ok());
  ASSERT_TRUE(Fold(Resolved("mark-compensated", 1), 11, &rec).ok());
  EXPECT_EQ(rec.steps(1).state(), v1::STEP_COMPENSATED);
  EXPECT_EQ(rec.steps(1).error(), "mark-compensated by ops: refunded by hand");
  EXPECT_EQ(rec.saga_state(), v1::SAGA_COMPENSATING);
  ExpectRefused(rec, Resolved("mark-compensated", 2), StatusCode::kFailedPrecondition,
                "c was SKIPPED: nothing to mark");
  ExpectRefused(rec, Resolved("mark-compensated", 7), StatusCode::kInvalidArgument,
                "there is no step 7");
}

TEST(FoldSagaTest, AbortTurnsARunningSagaAround) {
  v1::TxnRecord rec = FoldAll({SagaBegun(), Step(0, v1::STEP_RUNNING), Resolved("abort")});
  EXPECT_EQ(rec.saga_state(), v1::SAGA_COMPENSATING);
  EXPECT_EQ(rec.reason(), "abort by ops: refunded by hand");
  ExpectRefused(FoldAll({SagaBegun()}), Resolved("retry"), StatusCode::kFailedPrecondition,
                "nothing to retry in a RUNNING saga");
  ExpectRefused(FoldAll({SagaBegun()}), Resolved("mark-compensated"),
                StatusCode::kFailedPrecondition, "marking needs the saga turned around");
  ExpectRefused(FoldAll({SagaBegun()}), Resolved("reboot"), StatusCode::kInvalidArgument,
                "unknown resolve action");
}

TEST(FoldSagaTest, ModesDoNotMix) {
  ExpectRefused(FoldAll({SagaBegun()}), testing::Decided(kXid, v1::ABORT),
                StatusCode::kFailedPrecondition, "a 2PC decision on a saga");
  ExpectRefused(FoldAll({SagaBegun()}), testing::Ended(kXid), StatusCode::kFailedPrecondition,
                "a 2PC END on a saga");
  ExpectRefused(FoldAll({SagaBegun()}), testing::Begun(kXid), StatusCode::kFailedPrecondition,
                "a 2PC BEGIN on a saga");
  v1::TxnRecord two_pc;
  ASSERT_TRUE(Fold(testing::Begun(kXid), 1, &two_pc).ok());
  ExpectRefused(two_pc, Step(0, v1::STEP_RUNNING), StatusCode::kFailedPrecondition,
                "a saga step on a 2PC transaction");
  ExpectRefused(two_pc, SagaBegun(), StatusCode::kFailedPrecondition, "SagaBegun on a 2PC xid");
  ExpectRefused(v1::TxnRecord(), Step(0, v1::STEP_RUNNING), StatusCode::kFailedPrecondition,
                "a step of a saga never begun");
}

TEST(FoldSagaTest, MalformedSagaEventsAreInvalid) {
  v1::LogEvent empty = SagaBegun();
  empty.mutable_saga_begun()->mutable_saga()->clear_steps();
  ExpectRefused(v1::TxnRecord(), empty, StatusCode::kInvalidArgument, "SagaBegun without steps");
  ExpectRefused(FoldAll({SagaBegun()}), Step(3, v1::STEP_RUNNING), StatusCode::kInvalidArgument,
                "step index out of range");
  ExpectRefused(FoldAll({SagaBegun()}), Step(0, v1::STEP_STATE_UNSPECIFIED),
                StatusCode::kInvalidArgument, "StepChanged without a state");
}

// The log moves a saga's record to outcomes when it is COMPLETED or COMPENSATED; STUCK stays
// active (recovery must see it).
TEST(FoldSagaTest, EventLogFinishesSagasOnlyWhenCompletedOrCompensated) {
  testing::TempDir dir;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(testing::Options(dir.path()));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::vector<v1::LogEvent> events = {SagaBegun(),
                                      Step(0, v1::STEP_RUNNING),
                                      Step(1, v1::STEP_RUNNING),
                                      Step(0, v1::STEP_FAILED),
                                      Step(2, v1::STEP_SKIPPED),
                                      SagaTo(v1::SAGA_COMPENSATING),
                                      SagaTo(v1::SAGA_STUCK, "b will not compensate")};
  ASSERT_TRUE(testing::AppendAndWait(**log, events).status.ok());
  Result<std::vector<v1::TxnRecord>> active = (*log)->LoadActive();
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u) << "a STUCK saga must stay active";
  EXPECT_EQ((*active)[0].saga_state(), v1::SAGA_STUCK);

  testing::Appended done = testing::AppendAndWait(
      **log,
      {Step(0, v1::STEP_COMPENSATED), Step(1, v1::STEP_COMPENSATED), SagaTo(v1::SAGA_COMPENSATED)});
  ASSERT_TRUE(done.status.ok()) << done.status.ToString();
  active = (*log)->LoadActive();
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty()) << "a COMPENSATED saga is finished";
  Result<std::optional<v1::TxnRecord>> found = (*log)->Find(kXid);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((**found).saga_state(), v1::SAGA_COMPENSATED);

  testing::Appended refused = testing::AppendAndWait(**log, {Resolved("retry")});
  EXPECT_EQ(refused.status.code(), StatusCode::kFailedPrecondition)
      << "resolve of a finished saga must be refused by the log: " << refused.status.ToString();
}

}  // namespace
}  // namespace treaty::log
