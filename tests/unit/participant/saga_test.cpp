// The saga barrier (participant.h, "Saga barrier") over real loopback RPC, as the coordinator
// calls participant.Action and participant.Compensate: idempotency, null compensation,
// anti-hanging, discarded writes of refused actions, and durability across restart. Includes the
// named regressions of issue 5.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <vector>

#include "participant/participant.h"
#include "tests/unit/participant/participant_test_util.h"
#include "tests/unit/participant/saga_test_util.h"
#include "tests/unit/participant/test_service.h"

namespace treaty::participant::testing {
namespace {

struct SagaCalls {
  std::atomic<int> actions{0};
  std::atomic<int> compensations{0};
  // While set, "flaky" / "unflaky" fail with UNAVAILABLE.
  std::atomic<bool> flaky{true};
  // "slow" reports here that it started, then waits for release.
  std::promise<void> slow_started;
  std::shared_future<void> release;
};

// Saga steps (payload is the key they write, "k" by default):
//   reserve / release    action: key=reserved -> DONE; compensation: released/<key>=<xid>
//   refuse / unrefuse    action: writes junk/<key>, then REFUSED "out of stock"
//   flaky / unflaky      UNAVAILABLE while calls.flaky; then like reserve / release
//   slow / unslow        action: signals slow_started, waits for release, then like reserve
//   throw / unthrow      action: writes junk/<key>, then throws
void InstallSagaService(Participant& p, SagaCalls& calls) {
  auto key_of = [](const StepContext& ctx) { return ctx.payload.empty() ? "k" : ctx.payload; };
  auto reserve = [&calls, key_of](const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
    ++calls.actions;
    txn.Put(key_of(ctx), "reserved");
    return StepResult::Done();
  };
  auto release = [&calls, key_of](const StepContext& ctx, LocalTxn& txn) {
    ++calls.compensations;
    txn.Put("released/" + key_of(ctx), ctx.xid);
    return Status::Ok();
  };
  p.RegisterSagaStep("reserve", "release", reserve, release);
  p.RegisterSagaStep(
      "refuse", "unrefuse",
      [&calls, key_of](const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
        ++calls.actions;
        txn.Put("junk/" + key_of(ctx), "x");
        return StepResult::Refused("out of stock");
      },
      release);
  p.RegisterSagaStep(
      "flaky", "unflaky",
      [&calls, reserve](const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
        if (calls.flaky) return Status::Unavailable("try again");
        return reserve(ctx, txn);
      },
      [&calls, release](const StepContext& ctx, LocalTxn& txn) {
        if (calls.flaky) return Status::Unavailable("try again");
        return release(ctx, txn);
      });
  p.RegisterSagaStep(
      "slow", "unslow",
      [&calls, reserve](const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
        calls.slow_started.set_value();
        calls.release.wait();
        return reserve(ctx, txn);
      },
      release);
  p.RegisterSagaStep(
      "throw", "unthrow",
      [&calls, key_of](const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
        ++calls.actions;
        txn.Put("junk/" + key_of(ctx), "x");
        throw std::runtime_error("handler bug");
      },
      release);
}

// A started participant with the 2PC test service and the saga service above.
class SagaParticipant {
 public:
  SagaParticipant(ParticipantOptions options, SagaCalls& calls) : participant_(options) {
    InstallTestService(participant_, two_pc_calls_);
    InstallSagaService(participant_, calls);
    start_status_ = participant_.Start();
    if (start_status_.ok()) {
      client_ = std::make_unique<ParticipantClient>(participant_.address());
      steps_ = std::make_unique<StepClient>(participant_.address());
    }
  }
  const Status& start_status() const { return start_status_; }
  Participant& participant() { return participant_; }
  ParticipantClient& client() { return *client_; }
  StepClient& steps() { return *steps_; }
  std::string Get(const std::string& key) {
    Result<std::string> v = client_->Call(kGetMethod, key);
    return v.ok() ? *v : "error: " + v.status().ToString();
  }

 private:
  HandlerCalls two_pc_calls_;
  Participant participant_;
  Status start_status_;
  std::unique_ptr<ParticipantClient> client_;
  std::unique_ptr<StepClient> steps_;
};

class SagaBarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    calls_.release = release_.get_future().share();
    Restart();
  }
  void TearDown() override { release_.set_value(); }
  void Restart() {
    svc_.reset();
    svc_ = std::make_unique<SagaParticipant>(TestOptions(dir_.Sub("db")), calls_);
    ASSERT_TRUE(svc_->start_status().ok()) << svc_->start_status().ToString();
  }
  StepClient& steps() { return svc_->steps(); }

  TempDir dir_;
  SagaCalls calls_;
  std::promise<void> release_;
  std::unique_ptr<SagaParticipant> svc_;
};

