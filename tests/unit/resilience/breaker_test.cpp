// CircuitBreaker state machine with explicit times (resilience/breaker.h).
// RandomHistoriesKeepBreakerInvariants prints its seed; set TREATY_TEST_SEED to replay a run.
#include "resilience/breaker.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"

namespace treaty::resilience {
namespace {

using Transition = std::pair<BreakerState, BreakerState>;

constexpr int64_t kT0 = 1'000'000;

// Consecutive-failure trigger only (rate trigger disabled).
BreakerOptions Consecutive(uint32_t n) {
  BreakerOptions o;
  o.consecutive_failures = n;
  o.failure_rate = 2.0;
  o.reset_timeout_ms = 1000;
  return o;
}

// Failure-rate trigger only: >= 50% of at least 10 calls over a 1000 ms window.
BreakerOptions Rate() {
  BreakerOptions o;
  o.consecutive_failures = 0;
  o.failure_rate = 0.5;
  o.min_calls_in_window = 10;
  o.window_ms = 1000;
  o.reset_timeout_ms = 1000;
  return o;
}

// A breaker that records every transition it takes.
struct Recorded {
  explicit Recorded(BreakerOptions options) : breaker(options) {
    breaker.set_on_transition(
        [this](BreakerState from, BreakerState to) { transitions.emplace_back(from, to); });
  }
  // Fails n admitted calls at time t.
  void Fail(int n, int64_t t) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(breaker.Allow(t)) << "call " << i << " was refused at t=" << t;
      breaker.OnFailure(t);
    }
  }
  void Succeed(int n, int64_t t) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(breaker.Allow(t)) << "call " << i << " was refused at t=" << t;
      breaker.OnSuccess(t);
    }
  }
  CircuitBreaker breaker;
  std::vector<Transition> transitions;
};

constexpr BreakerState kClosed = BreakerState::kClosed;
constexpr BreakerState kOpen = BreakerState::kOpen;
constexpr BreakerState kHalfOpen = BreakerState::kHalfOpen;

TEST(BreakerTest, OpensAfterConsecutiveFailures) {
  Recorded r(Consecutive(3));
  r.Fail(2, kT0);
  EXPECT_EQ(r.breaker.state(kT0), kClosed) << "2 of 3 consecutive failures must not open it";
  r.Fail(1, kT0);
  EXPECT_EQ(r.breaker.state(kT0), kOpen);
  EXPECT_EQ(r.transitions, (std::vector<Transition>{{kClosed, kOpen}}));
  EXPECT_EQ(r.breaker.transitions(), 1u);
}

TEST(BreakerTest, SuccessResetsTheConsecutiveFailureCount) {
  Recorded r(Consecutive(3));
  r.Fail(2, kT0);
  r.Succeed(1, kT0);
  r.Fail(2, kT0);
  EXPECT_EQ(r.breaker.state(kT0), kClosed) << "failures were not consecutive";
}

TEST(BreakerTest, OpensWhenFailureRateOverWindowReachesThreshold) {
  Recorded r(Rate());
  for (int i = 0; i < 9; ++i) {
    (i % 2 == 0) ? r.Succeed(1, kT0 + i) : r.Fail(1, kT0 + i);
  }
  EXPECT_EQ(r.breaker.state(kT0 + 9), kClosed) << "4 failures in 9 calls: below rate and minimum";
  r.Fail(1, kT0 + 9);
  EXPECT_EQ(r.breaker.state(kT0 + 9), kOpen) << "5 failures in 10 calls is a 50% failure rate";
}

TEST(BreakerTest, FailureRateNeedsMinimumCallsInWindow) {
  Recorded r(Rate());
  r.Fail(9, kT0);
  EXPECT_EQ(r.breaker.state(kT0), kClosed) << "9 calls are fewer than min_calls_in_window=10";
}

TEST(BreakerTest, FailuresStillInsideTheWindowCount) {
  Recorded r(Rate());
  r.Fail(8, kT0);
  // 900 ms later the first bucket is still inside the 1000 ms window: 9 failures of 18.
  r.Succeed(9, kT0 + 900);
  r.Fail(1, kT0 + 900);
  EXPECT_EQ(r.breaker.state(kT0 + 900), kOpen);
}

TEST(BreakerTest, WindowRollsSoOldFailuresExpire) {
  Recorded r(Rate());
  r.Fail(8, kT0);
  // 1100 ms later those failures have left the window: 1 failure of 10.
  r.Succeed(9, kT0 + 1100);
  r.Fail(1, kT0 + 1100);
  EXPECT_EQ(r.breaker.state(kT0 + 1100), kClosed) << "failures older than window_ms still count";
}

