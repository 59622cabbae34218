#include "coordinator/balancer.h"

#include <gtest/gtest.h>

#include <map>

namespace treaty::coordinator {
namespace {

std::vector<Candidate> Three() { return {{"a:1", 1, 0}, {"b:1", 1, 0}, {"c:1", 1, 0}}; }

TEST(BalancerTest, RoundRobinVisitsEveryInstanceInTurn) {
  Balancer b(LbPolicy::kRoundRobin);
  auto c = Three();
  std::vector<size_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(b.Pick(c, ""));
  EXPECT_EQ(picks, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(BalancerTest, WeightedSharesFollowWeightsAndInterleave) {
  Balancer b(LbPolicy::kWeighted);
  std::vector<Candidate> c = {{"a:1", 3, 0}, {"b:1", 1, 0}};
  std::map<size_t, int> count;
  std::vector<size_t> first4;
  for (int i = 0; i < 400; ++i) {
    size_t p = b.Pick(c, "");
    if (i < 4) first4.push_back(p);
    ++count[p];
  }
  EXPECT_EQ(count[0], 300);
  EXPECT_EQ(count[1], 100);
  EXPECT_EQ(first4, (std::vector<size_t>{0, 0, 1, 0})) << "smooth: the light instance is not last";
}

TEST(BalancerTest, LeastOutstandingPicksTheIdlestInstance) {
  Balancer b(LbPolicy::kLeastOutstanding);
  std::vector<Candidate> c = {{"a:1", 1, 5}, {"b:1", 1, 1}, {"c:1", 1, 9}};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.Pick(c, ""), 1u);
}

TEST(BalancerTest, ConsistentHashKeepsKeysAndMovesOnlyTheRemovedInstancesKeys) {
  Balancer b(LbPolicy::kConsistentHash);
  auto c = Three();
  std::map<std::string, std::string> before;
  for (int k = 0; k < 300; ++k) {
    std::string key = "acct-" + std::to_string(k);
    std::string chosen = c[b.Pick(c, key)].address;
    EXPECT_EQ(c[b.Pick(c, key)].address, chosen) << "the same key must map to the same instance";
    before[key] = chosen;
  }
  std::vector<Candidate> two = {c[0], c[2]};  // b:1 left
  int moved = 0;
  std::map<std::string, int> spread;
  for (const auto& [key, chosen] : before) {
    std::string now = two[b.Pick(two, key)].address;
    ++spread[chosen];
    if (chosen != "b:1") {
      EXPECT_EQ(now, chosen) << key << " moved although its instance stayed";
    } else {
      ++moved;
    }
  }
  EXPECT_EQ(moved, spread["b:1"]);
  for (const auto& [addr, n] : spread) EXPECT_GT(n, 50) << addr << " got too few keys";
}

TEST(BalancerTest, PolicyNamesRoundTripAndUnknownNamesAreRejected) {
  for (LbPolicy p : {LbPolicy::kRoundRobin, LbPolicy::kWeighted, LbPolicy::kLeastOutstanding,
                     LbPolicy::kConsistentHash}) {
    auto parsed = ParseLbPolicy(LbPolicyName(p));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, p);
  }
  auto bad = ParseLbPolicy("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("round-robin"), std::string::npos);
}

}  // namespace
}  // namespace treaty::coordinator