TEST_F(SagaBarrierTest, DoneActionAppliesItsWritesAndRecordsDone) {
  Result<v1::StepResponse> done = steps().Action("tx-1", 0, "reserve", "a");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->outcome(), v1::STEP_DONE);
  EXPECT_EQ(svc_->Get("a"), "reserved") << "the action's write must be applied";
  EXPECT_EQ(steps().Step("tx-1", 0).action(), v1::STEP_ACTION_DONE);
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_UNKNOWN);
}

TEST_F(SagaBarrierTest, RepeatedActionReturnsFirstResultWithoutRerunningHandler) {
  ASSERT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_DONE);
  ASSERT_EQ(steps().Action("tx-1", 1, "refuse", "b")->outcome(), v1::STEP_REFUSED);
  for (int i = 0; i < 3; ++i) {
    Result<v1::StepResponse> done = steps().Action("tx-1", 0, "reserve", "a");
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    EXPECT_EQ(done->outcome(), v1::STEP_DONE) << "repeat " << i << " of a DONE action";
    Result<v1::StepResponse> refused = steps().Action("tx-1", 1, "refuse", "b");
    ASSERT_TRUE(refused.ok()) << refused.status().ToString();
    EXPECT_EQ(refused->outcome(), v1::STEP_REFUSED) << "repeat " << i << " of a REFUSED action";
    EXPECT_EQ(refused->reason(), "out of stock") << "a repeated refusal carries the first reason";
  }
  EXPECT_EQ(calls_.actions.load(), 2) << "each action handler must run exactly once";
}

TEST_F(SagaBarrierTest, RefusedActionDiscardsItsWrites) {
  Result<v1::StepResponse> refused = steps().Action("tx-1", 0, "refuse", "a");
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(refused->reason(), "out of stock");
  EXPECT_EQ(svc_->Get("junk/a"), "<none>") << "a refused action's writes must be discarded";
  const v1::InspectedStep step = steps().Step("tx-1", 0);
  EXPECT_EQ(step.action(), v1::STEP_ACTION_REFUSED);
  EXPECT_EQ(step.reason(), "out of stock");
}

// Issue 5 regression: the compensation overtakes a slow (delayed) action. The compensation must
// succeed as a null compensation, and the late action must be refused without taking effect.
TEST_F(SagaBarrierTest, CompensationRacingSlowActionIsNullAndTheLateActionIsRefused) {
  Result<v1::StepResponse> compensated = steps().Compensate("tx-1", 0, "release", "a");
  ASSERT_TRUE(compensated.ok()) << compensated.status().ToString();
  EXPECT_EQ(compensated->outcome(), v1::STEP_DONE) << "a null compensation succeeds";
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_NULL);

  for (int i = 0; i < 2; ++i) {
    Result<v1::StepResponse> late = steps().Action("tx-1", 0, "reserve", "a");
    ASSERT_TRUE(late.ok()) << late.status().ToString();
    EXPECT_EQ(late->outcome(), v1::STEP_REFUSED) << "delivery " << i << " of the late action";
    EXPECT_EQ(late->reason(), "compensated before the action arrived");
  }
  EXPECT_EQ(calls_.actions.load(), 0) << "the late action's handler must not run (anti-hanging)";
  EXPECT_EQ(calls_.compensations.load(), 0) << "a null compensation runs no handler";
  EXPECT_EQ(svc_->Get("a"), "<none>") << "the late action must leave no effect";
  EXPECT_EQ(steps().Step("tx-1", 0).action(), v1::STEP_ACTION_UNKNOWN);
  const ParticipantStats stats = svc_->participant().Stats();
  EXPECT_EQ(stats.null_compensations, 1u);
  EXPECT_EQ(stats.late_actions_refused, 2u);
}

// Issue 5 regression: two compensations of an action that never arrived, in flight together
// (e.g. a retry timer firing while the first is still queued). Exactly one records the null
// compensation; both succeed; no handler runs.
TEST_F(SagaBarrierTest, TwoConcurrentCompensationsOfNeverArrivedActionRecordItOnce) {
  StepClient other(svc_->participant().address());  // a second connection, as after a retry
  auto first = steps().Async(v1::methods::kCompensate, "tx-1", 0, "release", "a");
  auto second = other.Async(v1::methods::kCompensate, "tx-1", 0, "release", "a");
  for (auto* reply : {&first, &second}) {
    Result<v1::StepResponse> r = reply->get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->outcome(), v1::STEP_DONE) << "both compensations must answer DONE";
  }
  EXPECT_EQ(svc_->participant().Stats().null_compensations, 1u)
      << "exactly one of the two compensations must record the null compensation";
  EXPECT_EQ(calls_.compensations.load(), 0) << "the compensation handler must never run";
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_NULL);
  EXPECT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_REFUSED);
}

