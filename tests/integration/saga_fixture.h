// The order saga fixture (examples/order) for real-process tests: treatyd, the three
// order-participant services, the test saga (reserve -> charge -> schedule) as a file and as a
// request, and helpers that read each service's order.State and inject its faults.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"

namespace treaty::integ {

namespace methods = v1::methods;

// order-participant's control and query methods (examples/order/fault.h, order.h).
inline constexpr char kOrderState[] = "order.State";
inline constexpr char kOrderSetFault[] = "order.SetFault";

inline constexpr int kExitCompleted = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitCompensated = 3;
inline constexpr int kExitStuck = 8;

// Step options of the test sagas: many fast retries, so outages of a few seconds are ridden out.
struct SagaKnobs {
  uint32_t max_attempts = 0;  // 0: the default (3)
  uint32_t initial_backoff_ms = 20;
  uint32_t max_backoff_ms = 200;
  uint32_t max_compensation_attempts = 0;  // 0: the default (10)
};

// examples/order/order.json with knobs: reserve 2 widgets -> charge 150 -> schedule o-1001.
inline nlohmann::json OrderSagaJson(const SagaKnobs& k) {
  nlohmann::json retry = {{"initial_backoff_ms", k.initial_backoff_ms},
                          {"max_backoff_ms", k.max_backoff_ms}};
  if (k.max_attempts > 0) retry["max_attempts"] = k.max_attempts;
  nlohmann::json saga = {{"steps",
                          {{{"id", "reserve"},
                            {"service", "inventory"},
                            {"action", "reserve"},
                            {"compensation", "release"},
                            {"payload", {{"item", "widget"}, {"qty", 2}}},
                            {"retry", retry}},
                           {{"id", "charge"},
                            {"service", "payment"},
                            {"action", "charge"},
                            {"compensation", "refund"},
                            {"payload", {{"order", "o-1001"}, {"amount", 150}}},
                            {"after", {"reserve"}},
                            {"timeout_ms", 1000},
                            {"retry", retry}},
                           {{"id", "schedule"},
                            {"service", "shipping"},
                            {"action", "schedule"},
                            {"compensation", "cancel"},
                            {"payload", {{"order", "o-1001"}}},
                            {"after", {"charge"}},
                            {"retry", retry}}}}};
  if (k.max_compensation_attempts > 0) {
    saga["max_compensation_attempts"] = k.max_compensation_attempts;
  }
  return saga;
}

// The same saga as an RPC request (payloads as the CLI sends them: compact JSON text).
inline v1::SubmitSagaRequest OrderSagaRequest(const std::string& xid, const SagaKnobs& k,
                                              bool wait) {
  v1::SubmitSagaRequest req;
  req.set_xid(xid);
  req.set_wait(wait);
  const nlohmann::json saga = OrderSagaJson(k);
  if (k.max_compensation_attempts > 0) {
    req.mutable_saga()->set_max_compensation_attempts(k.max_compensation_attempts);
  }
  for (const auto& s : saga["steps"]) {
    v1::SagaStep* step = req.mutable_saga()->add_steps();
    step->set_id(s["id"]);
    step->set_service(s["service"]);
    step->set_action(s["action"]);
    step->set_compensation(s["compensation"]);
    step->set_payload(s["payload"].dump());
    if (s.contains("after")) {
      for (const auto& a : s["after"]) step->add_after(a.get<std::string>());
    }
    if (s.contains("timeout_ms")) step->set_timeout_ms(s["timeout_ms"]);
    step->mutable_retry()->set_max_attempts(k.max_attempts);
    step->mutable_retry()->set_initial_backoff_ms(k.initial_backoff_ms);
    step->mutable_retry()->set_max_backoff_ms(k.max_backoff_ms);
  }
  return req;
}

inline bool IsSettled(v1::SagaState s) {
  return s == v1::SAGA_COMPLETED || s == v1::SAGA_COMPENSATED || s == v1::SAGA_STUCK;
}

class SagaTest : public IntegrationTest {
 protected:
  // treatyd and the three services; inventory starts with 10 widgets.
  void StartOrderCluster(const std::vector<std::string>& payment_args = {},
                         const std::vector<std::string>& shipping_args = {}) {
    AddTreatyd();
    std::vector<std::string> inventory_args = {"--stock", "widget=10"};
    inventory_ = &AddOrderService("inventory", inventory_args);
    payment_ = &AddOrderService("payment", payment_args);
    shipping_ = &AddOrderService("shipping", shipping_args);
    ASSERT_TRUE(StartAll());
  }

