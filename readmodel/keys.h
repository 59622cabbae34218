// Private to readmodel/: the key layout of the read model's RocksDB database and the layout of
// its aggregate records. Everything lives in the default column family; the first two bytes of a
// key name the view. Times and lsns are 8-byte big-endian so that bytewise order is numeric order.
//
//   m/schema                        "treaty-readmodel-v1"
//   m/lsn                           last projected lsn (8 bytes), written with every batch
//   m/rebuild                       present while a rebuild's wipe is incomplete
//   t/<xid>                         SummaryRecord
//   u/<updated><xid>                index of every summary by update time
//   s/<state:1><updated><xid>       index by state and update time
//   v/<len:4><service><updated><xid>  index by service (one entry per distinct service)
//                                   (the values of u/, s/ and v/ are [state:1][mode], so that
//                                   filters are checked without reading the summary)
//   l/<last_lsn><xid>               index by the lsn of the last event (coordinator.Watch)
//   p/<finished><xid>               finished, events still in the log (event retention queue)
//   x/<finished><xid>               finished, events purged (summary retention queue)
//   k/<updated><xid>                sagas in SAGA_STUCK (Attention)
//   d/<xid>                         sagas: the client view (v1::Transaction with mode "saga",
//                                   saga_state and steps), written with the summary
//   n/<state:1>                     number of summaries in the state (8 bytes)
//   g/L/...  g/A/...                aggregates: L = derived from events still in the log, A =
//                                   contributions of transactions whose events were purged
//                                   (moved there by retention, kept by a rebuild). A query adds
//                                   both.
//     c<outcome:1><service>         per outcome and service (empty service = every transaction
//                                   once): kCountersSize counters, see kCount...
//     r<bucket start ms>            finished per kRateBucketMs of END time: [committed, aborted]
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "treaty/v1/coordinator.pb.h"

namespace treaty::readmodel::internal {

inline constexpr std::string_view kSchemaKey = "m/schema";
inline constexpr std::string_view kSchemaValue = "treaty-readmodel-v1";
inline constexpr std::string_view kLsnKey = "m/lsn";
inline constexpr std::string_view kRebuildKey = "m/rebuild";

inline constexpr std::string_view kSummaryPrefix = "t/";
inline constexpr std::string_view kUpdatedPrefix = "u/";
inline constexpr std::string_view kStatePrefix = "s/";
inline constexpr std::string_view kServicePrefix = "v/";
inline constexpr std::string_view kLsnIndexPrefix = "l/";
inline constexpr std::string_view kPurgeQueuePrefix = "p/";
inline constexpr std::string_view kExpiryQueuePrefix = "x/";
inline constexpr std::string_view kStateCountPrefix = "n/";
inline constexpr std::string_view kStuckPrefix = "k/";
inline constexpr std::string_view kSagaPrefix = "d/";
inline constexpr std::string_view kLivePrefix = "g/L/";
inline constexpr std::string_view kArchivePrefix = "g/A/";

// Latency histogram upper bounds, milliseconds; one more bucket above the last (+inf).
inline constexpr std::array<int64_t, 16> kBucketBoundsMs = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000};
inline constexpr size_t kBuckets = kBucketBoundsMs.size() + 1;

// Layout of a c-aggregate.
inline constexpr size_t kCount = 0;           // finished transactions
inline constexpr size_t kLatencySumMs = 1;    // sum of BEGIN..END, ms
inline constexpr size_t kDecisionSumMs = 2;   // sum of BEGIN..decision, ms
inline constexpr size_t kLatencyBuckets = 3;  // kBuckets counts of BEGIN..END
inline constexpr size_t kDecisionBuckets = kLatencyBuckets + kBuckets;  // of BEGIN..decision
inline constexpr size_t kCountersSize = kDecisionBuckets + kBuckets;

// Rate buckets: END time resolution and how long they are kept (Stats looks back at most 300 s).
inline constexpr int64_t kRateBucketMs = 10'000;
inline constexpr int64_t kRateHorizonMs = 3'600'000;

// 8-byte big-endian; negative values encode as 0.
std::string BigEndian(int64_t value);
std::string BigEndianU(uint64_t value);
// Decodes 8 bytes at data; REQUIRES: at least 8 bytes.
uint64_t ReadBigEndian(std::string_view data);

std::string SummaryKey(std::string_view xid);
std::string UpdatedKey(int64_t updated_ms, std::string_view xid);
std::string StateKey(v1::TxState state, int64_t updated_ms, std::string_view xid);
// The prefix of every entry of one state / one service.
std::string StatePrefix(v1::TxState state);
std::string ServicePrefix(std::string_view service);
std::string ServiceKey(std::string_view service, int64_t updated_ms, std::string_view xid);
std::string LsnIndexKey(uint64_t lsn, std::string_view xid);
std::string PurgeQueueKey(int64_t finished_ms, std::string_view xid);
std::string ExpiryQueueKey(int64_t finished_ms, std::string_view xid);
std::string StateCountKey(v1::TxState state);
std::string StuckKey(int64_t updated_ms, std::string_view xid);
std::string SagaKey(std::string_view xid);
// prefix is kLivePrefix or kArchivePrefix.
std::string CountersKey(std::string_view prefix, v1::TxState outcome, std::string_view service);
std::string RateKey(std::string_view prefix, int64_t bucket_start_ms);

// A key of the form <prefix><time or lsn:8><xid> split into its parts; nullopt if too short.
struct TimedKey {
  uint64_t time = 0;
  std::string_view xid;
};
std::optional<TimedKey> ParseTimedKey(std::string_view key, size_t prefix_size);

// Index values: [state:1][mode].
std::string StateModeValue(v1::TxState state, std::string_view mode);
v1::TxState StateOfValue(std::string_view value);
std::string_view ModeOfValue(std::string_view value);

// The histogram bucket of a latency.
size_t BucketOf(int64_t latency_ms);

// The smallest key greater than every key starting with prefix ("" if there is none).
std::string PrefixEnd(std::string_view prefix);

}  // namespace treaty::readmodel::internal
