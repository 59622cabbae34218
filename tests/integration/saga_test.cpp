// The order saga (examples/order) through real processes: treatyd, the three order-participant
// services and the treaty CLI. Effects are checked through order.State at each service, so a step
// applied or compensated twice (or never) fails the test.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/integration/saga_fixture.h"

namespace treaty::integ {
namespace {

TEST_F(SagaTest, OrderSagaCompletesAndResubmissionIsIdempotent) {
  StartOrderCluster();
  const std::string file = WriteTempFile("order.json", OrderSagaJson({}).dump(2));
  CommandResult r = Treaty({"submit", "saga", "-f", file, "--xid", "order-1", "--wait"});
  ASSERT_EQ(r.exit_code, kExitCompleted) << "the order saga should complete: " << r.Describe();
  EXPECT_NE(r.out.find("SAGA_COMPLETED"), std::string::npos) << r.Describe();
  ExpectCompletedOnce();

  CommandResult get = Treaty({"tx", "get", "order-1"});
  ASSERT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_NE(get.out.find("mode      saga"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("SUCCEEDED"), std::string::npos) << "steps are listed: " << get.out;

  // The same xid again: answered from the log, nothing runs twice.
  auto again = SubmitSaga(OrderSagaRequest("order-1", {}, true));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->state(), v1::SAGA_COMPLETED);
  ExpectCompletedOnce();
  // A 2PC transaction cannot reuse a saga's xid.
  v1::SubmitRequest two_pc;
  two_pc.set_xid("order-1");
  auto* b = two_pc.add_branches();
  b->set_service("payment");
  b->set_op("charge");
  auto clash = Submit(two_pc);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), StatusCode::kAlreadyExists) << clash.status().ToString();
}

TEST_F(SagaTest, RefusedChargeReleasesTheReservationAndSkipsShipping) {
  StartOrderCluster({"--fail-action", "charge"});
  const std::string file = WriteTempFile("order.json", OrderSagaJson({}).dump(2));
  CommandResult r = Treaty({"submit", "saga", "-f", file, "--xid", "order-2", "--wait"});
  ASSERT_EQ(r.exit_code, kExitCompensated) << r.Describe();
  EXPECT_NE(r.out.find("injected refusal of charge"), std::string::npos)
      << "the reason names the refusal: " << r.Describe();

  auto tx = GetTransaction("order-2");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_EQ(tx->steps_size(), 3);
  EXPECT_EQ(tx->steps(0).state(), v1::STEP_COMPENSATED) << Steps(*tx);
  EXPECT_EQ(tx->steps(1).state(), v1::STEP_COMPENSATED) << Steps(*tx);
  EXPECT_EQ(tx->steps(2).state(), v1::STEP_SKIPPED) << "schedule never ran: " << Steps(*tx);

  nlohmann::json inv = State(*inventory_);
  EXPECT_EQ(inv["stock"]["widget"], 10) << "reservation released once: " << inv.dump();
  EXPECT_EQ(inv["reserved"].value("widget", 0), 0) << inv.dump();
  nlohmann::json pay = State(*payment_);
  EXPECT_EQ(pay["charges"], 0) << "a refused charge takes nothing: " << pay.dump();
  EXPECT_EQ(pay["refunded"], 0) << "the null compensation refunds nothing: " << pay.dump();
  nlohmann::json ship = State(*shipping_);
  EXPECT_TRUE(ship["shipments"].empty()) << ship.dump();
}

