#include "coordinator/registry.h"

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace treaty::coordinator {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override { log_.reset(); }
  void Open() {
    log_.reset();
    log::LogOptions o;
    o.dir = dir_.Sub("log");
    auto l = log::EventLog::Open(o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    log_ = std::move(*l);
  }
  Result<std::string> Pick(Registry& r, const std::string& service, int64_t now_ms) {
    return r.Pick(
        service, "k", now_ms, [](const std::string&) { return true; },
        [](const std::string&) { return 0u; });
  }

  treaty::testing::TempDir dir_{"registry"};
  std::unique_ptr<log::EventLog> log_;
};

TEST_F(RegistryTest, ExpiredInstanceLeavesTheRotationAndComesBackOnHeartbeat) {
  RegistryOptions o;
  o.lease_ms = 1000;
  Registry r(*log_, o);
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:1", 1, 0, 0).ok());
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:2", 1, 0, 0).ok());
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:2", 1, 900, 0).ok());  // heartbeat of :2 only
  for (int i = 0; i < 4; ++i) {
    auto p = Pick(r, "bank", 1500);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, "127.0.0.1:2") << "the instance without a heartbeat must not be chosen";
  }
  auto none = Pick(r, "bank", 5000);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:1", 1, 5000, 0).ok());
  EXPECT_EQ(*Pick(r, "bank", 5001), "127.0.0.1:1");
  EXPECT_TRUE(r.Known("bank"));
}

TEST_F(RegistryTest, UnknownServiceIsNotFoundAndBadInputIsRejected) {
  Registry r(*log_, {});
  EXPECT_EQ(Pick(r, "nope", 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.Register("", "127.0.0.1:1", 1, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Register("s", "no-port", 1, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Register(std::string(kMaxServiceNameBytes + 1, 'x'), "127.0.0.1:1", 1, 0, 0).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, UnusableInstancesAreSkipped) {
  Registry r(*log_, {});
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:1", 1, 0, 0).ok());
  ASSERT_TRUE(r.Register("bank", "127.0.0.1:2", 1, 0, 0).ok());
  auto usable = [](const std::string& a) { return a != "127.0.0.1:1"; };
  for (int i = 0; i < 4; ++i) {
    auto p = r.Pick("bank", "k", 0, usable, [](const std::string&) { return 0u; });
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, "127.0.0.1:2");
  }
  auto none = r.Pick(
      "bank", "k", 0, [](const std::string&) { return false; },
      [](const std::string&) { return 0u; });
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("circuit breakers open"), std::string::npos);
}

TEST_F(RegistryTest, RegistrationsSurviveARestartWithAFreshLease) {
  {
    Registry r(*log_, {});
    ASSERT_TRUE(r.Register("bank", "127.0.0.1:7", 3, 0, 0).ok());
  }
  Open();
  Registry r(*log_, {});
  ASSERT_TRUE(r.Load(1'000'000).ok());
  auto p = Pick(r, "bank", 1'000'001);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, "127.0.0.1:7");
  auto list = r.List(1'000'001);
  ASSERT_EQ(list.size(), 1u);
  ASSERT_EQ(list[0].instances.size(), 1u);
  EXPECT_EQ(list[0].instances[0].weight, 3u);
  EXPECT_TRUE(list[0].instances[0].live);
}

TEST_F(RegistryTest, PerServicePolicyOverridesTheDefault) {
  RegistryOptions o;
  o.policies["hashed"] = LbPolicy::kConsistentHash;
  Registry r(*log_, o);
  ASSERT_TRUE(r.Register("hashed", "127.0.0.1:1", 1, 0, 0).ok());
  ASSERT_TRUE(r.Register("plain", "127.0.0.1:2", 1, 0, 0).ok());
  auto list = r.List(0);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].policy, LbPolicy::kConsistentHash);
  EXPECT_EQ(list[1].policy, LbPolicy::kRoundRobin);
}

}  // namespace
}  // namespace treaty::coordinator
