// RpcServer + RpcChannel over real loopback sockets: round trips, pipelining, errors, deadlines
// and responders.
#include "net/rpc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/net/net_test_util.h"

namespace treaty::net {
namespace {

using namespace std::chrono_literals;
using testing::HeldResponders;
using testing::Recorder;

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RpcServer>(server_io_.io());
    server_->Register("test.Echo", [this](std::string payload, uint32_t, Responder respond) {
      echo_calls_.fetch_add(1);
      respond(std::move(payload));
    });
    server_->Register("test.Fail", [](std::string, uint32_t, Responder respond) {
      respond(Status::Aborted("insufficient funds in account 17"));
    });
    server_->Register("test.Hold", [this](std::string payload, uint32_t, Responder respond) {
      held_.Add(std::move(payload), std::move(respond));
    });
    server_->Register("test.Deadline", [](std::string, uint32_t deadline_ms, Responder respond) {
      respond(std::to_string(deadline_ms));
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    ASSERT_NE(server_->port(), 0);
    address_ = "127.0.0.1:" + std::to_string(server_->port());
    channel_ = RpcChannel::Create(client_io_.io(), address_);
  }

  void TearDown() override {
    channel_.reset();
    server_.reset();
    for (auto& t : threads_) t.join();
  }

  // Makes one call and waits for its result.
  Result<std::string> CallAndWait(const std::string& method, std::string payload,
                                  int64_t deadline_ms = 2000) {
    Recorder r;
    channel_->Call(method, std::move(payload), deadline_ms, r.callback());
    if (!r.WaitFor(1)) return Status::Internal("test: no callback within 5 s");
    return r.at(0);
  }

  IoThread server_io_;
  IoThread client_io_;
  std::unique_ptr<RpcServer> server_;
  std::shared_ptr<RpcChannel> channel_;
  std::string address_;
  std::atomic<int> echo_calls_{0};
  HeldResponders held_;
  std::vector<std::thread> threads_;
};

TEST_F(RpcTest, EchoRoundTripReturnsThePayload) {
  const std::string payload("hello\0world", 11);  // binary-safe
  Result<std::string> r = CallAndWait("test.Echo", payload);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, payload);
  EXPECT_EQ(channel_->address(), address_);
}

TEST_F(RpcTest, EmptyPayloadRoundTrips) {
  Result<std::string> r = CallAndWait("test.Echo", "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "");
}

TEST_F(RpcTest, ThousandPipelinedCallsCompleteWithTheirOwnPayloadsInAnyOrder) {
  // Even requests are answered at once; odd ones are held and answered later in reverse order
  // from this thread, so responses come back out of request order.
  server_->Stop();
  server_ = std::make_unique<RpcServer>(server_io_.io());
  server_->Register("test.Mixed", [this](std::string payload, uint32_t, Responder respond) {
    if (std::stoi(payload) % 2 == 0) {
      respond(std::move(payload));
    } else {
      held_.Add(std::move(payload), std::move(respond));
    }
  });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server_->port()));

  constexpr int kCalls = 1000;
  std::vector<Recorder> recorders(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    channel_->Call("test.Mixed", std::to_string(i), 5000, recorders[i].callback());
  }
  ASSERT_TRUE(held_.WaitFor(kCalls / 2)) << "odd requests did not all reach the handler";
  auto held = held_.Take();
  std::reverse(held.begin(), held.end());
  for (auto& [payload, respond] : held) respond(payload);

  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(recorders[i].WaitFor(1)) << "call " << i << " never completed";
    Result<std::string> r = recorders[i].at(0);
    ASSERT_TRUE(r.ok()) << "call " << i << ": " << r.status().ToString();
    EXPECT_EQ(*r, std::to_string(i)) << "call " << i << " got another call's response";
  }
  std::this_thread::sleep_for(20ms);
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(recorders[i].count(), 1u) << "call " << i << " completed more than once";
  }
}

TEST_F(RpcTest, CallsFromManyThreadsOnOneChannelAreAllAnswered) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<Recorder> recorders(kThreads * kPerThread);
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        channel_->Call("test.Echo", std::to_string(n), 5000, recorders[n].callback());
      }
    });
  }
  for (auto& c : callers) c.join();
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    ASSERT_TRUE(recorders[n].WaitFor(1)) << "call " << n << " never completed";
    Result<std::string> r = recorders[n].at(0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, std::to_string(n));
  }
}