// schedule (step 3) is refused; the refund must happen before the release: while release keeps
// failing, the saga is STUCK with the charge already refunded and the widgets still reserved.
// `treaty tx resolve --retry` after the fault is cleared finishes it.
TEST_F(SagaTest, FailingCompensationIsStuckUntilResolvedInReverseOrder) {
  StartOrderCluster({}, {"--fail-action", "schedule"});
  ASSERT_TRUE(SetOrderFault(*inventory_, "release", "fail"));
  SagaKnobs knobs;
  knobs.max_compensation_attempts = 3;
  const std::string file = WriteTempFile("order.json", OrderSagaJson(knobs).dump(2));
  CommandResult r = Treaty({"submit", "saga", "-f", file, "--xid", "order-3", "--wait"});
  ASSERT_EQ(r.exit_code, kExitStuck) << "release keeps failing: " << r.Describe();

  auto tx = GetTransaction("order-3");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->saga_state(), v1::SAGA_STUCK) << Steps(*tx);
  EXPECT_EQ(tx->steps(1).state(), v1::STEP_COMPENSATED) << "refund first: " << Steps(*tx);
  EXPECT_EQ(tx->steps(0).state(), v1::STEP_COMPENSATING) << Steps(*tx);
  EXPECT_NE(tx->steps(0).last_error().find("injected fault in release"), std::string::npos)
      << Steps(*tx);
  nlohmann::json pay = State(*payment_);
  EXPECT_EQ(pay["refunded"], 150) << pay.dump();
  EXPECT_EQ(pay["refunds"], 1) << pay.dump();
  EXPECT_EQ(State(*inventory_)["reserved"]["widget"], 2) << "release has not happened yet";

  CommandResult get = Treaty({"tx", "get", "order-3"});
  EXPECT_NE(get.out.find("SAGA_STUCK"), std::string::npos) << get.Describe();
  EXPECT_NE(get.out.find("COMPENSATING"), std::string::npos) << get.Describe();

  ASSERT_TRUE(SetOrderFault(*inventory_, "release", "none"));
  CommandResult resolve =
      Treaty({"tx", "resolve", "order-3", "--retry", "--reason", "release fixed"});
  ASSERT_EQ(resolve.exit_code, 0) << resolve.Describe();
  auto done = WaitSettled("order-3");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_EQ(done->saga_state(), v1::SAGA_COMPENSATED) << Steps(*done);
  nlohmann::json inv = State(*inventory_);
  EXPECT_EQ(inv["stock"]["widget"], 10) << "released once: " << inv.dump();
  EXPECT_EQ(inv["reserved"].value("widget", 0), 0) << inv.dump();
  EXPECT_EQ(State(*payment_)["refunds"], 1) << "refunded once";
  EXPECT_EQ(State(*shipping_)["cancelled"], 0) << "the refused schedule had nothing to cancel";

  // Nothing left to resolve.
  CommandResult twice = Treaty({"tx", "resolve", "order-3", "--retry"});
  EXPECT_EQ(twice.exit_code, 5) << "a finished saga is FAILED_PRECONDITION: " << twice.Describe();
}

TEST_F(SagaTest, CoordinatorKilledMidSagaResumesAndCompletes) {
  StartOrderCluster();
  ASSERT_TRUE(SetOrderFault(*payment_, "charge", "fail"));
  SagaKnobs knobs;
  knobs.max_attempts = 100;
  ASSERT_TRUE(SubmitSaga(OrderSagaRequest("order-4", knobs, false)).ok());
  auto mid = WaitSaga(
      "order-4",
      [](const v1::Transaction& tx) {
        return tx.steps_size() == 3 && tx.steps(0).state() == v1::STEP_SUCCEEDED &&
               tx.steps(1).attempts() >= 2;
      },
      10000);
  ASSERT_TRUE(mid.ok() && mid->steps(1).attempts() >= 2)
      << "charge should be failing and retried: "
      << (mid.ok() ? Steps(*mid) : mid.status().ToString());

  treatyd().process->Kill9();
  ASSERT_TRUE(SetOrderFault(*payment_, "charge", "none"));
  ASSERT_TRUE(Start(treatyd()));
  auto done = WaitSettled("order-4");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->saga_state(), v1::SAGA_COMPLETED) << Steps(*done);
  ExpectCompletedOnce();
}

TEST_F(SagaTest, ParticipantDownForAWhileThenBackSagaCompletes) {
  StartOrderCluster();
  payment_->process->Kill9();
  SagaKnobs knobs;
  knobs.max_attempts = 100;
  auto submitted = SubmitSaga(OrderSagaRequest("order-5", knobs, false));
  ASSERT_TRUE(submitted.ok()) << "payment's lease is still valid: "
                              << submitted.status().ToString();
  auto waiting = WaitSaga(
      "order-5",
      [](const v1::Transaction& tx) { return tx.steps_size() == 3 && tx.steps(1).attempts() >= 2; },
      10000);
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  EXPECT_EQ(waiting->saga_state(), v1::SAGA_RUNNING)
      << "transient failures are retried, not compensated: " << Steps(*waiting);

  ASSERT_TRUE(Start(*payment_));
  auto done = WaitSettled("order-5", 30000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->saga_state(), v1::SAGA_COMPLETED) << Steps(*done);
  ExpectCompletedOnce();
}

