// Circuit breaker: stops calling a participant instance that keeps failing, and lets a single
// probe find out when it has recovered.
//
//   CLOSED     calls go through. Results are counted; the breaker opens after
//              `consecutive_failures` failures in a row, or when at least `min_calls_in_window`
//              calls finished in the last `window_ms` and the share of failures among them is
//              >= `failure_rate`.
//   OPEN       calls fail fast (Allow returns false) for `reset_timeout_ms`.
//   HALF_OPEN  after the reset timeout, up to `half_open_probes` calls (probes) are allowed and
//              the rest refused. The first probe result decides: a success closes the breaker
//              (counters reset), a failure opens it again for another reset timeout.
//
// What counts as a failure is the caller's choice: typically a transient error (IsRetryable in
// retry.h) counts, and an answer the participant chose to give (a NO vote, NOT_FOUND) does not,
// because the instance is working.
//
// Late results. Every state change starts a new period. Allow hands out a ticket naming the
// period it admitted the call in; a result reported with an older ticket is late (the call was
// admitted before the breaker last changed state) and changes nothing. Results reported without
// a ticket are attributed to the current period: ignored while OPEN, taken as a probe result
// while HALF_OPEN only if a probe is outstanding, counted while CLOSED.
//
// Lost probes. A probe whose result is never reported would keep a half-open breaker refusing
// forever; so when every probe slot is taken and reset_timeout_ms have passed since the last one
// was handed out without a result deciding the state, the slots are handed out again.
//
// Time is passed in (monotonic milliseconds); a time earlier than one already seen is treated as
// the latest time seen. Memory is constant (kWindowBuckets counters). Not thread-safe: the
// coordinator uses each breaker from one I/O thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>

#include "common/status.h"

namespace treaty::resilience {

enum class BreakerState { kClosed, kOpen, kHalfOpen };

// "closed", "open", "half_open": for logs and metric labels.
const char* BreakerStateName(BreakerState state);

// The failure-rate window is kept as this many time buckets, each window_ms / kWindowBuckets
// long (at least 1 ms); the window therefore rolls forward a bucket at a time (old results
// expire in steps of a tenth of the window), and memory stays constant however many calls are
// made.
inline constexpr int kWindowBuckets = 10;

struct BreakerOptions {
  // Failures in a row that open the breaker. Default 5. 0 disables this trigger.
  uint32_t consecutive_failures = 5;
  // Share of failed calls in the window that opens the breaker, in (0, 1]. Default 0.5. A value
  // above 1 disables this trigger.
  double failure_rate = 0.5;
  // Length of the rolling window for failure_rate, milliseconds. Default 10000. Must be >= 1.
  int64_t window_ms = 10000;
  // Calls that must have finished in the window before failure_rate is applied, so that a few
  // early failures do not open the breaker. Default 20.
  uint32_t min_calls_in_window = 20;
  // How long an open breaker refuses calls before it lets probes through, milliseconds. Also the
  // time after which unanswered probe slots are handed out again. Default 2000. Must be >= 1.
  int64_t reset_timeout_ms = 2000;
  // Calls let through while half-open. Default 1. Must be >= 1.
  uint32_t half_open_probes = 1;
};

// OK, or INVALID_ARGUMENT naming the field that breaks the rules above.
Status Validate(const BreakerOptions& options);

class CircuitBreaker {
 public:
  // Identifies the period a call was admitted in (see "Late results").
  using Ticket = uint64_t;
  // Pass as ticket to attribute a result to the current period.
  static constexpr Ticket kCurrentPeriod = ~Ticket{0};
  // Called on every state change, from inside the call that caused it. It may read the breaker
  // (state(), transitions()) but must not call Allow, OnSuccess or OnFailure.
  using TransitionCallback = std::function<void(BreakerState from, BreakerState to)>;

  explicit CircuitBreaker(BreakerOptions options = {});

  // Whether a call may be made now. CLOSED: true. OPEN: false until the reset timeout has
  // passed, then the breaker turns HALF_OPEN. HALF_OPEN: true for the probes, false after.
  // When true and ticket is not null, *ticket receives the ticket to report the result with.
  bool Allow(int64_t now_ms, Ticket* ticket = nullptr);

  // Reports the result of a call that Allow admitted. Exactly one per admitted call.
  void OnSuccess(int64_t now_ms, Ticket ticket = kCurrentPeriod);
  void OnFailure(int64_t now_ms, Ticket ticket = kCurrentPeriod);

  // The state at now_ms: an OPEN breaker whose reset timeout has passed reads HALF_OPEN (the
  // transition itself, with its callback, happens at the next Allow / OnSuccess / OnFailure).
  BreakerState state(int64_t now_ms) const;

  // Milliseconds until an OPEN breaker lets a probe through (0 if not OPEN or already due). For
  // scheduling the redelivery of a decision that must not be dropped.
  int64_t OpenRemainingMs(int64_t now_ms) const;

  // State changes so far.
  uint64_t transitions() const { return transitions_; }

  void set_on_transition(TransitionCallback callback) { on_transition_ = std::move(callback); }

  const BreakerOptions& options() const { return options_; }

 private:
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
  struct Bucket {
    // floor(now_ms / bucket_ms_) of the results it holds; kEmpty: none.
    int64_t index = kEmpty;
    uint32_t calls = 0;
    uint32_t failures = 0;
  };

  int64_t Monotonic(int64_t now_ms);
  // Takes the OPEN -> HALF_OPEN transition if the reset timeout has passed.
  void Advance(int64_t now_ms);
  void TransitionTo(BreakerState to, int64_t now_ms);
  void Record(int64_t now_ms, bool failed);
  bool RateTripped(int64_t now_ms) const;
  // Whether a result with this ticket belongs to the current period (and, while HALF_OPEN,
  // answers an outstanding probe).
  bool Current(Ticket ticket) const;

  const BreakerOptions options_;
  const int64_t bucket_ms_;
  BreakerState state_ = BreakerState::kClosed;
  uint64_t period_ = 0;
  uint64_t transitions_ = 0;
  int64_t latest_ms_ = std::numeric_limits<int64_t>::min();
  int64_t opened_ms_ = 0;
  // HALF_OPEN: probes admitted and not yet answered, and when the last one was admitted.
  uint32_t probes_outstanding_ = 0;
  int64_t last_probe_ms_ = 0;
  uint32_t consecutive_ = 0;
  std::array<Bucket, kWindowBuckets> buckets_{};
  TransitionCallback on_transition_;
};

}  // namespace treaty::resilience
