// Misbehaving peers, driven with raw sockets: the server must drop only the offending connection
// (with a logged reason naming the peer), and the client must drop a server that answers ids it
// never used.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "net/rpc.h"
#include "tests/unit/net/net_test_util.h"

namespace treaty::net {
namespace {

using namespace std::chrono_literals;
using testing::RawFrame;
using testing::RawListener;
using testing::RawSocket;
using testing::Recorder;
using testing::RequestFrame;

// Captures log lines of the whole binary. Installed before any test starts an io thread, since
// swapping the default logger is not safe while other threads log.
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> g_log_capture;

class LogCaptureEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_log_capture = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
    auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>(
        "net-test", spdlog::sinks_init_list{stderr_sink, g_log_capture});
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
};
[[maybe_unused]] ::testing::Environment* const g_env =
    ::testing::AddGlobalTestEnvironment(new LogCaptureEnvironment);

// True if a captured warning mentions both strings.
bool WarnedAbout(const std::string& a, const std::string& b) {
  for (const std::string& line : g_log_capture->last_formatted()) {
    if (line.find("warn") != std::string::npos && line.find(a) != std::string::npos &&
        line.find(b) != std::string::npos) {
      return true;
    }
  }
  return false;
}

class RawFrameTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RpcOptions options;
    options.max_frame_bytes = 64 * 1024;
    server_ = std::make_unique<RpcServer>(io_.io(), options);
    server_->Register("test.Echo", [](std::string p, uint32_t, Responder respond) { respond(p); });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  }

  // The server must still answer a well-behaved client.
  void ExpectServerStillServes() {
    auto good = RawSocket::Connect(server_->port());
    ASSERT_NE(good, nullptr);
    ASSERT_TRUE(good->SendAll(RequestFrame(1, "test.Echo", "still here")));
    v1::Envelope response;
    ASSERT_TRUE(good->RecvEnvelope(&response)) << "server stopped answering other clients";
    EXPECT_TRUE(response.is_response());
    EXPECT_EQ(response.request_id(), 1u);
    EXPECT_EQ(response.payload(), "still here");
  }

  IoThread io_;
  std::unique_ptr<RpcServer> server_;
};

TEST_F(RawFrameTest, OversizedLengthPrefixClosesThatConnectionOnly) {
  auto bad = RawSocket::Connect(server_->port());
  ASSERT_NE(bad, nullptr);
  const std::string peer = "127.0.0.1:" + std::to_string(bad->local_port());
  ASSERT_TRUE(bad->SendAll(std::string("\x7f\xff\xff\xff", 4)));
  EXPECT_TRUE(bad->WaitForPeerClose()) << "server kept a connection that sent a 2 GiB length";
  EXPECT_TRUE(WarnedAbout(peer, "exceeds")) << "no warning naming " << peer << " and the reason";
  ExpectServerStillServes();
}

TEST_F(RawFrameTest, UnparsableBodyClosesThatConnectionOnly) {
  auto bad = RawSocket::Connect(server_->port());
  ASSERT_NE(bad, nullptr);
  const std::string peer = "127.0.0.1:" + std::to_string(bad->local_port());
  // 0xff bytes form a varint that never ends: no valid Envelope starts like this.
  ASSERT_TRUE(bad->SendAll(RawFrame(std::string(16, '\xff'))));
  EXPECT_TRUE(bad->WaitForPeerClose()) << "server kept a connection that sent garbage";
  EXPECT_TRUE(WarnedAbout(peer, "malformed")) << "no warning naming " << peer;
  ExpectServerStillServes();
}

TEST_F(RawFrameTest, ZeroLengthFrameClosesThatConnectionOnly) {
  auto bad = RawSocket::Connect(server_->port());
  ASSERT_NE(bad, nullptr);
  ASSERT_TRUE(bad->SendAll(std::string(4, '\0')));
  EXPECT_TRUE(bad->WaitForPeerClose()) << "a zero-length frame must be treated as malformed";
  ExpectServerStillServes();
}

TEST_F(RawFrameTest, ResponseFrameSentToTheServerClosesThatConnection) {
  auto bad = RawSocket::Connect(server_->port());
  ASSERT_NE(bad, nullptr);
  v1::Envelope e;
  e.set_request_id(5);
  e.set_is_response(true);
  ASSERT_TRUE(bad->SendAll(RawFrame(e.SerializeAsString())));
  EXPECT_TRUE(bad->WaitForPeerClose());
  ExpectServerStillServes();
}

