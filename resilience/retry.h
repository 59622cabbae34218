// Retry policy: which failures may be retried, how long to wait before each retry (exponential
// backoff with full jitter), and when to stop (attempt limit, the call's deadline).
//
// Retrying is safe only because every participant method is idempotent (the participant's
// barrier turns a duplicate Prepare / Commit / Abort into a no-op), so a call whose outcome is
// unknown (UNAVAILABLE after sending, DEADLINE_EXCEEDED) may be sent again.
//
// Typical use, per call:
//   uint32_t attempts = 1;                       // the first call has been made and failed
//   while (IsRetryable(status)) {
//     int64_t backoff_ms = BackoffMs(policy, attempts, random);
//     if (!RetryAllowed(policy, attempts, now_ms, deadline_ms, backoff_ms)) break;
//     ... wait backoff_ms, call again, ++attempts ...
//   }
//
// Pure functions; time is passed in (milliseconds of a monotonic clock). Thread-safe as long as
// the Random passed in is not shared between threads.
#pragma once

#include <cstdint>

#include "common/random.h"
#include "common/status.h"

namespace treaty::resilience {

struct RetryPolicy {
  // Upper bound of the first retry's wait, milliseconds. Default 20. Must be >= 1.
  int64_t initial_backoff_ms = 20;
  // Upper bound of any wait, milliseconds. Default 2000. Must be >= initial_backoff_ms.
  int64_t max_backoff_ms = 2000;
  // Growth of the bound per retry: retry k waits up to initial * multiplier^(k-1). Default 2.0.
  // Must be >= 1 and finite.
  double multiplier = 2.0;
  // Most calls in total, the first one included (3 = the call and two retries). 0 (default):
  // unlimited, bounded only by the deadline.
  uint32_t max_attempts = 0;
};

// OK, or INVALID_ARGUMENT naming the field that breaks the rules above.
Status Validate(const RetryPolicy& policy);

// The largest wait before retry `attempt` (1 = first retry):
// min(max_backoff_ms, initial_backoff_ms * multiplier^(attempt-1)), at least 1. attempt 0 is
// treated as 1. Never overflows, whatever attempt is. Out-of-range policy fields are clamped
// (initial to >= 1, max to >= initial, multiplier to >= 1).
int64_t BackoffCapMs(const RetryPolicy& policy, uint32_t attempt);

// The wait before retry `attempt` (1 = first retry), "full jitter": uniform in
// [1, BackoffCapMs(policy, attempt)]. Spreading retries over the whole interval keeps many
// callers that failed together from retrying together.
int64_t BackoffMs(const RetryPolicy& policy, uint32_t attempt, Random& random);

// Whether a failed call may be retried (its failure is transient and a repeat is safe):
//   retryable:     UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL;
//   not retryable: OK (nothing to retry), INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//                  FAILED_PRECONDITION, ABORTED, CORRUPTION (a repeat gets the same answer).
bool IsRetryable(const Status& status);

// Whether another attempt may be made after attempts_so_far calls (>= 1) have failed, waiting
// next_backoff_ms first. False when policy.max_attempts (if not 0) calls have been made, or when
// the retry would start at or after deadline_ms (-1: no deadline), i.e. it would have no time left.
bool RetryAllowed(const RetryPolicy& policy, uint32_t attempts_so_far, int64_t now_ms,
                  int64_t deadline_ms, int64_t next_backoff_ms);

}  // namespace treaty::resilience