TEST_F(RpcTest, UnknownMethodIsNotFoundNamingTheMethod) {
  Result<std::string> r = CallAndWait("test.NoSuchMethod", "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("test.NoSuchMethod"), std::string::npos)
      << r.status().message();
}

TEST_F(RpcTest, HandlerErrorReachesTheCallerWithCodeAndMessage) {
  Result<std::string> r = CallAndWait("test.Fail", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "insufficient funds in account 17");
}

TEST_F(RpcTest, RequestCarriesTheCallBudgetAsDeadlineMs) {
  Result<std::string> with = CallAndWait("test.Deadline", "", 1234);
  ASSERT_TRUE(with.ok()) << with.status().ToString();
  EXPECT_EQ(*with, "1234");
  Result<std::string> without = CallAndWait("test.Deadline", "", 0);
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  EXPECT_EQ(*without, "0") << "a call without deadline must send deadline_ms = 0";
}

TEST_F(RpcTest, DeadlineExceededWhenHandlerNeverRespondsAndLateResponseIsDropped) {
  Recorder timed_out;
  const auto start = std::chrono::steady_clock::now();
  channel_->Call("test.Hold", "late", 50, timed_out.callback());
  ASSERT_TRUE(timed_out.WaitFor(1));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  Result<std::string> r = timed_out.at(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  EXPECT_GE(elapsed, 45ms) << "deadline fired early";
  EXPECT_LT(elapsed, 1000ms) << "deadline fired far too late";

  // A second held call shows whether the connection survives the late response.
  Recorder still_pending;
  channel_->Call("test.Hold", "pending", 0, still_pending.callback());
  ASSERT_TRUE(held_.WaitFor(2));
  auto held = held_.Take();
  ASSERT_EQ(held[0].first, "late");
  held[0].second(std::string("too late"));

  Result<std::string> echo = CallAndWait("test.Echo", "after");
  ASSERT_TRUE(echo.ok()) << echo.status().ToString();
  EXPECT_EQ(*echo, "after");
  EXPECT_EQ(timed_out.count(), 1u) << "the late response reached the timed-out call";
  EXPECT_EQ(still_pending.count(), 0u)
      << "the late response closed the connection: " << still_pending.at(0).status().ToString();

  held[1].second(std::string("done"));
  ASSERT_TRUE(still_pending.WaitFor(1));
  EXPECT_EQ(*still_pending.at(0), "done");
}

TEST_F(RpcTest, NegativeBudgetFailsWithDeadlineExceededWithoutSending) {
  Result<std::string> r = CallAndWait("test.Echo", "x", -1);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  EXPECT_EQ(echo_calls_.load(), 0);
}

TEST_F(RpcTest, ResponderCalledFromAnotherThreadDeliversTheResponse) {
  server_->Stop();
  server_ = std::make_unique<RpcServer>(server_io_.io());
  std::mutex mu;
  server_->Register("test.Async", [&](std::string payload, uint32_t, Responder respond) {
    std::lock_guard<std::mutex> lock(mu);
    threads_.emplace_back([payload = std::move(payload), respond = std::move(respond)] {
      std::this_thread::sleep_for(5ms);
      respond("worker:" + payload);
    });
  });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server_->port()));
  Result<std::string> r = CallAndWait("test.Async", "job");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "worker:job");
}

TEST_F(RpcTest, SecondResponderCallIsIgnored) {
  server_->Stop();
  server_ = std::make_unique<RpcServer>(server_io_.io());
  server_->Register("test.Twice", [](std::string, uint32_t, Responder respond) {
    Responder copy = respond;
    respond(std::string("first"));
    copy(std::string("second"));
    respond(Status::Internal("third"));
  });
  server_->Register("test.Echo", [](std::string p, uint32_t, Responder respond) { respond(p); });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server_->port()));

  Recorder r;
  channel_->Call("test.Twice", "", 2000, r.callback());
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(*r.at(0), "first");
  // A duplicate response would be for an unknown request id and close the connection; the
  // next call would then fail or reconnect. Check the channel is healthy and no extra callback.
  Result<std::string> echo = CallAndWait("test.Echo", "ok");
  ASSERT_TRUE(echo.ok()) << echo.status().ToString();
  EXPECT_EQ(r.count(), 1u);
}

