// Connection lifecycle of RpcChannel: refused connections, reconnects, server stop, channel close
// and channel handles dropped with calls in flight.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "net/rpc.h"
#include "tests/unit/net/net_test_util.h"

namespace treaty::net {
namespace {

using namespace std::chrono_literals;
using testing::HeldResponders;
using testing::Recorder;

// A port that was free a moment ago: bound by a server that is then stopped.
uint16_t FreePort(asio::io_context& io) {
  RpcServer probe(io);
  if (!probe.Listen("127.0.0.1:0").ok()) return 0;
  return probe.port();
}

void RegisterHandlers(RpcServer& server, HeldResponders* held) {
  server.Register("test.Echo", [](std::string p, uint32_t, Responder respond) { respond(p); });
  server.Register("test.Hold", [held](std::string p, uint32_t, Responder respond) {
    held->Add(std::move(p), std::move(respond));
  });
}

Result<std::string> CallAndWait(RpcChannel& channel, const std::string& method,
                                std::string payload) {
  Recorder r;
  channel.Call(method, std::move(payload), 2000, r.callback());
  if (!r.WaitFor(1)) return Status::Internal("test: no callback within 5 s");
  return r.at(0);
}

class ConnectionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Channels go before the io threads that serve them.
    channel_.reset();
  }

  IoThread server_io_;
  IoThread client_io_;
  HeldResponders held_;
  std::shared_ptr<RpcChannel> channel_;
};

TEST_F(ConnectionTest, RefusedConnectionFailsQuicklyWithUnavailableNamingTheAddress) {
  const uint16_t port = FreePort(server_io_.io());
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  channel_ = RpcChannel::Create(client_io_.io(), address);
  const auto start = std::chrono::steady_clock::now();
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "x");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find(address), std::string::npos) << r.status().message();
  EXPECT_LT(elapsed, 500ms) << "a refused connection should fail at once, not after a timeout";
}

TEST_F(ConnectionTest, EveryCallQueuedWhileConnectingFailsWhenTheConnectFails) {
  const uint16_t port = FreePort(server_io_.io());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(port));
  Recorder r;
  for (int i = 0; i < 10; ++i) channel_->Call("test.Echo", "x", 2000, r.callback());
  ASSERT_TRUE(r.WaitFor(10));
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(r.at(i).status().code(), StatusCode::kUnavailable) << r.at(i).status().ToString();
  }
}

TEST_F(ConnectionTest, ConnectThatHangsFailsWithUnavailableAfterTheConnectTimeout) {
  testing::RawListener listener(/*backlog=*/0);
  auto filler = testing::RawSocket::Connect(listener.port(), 500);  // fills the accept queue
  ASSERT_NE(filler, nullptr);
  RpcOptions options;
  options.connect_timeout_ms = 100;
  channel_ = RpcChannel::Create(client_io_.io(), listener.address(), options);
  const auto start = std::chrono::steady_clock::now();
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "x");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
  EXPECT_GE(elapsed, 90ms);
  EXPECT_LT(elapsed, 1000ms) << "the connect timeout was not enforced";
}

TEST_F(ConnectionTest, UnparsableAddressFailsCallsWithInvalidArgument) {
  channel_ = RpcChannel::Create(client_io_.io(), "no-port-here");
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no-port-here"), std::string::npos) << r.status().message();
}

TEST_F(ConnectionTest, UnresolvableHostFailsWithUnavailable) {
  channel_ = RpcChannel::Create(client_io_.io(), "no-such-host.invalid:7000");
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

TEST_F(ConnectionTest, HostnameAddressConnects) {
  RpcServer server(server_io_.io());
  RegisterHandlers(server, &held_);
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "localhost:" + std::to_string(server.port()));
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "by name");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "by name");
  channel_.reset();
}