// An operator turns a running saga around (--abort), and finishes a stuck one by recording a
// compensation done by hand (--mark-compensated).
TEST_F(SagaTest, ResolveAbortCompensatesARunningSagaAndMarkCompensatedFinishesAStuckOne) {
  StartOrderCluster();
  ASSERT_TRUE(SetOrderFault(*payment_, "charge", "fail"));
  SagaKnobs knobs;
  knobs.max_attempts = 100;
  // A small compensation budget: compensations held back by payment's open breaker (the failing
  // charges open it) must not use it up, or the saga would go STUCK instead of compensating.
  knobs.max_compensation_attempts = 3;
  ASSERT_TRUE(SubmitSaga(OrderSagaRequest("order-6", knobs, false)).ok());
  auto running = WaitSaga(
      "order-6",
      [](const v1::Transaction& tx) {
        return tx.steps_size() == 3 && tx.steps(0).state() == v1::STEP_SUCCEEDED;
      },
      10000);
  ASSERT_TRUE(running.ok()) << running.status().ToString();
  std::string breaker;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto info = InstanceInfoOf("payment", payment_->address);
        breaker = info.ok() ? info->breaker() : info.status().ToString();
        return breaker == "open";
      },
      10000))
      << "payment's breaker never opened: " << breaker;
  CommandResult bad = Treaty({"tx", "resolve", "order-6"});
  EXPECT_EQ(bad.exit_code, 2) << "one action is required: " << bad.Describe();
  CommandResult abort = Treaty({"tx", "resolve", "order-6", "--abort", "--reason", "customer"});
  ASSERT_EQ(abort.exit_code, 0) << abort.Describe();
  auto aborted = WaitSettled("order-6");
  ASSERT_TRUE(aborted.ok()) << aborted.status().ToString();
  EXPECT_EQ(aborted->saga_state(), v1::SAGA_COMPENSATED) << Steps(*aborted);
  EXPECT_EQ(State(*inventory_)["stock"]["widget"], 10) << "the reservation was released";
  EXPECT_EQ(State(*payment_)["charges"], 0) << "the failing charge never took effect";

  // Stuck on a refund that keeps failing; the operator refunds by hand and says so.
  ASSERT_TRUE(SetOrderFault(*payment_, "charge", "none"));
  ASSERT_TRUE(SetOrderFault(*shipping_, "schedule", "refuse"));
  ASSERT_TRUE(SetOrderFault(*payment_, "refund", "fail"));
  knobs.max_compensation_attempts = 2;
  auto stuck = SubmitSaga(OrderSagaRequest("order-7", knobs, true), 20000);
  ASSERT_TRUE(stuck.ok()) << stuck.status().ToString();
  ASSERT_EQ(stuck->state(), v1::SAGA_STUCK);
  CommandResult unknown = Treaty({"tx", "resolve", "order-7", "--mark-compensated", "nope"});
  EXPECT_EQ(unknown.exit_code, 5) << "an unknown step is refused: " << unknown.Describe();
  CommandResult mark = Treaty({"tx", "resolve", "order-7", "--mark-compensated", "charge"});
  ASSERT_EQ(mark.exit_code, 0) << mark.Describe();
  auto done = WaitSettled("order-7");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->saga_state(), v1::SAGA_COMPENSATED) << Steps(*done);
  EXPECT_EQ(done->steps(1).state(), v1::STEP_COMPENSATED) << Steps(*done);
  nlohmann::json inv = State(*inventory_);
  EXPECT_EQ(inv["stock"]["widget"], 10) << "release ran after the marked refund: " << inv.dump();
}

TEST_F(SagaTest, BadSagaFilesExitOneWithAClearMessage) {
  AddTreatyd();  // never started: the CLI refuses the files before calling it
  nlohmann::json cycle = OrderSagaJson({});
  cycle["steps"][0]["after"] = {"schedule"};
  CommandResult r = Treaty({"submit", "saga", "-f", WriteTempFile("cycle.json", cycle.dump())});
  EXPECT_EQ(r.exit_code, kExitError) << r.Describe();
  EXPECT_NE(r.err.find("cycle"), std::string::npos) << "names the cycle: " << r.Describe();

  nlohmann::json typo = OrderSagaJson({});
  typo["steps"][1]["compensaton"] = "refund";
  r = Treaty({"submit", "saga", "-f", WriteTempFile("typo.json", typo.dump())});
  EXPECT_EQ(r.exit_code, kExitError) << r.Describe();
  EXPECT_NE(r.err.find("compensaton"), std::string::npos) << "names the field: " << r.Describe();
}

}  // namespace
}  // namespace treaty::integ
