#include "resilience/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace treaty::resilience {
namespace {

// Answers beyond this (about 285,000 years) are reported as kNever; keeps the double -> int64
// conversion in range.
constexpr double kMaxRetryAfterMs = 9e15;

}  // namespace

Status Validate(const TokenBucketOptions& options) {
  if (!std::isfinite(options.rate_per_sec) || options.rate_per_sec < 0) {
    return Status::InvalidArgument("token bucket: rate_per_sec must be a finite number >= 0, got " +
                                   std::to_string(options.rate_per_sec));
  }
  if (!std::isfinite(options.burst) || options.burst <= 0) {
    return Status::InvalidArgument("token bucket: burst must be a finite number > 0, got " +
                                   std::to_string(options.burst));
  }
  return Status::Ok();
}

TokenBucket::TokenBucket(TokenBucketOptions options) : options_(options), tokens_(options.burst) {}

double TokenBucket::Tokens(int64_t now_ms) const {
  if (!started_ || now_ms <= last_ms_) return tokens_;
  if (!(options_.rate_per_sec > 0)) return tokens_;
  const double added = static_cast<double>(now_ms - last_ms_) * options_.rate_per_sec / 1000.0;
  return std::min(options_.burst, tokens_ + added);
}

bool TokenBucket::Full(int64_t now_ms) const { return Tokens(now_ms) >= options_.burst; }

double TokenBucket::Tolerance() const {
  // Rounding in the refill may leave a bucket a hair short of a whole token it has earned.
  return 1e-9 * std::max(1.0, options_.burst);
}

bool TokenBucket::Fits(int64_t now_ms, double n) const { return Tokens(now_ms) + Tolerance() >= n; }

bool TokenBucket::TryTake(int64_t now_ms, double n) {
  const double tokens = Tokens(now_ms);
  if (!started_ || now_ms > last_ms_) {
    tokens_ = tokens;
    last_ms_ = now_ms;
    started_ = true;
  }
  if (!(n > 0)) return true;
  if (!Fits(now_ms, n)) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

int64_t TokenBucket::RetryAfterMs(int64_t now_ms, double n) const {
  if (!(n > 0) || Fits(now_ms, n)) return 0;
  if (!(options_.rate_per_sec > 0) || n > options_.burst + Tolerance()) return kNever;
  // An earlier time than the last refill reads as the last refill (no tokens were added).
  if (started_) now_ms = std::max(now_ms, last_ms_);
  const double estimate = std::ceil((n - Tokens(now_ms)) * 1000.0 / options_.rate_per_sec);
  if (!(estimate < kMaxRetryAfterMs)) return kNever;
  // Settle the estimate against Fits' own arithmetic, so the answer is exact to the millisecond.
  int64_t wait_ms = std::max<int64_t>(1, static_cast<int64_t>(estimate));
  while (!Fits(now_ms + wait_ms, n)) ++wait_ms;
  while (wait_ms > 1 && Fits(now_ms + wait_ms - 1, n)) --wait_ms;
  return wait_ms;
}

KeyedTokenBuckets::KeyedTokenBuckets(TokenBucketOptions options, size_t max_keys)
    : options_(options), max_keys_(std::max<size_t>(1, max_keys)) {}

bool KeyedTokenBuckets::TryTake(std::string_view key, int64_t now_ms, double n) {
  key = key.substr(0, kMaxKeyBytes);
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->bucket.TryTake(now_ms, n);
  }
  if (index_.size() >= max_keys_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Entry{std::string(key), TokenBucket(options_)});
  index_.emplace(lru_.front().key, lru_.begin());
  return lru_.front().bucket.TryTake(now_ms, n);
}

int64_t KeyedTokenBuckets::RetryAfterMs(std::string_view key, int64_t now_ms, double n) const {
  key = key.substr(0, kMaxKeyBytes);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second->bucket.RetryAfterMs(now_ms, n);
  return TokenBucket(options_).RetryAfterMs(now_ms, n);
}

}  // namespace treaty::resilience