TEST_F(ConnectionTest, ServerStopFailsPendingCallsWithUnavailable) {
  auto server = std::make_unique<RpcServer>(server_io_.io());
  RegisterHandlers(*server, &held_);
  ASSERT_TRUE(server->Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server->port()));
  Recorder r;
  for (int i = 0; i < 3; ++i) channel_->Call("test.Hold", "x", 0, r.callback());
  ASSERT_TRUE(held_.WaitFor(3));
  server->Stop();
  ASSERT_TRUE(r.WaitFor(3)) << "pending calls were not failed after the server stopped";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.at(i).status().code(), StatusCode::kUnavailable) << r.at(i).status().ToString();
  }
}

TEST_F(ConnectionTest, ChannelReconnectsOnTheNextCallAfterServerRestart) {
  auto server = std::make_unique<RpcServer>(server_io_.io());
  RegisterHandlers(*server, &held_);
  ASSERT_TRUE(server->Listen("127.0.0.1:0").ok());
  const uint16_t port = server->port();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  channel_ = RpcChannel::Create(client_io_.io(), address);
  ASSERT_TRUE(CallAndWait(*channel_, "test.Echo", "before").ok());

  // A held call tells us when the channel has seen the connection drop.
  Recorder dropped;
  channel_->Call("test.Hold", "x", 0, dropped.callback());
  ASSERT_TRUE(held_.WaitFor(1));
  server.reset();
  ASSERT_TRUE(dropped.WaitFor(1));
  EXPECT_EQ(dropped.at(0).status().code(), StatusCode::kUnavailable);

  server = std::make_unique<RpcServer>(server_io_.io());
  RegisterHandlers(*server, &held_);
  ASSERT_TRUE(server->Listen(address).ok()) << "port " << port << " could not be reused";
  Result<std::string> r = CallAndWait(*channel_, "test.Echo", "after");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "after");
}

TEST_F(ConnectionTest, CloseFailsPendingCallsAndTheNextCallReconnects) {
  RpcServer server(server_io_.io());
  RegisterHandlers(server, &held_);
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  channel_ = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server.port()));
  Recorder r;
  channel_->Call("test.Hold", "x", 0, r.callback());
  ASSERT_TRUE(held_.WaitFor(1));
  channel_->Close();
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(r.at(0).status().code(), StatusCode::kUnavailable) << r.at(0).status().ToString();

  held_.Take()[0].second(std::string("after close"));  // answered on a dead connection
  Result<std::string> again = CallAndWait(*channel_, "test.Echo", "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, "again");
  EXPECT_EQ(r.count(), 1u);
  channel_.reset();
}

TEST_F(ConnectionTest, DroppingTheLastChannelHandleStillDeliversPendingResponses) {
  RpcServer server(server_io_.io());
  RegisterHandlers(server, &held_);
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  auto channel = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server.port()));
  Recorder r;
  channel->Call("test.Hold", "a", 0, r.callback());
  channel->Call("test.Hold", "b", 2000, r.callback());
  channel.reset();
  ASSERT_TRUE(held_.WaitFor(2)) << "calls made before the handle was dropped were not sent";
  for (auto& [payload, respond] : held_.Take()) respond("re:" + payload);
  ASSERT_TRUE(r.WaitFor(2));
  ASSERT_TRUE(r.at(0).ok()) << r.at(0).status().ToString();
  ASSERT_TRUE(r.at(1).ok()) << r.at(1).status().ToString();
  EXPECT_EQ(*r.at(0), "re:a");
  EXPECT_EQ(*r.at(1), "re:b");
}

TEST_F(ConnectionTest, DroppedChannelWhoseServerDiesFailsPendingCallsWithUnavailable) {
  auto server = std::make_unique<RpcServer>(server_io_.io());
  RegisterHandlers(*server, &held_);
  ASSERT_TRUE(server->Listen("127.0.0.1:0").ok());
  auto channel = RpcChannel::Create(client_io_.io(), "127.0.0.1:" + std::to_string(server->port()));
  Recorder r;
  channel->Call("test.Hold", "a", 0, r.callback());
  channel.reset();
  ASSERT_TRUE(held_.WaitFor(1));
  server.reset();
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(r.at(0).status().code(), StatusCode::kUnavailable) << r.at(0).status().ToString();
}

}  // namespace
}  // namespace treaty::net
