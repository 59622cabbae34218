#include "resilience/breaker.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace treaty::resilience {
namespace {

// floor(a / b) for b > 0, also for negative a.
int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

Status Validate(const BreakerOptions& options) {
  if (std::isnan(options.failure_rate) || options.failure_rate <= 0.0) {
    return Status::InvalidArgument(
        "breaker: failure_rate must be in (0, 1] (or above 1 to disable), got " +
        std::to_string(options.failure_rate));
  }
  if (options.window_ms < 1) {
    return Status::InvalidArgument("breaker: window_ms must be >= 1, got " +
                                   std::to_string(options.window_ms));
  }
  if (options.reset_timeout_ms < 1) {
    return Status::InvalidArgument("breaker: reset_timeout_ms must be >= 1, got " +
                                   std::to_string(options.reset_timeout_ms));
  }
  if (options.half_open_probes < 1) {
    return Status::InvalidArgument("breaker: half_open_probes must be >= 1");
  }
  return Status::Ok();
}

CircuitBreaker::CircuitBreaker(BreakerOptions options)
    : options_(options), bucket_ms_(std::max<int64_t>(1, options.window_ms / kWindowBuckets)) {}

bool CircuitBreaker::Allow(int64_t now_ms, Ticket* ticket) {
  now_ms = Monotonic(now_ms);
  Advance(now_ms);
  switch (state_) {
    case BreakerState::kClosed:
      break;
    case BreakerState::kOpen:
      return false;
    case BreakerState::kHalfOpen: {
      const uint32_t probes = std::max<uint32_t>(1, options_.half_open_probes);
      if (probes_outstanding_ >= probes) {
        if (now_ms - last_probe_ms_ < options_.reset_timeout_ms) return false;
        probes_outstanding_ = 0;  // the outstanding probes are presumed lost
      }
      ++probes_outstanding_;
      last_probe_ms_ = now_ms;
      break;
    }
  }
  if (ticket != nullptr) *ticket = period_;
  return true;
}

void CircuitBreaker::OnSuccess(int64_t now_ms, Ticket ticket) {
  now_ms = Monotonic(now_ms);
  Advance(now_ms);
  if (!Current(ticket)) return;
  if (state_ == BreakerState::kHalfOpen) {
    TransitionTo(BreakerState::kClosed, now_ms);
  } else if (state_ == BreakerState::kClosed) {
    Record(now_ms, /*failed=*/false);
  }
}

void CircuitBreaker::OnFailure(int64_t now_ms, Ticket ticket) {
  now_ms = Monotonic(now_ms);
  Advance(now_ms);
  if (!Current(ticket)) return;
  if (state_ == BreakerState::kHalfOpen) {
    TransitionTo(BreakerState::kOpen, now_ms);
  } else if (state_ == BreakerState::kClosed) {
    Record(now_ms, /*failed=*/true);
    const bool consecutive_tripped =
        options_.consecutive_failures != 0 && consecutive_ >= options_.consecutive_failures;
    if (consecutive_tripped || RateTripped(now_ms)) TransitionTo(BreakerState::kOpen, now_ms);
  }
}

BreakerState CircuitBreaker::state(int64_t now_ms) const {
  now_ms = std::max(now_ms, latest_ms_);
  if (state_ == BreakerState::kOpen && now_ms - opened_ms_ >= options_.reset_timeout_ms) {
    return BreakerState::kHalfOpen;
  }
  return state_;
}

int64_t CircuitBreaker::OpenRemainingMs(int64_t now_ms) const {
  if (state_ != BreakerState::kOpen) return 0;
  now_ms = std::max(now_ms, latest_ms_);
  const int64_t elapsed = now_ms - opened_ms_;
  return elapsed >= options_.reset_timeout_ms ? 0 : options_.reset_timeout_ms - elapsed;
}

int64_t CircuitBreaker::Monotonic(int64_t now_ms) {
  latest_ms_ = std::max(latest_ms_, now_ms);
  return latest_ms_;
}

void CircuitBreaker::Advance(int64_t now_ms) {
  if (state_ == BreakerState::kOpen && now_ms - opened_ms_ >= options_.reset_timeout_ms) {
    TransitionTo(BreakerState::kHalfOpen, now_ms);
  }
}

void CircuitBreaker::TransitionTo(BreakerState to, int64_t now_ms) {
  const BreakerState from = state_;
  state_ = to;
  ++period_;
  ++transitions_;
  switch (to) {
    case BreakerState::kOpen:
      opened_ms_ = now_ms;
      break;
    case BreakerState::kHalfOpen:
      probes_outstanding_ = 0;
      break;
    case BreakerState::kClosed:
      consecutive_ = 0;
      buckets_.fill(Bucket{});
      break;
  }
  if (on_transition_) on_transition_(from, to);
}

void CircuitBreaker::Record(int64_t now_ms, bool failed) {
  consecutive_ = failed ? consecutive_ + 1 : 0;
  const int64_t index = FloorDiv(now_ms, bucket_ms_);
  Bucket& bucket =
      buckets_[static_cast<size_t>(index - FloorDiv(index, kWindowBuckets) * kWindowBuckets)];
  if (bucket.index != index) bucket = Bucket{index, 0, 0};
  ++bucket.calls;
  if (failed) ++bucket.failures;
}

bool CircuitBreaker::RateTripped(int64_t now_ms) const {
  if (!(options_.failure_rate <= 1.0)) return false;
  const int64_t current = FloorDiv(now_ms, bucket_ms_);
  uint64_t calls = 0;
  uint64_t failures = 0;
  for (const Bucket& b : buckets_) {
    if (b.index == kEmpty || b.index <= current - kWindowBuckets || b.index > current) continue;
    calls += b.calls;
    failures += b.failures;
  }
  if (calls == 0 || calls < options_.min_calls_in_window) return false;
  return static_cast<double>(failures) >= options_.failure_rate * static_cast<double>(calls);
}

bool CircuitBreaker::Current(Ticket ticket) const {
  switch (state_) {
    case BreakerState::kOpen:
      return false;
    case BreakerState::kHalfOpen:
      return ticket == kCurrentPeriod ? probes_outstanding_ > 0 : ticket == period_;
    case BreakerState::kClosed:
      return ticket == kCurrentPeriod || ticket == period_;
  }
  return false;
}

}  // namespace treaty::resilience