TEST(BreakerTest, OpenBreakerFailsFastUntilResetTimeout) {
  Recorded r(Consecutive(1));
  r.Fail(1, kT0);
  for (int64_t t : {kT0, kT0 + 1, kT0 + 999}) {
    EXPECT_FALSE(r.breaker.Allow(t)) << "open breaker let a call through at +" << t - kT0 << " ms";
  }
  EXPECT_EQ(r.breaker.OpenRemainingMs(kT0 + 999), 1);
  EXPECT_EQ(r.breaker.state(kT0 + 999), kOpen);
  EXPECT_EQ(r.breaker.state(kT0 + 1000), kHalfOpen) << "reset timeout passed";
  EXPECT_EQ(r.breaker.OpenRemainingMs(kT0 + 1000), 0);
}

TEST(BreakerTest, HalfOpenLetsOnlyOneProbeThroughByDefault) {
  Recorded r(Consecutive(1));
  r.Fail(1, kT0);
  EXPECT_TRUE(r.breaker.Allow(kT0 + 1000)) << "the probe after the reset timeout";
  EXPECT_FALSE(r.breaker.Allow(kT0 + 1000)) << "a second call while the probe is out";
  EXPECT_FALSE(r.breaker.Allow(kT0 + 1500));
  EXPECT_EQ(r.transitions, (std::vector<Transition>{{kClosed, kOpen}, {kOpen, kHalfOpen}}));
}

TEST(BreakerTest, HalfOpenLetsConfiguredNumberOfProbesThrough) {
  BreakerOptions o = Consecutive(1);
  o.half_open_probes = 3;
  Recorded r(o);
  r.Fail(1, kT0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.breaker.Allow(kT0 + 1000)) << "probe " << i;
  EXPECT_FALSE(r.breaker.Allow(kT0 + 1000)) << "only 3 probes are allowed";
}

TEST(BreakerTest, ProbeSuccessClosesAndResetsCounters) {
  Recorded r(Consecutive(3));
  r.Fail(3, kT0);
  r.Succeed(1, kT0 + 1000);
  EXPECT_EQ(r.breaker.state(kT0 + 1000), kClosed);
  EXPECT_EQ(r.transitions,
            (std::vector<Transition>{{kClosed, kOpen}, {kOpen, kHalfOpen}, {kHalfOpen, kClosed}}));
  r.Fail(2, kT0 + 1001);
  EXPECT_EQ(r.breaker.state(kT0 + 1001), kClosed)
      << "failures from before the breaker opened must not count after it closed";
}

TEST(BreakerTest, ProbeFailureReopensWithNewResetTimeout) {
  Recorded r(Consecutive(1));
  r.Fail(1, kT0);
  r.Fail(1, kT0 + 1500);  // the probe, late in the half-open period
  EXPECT_EQ(r.breaker.state(kT0 + 1500), kOpen);
  EXPECT_FALSE(r.breaker.Allow(kT0 + 2499)) << "the new reset timeout counts from the re-opening";
  EXPECT_TRUE(r.breaker.Allow(kT0 + 2500));
  EXPECT_EQ(r.breaker.transitions(), 4u);
}

TEST(BreakerTest, LateResultsWhileOpenChangeNothing) {
  Recorded r(Consecutive(2));
  CircuitBreaker::Ticket slow_a = 0;
  CircuitBreaker::Ticket slow_b = 0;
  ASSERT_TRUE(r.breaker.Allow(kT0, &slow_a));
  ASSERT_TRUE(r.breaker.Allow(kT0, &slow_b));
  r.Fail(2, kT0 + 10);
  ASSERT_EQ(r.breaker.state(kT0 + 10), kOpen);
  r.breaker.OnSuccess(kT0 + 20, slow_a);
  r.breaker.OnSuccess(kT0 + 20);  // without a ticket: attributed to the open period
  EXPECT_EQ(r.breaker.state(kT0 + 20), kOpen) << "a late success closed an open breaker";
  r.breaker.OnFailure(kT0 + 900, slow_b);
  r.breaker.OnFailure(kT0 + 900);
  EXPECT_TRUE(r.breaker.Allow(kT0 + 1010)) << "a late failure extended the reset timeout";
  EXPECT_EQ(r.breaker.transitions(), 2u);
}

TEST(BreakerTest, LateResultFromBeforeOpeningDoesNotDecideHalfOpen) {
  Recorded r(Consecutive(1));
  CircuitBreaker::Ticket old_call = 0;
  ASSERT_TRUE(r.breaker.Allow(kT0, &old_call));
  r.Fail(1, kT0);
  CircuitBreaker::Ticket probe = 0;
  ASSERT_TRUE(r.breaker.Allow(kT0 + 1000, &probe));
  r.breaker.OnSuccess(kT0 + 1001, old_call);
  EXPECT_EQ(r.breaker.state(kT0 + 1001), kHalfOpen) << "an old call's success closed it";
  r.breaker.OnFailure(kT0 + 1002, old_call);
  EXPECT_EQ(r.breaker.state(kT0 + 1002), kHalfOpen) << "an old call's failure re-opened it";
  r.breaker.OnSuccess(kT0 + 1003, probe);
  EXPECT_EQ(r.breaker.state(kT0 + 1003), kClosed) << "the probe's own success must close it";
}

