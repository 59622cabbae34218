// The order saga example's services (examples/order): business rules, effects applied once and
// compensated once through the saga barrier, fault control, and a failed saga compensated across
// the three services. Over real loopback RPC, as the coordinator calls them.
#include "examples/order/order.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "examples/order/fault.h"
#include "tests/unit/participant/participant_test_util.h"
#include "tests/unit/participant/saga_test_util.h"

namespace treaty::order {
namespace {

using participant::Participant;
using participant::ParticipantOptions;
using participant::testing::StepClient;
using participant::testing::TempDir;

// One started order service on its own data dir, with a step client and its state.
class OrderService {
 public:
  OrderService(const std::string& dir, OrderOptions options)
      : faults_(MakeFaults(options.service)),
        participant_(Options(dir, options.service)),
        names_(StepsOf(options.service)) {
    start_status_ = InstallOrderService(participant_, std::move(options), faults_);
    if (start_status_.ok()) start_status_ = participant_.Start();
    if (start_status_.ok()) client_ = std::make_unique<StepClient>(participant_.address());
  }

  const Status& start_status() const { return start_status_; }
  StepClient& steps() { return *client_; }
  OrderFaults& faults() { return *faults_; }
  // The action / compensation of `step` of xid, with payload.
  Result<v1::StepResponse> Act(const std::string& xid, uint32_t step, const std::string& payload) {
    return client_->Action(xid, step, names_.action, payload);
  }
  Result<v1::StepResponse> Undo(const std::string& xid, uint32_t step, const std::string& payload) {
    return client_->Compensate(xid, step, names_.compensation, payload);
  }
  OrderState State() {
    net::RpcClient rpc;
    Result<std::string> reply =
        rpc.Call(participant_.address(), kStateMethod, "", participant::testing::kCallMs);
    if (!reply.ok()) {
      ADD_FAILURE() << "order.State failed: " << reply.status().ToString();
      return OrderState();
    }
    Result<OrderState> state = ParseOrderStateJson(*reply);
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    return state.ok() ? *state : OrderState();
  }
  Result<std::string> Control(const std::string& payload) {
    net::RpcClient rpc;
    return rpc.Call(participant_.address(), kSetFaultMethod, payload,
                    participant::testing::kCallMs);
  }

 private:
  static ParticipantOptions Options(const std::string& dir, Service service) {
    ParticipantOptions options;
    options.service = ServiceName(service);
    options.data_dir = dir;
    return options;
  }