TEST_F(RawFrameTest, FrameSplitIntoOneByteWritesStillParses) {
  auto client = RawSocket::Connect(server_->port());
  ASSERT_NE(client, nullptr);
  const std::string frame = RequestFrame(9, "test.Echo", "dribbled");
  for (char byte : frame) {
    ASSERT_TRUE(client->SendAll(std::string(1, byte)));
    std::this_thread::sleep_for(1ms);  // defeat coalescing in the kernel
  }
  v1::Envelope response;
  ASSERT_TRUE(client->RecvEnvelope(&response)) << "no response to a frame sent byte by byte";
  EXPECT_EQ(response.request_id(), 9u);
  EXPECT_EQ(response.payload(), "dribbled");
}

TEST_F(RawFrameTest, ManyFramesInOneWriteAreAllAnsweredAndResponsesEchoTheirIds) {
  auto client = RawSocket::Connect(server_->port());
  ASSERT_NE(client, nullptr);
  std::string burst;
  for (uint64_t id = 1; id <= 50; ++id) burst += RequestFrame(id, "test.Echo", std::to_string(id));
  ASSERT_TRUE(client->SendAll(burst));
  for (uint64_t id = 1; id <= 50; ++id) {
    v1::Envelope response;
    ASSERT_TRUE(client->RecvEnvelope(&response)) << "response " << id << " missing";
    EXPECT_EQ(response.request_id(), id);
    EXPECT_EQ(response.payload(), std::to_string(id));
    EXPECT_EQ(response.code(), v1::CODE_OK);
  }
}

TEST_F(RawFrameTest, FrameOfExactlyTheMaximumSizeIsAccepted) {
  auto client = RawSocket::Connect(server_->port());
  ASSERT_NE(client, nullptr);
  v1::Envelope e;
  e.set_request_id(1);
  e.set_method("test.Echo");
  e.set_payload(std::string(64 * 1024 - 32, 'm'));
  // Pad the payload so the body is exactly max_frame_bytes long.
  e.mutable_payload()->append(64 * 1024 - e.ByteSizeLong(), 'm');
  ASSERT_EQ(e.ByteSizeLong(), 64u * 1024u);
  ASSERT_TRUE(client->SendAll(RawFrame(e.SerializeAsString())));
  v1::Envelope response;
  ASSERT_TRUE(client->RecvEnvelope(&response)) << "a frame at the limit must be accepted";
  // The response carries no method, so the echo fits too.
  EXPECT_EQ(response.code(), v1::CODE_OK) << response.message();
  EXPECT_EQ(response.payload(), e.payload());
}

TEST(ClientProtocolTest, RequestIdsIncreaseAndUnknownResponseIdClosesTheConnection) {
  RawListener listener;
  IoThread io;
  auto channel = RpcChannel::Create(io.io(), listener.address());
  Recorder r;
  channel->Call("test.A", "a", 2000, r.callback());
  channel->Call("test.B", "b", 2000, r.callback());
  auto server_side = listener.Accept();
  ASSERT_NE(server_side, nullptr);
  v1::Envelope first, second;
  ASSERT_TRUE(server_side->RecvEnvelope(&first));
  ASSERT_TRUE(server_side->RecvEnvelope(&second));
  EXPECT_EQ(first.method(), "test.A");
  EXPECT_EQ(second.method(), "test.B");
  EXPECT_LT(first.request_id(), second.request_id()) << "request ids must increase";
  EXPECT_GT(first.deadline_ms(), 0u);

  // Answer the first correctly, then answer an id that was never sent.
  v1::Envelope ok;
  ok.set_request_id(first.request_id());
  ok.set_is_response(true);
  ok.set_payload("fine");
  v1::Envelope bogus;
  bogus.set_request_id(second.request_id() + 1000);
  bogus.set_is_response(true);
  ASSERT_TRUE(
      server_side->SendAll(RawFrame(ok.SerializeAsString()) + RawFrame(bogus.SerializeAsString())));
  ASSERT_TRUE(r.WaitFor(2));
  ASSERT_TRUE(r.at(0).ok()) << r.at(0).status().ToString();
  EXPECT_EQ(*r.at(0), "fine");
  EXPECT_EQ(r.at(1).status().code(), StatusCode::kUnavailable)
      << "the pending call must fail when the connection is dropped: "
      << r.at(1).status().ToString();
  EXPECT_TRUE(server_side->WaitForPeerClose()) << "client kept a connection with a lying server";
  EXPECT_TRUE(WarnedAbout(listener.address(), "unknown request_id"));
  channel.reset();
}

}  // namespace
}  // namespace treaty::net
