#include "coordinator/participant_caller.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <future>
#include <thread>

#include "treaty/v1/methods.h"

namespace treaty::coordinator {
using twopc::CallParticipant;
using twopc::Phase;

namespace {

// A participant whose every call fails (UNAVAILABLE) or never answers, on a real socket.
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
    caller_ = std::make_unique<ParticipantCaller>(io_.io(), clock_, o, nullptr);
  }
  // Runs one call on the I/O thread and waits for its result.
  Status CallOnce(Phase phase) {
    std::promise<Status> done;
    asio::post(io_.io(), [&] {
      CallParticipant c;
      c.xid = "x";
      c.service = "bank";
      c.phase = phase;
      c.deadline_ms = 500;
      caller_->Call(c, address_, [&](Result<std::string> r) { done.set_value(r.status()); });
    });
    return done.get_future().get();
  }

  FakeClock clock_;
  net::IoThread io_;
  std::unique_ptr<net::RpcServer> server_;
  std::unique_ptr<ParticipantCaller> caller_;
  std::string address_;
  bool hang_ = false;
  std::vector<net::Responder> held_;
};

TEST_F(CallerTest, OpenBreakerFailsPrepareFastAsAbortAndDelaysDecisions) {
  CallerOptions o;
  o.breaker.consecutive_failures = 3;
  o.breaker.reset_timeout_ms = 1000;
  MakeCaller(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(CallOnce(Phase::kPrepare).code(), StatusCode::kUnavailable);
  Status prepare = CallOnce(Phase::kPrepare);
  EXPECT_EQ(prepare.code(), StatusCode::kAborted) << "open breaker: PREPARE must fail fast";
  EXPECT_NE(prepare.message().find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(CallOnce(Phase::kCommit).code(), StatusCode::kUnavailable)
      << "open breaker: a decision is refused as transient, so the core retries it";
  EXPECT_FALSE(caller_->Usable(address_));
  EXPECT_EQ(caller_->StatsOf(address_).breaker, "open");
  clock_.AdvanceMs(1000);
  EXPECT_TRUE(caller_->Usable(address_)) << "after the reset timeout a probe may go through";
  EXPECT_EQ(CallOnce(Phase::kCommit).code(), StatusCode::kUnavailable) << "the probe is sent";
  EXPECT_EQ(caller_->StatsOf(address_).breaker, "open") << "a failed probe re-opens";
}

TEST_F(CallerTest, FullBulkheadRefusesWithResourceExhausted) {
  CallerOptions o;
  o.max_in_flight_per_service = 1;
  MakeCaller(o);
  hang_ = true;
  std::promise<Status> first;
  asio::post(io_.io(), [&] {
    CallParticipant c;
    c.xid = "x";
    c.service = "bank";
    c.phase = Phase::kPrepare;
    c.deadline_ms = 2000;
    caller_->Call(c, address_, [&](Result<std::string> r) { first.set_value(r.status()); });
  });
  // Wait until the first call holds the only slot and has reached the participant.
  for (int i = 0; i < 2000; ++i) {
    std::promise<bool> arrived;
    asio::post(io_.io(), [&] { arrived.set_value(held_.size() == 1); });
    if (arrived.get_future().get()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(caller_->ServiceInFlight("bank"), 1u);
  Status second = CallOnce(Phase::kPrepare);
  EXPECT_EQ(second.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(second.message().find("bulkhead full"), std::string::npos);
  asio::post(io_.io(), [&] {
    for (auto& r : held_) r(std::string());
  });
  EXPECT_TRUE(first.get_future().get().ok());
}

}  // namespace
}  // namespace treaty::coordinator
