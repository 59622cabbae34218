// Token buckets: burst, refill, retry-after accuracy, per-key buckets and their bound
// (resilience/token_bucket.h). RetryAfterIsExactToTheMillisecond prints its seed; set
// TREATY_TEST_SEED to replay a run.
#include "resilience/token_bucket.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/random.h"

namespace treaty::resilience {
namespace {

constexpr int64_t kT0 = 1'000'000;

TokenBucketOptions Options(double rate_per_sec, double burst) {
  TokenBucketOptions o;
  o.rate_per_sec = rate_per_sec;
  o.burst = burst;
  return o;
}

TEST(TokenBucketTest, NewBucketAllowsOneBurstThenRefuses) {
  TokenBucket bucket(Options(10, 5));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.TryTake(kT0)) << "token " << i << " of the burst";
  EXPECT_FALSE(bucket.TryTake(kT0)) << "the burst of 5 is used up";
}

TEST(TokenBucketTest, RefillsAtTheConfiguredRate) {
  TokenBucket bucket(Options(10, 5));  // one token per 100 ms
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bucket.TryTake(kT0));
  EXPECT_FALSE(bucket.TryTake(kT0 + 99)) << "0.99 tokens after 99 ms";
  EXPECT_TRUE(bucket.TryTake(kT0 + 100)) << "1 token after 100 ms";
  EXPECT_FALSE(bucket.TryTake(kT0 + 100));
  EXPECT_NEAR(bucket.Tokens(kT0 + 350), 2.5, 1e-9);
}