  std::shared_ptr<OrderFaults> faults_;
  Participant participant_;
  StepNames names_;
  Status start_status_;
  std::unique_ptr<StepClient> client_;
};

OrderOptions Inventory(Stock stock) {
  OrderOptions options;
  options.service = Service::kInventory;
  options.stock = std::move(stock);
  return options;
}

OrderOptions Payment(int64_t credit_limit = kDefaultCreditLimit) {
  OrderOptions options;
  options.service = Service::kPayment;
  options.credit_limit = credit_limit;
  return options;
}

OrderOptions Shipping() {
  OrderOptions options;
  options.service = Service::kShipping;
  return options;
}

TEST(OrderParseTest, StockSpecParsesAndRejectsBadItems) {
  Result<Stock> stock = ParseStock("widget=10,gadget=0");
  ASSERT_TRUE(stock.ok()) << stock.status().ToString();
  EXPECT_EQ(*stock, (Stock{{"widget", 10}, {"gadget", 0}}));
  EXPECT_TRUE(ParseStock("")->empty());
  for (const char* bad : {"widget", "widget=-1", "widget=x", "=3", "a/b=1", "w=1,w=2"}) {
    EXPECT_EQ(ParseStock(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(*ParseService("payment"), Service::kPayment);
  EXPECT_EQ(ParseService("billing").status().code(), StatusCode::kInvalidArgument);
}

TEST(OrderParseTest, StateJsonRoundTripsTheServiceFields) {
  OrderState inventory;
  inventory.service = "inventory";
  inventory.stock = {{"widget", 8}};
  inventory.reserved = {{"widget", 2}};
  Result<OrderState> back = ParseOrderStateJson(OrderStateJson(inventory));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->stock, inventory.stock);
  EXPECT_EQ(back->reserved, inventory.reserved);

  OrderState shipping;
  shipping.service = "shipping";
  shipping.shipments = {"o-1", "o-2"};
  shipping.cancelled = 3;
  EXPECT_EQ(OrderStateJson(shipping),
            R"({"cancelled":3,"service":"shipping","shipments":["o-1","o-2"]})");
  EXPECT_EQ(ParseOrderStateJson("[1]").status().code(), StatusCode::kInvalidArgument);
}

class OrderServiceTest : public ::testing::Test {
 protected:
  std::unique_ptr<OrderService> Start(const std::string& name, OrderOptions options) {
    auto svc = std::make_unique<OrderService>(dir_.Sub(name), std::move(options));
    EXPECT_TRUE(svc->start_status().ok()) << svc->start_status().ToString();
    return svc;
  }
  TempDir dir_;
};

TEST_F(OrderServiceTest, ReserveIsAppliedOnceAndReleaseOnce) {
  auto inventory = Start("inv", Inventory({{"widget", 10}}));
  const std::string payload = ReservePayload("widget", 3);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(inventory->Act("tx-1", 0, payload)->outcome(), v1::STEP_DONE);
  OrderState state = inventory->State();
  EXPECT_EQ(state.stock.at("widget"), 7) << "a repeated reserve must take the stock once";
  EXPECT_EQ(state.reserved.at("widget"), 3);

  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(inventory->Undo("tx-1", 0, payload)->outcome(), v1::STEP_DONE);
  state = inventory->State();
  EXPECT_EQ(state.stock.at("widget"), 10) << "a repeated release must give the stock back once";
  EXPECT_EQ(state.reserved.at("widget"), 0);
}

TEST_F(OrderServiceTest, ReserveBeyondStockOrOfUnknownItemIsRefusedWithoutEffect) {
  auto inventory = Start("inv", Inventory({{"widget", 2}}));
  Result<v1::StepResponse> short_stock = inventory->Act("tx-1", 0, ReservePayload("widget", 3));
  ASSERT_TRUE(short_stock.ok()) << short_stock.status().ToString();
  EXPECT_EQ(short_stock->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(short_stock->reason(), "insufficient stock: widget has 2, needs 3");
  EXPECT_EQ(inventory->Act("tx-2", 0, ReservePayload("gizmo", 1))->reason(), "unknown item: gizmo");
  Result<v1::StepResponse> bad = inventory->Act("tx-3", 0, R"({"item":"widget","qty":0})");
  EXPECT_EQ(bad->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(bad->reason().rfind("invalid payload", 0), 0u) << bad->reason();
  EXPECT_EQ(inventory->State().stock.at("widget"), 2);
  EXPECT_EQ(inventory->Undo("tx-1", 0, ReservePayload("widget", 3))->outcome(), v1::STEP_DONE)
      << "compensating a refused reserve succeeds and gives nothing back";
  EXPECT_EQ(inventory->State().stock.at("widget"), 2);
}

TEST_F(OrderServiceTest, ChargeAboveCreditLimitIsRefusedAndRefundUndoesOnce) {
  auto payment = Start("pay", Payment(500));
  Result<v1::StepResponse> over = payment->Act("tx-1", 1, ChargePayload("o-1", 501));
  EXPECT_EQ(over->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(over->reason(), "amount 501 exceeds the credit limit 500");
  ASSERT_EQ(payment->Act("tx-2", 1, ChargePayload("o-2", 500))->outcome(), v1::STEP_DONE);
  ASSERT_EQ(payment->Act("tx-2", 1, ChargePayload("o-2", 500))->outcome(), v1::STEP_DONE);
  OrderState state = payment->State();
  EXPECT_EQ(state.charged, 500) << "a repeated charge must be applied once";
  EXPECT_EQ(state.charges, 1);
  ASSERT_EQ(payment->Undo("tx-2", 1, ChargePayload("o-2", 500))->outcome(), v1::STEP_DONE);
  ASSERT_EQ(payment->Undo("tx-2", 1, ChargePayload("o-2", 500))->outcome(), v1::STEP_DONE);
  state = payment->State();
  EXPECT_EQ(state.charged, 0);
  EXPECT_EQ(state.refunded, 500) << "a repeated refund must be applied once";
  EXPECT_EQ(state.refunds, 1);
}

TEST_F(OrderServiceTest, ScheduleRefusesASecondShipmentAndCancelRemovesIt) {
  auto shipping = Start("ship", Shipping());
  ASSERT_EQ(shipping->Act("tx-1", 2, SchedulePayload("o-1"))->outcome(), v1::STEP_DONE);
  Result<v1::StepResponse> again = shipping->Act("tx-2", 2, SchedulePayload("o-1"));
  EXPECT_EQ(again->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(again->reason(), "order o-1 already has a shipment");
  EXPECT_EQ(shipping->State().shipments, std::vector<std::string>{"o-1"});
  ASSERT_EQ(shipping->Undo("tx-2", 2, SchedulePayload("o-1"))->outcome(), v1::STEP_DONE);
  EXPECT_EQ(shipping->State().shipments, std::vector<std::string>{"o-1"})
      << "compensating the refused schedule must not cancel the other saga's shipment";
  ASSERT_EQ(shipping->Undo("tx-1", 2, SchedulePayload("o-1"))->outcome(), v1::STEP_DONE);
  OrderState state = shipping->State();
  EXPECT_TRUE(state.shipments.empty());
  EXPECT_EQ(state.cancelled, 1);
}

TEST_F(OrderServiceTest, InjectedRefusalAtChargeCompensatesTheReservation) {
  auto inventory = Start("inv", Inventory({{"widget", 5}}));
  auto payment = Start("pay", Payment());
  auto shipping = Start("ship", Shipping());
  Result<std::string> set = payment->Control(FaultRequestJson("charge", FaultMode::kRefuse));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, R"({"charge":"refuse"})");

  // The saga as the coordinator runs it: reserve -> charge (refused) -> compensate in reverse.
  const std::string reserve = ReservePayload("widget", 2);
  const std::string charge = ChargePayload("o-1", 100);
  ASSERT_EQ(inventory->Act("tx-1", 0, reserve)->outcome(), v1::STEP_DONE);
  Result<v1::StepResponse> refused = payment->Act("tx-1", 1, charge);
  ASSERT_EQ(refused->outcome(), v1::STEP_REFUSED);
  EXPECT_EQ(refused->reason(), "injected refusal of charge");
  ASSERT_EQ(payment->Undo("tx-1", 1, charge)->outcome(), v1::STEP_DONE);
  ASSERT_EQ(inventory->Undo("tx-1", 0, reserve)->outcome(), v1::STEP_DONE);

  EXPECT_EQ(inventory->State().stock.at("widget"), 5) << "the reservation must be released";
  EXPECT_EQ(payment->State().charged, 0);
  EXPECT_TRUE(shipping->State().shipments.empty()) << "the step after the failure never ran";
  EXPECT_EQ(payment->faults().injected(), 1u);
}

TEST_F(OrderServiceTest, InjectedFailureIsTransientAndRecordsNothing) {
  auto payment = Start("pay", Payment());
  ASSERT_TRUE(payment->Control(FaultRequestJson("charge", FaultMode::kFail)).ok());
  EXPECT_EQ(payment->Act("tx-1", 0, ChargePayload("o-1", 10)).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(payment->steps().Step("tx-1", 0).action(), v1::STEP_ACTION_UNKNOWN);
  ASSERT_EQ(*payment->Control(FaultRequestJson("charge", FaultMode::kNone)), "{}");
  ASSERT_EQ(payment->Act("tx-1", 0, ChargePayload("o-1", 10))->outcome(), v1::STEP_DONE)
      << "the retried charge must take effect once the fault is cleared";

  ASSERT_TRUE(payment->Control(FaultRequestJson("refund", FaultMode::kFail)).ok());
  EXPECT_EQ(payment->Undo("tx-1", 0, ChargePayload("o-1", 10)).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(payment->State().charged, 10) << "a failed refund must not take effect";
  ASSERT_TRUE(payment->faults().Set("refund", FaultMode::kNone).ok());
  ASSERT_EQ(payment->Undo("tx-1", 0, ChargePayload("o-1", 10))->outcome(), v1::STEP_DONE);
  EXPECT_EQ(payment->State().refunded, 10);
}

TEST_F(OrderServiceTest, FaultControlRejectsUnknownOperationsAndRefusingCompensations) {
  auto payment = Start("pay", Payment());
  EXPECT_EQ(payment->Control(FaultRequestJson("reserve", FaultMode::kFail)).status().code(),
            StatusCode::kInvalidArgument)
      << "reserve is not an operation of the payment service";
  EXPECT_EQ(payment->Control(FaultRequestJson("refund", FaultMode::kRefuse)).status().code(),
            StatusCode::kInvalidArgument)
      << "a compensation cannot refuse";
  EXPECT_EQ(payment->Control(R"({"action":"charge","mode":"explode"})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(payment->Control("not json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(payment->faults().Active().empty()) << "a rejected request must change nothing";
}

TEST_F(OrderServiceTest, StockIsSeededOnlyIntoANewDataDir) {
  {
    auto inventory = Start("inv", Inventory({{"widget", 4}}));
    ASSERT_EQ(inventory->Act("tx-1", 0, ReservePayload("widget", 1))->outcome(), v1::STEP_DONE);
  }
  auto restarted = Start("inv", Inventory({{"widget", 100}}));
  OrderState state = restarted->State();
  EXPECT_EQ(state.stock.at("widget"), 3) << "a restart must keep the stored stock";
  EXPECT_EQ(state.reserved.at("widget"), 1);
  EXPECT_EQ(restarted->Act("tx-1", 0, ReservePayload("widget", 1))->outcome(), v1::STEP_DONE);
  EXPECT_EQ(restarted->State().stock.at("widget"), 3) << "the repeated action after a restart";
}

TEST(OrderInstallTest, CreditLimitOutOfRangeIsRefused) {
  TempDir dir;
  ParticipantOptions options;
  options.service = "payment";
  options.data_dir = dir.Sub("pay");
  Participant participant(options);
  EXPECT_EQ(InstallOrderService(participant, Payment(0), MakeFaults(Service::kPayment)).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treaty::order
