#include "driver/caller.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <future>
#include <thread>

#include "coordinator/asio_ports.h"
#include "treaty/v1/methods.h"

namespace treaty::coordinator {
using driver::CallerOptions;
using driver::CallOutcome;
using driver::Refusal;

namespace {

// driver::Caller over treatyd's RpcTransport to a participant whose every call fails
// (UNAVAILABLE) or never answers, on a real socket.
class CallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<net::RpcServer>(io_.io());
    auto fail = [this](std::string, uint32_t, net::Responder respond) {
      if (hang_) {
        held_.push_back(std::move(respond));
        return;
      }
      respond(Status::Unavailable("injected"));
    };
    for (const char* m : {v1::methods::kPrepare, v1::methods::kCommit, v1::methods::kAbort}) {
      server_->Register(m, fail);
    }
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    caller_.reset();
    server_->Stop();
    io_.Stop();
  }
  void MakeCaller(CallerOptions o) {
    caller_ = std::make_unique<driver::Caller>(transport_, timers_, clock_, o, nullptr);
  }
  driver::CallSpec Spec(const char* method, int64_t deadline_ms) {
    driver::CallSpec spec;
    spec.service = "bank";
    spec.instance = address_;
    spec.method = method;
    spec.deadline_ms = deadline_ms;
    return spec;
  }
  // Runs one call on the I/O thread and waits for its result.
  CallOutcome CallOnce(const char* method) {
    std::promise<CallOutcome> done;
    asio::post(io_.io(), [&] {
      caller_->Call(Spec(method, 500), [&](CallOutcome o) { done.set_value(std::move(o)); });
    });
    return done.get_future().get();
  }

  FakeClock clock_;
  net::IoThread io_;
  std::unique_ptr<net::RpcServer> server_;
  RpcTransport transport_{io_.io()};
  IoTimers timers_{io_.io()};
  std::unique_ptr<driver::Caller> caller_;
  std::string address_;
  bool hang_ = false;
  std::vector<net::Responder> held_;
};

TEST_F(CallerTest, OpenBreakerRefusesCallsWithoutSendingThem) {
  CallerOptions o;
  o.breaker.consecutive_failures = 3;
  o.breaker.reset_timeout_ms = 1000;
  MakeCaller(o);
  for (int i = 0; i < 3; ++i) {
    CallOutcome sent = CallOnce(v1::methods::kPrepare);
    EXPECT_EQ(sent.response.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(sent.refusal, Refusal::kNone) << "the participant's own failure: sent";
  }
  CallOutcome refused = CallOnce(v1::methods::kPrepare);
  EXPECT_EQ(refused.refusal, Refusal::kBreakerOpen) << "open breaker: fail fast, never sent";
  EXPECT_EQ(refused.response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.response.status().message().find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(CallOnce(v1::methods::kCommit).refusal, Refusal::kBreakerOpen);
  EXPECT_FALSE(caller_->Usable(address_));
  EXPECT_EQ(caller_->StatsOf(address_).breaker, "open");
  clock_.AdvanceMs(1000);
  EXPECT_TRUE(caller_->Usable(address_)) << "after the reset timeout a probe may go through";
  EXPECT_EQ(CallOnce(v1::methods::kCommit).refusal, Refusal::kNone) << "the probe is sent";
  EXPECT_EQ(caller_->StatsOf(address_).breaker, "open") << "a failed probe re-opens";
}

TEST_F(CallerTest, FullBulkheadRefusesWithResourceExhausted) {
  CallerOptions o;
  o.max_in_flight_per_service = 1;
  MakeCaller(o);
  hang_ = true;
  std::promise<Status> first;
  asio::post(io_.io(), [&] {
    caller_->Call(Spec(v1::methods::kPrepare, 2000),
                  [&](CallOutcome r) { first.set_value(r.response.status()); });
  });
  // Wait until the first call holds the only slot and has reached the participant.
  for (int i = 0; i < 2000; ++i) {
    std::promise<bool> arrived;
    asio::post(io_.io(), [&] { arrived.set_value(held_.size() == 1); });
    if (arrived.get_future().get()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(caller_->ServiceInFlight("bank"), 1u);
  CallOutcome second = CallOnce(v1::methods::kPrepare);
  EXPECT_EQ(second.refusal, Refusal::kBulkheadFull);
  EXPECT_EQ(second.response.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(second.response.status().message().find("bulkhead full"), std::string::npos);
  asio::post(io_.io(), [&] {
    for (auto& r : held_) r(std::string());
  });
  EXPECT_TRUE(first.get_future().get().ok());
}

}  // namespace
}  // namespace treaty::coordinator
