#include "resilience/retry.h"

#include <algorithm>
#include <cmath>

namespace treaty::resilience {

Status Validate(const RetryPolicy& policy) {
  if (policy.initial_backoff_ms < 1) {
    return Status::InvalidArgument("retry policy: initial_backoff_ms must be >= 1, got " +
                                   std::to_string(policy.initial_backoff_ms));
  }
  if (policy.max_backoff_ms < policy.initial_backoff_ms) {
    return Status::InvalidArgument(
        "retry policy: max_backoff_ms (" + std::to_string(policy.max_backoff_ms) +
        ") must be >= initial_backoff_ms (" + std::to_string(policy.initial_backoff_ms) + ")");
  }
  if (!std::isfinite(policy.multiplier) || policy.multiplier < 1.0) {
    return Status::InvalidArgument("retry policy: multiplier must be a finite number >= 1, got " +
                                   std::to_string(policy.multiplier));
  }
  return Status::Ok();
}

int64_t BackoffCapMs(const RetryPolicy& policy, uint32_t attempt) {
  const int64_t initial = std::max<int64_t>(1, policy.initial_backoff_ms);
  const int64_t cap = std::max(initial, policy.max_backoff_ms);
  // NaN and values below 1 would shrink the wait; +inf is fine (the bound jumps to the cap).
  const double multiplier = policy.multiplier >= 1.0 ? policy.multiplier : 1.0;
  const uint32_t exponent = attempt <= 1 ? 0 : attempt - 1;
  // In double arithmetic a huge exponent gives +inf, never a wrapped integer.
  const double bound = static_cast<double>(initial) * std::pow(multiplier, exponent);
  if (!(bound < static_cast<double>(cap))) return cap;
  return std::max<int64_t>(1, static_cast<int64_t>(bound));
}

int64_t BackoffMs(const RetryPolicy& policy, uint32_t attempt, Random& random) {
  const int64_t cap = BackoffCapMs(policy, attempt);
  return 1 + static_cast<int64_t>(random.Uniform(static_cast<uint64_t>(cap)));
}

bool IsRetryable(const Status& status) {
  switch (status.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kResourceExhausted:
    case StatusCode::kInternal:
      return true;
    case StatusCode::kOk:
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
    case StatusCode::kCorruption:
      return false;
  }
  return false;  // a code from a newer peer: do not guess
}

bool RetryAllowed(const RetryPolicy& policy, uint32_t attempts_so_far, int64_t now_ms,
                  int64_t deadline_ms, int64_t next_backoff_ms) {
  if (policy.max_attempts != 0 && attempts_so_far >= policy.max_attempts) return false;
  if (deadline_ms < 0) return true;
  if (now_ms >= deadline_ms) return false;
  // Written as a difference so that huge backoffs cannot overflow now_ms + next_backoff_ms.
  return next_backoff_ms < deadline_ms - now_ms;
}

}  // namespace treaty::resilience
