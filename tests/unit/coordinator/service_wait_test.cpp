#include "coordinator/service_wait.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace treaty::coordinator {
namespace {

TEST(ServiceWaitTest, WaitsOnlyDuringTheFirstLeaseAndAtMostTheBudget) {
  ServiceWait wait(/*serving_since_ms=*/1000, /*first_period_ms=*/6000);
  EXPECT_EQ(wait.WaitMs({"bank-b"}, 5000, 1000), 5000) << "the budget bounds the wait";
  EXPECT_EQ(wait.WaitMs({"bank-b"}, 5000, 4000), 3000) << "never past the first lease period";
  EXPECT_EQ(wait.WaitMs({"bank-b"}, 5000, 7000), 0) << "afterwards an unknown service is refused";
  EXPECT_EQ(wait.WaitMs({}, 5000, 1000), 0) << "nothing unknown: nothing to wait for";
}

TEST(ServiceWaitTest, AHeldSubmissionGoesOnOnceEveryServiceItWaitsForRegistered) {
  ServiceWait wait(0, 6000);
  int resumed = 0;
  wait.Hold({"bank-b", "bank-c"}, [&] { ++resumed; });
  for (auto& r : wait.Registered("bank-b")) r();
  EXPECT_EQ(resumed, 0) << "bank-c has not registered yet";
  for (auto& r : wait.Registered("bank-c")) r();
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(wait.held(), 0u);
}

TEST(ServiceWaitTest, AnExpiredSubmissionGoesOnOnceAndOnlyOnce) {
  ServiceWait wait(0, 6000);
  int resumed = 0;
  const uint64_t id = wait.Hold({"bank-b"}, [&] { ++resumed; });
  auto expired = wait.Expire(id);
  ASSERT_TRUE(expired);
  expired();
  EXPECT_FALSE(wait.Expire(id)) << "expired twice";
  EXPECT_TRUE(wait.Registered("bank-b").empty()) << "resumed again by a late registration";
  EXPECT_EQ(resumed, 1);
}

TEST(ServiceWaitTest, HoldsAtMostABoundedNumberOfSubmissions) {
  ServiceWait wait(0, 6000);
  for (size_t i = 0; i < kMaxWaitingForServices; ++i) wait.Hold({"x"}, [] {});
  EXPECT_EQ(wait.WaitMs({"x"}, 5000, 0), 0) << "beyond the bound a submission is not held";
  EXPECT_EQ(wait.TakeAll().size(), kMaxWaitingForServices);
}

}  // namespace
}  // namespace treaty::coordinator
