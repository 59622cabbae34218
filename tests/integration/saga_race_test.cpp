// Order sagas (examples/order) that fail at their first step, through real processes: a refusal
// with nothing to compensate, and an action delayed on the network past its deadline, whose
// compensation overtakes it (null compensation) and which the participant's barrier then refuses
// (anti-hanging).
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/frame_proxy.h"
#include "tests/integration/prom_text.h"
#include "tests/integration/saga_fixture.h"

namespace treaty::integ {
namespace {

// Every effect of the order saga undone or never applied: inventory back at 10 widgets with none
// reserved, nothing charged or refunded, nothing scheduled or cancelled.
void ExpectNoEffect(const nlohmann::json& inv, const nlohmann::json& pay,
                    const nlohmann::json& ship) {
  EXPECT_EQ(inv["stock"]["widget"], 10) << inv.dump();
  EXPECT_EQ(inv["reserved"].value("widget", 0), 0) << inv.dump();
  EXPECT_EQ(pay["charges"], 0) << pay.dump();
  EXPECT_EQ(pay["charged"], 0) << pay.dump();
  EXPECT_EQ(pay["refunds"], 0) << pay.dump();
  EXPECT_TRUE(ship["shipments"].empty()) << ship.dump();
  EXPECT_EQ(ship["cancelled"], 0) << ship.dump();
}

TEST_F(SagaTest, RefusalAtTheFirstStepCompensatesNothingAndLeavesNoEffect) {
  StartOrderCluster();
  ASSERT_TRUE(SetOrderFault(*inventory_, "reserve", "refuse"));
  const std::string file = WriteTempFile("order.json", OrderSagaJson({}).dump(2));
  CommandResult r = Treaty({"submit", "saga", "-f", file, "--xid", "first-1", "--wait"});
  ASSERT_EQ(r.exit_code, kExitCompensated) << r.Describe();
  EXPECT_NE(r.out.find("injected refusal of reserve"), std::string::npos) << r.Describe();

  auto tx = GetTransaction("first-1");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->saga_state(), v1::SAGA_COMPENSATED) << Steps(*tx);
  ASSERT_EQ(tx->steps_size(), 3);
  // The refused step is settled by a compensation that had nothing to undo (the barrier records
  // it without running release); the later steps never ran.
  EXPECT_EQ(tx->steps(0).state(), v1::STEP_COMPENSATED) << Steps(*tx);
  EXPECT_EQ(tx->steps(1).state(), v1::STEP_SKIPPED) << Steps(*tx);
  EXPECT_EQ(tx->steps(2).state(), v1::STEP_SKIPPED) << Steps(*tx);
  ExpectNoEffect(State(*inventory_), State(*payment_), State(*shipping_));

  // The saga's end is counted in treaty_tx_total with its mode and final state.
  auto http = HttpGet(treatyd().admin_port, "/metrics", 5000);
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  auto families = ParsePromText(http->body);
  ASSERT_TRUE(families.ok()) << families.status().ToString();
  auto compensated = PromValue(*families, "treaty_tx_total", "treaty_tx_total",
                               {{"mode", "saga"}, {"outcome", "compensated"}});
  ASSERT_TRUE(compensated.has_value()) << http->body;
  EXPECT_EQ(*compensated, 1);
  auto completed = PromValue(*families, "treaty_tx_total", "treaty_tx_total",
                             {{"mode", "saga"}, {"outcome", "completed"}});
  ASSERT_TRUE(completed.has_value()) << http->body;
  EXPECT_EQ(*completed, 0);
}

TEST_F(SagaTest, CompensationOvertakingItsDelayedActionIsNullAndTheLateActionIsRefused) {
  // inventory behind a proxy that holds its actions back: the reserve call times out at the
  // coordinator, which compensates; the release reaches inventory first.
  AddTreatyd();
  inventory_ = &AddOrderService("inventory", {"--stock", "widget=10"});
  FrameProxy proxy(inventory_->port);
  ASSERT_TRUE(proxy.Start().ok());
  inventory_->argv.insert(inventory_->argv.end(), {"--advertise", proxy.address()});
  inventory_->address = proxy.address();  // what treatyd lists; queries pass through too
  payment_ = &AddOrderService("payment");
  shipping_ = &AddOrderService("shipping");
  ASSERT_TRUE(StartAll());
  proxy.HoldRequests(v1::methods::kAction);

  SagaKnobs knobs;
  knobs.max_attempts = 1;  // one timed-out attempt fails the step
  nlohmann::json saga = OrderSagaJson(knobs);
  saga["steps"][0]["timeout_ms"] = 500;
  const std::string file = WriteTempFile("order.json", saga.dump(2));
  CommandResult r = Treaty({"submit", "saga", "-f", file, "--xid", "late-1", "--wait"});
  ASSERT_EQ(r.exit_code, kExitCompensated) << r.Describe();
  ASSERT_EQ(proxy.held(), 1) << "the reserve action is still on its way";

  auto tx = GetTransaction("late-1");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->saga_state(), v1::SAGA_COMPENSATED) << Steps(*tx);
  EXPECT_EQ(tx->steps(0).state(), v1::STEP_COMPENSATED) << Steps(*tx);
  EXPECT_EQ(tx->steps(1).state(), v1::STEP_SKIPPED) << Steps(*tx);
  const std::string log_path = inventory_->process->log_path();
  EXPECT_EQ(ReadFile(log_path).find("compensated before the action arrived"), std::string::npos)
      << "no action has reached inventory yet";

  // The delayed action arrives now, after its (null) compensation.
  ASSERT_EQ(proxy.ReleaseHeld(), 1);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return ReadFile(log_path).find(
                   "action reserve refused: compensated before the action "
                   "arrived") != std::string::npos;
      },
      10000))
      << "inventory should log the refused late action:\n"
      << inventory_->process->LogTail(20);
  ExpectNoEffect(State(*inventory_), State(*payment_), State(*shipping_));
  auto after = GetTransaction("late-1");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->saga_state(), v1::SAGA_COMPENSATED) << "the late reply changes nothing";
}

}  // namespace
}  // namespace treaty::integ