TEST(TokenBucketTest, RefillStopsAtBurst) {
  TokenBucket bucket(Options(1000, 3));
  ASSERT_TRUE(bucket.TryTake(kT0, 3));
  EXPECT_TRUE(bucket.Full(kT0 + 3600'000));
  EXPECT_DOUBLE_EQ(bucket.Tokens(kT0 + 3600'000), 3.0) << "an hour idle still holds one burst";
  EXPECT_TRUE(bucket.TryTake(kT0 + 3600'000, 3));
  EXPECT_FALSE(bucket.TryTake(kT0 + 3600'000));
}

TEST(TokenBucketTest, TakesFractionalAndMultipleTokens) {
  TokenBucket bucket(Options(1, 2));
  EXPECT_TRUE(bucket.TryTake(kT0, 0.5));
  EXPECT_TRUE(bucket.TryTake(kT0, 1.5));
  EXPECT_FALSE(bucket.TryTake(kT0, 0.25));
  EXPECT_TRUE(bucket.TryTake(kT0, 0)) << "taking nothing always succeeds";
}

TEST(TokenBucketTest, EarlierTimeAddsNoTokens) {
  TokenBucket bucket(Options(10, 1));
  ASSERT_TRUE(bucket.TryTake(kT0));
  EXPECT_FALSE(bucket.TryTake(kT0 - 10'000)) << "a clock step back must not mint tokens";
  EXPECT_TRUE(bucket.TryTake(kT0 + 100));
}

TEST(TokenBucketTest, RetryAfterIsZeroWhenTokensAreThere) {
  TokenBucket bucket(Options(10, 5));
  EXPECT_EQ(bucket.RetryAfterMs(kT0), 0);
  EXPECT_EQ(bucket.RetryAfterMs(kT0, 5), 0);
}

TEST(TokenBucketTest, RetryAfterIsNeverWhenWaitingCannotHelp) {
  TokenBucket bucket(Options(10, 5));
  EXPECT_EQ(bucket.RetryAfterMs(kT0, 6), kNever) << "6 tokens never fit a burst of 5";
  EXPECT_FALSE(bucket.TryTake(kT0, 6));
  TokenBucket frozen(Options(0, 1));
  ASSERT_TRUE(frozen.TryTake(kT0));
  EXPECT_EQ(frozen.RetryAfterMs(kT0), kNever) << "rate 0 never refills";
}

TEST(TokenBucketTest, RetryAfterIsExactToTheMillisecond) {
  const char* env = std::getenv("TREATY_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : EntropySeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("replay with TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom rng(seed);
  for (int round = 0; round < 2000; ++round) {
    const double rate = 0.5 + static_cast<double>(rng.Uniform(100'000)) / 7.0;
    const double burst = 1.0 + static_cast<double>(rng.Uniform(50));
    TokenBucket bucket(Options(rate, burst));
    int64_t now = kT0 + static_cast<int64_t>(rng.Uniform(1000));
    // Drain to a random level through a few takes at increasing times.
    for (int i = 0; i < 4; ++i) {
      (void)bucket.TryTake(now, static_cast<double>(rng.Uniform(static_cast<uint64_t>(burst))));
      now += static_cast<int64_t>(rng.Uniform(30));
    }
    const double n = 1.0 + static_cast<double>(rng.Uniform(static_cast<uint64_t>(burst)));
    const int64_t wait = bucket.RetryAfterMs(now, n);
    ASSERT_GE(wait, 0) << "rate " << rate << " burst " << burst << " n " << n;
    TokenBucket at = bucket;
    ASSERT_TRUE(at.TryTake(now + wait, n))
        << "RetryAfterMs said " << wait << " ms but the take still fails; rate " << rate
        << " burst " << burst << " n " << n;
    if (wait > 0) {
      TokenBucket early = bucket;
      ASSERT_FALSE(early.TryTake(now + wait - 1, n))
          << "RetryAfterMs said " << wait << " ms but one ms earlier already works; rate " << rate
          << " burst " << burst << " n " << n;
    }
  }
}

TEST(TokenBucketTest, ValidateRejectsUnusableOptions) {
  EXPECT_TRUE(Validate(TokenBucketOptions{}).ok());
  EXPECT_TRUE(Validate(Options(0, 1)).ok()) << "rate 0 is allowed (no refill)";
  EXPECT_FALSE(Validate(Options(-1, 1)).ok());
  EXPECT_FALSE(Validate(Options(1, 0)).ok());
  EXPECT_FALSE(Validate(Options(1.0 / 0.0, 1)).ok());
}

TEST(KeyedTokenBucketsTest, KeysHaveIndependentBuckets) {
  KeyedTokenBuckets buckets(Options(10, 2));
  EXPECT_TRUE(buckets.TryTake("client-a", kT0));
  EXPECT_TRUE(buckets.TryTake("client-a", kT0));
  EXPECT_FALSE(buckets.TryTake("client-a", kT0)) << "client-a used its burst of 2";
  EXPECT_TRUE(buckets.TryTake("client-b", kT0)) << "client-a's use must not throttle client-b";
  EXPECT_EQ(buckets.RetryAfterMs("client-a", kT0), 100);
  EXPECT_EQ(buckets.RetryAfterMs("client-b", kT0), 0);
}

TEST(KeyedTokenBucketsTest, NumberOfKeysIsBounded) {
  KeyedTokenBuckets buckets(Options(10, 2), /*max_keys=*/100);
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(buckets.TryTake("k" + std::to_string(i), kT0));
  EXPECT_EQ(buckets.size(), 100u);
  EXPECT_EQ(buckets.evictions(), 9'900u);
  EXPECT_EQ(KeyedTokenBuckets().max_keys(), kDefaultMaxKeys);
}

TEST(KeyedTokenBucketsTest, LeastRecentlyUsedKeyIsEvicted) {
  KeyedTokenBuckets buckets(Options(1, 1), /*max_keys=*/2);
  ASSERT_TRUE(buckets.TryTake("old", kT0));
  ASSERT_TRUE(buckets.TryTake("busy", kT0));
  EXPECT_FALSE(buckets.TryTake("old", kT0)) << "marks 'old' as recently used";
  ASSERT_TRUE(buckets.TryTake("new", kT0));  // evicts "busy", the least recently used
  EXPECT_FALSE(buckets.TryTake("old", kT0)) << "'old' was used last and must still be drained";
  EXPECT_TRUE(buckets.TryTake("busy", kT0)) << "an evicted key comes back with a full bucket";
}

TEST(KeyedTokenBucketsTest, RetryAfterDoesNotCreateKeys) {
  KeyedTokenBuckets buckets(Options(10, 2));
  EXPECT_EQ(buckets.RetryAfterMs("unknown", kT0), 0);
  EXPECT_EQ(buckets.RetryAfterMs("unknown", kT0, 3), kNever);
  EXPECT_EQ(buckets.size(), 0u);
}

TEST(KeyedTokenBucketsTest, LongKeysAreTruncated) {
  KeyedTokenBuckets buckets(Options(1, 1));
  const std::string prefix(kMaxKeyBytes, 'x');
  ASSERT_TRUE(buckets.TryTake(prefix + "-one", kT0));
  EXPECT_FALSE(buckets.TryTake(prefix + "-two", kT0))
      << "keys equal in their first kMaxKeyBytes bytes share one bucket";
  EXPECT_EQ(buckets.size(), 1u);
}

}  // namespace
}  // namespace treaty::resilience