TEST_F(SagaBarrierTest, DuplicateCompensationIsANoOp) {
  ASSERT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_DONE);
  for (int i = 0; i < 3; ++i) {
    Result<v1::StepResponse> r = steps().Compensate("tx-1", 0, "release", "a");
    ASSERT_TRUE(r.ok()) << "compensation " << i << ": " << r.status().ToString();
    EXPECT_EQ(r->outcome(), v1::STEP_DONE);
  }
  EXPECT_EQ(calls_.compensations.load(), 1) << "the compensation handler must run exactly once";
  EXPECT_EQ(svc_->Get("released/a"), "tx-1");
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_DONE);
  EXPECT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_REFUSED)
      << "an action redelivered after its compensation must not report DONE again";
}

TEST_F(SagaBarrierTest, CompensationOfRefusedActionRecordsItWithoutRunningTheHandler) {
  ASSERT_EQ(steps().Action("tx-1", 0, "refuse", "a")->outcome(), v1::STEP_REFUSED);
  Result<v1::StepResponse> r = steps().Compensate("tx-1", 0, "unrefuse", "a");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->outcome(), v1::STEP_DONE);
  EXPECT_EQ(calls_.compensations.load(), 0) << "a refused action left nothing to undo";
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_SKIPPED);
  EXPECT_EQ(svc_->participant().Stats().null_compensations, 0u);
}

TEST_F(SagaBarrierTest, CompensationQueuedBehindSlowActionUndoesIt) {
  auto action = steps().Async(v1::methods::kAction, "tx-1", 0, "slow", "a");
  ASSERT_EQ(calls_.slow_started.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready)
      << "the slow action never started";
  auto compensation = steps().Async(v1::methods::kCompensate, "tx-1", 0, "unslow", "a");
  ASSERT_EQ(compensation.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "the compensation must wait for the action running on the worker";
  release_.set_value();
  release_ = std::promise<void>();  // TearDown sets this one
  ASSERT_EQ(action.get()->outcome(), v1::STEP_DONE);
  ASSERT_EQ(compensation.get()->outcome(), v1::STEP_DONE);
  EXPECT_EQ(calls_.compensations.load(), 1) << "the action took effect, so it must be undone";
  EXPECT_EQ(svc_->Get("released/a"), "tx-1");
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_DONE);
}

TEST_F(SagaBarrierTest, TransientFailuresRecordNothingAndSucceedOnRetry) {
  Result<v1::StepResponse> failed = steps().Action("tx-1", 0, "flaky", "a");
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  EXPECT_EQ(steps().Step("tx-1", 0).action(), v1::STEP_ACTION_UNKNOWN)
      << "a transient failure may be retried, so nothing is recorded";
  calls_.flaky = false;
  ASSERT_EQ(steps().Action("tx-1", 0, "flaky", "a")->outcome(), v1::STEP_DONE);

  calls_.flaky = true;
  EXPECT_EQ(steps().Compensate("tx-1", 0, "unflaky", "a").status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_UNKNOWN);
  EXPECT_EQ(svc_->Get("a"), "reserved") << "a failed compensation must not undo anything";
  calls_.flaky = false;
  ASSERT_EQ(steps().Compensate("tx-1", 0, "unflaky", "a")->outcome(), v1::STEP_DONE);
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_DONE);
  EXPECT_EQ(calls_.compensations.load(), 1);
}

TEST_F(SagaBarrierTest, ThrowingActionIsInternalAndRecordsNothing) {
  Result<v1::StepResponse> r = steps().Action("tx-1", 0, "throw", "a");
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().ToString();
  EXPECT_EQ(svc_->Get("junk/a"), "<none>");
  EXPECT_EQ(steps().Step("tx-1", 0).action(), v1::STEP_ACTION_UNKNOWN);
}

TEST_F(SagaBarrierTest, UnknownNamesAndInvalidXidsAreRefusedAndRecordNothing) {
  Result<v1::StepResponse> action = steps().Action("tx-1", 0, "nope");
  EXPECT_EQ(action.status().code(), StatusCode::kNotFound) << action.status().ToString();
  Result<v1::StepResponse> compensation = steps().Compensate("tx-1", 0, "nope");
  EXPECT_EQ(compensation.status().code(), StatusCode::kNotFound)
      << compensation.status().ToString();
  EXPECT_TRUE(steps().Steps("tx-1").empty());
  EXPECT_EQ(steps().Action("", 0, "reserve").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(steps().Compensate(std::string("a\0b", 3), 0, "release").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SagaBarrierTest, CompensationOfAnotherStepsActionIsRefused) {
  ASSERT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_DONE);
  Result<v1::StepResponse> wrong = steps().Compensate("tx-1", 0, "unthrow", "a");
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition) << wrong.status().ToString();
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_UNKNOWN);
  EXPECT_EQ(calls_.compensations.load(), 0);
}

