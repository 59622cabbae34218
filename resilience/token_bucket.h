// Token buckets for admission throttling: a bucket holds up to `burst` tokens and gains
// `rate_per_sec` tokens per second; a request takes one token (or n) or is refused with a
// retry-after hint. KeyedTokenBuckets keeps one bucket per client key, with a bound on the
// number of keys.
//
//   if (!buckets.TryTake(client_id, now_ms)) {
//     return Status::ResourceExhausted("client " + client_id + " is over its rate; retry after " +
//                                      std::to_string(buckets.RetryAfterMs(client_id, now_ms)) +
//                                      " ms");
//   }
//
// Time is passed in (monotonic milliseconds); a time earlier than one already seen adds no
// tokens. Not thread-safe: the coordinator uses them from one I/O thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace treaty::resilience {

struct TokenBucketOptions {
  // Tokens added per second. Default 10000. Must be finite and >= 0 (0: the bucket never
  // refills).
  double rate_per_sec = 10000;
  // Capacity: the most tokens held, i.e. the largest burst. A new bucket starts full.
  // Default 20000. Must be finite and > 0.
  double burst = 20000;
};

// OK, or INVALID_ARGUMENT naming the field that breaks the rules above.
Status Validate(const TokenBucketOptions& options);

// RetryAfterMs's answer when waiting cannot help: n is above the burst, or the rate is 0.
inline constexpr int64_t kNever = -1;

class TokenBucket {
 public:
  explicit TokenBucket(TokenBucketOptions options = {});

  // Takes n tokens (n >= 0) if the bucket holds them at now_ms; otherwise takes nothing and
  // returns false.
  bool TryTake(int64_t now_ms, double n = 1);

  // Milliseconds from now_ms until TryTake(n) would succeed, assuming nothing else is taken
  // meanwhile: 0 if it would succeed now, kNever if it never can. Exact to the millisecond:
  // TryTake(now_ms + RetryAfterMs(now_ms, n), n) succeeds and one millisecond earlier fails.
  int64_t RetryAfterMs(int64_t now_ms, double n = 1) const;

  // Tokens held at now_ms.
  double Tokens(int64_t now_ms) const;
  // Whether the bucket is full at now_ms (an idle bucket; forgetting it loses nothing).
  bool Full(int64_t now_ms) const;

  const TokenBucketOptions& options() const { return options_; }

 private:
  // Whether TryTake(now_ms, n) would succeed. Tolerates floating-point rounding of the refill.
  bool Fits(int64_t now_ms, double n) const;
  double Tolerance() const;

  TokenBucketOptions options_;
  double tokens_;
  // Time of the last refill; meaningless until the first TryTake (the bucket is full until then).
  int64_t last_ms_ = 0;
  bool started_ = false;
};

// Default bound on the keys of KeyedTokenBuckets. With kMaxKeyBytes keys this bounds the memory
// to roughly 10,000 x 400 bytes = 4 MB, whatever clients send.
inline constexpr size_t kDefaultMaxKeys = 10'000;
// Keys are truncated to this many bytes, so a client cannot grow memory with long keys.
inline constexpr size_t kMaxKeyBytes = 256;

// One TokenBucket per key (e.g. per client id), all with the same options, for at most max_keys
// keys. When a new key arrives and max_keys buckets exist, the least recently used bucket is
// forgotten. A forgotten key that comes back starts with a full bucket: if it had drained its
// bucket, it gains up to one burst. So max_keys should exceed the number of clients active within
// burst / rate_per_sec seconds; a global bound on in-flight work (not part of this class) must
// cap what a client cycling through many keys can get.
class KeyedTokenBuckets {
 public:
  // max_keys 0 is treated as 1.
  explicit KeyedTokenBuckets(TokenBucketOptions options = {}, size_t max_keys = kDefaultMaxKeys);
  KeyedTokenBuckets(const KeyedTokenBuckets&) = delete;
  KeyedTokenBuckets& operator=(const KeyedTokenBuckets&) = delete;

  // TokenBucket::TryTake on key's bucket (created full if absent). Marks the key used.
  bool TryTake(std::string_view key, int64_t now_ms, double n = 1);
  // TokenBucket::RetryAfterMs on key's bucket (a full one if absent). Does not mark the key used.
  int64_t RetryAfterMs(std::string_view key, int64_t now_ms, double n = 1) const;

  // Keys currently held; never above max_keys().
  size_t size() const { return index_.size(); }
  size_t max_keys() const { return max_keys_; }
  // Buckets forgotten to make room so far.
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string key;
    TokenBucket bucket;
  };
  using Lru = std::list<Entry>;  // most recently used first

  const TokenBucketOptions options_;
  const size_t max_keys_;
  Lru lru_;
  // Keys view the strings held by lru_ (list nodes do not move), so each key is stored once.
  std::unordered_map<std::string_view, Lru::iterator> index_;
  uint64_t evictions_ = 0;
};

}  // namespace treaty::resilience