TEST(BreakerTest, SecondProbeResultAfterDecisionIsIgnored) {
  BreakerOptions o = Consecutive(1);
  o.half_open_probes = 2;
  Recorded r(o);
  r.Fail(1, kT0);
  CircuitBreaker::Ticket p1 = 0;
  CircuitBreaker::Ticket p2 = 0;
  ASSERT_TRUE(r.breaker.Allow(kT0 + 1000, &p1));
  ASSERT_TRUE(r.breaker.Allow(kT0 + 1000, &p2));
  r.breaker.OnSuccess(kT0 + 1001, p1);
  r.breaker.OnFailure(kT0 + 1002, p2);
  EXPECT_EQ(r.breaker.state(kT0 + 1002), kClosed)
      << "the first probe result decides; the second belongs to the finished half-open period";
}

TEST(BreakerTest, UnansweredProbeSlotIsHandedOutAgainAfterResetTimeout) {
  Recorded r(Consecutive(1));
  r.Fail(1, kT0);
  ASSERT_TRUE(r.breaker.Allow(kT0 + 1000));  // its result is never reported
  EXPECT_FALSE(r.breaker.Allow(kT0 + 1999));
  EXPECT_TRUE(r.breaker.Allow(kT0 + 2000)) << "a lost probe kept the breaker half-open forever";
  r.breaker.OnSuccess(kT0 + 2001);
  EXPECT_EQ(r.breaker.state(kT0 + 2001), kClosed);
}

TEST(BreakerTest, StateNamesForLogs) {
  EXPECT_STREQ(BreakerStateName(kClosed), "closed");
  EXPECT_STREQ(BreakerStateName(kOpen), "open");
  EXPECT_STREQ(BreakerStateName(kHalfOpen), "half_open");
}

TEST(BreakerTest, ValidateRejectsUnusableOptions) {
  EXPECT_TRUE(Validate(BreakerOptions{}).ok());
  BreakerOptions o;
  o.failure_rate = 0;
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.window_ms = 0;
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.reset_timeout_ms = 0;
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.half_open_probes = 0;
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
}

// Random calls, results (some late, some lost) and clock steps; checks after every step that an
// open breaker admits nothing, a half-open one admits at most half_open_probes per reset timeout,
// and every reported transition starts where the previous one ended.
TEST(BreakerTest, RandomHistoriesKeepBreakerInvariants) {
  const char* env = std::getenv("TREATY_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : EntropySeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("replay with TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom rng(seed);

  BreakerOptions o;
  o.consecutive_failures = 1 + static_cast<uint32_t>(rng.Uniform(5));
  o.min_calls_in_window = static_cast<uint32_t>(rng.Uniform(20));
  o.window_ms = 100 + static_cast<int64_t>(rng.Uniform(1000));
  o.reset_timeout_ms = 10 + static_cast<int64_t>(rng.Uniform(500));
  o.half_open_probes = 1 + static_cast<uint32_t>(rng.Uniform(3));
  CircuitBreaker breaker(o);
  BreakerState last = kClosed;
  uint64_t seen = 0;
  breaker.set_on_transition([&](BreakerState from, BreakerState to) {
    EXPECT_EQ(from, last) << "transition did not start where the previous one ended";
    EXPECT_NE(from, to);
    last = to;
    ++seen;
  });

  std::vector<CircuitBreaker::Ticket> outstanding;
  int64_t now = kT0;
  int64_t half_open_since = -1;
  uint32_t admitted_in_half_open = 0;
  for (int step = 0; step < 20'000; ++step) {
    now += static_cast<int64_t>(rng.Uniform(20));
    const BreakerState before = breaker.state(now);
    if (rng.Chance(0.5)) {
      CircuitBreaker::Ticket ticket = 0;
      const bool allowed = breaker.Allow(now, &ticket);
      if (before == kOpen) {
        ASSERT_FALSE(allowed) << "open breaker admitted a call, step " << step;
      }
      if (allowed && breaker.state(now) == kHalfOpen) {
        if (half_open_since < 0 || now - half_open_since >= o.reset_timeout_ms) {
          half_open_since = now;
          admitted_in_half_open = 0;
        }
        ASSERT_LE(++admitted_in_half_open, o.half_open_probes) << "too many probes, step " << step;
      }
      if (breaker.state(now) != kHalfOpen) half_open_since = -1;
      if (allowed && !rng.Chance(0.02)) outstanding.push_back(ticket);  // 2% are lost
    } else if (!outstanding.empty()) {
      const size_t i = rng.Uniform(outstanding.size());  // results arrive in any order
      const CircuitBreaker::Ticket ticket = outstanding[i];
      outstanding.erase(outstanding.begin() + static_cast<std::ptrdiff_t>(i));
      rng.Chance(0.4) ? breaker.OnFailure(now, ticket) : breaker.OnSuccess(now, ticket);
      if (breaker.state(now) != kHalfOpen) half_open_since = -1;
    }
  }
  EXPECT_EQ(seen, breaker.transitions());
  EXPECT_GT(seen, 0u) << "the random history never tripped the breaker; the test checked little";
}

}  // namespace
}  // namespace treaty::resilience