TEST_F(SagaBarrierTest, StepsAndTwoPhaseBranchesOfOneXidAreIndependent) {
  ASSERT_EQ(svc_->client().Prepare("tx-1", 0, "put", "b")->vote(), v1::YES);
  ASSERT_TRUE(steps().Compensate("tx-1", 0, "release", "a").ok());
  EXPECT_EQ(svc_->client().State("tx-1", 0), v1::BRANCH_PREPARED)
      << "a saga compensation must not touch the 2PC branch with the same number";
  ASSERT_TRUE(svc_->client().Commit("tx-1", 0).ok());
  EXPECT_EQ(steps().Step("tx-1", 0).compensation(), v1::STEP_COMPENSATION_NULL);
  EXPECT_EQ(steps().Step("tx-1", 0).action(), v1::STEP_ACTION_UNKNOWN);
}

TEST_F(SagaBarrierTest, SagaBarrierSurvivesRestart) {
  ASSERT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_DONE);
  ASSERT_EQ(steps().Compensate("tx-1", 1, "release", "b")->outcome(), v1::STEP_DONE);
  ASSERT_EQ(steps().Action("tx-1", 2, "refuse", "c")->outcome(), v1::STEP_REFUSED);
  ASSERT_EQ(steps().Action("tx-1", 3, "reserve", "d")->outcome(), v1::STEP_DONE);
  ASSERT_EQ(steps().Compensate("tx-1", 3, "release", "d")->outcome(), v1::STEP_DONE);
  const int actions = calls_.actions.load();
  const int compensations = calls_.compensations.load();
  Restart();

  EXPECT_EQ(steps().Action("tx-1", 0, "reserve", "a")->outcome(), v1::STEP_DONE);
  EXPECT_EQ(steps().Action("tx-1", 1, "reserve", "b")->outcome(), v1::STEP_REFUSED)
      << "the null compensation must still refuse the late action after a restart";
  Result<v1::StepResponse> refused = steps().Action("tx-1", 2, "refuse", "c");
  EXPECT_EQ(refused->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(refused->reason(), "out of stock");
  EXPECT_EQ(steps().Compensate("tx-1", 3, "release", "d")->outcome(), v1::STEP_DONE);
  EXPECT_EQ(calls_.actions.load(), actions) << "no action may run again after a restart";
  EXPECT_EQ(calls_.compensations.load(), compensations)
      << "no compensation may run again after a restart";
  EXPECT_EQ(svc_->Get("a"), "reserved");
  EXPECT_EQ(svc_->Get("b"), "<none>");
  EXPECT_EQ(svc_->Get("released/d"), "tx-1");

  const std::map<uint32_t, v1::InspectedStep> recorded = steps().Steps("tx-1");
  ASSERT_EQ(recorded.size(), 4u);
  EXPECT_EQ(recorded.at(0).action(), v1::STEP_ACTION_DONE);
  EXPECT_EQ(recorded.at(1).compensation(), v1::STEP_COMPENSATION_NULL);
  EXPECT_EQ(recorded.at(2).action(), v1::STEP_ACTION_REFUSED);
  EXPECT_EQ(recorded.at(3).action(), v1::STEP_ACTION_DONE);
  EXPECT_EQ(recorded.at(3).compensation(), v1::STEP_COMPENSATION_DONE);
}

TEST(SagaRegistrationTest, StartRefusesAmbiguousOrIncompleteSagaSteps) {
  TempDir dir;
  auto run = [](const StepContext&, LocalTxn&) -> Result<StepResult> { return StepResult::Done(); };
  auto undo = [](const StepContext&, LocalTxn&) { return Status::Ok(); };
  {
    Participant p(TestOptions(dir.Sub("a")));
    p.RegisterSagaStep("reserve", "undo", run, undo);
    p.RegisterSagaStep("charge", "undo", run, undo);
    Status s = p.Start();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("'undo'"), std::string::npos) << s.ToString();
  }
  {
    Participant p(TestOptions(dir.Sub("b")));
    p.RegisterSagaStep("reserve", "", run, undo);
    EXPECT_EQ(p.Start().code(), StatusCode::kInvalidArgument);
  }
  {
    Participant p(TestOptions(dir.Sub("c")));
    p.RegisterSagaStep("reserve", "release", run, nullptr);
    EXPECT_EQ(p.Start().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace treaty::participant::testing