  Result<v1::SubmitSagaResponse> SubmitSaga(const v1::SubmitSagaRequest& req,
                                            int64_t deadline_ms = kRpcDeadlineMs) {
    return net::Decode<v1::SubmitSagaResponse>(
        rpc().Call(treatyd().address, methods::kSubmitSaga, req.SerializeAsString(), deadline_ms));
  }

  // The service's order.State, or a JSON null (with a test failure) if it cannot be read.
  nlohmann::json State(const Node& node) {
    auto r = rpc().Call(node.address, kOrderState, "", kRpcDeadlineMs);
    EXPECT_TRUE(r.ok()) << node.name << " order.State: " << r.status().ToString();
    if (!r.ok()) return nullptr;
    return nlohmann::json::parse(*r, nullptr, /*allow_exceptions=*/false);
  }

  ::testing::AssertionResult SetOrderFault(const Node& node, const std::string& action,
                                           const std::string& mode) {
    nlohmann::json req = {{"action", action}, {"mode", mode}};
    auto r = rpc().Call(node.address, kOrderSetFault, req.dump(), kRpcDeadlineMs);
    if (!r.ok()) {
      return ::testing::AssertionFailure() << "order.SetFault " << req.dump() << " on " << node.name
                                           << ": " << r.status().ToString();
    }
    return ::testing::AssertionSuccess();
  }

  // Polls GetTransaction until pred holds; returns the last view (or error) after timeout_ms.
  Result<v1::Transaction> WaitSaga(const std::string& xid,
                                   const std::function<bool(const v1::Transaction&)>& pred,
                                   int64_t timeout_ms) {
    Result<v1::Transaction> last = Status::DeadlineExceeded("not queried yet");
    WaitUntil(
        [&] {
          last = GetTransaction(xid);
          return last.ok() && pred(*last);
        },
        timeout_ms, 50);
    return last;
  }

  Result<v1::Transaction> WaitSettled(const std::string& xid, int64_t timeout_ms = 20000) {
    return WaitSaga(
        xid, [](const v1::Transaction& tx) { return IsSettled(tx.saga_state()); }, timeout_ms);
  }

  static std::string Steps(const v1::Transaction& tx) {
    std::string out;
    for (const auto& s : tx.steps()) {
      out += s.id() + "=" + v1::StepState_Name(s.state()) + "(" + std::to_string(s.attempts()) +
             (s.last_error().empty() ? "" : ", " + s.last_error()) + ") ";
    }
    return out;
  }

  // Effects of one completed order saga, applied exactly once.
  void ExpectCompletedOnce() {
    nlohmann::json inv = State(*inventory_);
    EXPECT_EQ(inv["stock"]["widget"], 8) << "2 widgets reserved once: " << inv.dump();
    EXPECT_EQ(inv["reserved"]["widget"], 2) << inv.dump();
    nlohmann::json pay = State(*payment_);
    EXPECT_EQ(pay["charged"], 150) << "charged once: " << pay.dump();
    EXPECT_EQ(pay["charges"], 1) << pay.dump();
    EXPECT_EQ(pay["refunds"], 0) << pay.dump();
    nlohmann::json ship = State(*shipping_);
    EXPECT_EQ(ship["shipments"], nlohmann::json::array({"o-1001"})) << ship.dump();
  }

  Node* inventory_ = nullptr;
  Node* payment_ = nullptr;
  Node* shipping_ = nullptr;
};

}  // namespace treaty::integ
