// ParseAddress, frame encoding and the Status <-> wire code mapping (no sockets).
#include <gtest/gtest.h>

#include <string>

#include "net/frame.h"
#include "net/rpc.h"

namespace treaty::net {
namespace {

struct Parsed {
  Status status;
  std::string host;
  uint16_t port = 0;
};

Parsed Parse(std::string_view address) {
  Parsed p;
  p.status = ParseAddress(address, &p.host, &p.port);
  return p;
}

TEST(ParseAddressTest, AcceptsIpv4HostnameAndBracketedIpv6) {
  Parsed v4 = Parse("127.0.0.1:7000");
  ASSERT_TRUE(v4.status.ok()) << v4.status.ToString();
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 7000);

  Parsed name = Parse("localhost:7000");
  ASSERT_TRUE(name.status.ok()) << name.status.ToString();
  EXPECT_EQ(name.host, "localhost");
  EXPECT_EQ(name.port, 7000);

  Parsed v6 = Parse("[::1]:7000");
  ASSERT_TRUE(v6.status.ok()) << v6.status.ToString();
  EXPECT_EQ(v6.host, "::1") << "brackets must be stripped from an IPv6 host";
  EXPECT_EQ(v6.port, 7000);
}

TEST(ParseAddressTest, AcceptsPortZeroAndPort65535) {
  EXPECT_EQ(Parse("127.0.0.1:0").port, 0);
  Parsed max = Parse("127.0.0.1:65535");
  ASSERT_TRUE(max.status.ok()) << max.status.ToString();
  EXPECT_EQ(max.port, 65535);
}

TEST(ParseAddressTest, RejectsBadInputWithInvalidArgumentNamingTheAddress) {
  const char* bad[] = {
      "",                  // empty
      "127.0.0.1",         // missing port
      "127.0.0.1:",        // missing port
      "[::1]",             // missing port
      "[::1",              // unterminated bracket
      "[::1]7000",         // no colon after bracket
      ":7000",             // empty host
      "[]:7000",           // empty host
      "host:http",         // non-numeric port
      "host:70a0",         // non-numeric port
      "host:-1",           // non-numeric port
      "host:65536",        // port > 65535
      "host:99999999999",  // port far out of range
      "::1:7000",          // IPv6 without brackets
  };
  for (const char* address : bad) {
    Parsed p = Parse(address);
    EXPECT_EQ(p.status.code(), StatusCode::kInvalidArgument)
        << "'" << address << "' should be rejected, got " << p.status.ToString();
    EXPECT_NE(p.status.message().find(std::string("'") + address + "'"), std::string::npos)
        << "message should quote the address: " << p.status.message();
  }
}

TEST(FrameTest, HeaderIsFourByteBigEndianLengthOfTheBody) {
  v1::Envelope e;
  e.set_request_id(7);
  e.set_method("test.Echo");
  e.set_payload(std::string(300, 'x'));
  std::string frame;
  ASSERT_TRUE(EncodeFrame(e, kDefaultMaxFrameBytes, &frame).ok());
  const size_t body = e.ByteSizeLong();
  ASSERT_EQ(frame.size(), 4 + body);
  EXPECT_EQ(static_cast<unsigned char>(frame[0]), 0);
  EXPECT_EQ(static_cast<unsigned char>(frame[1]), 0);
  EXPECT_EQ(static_cast<unsigned char>(frame[2]), (body >> 8) & 0xff);
  EXPECT_EQ(static_cast<unsigned char>(frame[3]), body & 0xff);
  EXPECT_EQ(GetFrameHeader(frame.data()), body);
  v1::Envelope back;
  ASSERT_TRUE(back.ParseFromString(frame.substr(4)));
  EXPECT_EQ(back.payload(), e.payload());
}

TEST(FrameTest, BodyAboveTheLimitIsInvalidArgumentAndLeavesOutputUntouched) {
  v1::Envelope e;
  e.set_payload(std::string(100, 'x'));
  std::string frame = "unchanged";
  Status s = EncodeFrame(e, 50, &frame);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(frame, "unchanged");
}

TEST(FrameTest, EveryStatusCodeSurvivesTheWire) {
  for (int c = 1; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    const auto code = static_cast<StatusCode>(c);
    v1::Envelope e;
    e.set_code(ToWireCode(code));
    e.set_message("why");
    Status s = StatusFromEnvelope(e);
    EXPECT_EQ(s.code(), code) << "code " << c << " changed on the wire";
    EXPECT_EQ(s.message(), "why");
  }
  EXPECT_TRUE(StatusFromEnvelope(v1::Envelope()).ok());
}

TEST(FrameTest, UnknownWireCodeBecomesInternalNamingTheNumber) {
  v1::Envelope e;
  e.set_code(static_cast<v1::Code>(42));
  e.set_message("from the future");
  Status s = StatusFromEnvelope(e);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("42"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("from the future"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace treaty::net
