// SagaCore: submission, forward execution over the DAG, completion, waiters and queries.
#include "saga/saga_core.h"

#include <gtest/gtest.h>

#include "tests/unit/saga/saga_fixture.h"

namespace treaty::saga {
namespace {

using testing_util::Called;
using testing_util::Def;
using testing_util::Describe;
using testing_util::Events;
using testing_util::Strings;
using SagaForwardTest = testing_util::SagaCoreTest;
using SagaSubmitTest = testing_util::SagaCoreTest;

TEST_F(SagaSubmitTest, SubmitLogsSagaBegunWithRootStepsRunningBeforeAnyCall) {
  const v1::SagaDefinition def = Def({"a", "b", "c:a,b"});
  Effects e = core_.Handle(Submit{"s1", def, false, 7});
  ASSERT_EQ(e.appends.size(), 1u);
  EXPECT_EQ(Describe(e.appends[0].events, def),
            (Strings{"SagaBegun", "a:STEP_RUNNING", "b:STEP_RUNNING"}))
      << "root steps are marked RUNNING in the same atomic append as SagaBegun";
  EXPECT_TRUE(e.calls.empty()) << "no action may be sent before SagaBegun is durable";
  EXPECT_TRUE(e.replies.empty()) << "the client is answered once SagaBegun is durable";
  EXPECT_EQ(e.appends[0].events[0].saga_begun().saga().steps_size(), 3);
}

TEST_F(SagaSubmitTest, BeginDurableAnswersClientAndSendsIndependentActionsInParallel) {
  const v1::SagaDefinition def = Def({"a", "b", "c:a,b"});
  Effects e = Started("s1", def, /*wait=*/false, 7);
  ASSERT_EQ(e.replies.size(), 1u);
  EXPECT_EQ(e.replies[0].client, 7u);
  EXPECT_TRUE(e.replies[0].status.ok());
  EXPECT_EQ(e.replies[0].state, v1::SAGA_RUNNING);
  EXPECT_EQ(Called(e, Phase::kAction), (std::vector<uint32_t>{0, 1}));
  const CallStep& call = e.calls[0];
  EXPECT_EQ(call.service, "svc-a");
  EXPECT_EQ(call.op, "do-a");
  EXPECT_EQ(call.payload, "{\"n\":1}");
  EXPECT_EQ(call.attempt, 1u);
  EXPECT_EQ(call.deadline_ms, 5000) << "the default step timeout";
}

TEST_F(SagaSubmitTest, InvalidSubmissionsAreRefusedWithoutLogging) {
  Effects no_xid = core_.Handle(Submit{"", Def({"a"}), false, 1});
  ASSERT_EQ(no_xid.replies.size(), 1u);
  EXPECT_EQ(no_xid.replies[0].status.code(), StatusCode::kInvalidArgument);
  Effects no_steps = core_.Handle(Submit{"s1", v1::SagaDefinition(), false, 2});
  ASSERT_EQ(no_steps.replies.size(), 1u);
  EXPECT_EQ(no_steps.replies[0].status.code(), StatusCode::kInvalidArgument);
  Effects cycle = core_.Handle(Submit{"s2", Def({"a:b", "b:a"}), false, 3});
  ASSERT_EQ(cycle.replies.size(), 1u);
  EXPECT_NE(cycle.replies[0].status.message().find("cycle"), std::string::npos)
      << cycle.replies[0].status.ToString();
  EXPECT_TRUE(no_xid.appends.empty() && no_steps.appends.empty() && cycle.appends.empty());
  EXPECT_EQ(core_.active(), 0u);
}

TEST_F(SagaSubmitTest, ResubmissionAttachesAndADifferentDefinitionIsRefused) {
  Started("s1", Def({"a", "b"}));
  Effects same = core_.Handle(Submit{"s1", Def({"a", "b"}), false, 2});
  EXPECT_TRUE(same.appends.empty() && same.calls.empty()) << "no second execution";
  ASSERT_EQ(same.replies.size(), 1u);
  EXPECT_EQ(same.replies[0].state, v1::SAGA_RUNNING);
  Effects other = core_.Handle(Submit{"s1", Def({"a"}), false, 3});
  ASSERT_EQ(other.replies.size(), 1u);
  EXPECT_EQ(other.replies[0].status.code(), StatusCode::kAlreadyExists);
}

TEST_F(SagaForwardTest, DependentStartsOnlyAfterEveryDependencySucceededDurably) {
  const v1::SagaDefinition def = Def({"a", "b", "c:a,b"});
  Started("s1", def);
  Effects a_done = Reply("s1", 0, Phase::kAction);
  EXPECT_EQ(Describe(Events(a_done), def), (Strings{"a:STEP_SUCCEEDED"}));
  EXPECT_TRUE(a_done.calls.empty()) << "c still waits for b";
  Effects b_done = Reply("s1", 1, Phase::kAction);
  EXPECT_TRUE(b_done.appends.empty()) << "one append in flight per saga; b's outcome is queued";
  Effects after_a = Durable("s1", a_done);
  EXPECT_EQ(Describe(Events(after_a), def), (Strings{"b:STEP_SUCCEEDED", "c:STEP_RUNNING"}))
      << "c becomes RUNNING in the same append as its last dependency's outcome";
  EXPECT_EQ(Called(after_a, Phase::kAction), (std::vector<uint32_t>{2}))
      << "c is sent once that append is durable";
}

TEST_F(SagaForwardTest, NoDependentIsSentWhileItsDependencyOutcomeIsNotDurable) {
  const v1::SagaDefinition def = Def({"a", "b:a"});
  Started("s1", def);
  Effects a_done = Reply("s1", 0, Phase::kAction);
  EXPECT_EQ(Describe(Events(a_done), def), (Strings{"a:STEP_SUCCEEDED", "b:STEP_RUNNING"}));
  EXPECT_TRUE(a_done.calls.empty()) << "b's action must wait for the append to be durable";
  Effects durable = Durable("s1", a_done);
  EXPECT_EQ(Called(durable, Phase::kAction), (std::vector<uint32_t>{1}));
}

TEST_F(SagaForwardTest, AllStepsSucceededCompletesAndAnswersTheWaiter) {
  const v1::SagaDefinition def = Def({"a", "b:a"});
  Effects begun = Started("s1", def, /*wait=*/true, 9);
  EXPECT_TRUE(begun.replies.empty()) << "a waiting client is answered at the end";
  ReplyDurably("s1", 0, Phase::kAction);
  clock_.AdvanceMs(40);
  Effects b_done = Reply("s1", 1, Phase::kAction);
  EXPECT_EQ(Describe(Events(b_done), def), (Strings{"b:STEP_SUCCEEDED", "saga:SAGA_COMPLETED"}));
  Effects end = Durable("s1", b_done);
  ASSERT_EQ(end.replies.size(), 1u);
  EXPECT_EQ(end.replies[0].client, 9u);
  EXPECT_EQ(end.replies[0].state, v1::SAGA_COMPLETED);
  ASSERT_EQ(end.finished.size(), 1u);
  EXPECT_EQ(end.finished[0].state, v1::SAGA_COMPLETED);
  EXPECT_EQ(end.finished[0].duration_ms, 40);
  EXPECT_EQ(core_.active(), 0u) << "a finished saga is forgotten (the log answers for it)";
}

TEST_F(SagaForwardTest, DuplicateActionReplyIsANoOp) {
  Started("s1", Def({"a", "b"}));
  Effects first = ReplyDurably("s1", 0, Phase::kAction);
  EXPECT_FALSE(first.appends.empty());
  EXPECT_TRUE(Reply("s1", 0, Phase::kAction).empty()) << "a duplicated DONE must change nothing";
}

TEST_F(SagaForwardTest, LateDoneAfterATimeoutIsAcceptedAndCancelsTheRetry) {
  Started("s1", Def({"a"}));
  Effects failed = Fail("s1", 0, Phase::kAction, Status::DeadlineExceeded("no response"), 1);
  ASSERT_EQ(failed.timers.size(), 1u);
  Effects late = ReplyDurably("s1", 0, Phase::kAction);
  EXPECT_FALSE(late.finished.empty()) << "the late DONE completes the one-step saga";
  EXPECT_TRUE(Fire("s1", failed.timers[0].timer_id).empty()) << "the retry was cancelled";
}

TEST_F(SagaForwardTest, GetShowsModeStateAndPerStepProgress) {
  Started("s1", Def({"a", "b:a"}));
  Fail("s1", 0, Phase::kAction, Status::Unavailable("connection reset"), 1);
  std::optional<v1::Transaction> view = core_.Get("s1");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->mode(), "saga");
  EXPECT_EQ(view->saga_state(), v1::SAGA_RUNNING);
  ASSERT_EQ(view->steps_size(), 2);
  EXPECT_EQ(view->steps(0).id(), "a");
  EXPECT_EQ(view->steps(0).service(), "svc-a");
  EXPECT_EQ(view->steps(0).action(), "do-a");
  EXPECT_EQ(view->steps(0).compensation(), "undo-a");
  EXPECT_EQ(view->steps(0).state(), v1::STEP_RUNNING);
  EXPECT_EQ(view->steps(0).attempts(), 1u);
  EXPECT_EQ(view->steps(0).last_error(), "UNAVAILABLE: connection reset");
  EXPECT_EQ(view->steps(1).state(), v1::STEP_PENDING);
  EXPECT_FALSE(core_.Get("nope").has_value());
}

TEST_F(SagaForwardTest, StepSettingsReachTheCall) {
  v1::SagaDefinition def = Def({"a"});
  def.mutable_steps(0)->set_timeout_ms(750);
  def.mutable_steps(0)->set_routing_key("acct-1");
  def.mutable_steps(0)->set_instance("10.0.0.1:7000");
  Effects e = Started("s1", def);
  ASSERT_EQ(e.calls.size(), 1u);
  EXPECT_EQ(e.calls[0].deadline_ms, 750);
  EXPECT_EQ(e.calls[0].routing_key, "acct-1");
  EXPECT_EQ(e.calls[0].instance, "10.0.0.1:7000");
}

}  // namespace
}  // namespace treaty::saga