TEST_F(RpcTest, ResponderAfterServerStopIsANoOp) {
  Recorder r;
  channel_->Call("test.Hold", "x", 0, r.callback());
  ASSERT_TRUE(held_.WaitFor(1));
  server_->Stop();
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(r.at(0).status().code(), StatusCode::kUnavailable) << r.at(0).status().ToString();
  auto held = held_.Take();
  held[0].second(std::string("nobody listens"));  // must not crash
  server_.reset();
  held[0].second(std::string("still nobody"));
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(r.count(), 1u);
}

TEST_F(RpcTest, OversizedResponseIsReplacedByInternalError) {
  server_->Stop();
  RpcOptions small;
  small.max_frame_bytes = 1024;
  server_ = std::make_unique<RpcServer>(server_io_.io(), small);
  server_->Register("test.Big", [](std::string, uint32_t, Responder respond) {
    respond(std::string(4096, 'x'));
  });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server_->port()));
  Result<std::string> r = CallAndWait("test.Big", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().ToString();
  EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
}

TEST_F(RpcTest, OversizedRequestIsRefusedClientSideWithoutSending) {
  RpcOptions small;
  small.max_frame_bytes = 1024;
  channel_ = RpcChannel::Create(client_io_.io(), address_, small);
  Result<std::string> r = CallAndWait("test.Echo", std::string(2000, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("1024"), std::string::npos) << r.status().message();
  Result<std::string> fits = CallAndWait("test.Echo", std::string(500, 'y'));
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_EQ(echo_calls_.load(), 1) << "the oversized request reached the server";
}

TEST_F(RpcTest, HandlerThatThrowsAnswersInternal) {
  server_->Stop();
  server_ = std::make_unique<RpcServer>(server_io_.io());
  server_->Register("test.Throw", [](std::string, uint32_t, Responder) -> void {
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server_->port()));
  Result<std::string> r = CallAndWait("test.Throw", "");
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().ToString();
  EXPECT_NE(r.status().message().find("boom"), std::string::npos) << r.status().message();
}

TEST_F(RpcTest, ListenOnABoundPortIsUnavailable) {
  RpcServer second(server_io_.io());
  Status s = second.Listen(address_);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(second.Listen("nonsense").code(), StatusCode::kInvalidArgument);
}

TEST(RpcClientTest, BlockingAndAsyncCallsRoundTrip) {
  IoThread io;
  RpcServer server(io.io());
  server.Register("test.Echo", [](std::string p, uint32_t, Responder respond) { respond(p); });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  const std::string address = "127.0.0.1:" + std::to_string(server.port());

  RpcClient client;
  Result<std::string> r = client.Call(address, "test.Echo", "blocking", 2000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "blocking");

  Recorder async;
  client.CallAsync(address, "test.Echo", "async", 2000, async.callback());
  ASSERT_TRUE(async.WaitFor(1));
  EXPECT_EQ(*async.at(0), "async");
}

TEST(RpcClientTest, DestroyingTheClientFailsPendingCallsWithUnavailable) {
  IoThread io;
  RpcServer server(io.io());
  HeldResponders held;
  server.Register("test.Hold", [&](std::string p, uint32_t, Responder respond) {
    held.Add(std::move(p), std::move(respond));
  });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  Recorder r;
  {
    RpcClient client;
    client.CallAsync("127.0.0.1:" + std::to_string(server.port()), "test.Hold", "", 0,
                     r.callback());
    ASSERT_TRUE(held.WaitFor(1));
  }
  ASSERT_EQ(r.count(), 1u) << "the pending call's callback did not run before ~RpcClient returned";
  EXPECT_EQ(r.at(0).status().code(), StatusCode::kUnavailable) << r.at(0).status().ToString();
}

TEST(IoThreadTest, StopFromAHandlerOnItsOwnThreadDoesNotDeadlock) {
  RpcClient client;
  auto io = std::make_unique<IoThread>();
  auto server = std::make_unique<RpcServer>(io->io());
  std::atomic<bool> ran{false};
  server->Register("test.Stop", [&](std::string, uint32_t, Responder) {
    ran.store(true);
    io->Stop();  // must return: the thread cannot join itself
  });
  ASSERT_TRUE(server->Listen("127.0.0.1:0").ok());
  Result<std::string> r =
      client.Call("127.0.0.1:" + std::to_string(server->port()), "test.Stop", "", 200);
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  server.reset();
  io.reset();  // joins the stopped thread
}

TEST(IoThreadTest, StopIsIdempotent) {
  IoThread io;
  io.Stop();
  io.Stop();
  SUCCEED();
}

}  // namespace
}  // namespace treaty::net
