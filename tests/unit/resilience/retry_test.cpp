// Retry policy: backoff bounds, full jitter, overflow safety, retryability, attempt and deadline
// limits (resilience/retry.h). JitterCoversWholeRangeWithinBounds prints its seed; set
// TREATY_TEST_SEED to replay a run.
#include "resilience/retry.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "common/random.h"

namespace treaty::resilience {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

uint64_t TestSeed() {
  const char* env = std::getenv("TREATY_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : EntropySeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

// A Random that always returns its largest value, to pin the top of the range.
class MaxRandom final : public Random {
 public:
  uint64_t Uniform(uint64_t n) override { return n == 0 ? 0 : n - 1; }
};

TEST(RetryTest, BackoffCapDoublesFromInitialUpToMax) {
  const RetryPolicy policy;  // 20 ms, x2, capped at 2000 ms
  std::vector<int64_t> caps;
  for (uint32_t attempt = 1; attempt <= 9; ++attempt) caps.push_back(BackoffCapMs(policy, attempt));
  EXPECT_EQ(caps, (std::vector<int64_t>{20, 40, 80, 160, 320, 640, 1280, 2000, 2000}));
  EXPECT_EQ(BackoffCapMs(policy, 0), 20) << "attempt 0 reads as the first retry";
}

TEST(RetryTest, JitterCoversWholeRangeWithinBounds) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("replay with TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom rng(seed);
  const RetryPolicy policy;
  for (uint32_t attempt : {1u, 4u, 8u, 30u}) {
    const int64_t cap = BackoffCapMs(policy, attempt);
    int64_t lo = kInt64Max;
    int64_t hi = 0;
    double sum = 0;
    constexpr int kDraws = 20'000;
    for (int i = 0; i < kDraws; ++i) {
      const int64_t wait = BackoffMs(policy, attempt, rng);
      ASSERT_GE(wait, 1) << "attempt " << attempt;
      ASSERT_LE(wait, cap) << "attempt " << attempt << " waited above its cap";
      lo = std::min(lo, wait);
      hi = std::max(hi, wait);
      sum += static_cast<double>(wait);
    }
    // Full jitter: draws reach both ends of [1, cap] and average about cap / 2.
    EXPECT_LE(lo, 1 + cap / 20) << "attempt " << attempt << ": no short waits drawn";
    EXPECT_GE(hi, cap - cap / 20) << "attempt " << attempt << ": no long waits drawn";
    EXPECT_NEAR(sum / kDraws, static_cast<double>(cap + 1) / 2, static_cast<double>(cap) * 0.03)
        << "attempt " << attempt << ": jitter is not uniform";
  }
}

TEST(RetryTest, BackoffNeverExceedsMaxBackoff) {
  MaxRandom top;
  const RetryPolicy policy{.initial_backoff_ms = 7, .max_backoff_ms = 100, .multiplier = 3.0};
  for (uint32_t attempt = 1; attempt < 200; ++attempt) {
    EXPECT_LE(BackoffMs(policy, attempt, top), 100) << "attempt " << attempt;
  }
  EXPECT_EQ(BackoffMs(policy, 199, top), 100) << "the cap itself is reachable";
}

TEST(RetryTest, HugeAttemptNumbersDoNotOverflow) {
  MaxRandom top;
  const RetryPolicy capped;
  EXPECT_EQ(BackoffCapMs(capped, std::numeric_limits<uint32_t>::max()), 2000);
  const RetryPolicy unbounded{
      .initial_backoff_ms = 1, .max_backoff_ms = kInt64Max, .multiplier = 10.0};
  EXPECT_EQ(BackoffCapMs(unbounded, 64), kInt64Max) << "10^63 ms must saturate, not wrap";
  EXPECT_EQ(BackoffCapMs(unbounded, std::numeric_limits<uint32_t>::max()), kInt64Max);
  EXPECT_EQ(BackoffMs(unbounded, std::numeric_limits<uint32_t>::max(), top), kInt64Max);
  const int64_t mid = BackoffCapMs(unbounded, 10);
  EXPECT_EQ(mid, 1'000'000'000) << "10^9 ms is exactly representable";
}

TEST(RetryTest, OutOfRangePolicyFieldsAreClamped) {
  const RetryPolicy bad{.initial_backoff_ms = 0, .max_backoff_ms = -5, .multiplier = 0.5};
  EXPECT_EQ(BackoffCapMs(bad, 1), 1);
  EXPECT_EQ(BackoffCapMs(bad, 50), 1) << "a multiplier below 1 must not shrink the wait";
  const RetryPolicy nan{.multiplier = std::numeric_limits<double>::quiet_NaN()};
  EXPECT_EQ(BackoffCapMs(nan, 5), 20);
  EXPECT_FALSE(Validate(bad).ok());
  EXPECT_FALSE(Validate(nan).ok());
  EXPECT_FALSE(Validate(RetryPolicy{.initial_backoff_ms = 50, .max_backoff_ms = 10}).ok());
  EXPECT_TRUE(Validate(RetryPolicy{}).ok());
}

TEST(RetryTest, OnlyTransientFailuresAreRetryable) {
  struct Row {
    StatusCode code;
    bool retryable;
  };
  for (const Row& row :
       {Row{StatusCode::kUnavailable, true}, Row{StatusCode::kDeadlineExceeded, true},
        Row{StatusCode::kResourceExhausted, true}, Row{StatusCode::kInternal, true},
        Row{StatusCode::kOk, false}, Row{StatusCode::kInvalidArgument, false},
        Row{StatusCode::kNotFound, false}, Row{StatusCode::kAlreadyExists, false},
        Row{StatusCode::kFailedPrecondition, false}, Row{StatusCode::kAborted, false},
        Row{StatusCode::kCorruption, false}}) {
    EXPECT_EQ(IsRetryable(Status(row.code, "x")), row.retryable) << StatusCodeName(row.code);
  }
  EXPECT_FALSE(IsRetryable(Status(static_cast<StatusCode>(99), "from a newer peer")));
}

TEST(RetryTest, MaxAttemptsCountsTheFirstCall) {
  const RetryPolicy three{.max_attempts = 3};
  EXPECT_TRUE(RetryAllowed(three, 1, 0, -1, 10));
  EXPECT_TRUE(RetryAllowed(three, 2, 0, -1, 10));
  EXPECT_FALSE(RetryAllowed(three, 3, 0, -1, 10)) << "3 calls made: the limit is reached";
  const RetryPolicy unlimited;
  EXPECT_TRUE(RetryAllowed(unlimited, 1'000'000, 0, -1, 10));
}

TEST(RetryTest, RetryMustStartBeforeTheDeadline) {
  const RetryPolicy policy;
  EXPECT_TRUE(RetryAllowed(policy, 1, 100, 200, 99));
  EXPECT_FALSE(RetryAllowed(policy, 1, 100, 200, 100)) << "would start exactly at the deadline";
  EXPECT_FALSE(RetryAllowed(policy, 1, 200, 200, 0)) << "deadline already reached";
  EXPECT_FALSE(RetryAllowed(policy, 1, 300, 200, 1));
  EXPECT_FALSE(RetryAllowed(policy, 1, kInt64Max - 10, kInt64Max - 5, kInt64Max))
      << "a huge backoff must not overflow into 'allowed'";
  EXPECT_TRUE(RetryAllowed(policy, 1, kInt64Max - 10, -1, kInt64Max)) << "no deadline";
}

// Drives the documented retry loop against a call that always fails: the loop must stop by
// itself, and no retry may start at or after the deadline.
TEST(RetryTest, RetryLoopEndsWithinDeadline) {
  SeededRandom rng(7);
  const RetryPolicy policy;
  const int64_t start = 5000;
  const int64_t deadline = start + 10'000;
  int64_t now = start;
  uint32_t attempts = 1;
  const int64_t kCallMs = 3;  // each failed call takes this long
  now += kCallMs;
  for (;;) {
    const int64_t backoff = BackoffMs(policy, attempts, rng);
    if (!RetryAllowed(policy, attempts, now, deadline, backoff)) break;
    now += backoff;
    ASSERT_LT(now, deadline) << "retry " << attempts << " started after the deadline";
    now += kCallMs;
    ++attempts;
    ASSERT_LT(attempts, 10'000u) << "retry loop did not end";
  }
  EXPECT_GT(attempts, 5u) << "10 s with 20..2000 ms backoffs allows several retries";
}

}  // namespace
}  // namespace treaty::resilience
