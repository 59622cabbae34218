#include "readmodel/keys.h"

#include <algorithm>

namespace treaty::readmodel::internal {

std::string BigEndianU(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, value >>= 8)
    out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
  return out;
}

std::string BigEndian(int64_t value) {
  return BigEndianU(value < 0 ? 0 : static_cast<uint64_t>(value));
}

uint64_t ReadBigEndian(std::string_view data) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(data[i]);
  return value;
}

namespace {

char StateByte(v1::TxState state) { return static_cast<char>(static_cast<int>(state) & 0x7f); }

}  // namespace

std::string SummaryKey(std::string_view xid) { return std::string(kSummaryPrefix).append(xid); }

std::string UpdatedKey(int64_t updated_ms, std::string_view xid) {
  return std::string(kUpdatedPrefix).append(BigEndian(updated_ms)).append(xid);
}

std::string StatePrefix(v1::TxState state) { return std::string(kStatePrefix) + StateByte(state); }

std::string StateKey(v1::TxState state, int64_t updated_ms, std::string_view xid) {
  return StatePrefix(state).append(BigEndian(updated_ms)).append(xid);
}

std::string ServicePrefix(std::string_view service) {
  const uint64_t size = service.size();
  std::string out(kServicePrefix);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((size >> shift) & 0xff));
  return out.append(service);
}

std::string ServiceKey(std::string_view service, int64_t updated_ms, std::string_view xid) {
  return ServicePrefix(service).append(BigEndian(updated_ms)).append(xid);
}

std::string LsnIndexKey(uint64_t lsn, std::string_view xid) {
  return std::string(kLsnIndexPrefix).append(BigEndianU(lsn)).append(xid);
}

std::string PurgeQueueKey(int64_t finished_ms, std::string_view xid) {
  return std::string(kPurgeQueuePrefix).append(BigEndian(finished_ms)).append(xid);
}

std::string ExpiryQueueKey(int64_t finished_ms, std::string_view xid) {
  return std::string(kExpiryQueuePrefix).append(BigEndian(finished_ms)).append(xid);
}

std::string StuckKey(int64_t updated_ms, std::string_view xid) {
  return std::string(kStuckPrefix).append(BigEndian(updated_ms)).append(xid);
}

std::string SagaKey(std::string_view xid) { return std::string(kSagaPrefix).append(xid); }

std::string StateCountKey(v1::TxState state) {
  return std::string(kStateCountPrefix) + StateByte(state);
}

std::string CountersKey(std::string_view prefix, v1::TxState outcome, std::string_view service) {
  return std::string(prefix).append("c").append(1, StateByte(outcome)).append(service);
}

std::string RateKey(std::string_view prefix, int64_t bucket_start_ms) {
  return std::string(prefix).append("r").append(BigEndian(bucket_start_ms));
}

std::optional<TimedKey> ParseTimedKey(std::string_view key, size_t prefix_size) {
  if (key.size() < prefix_size + 8) return std::nullopt;
  return TimedKey{ReadBigEndian(key.substr(prefix_size, 8)), key.substr(prefix_size + 8)};
}

std::string StateModeValue(v1::TxState state, std::string_view mode) {
  return std::string(1, StateByte(state)).append(mode);
}

v1::TxState StateOfValue(std::string_view value) {
  if (value.empty()) return v1::TX_STATE_UNSPECIFIED;
  const int state = static_cast<unsigned char>(value[0]);
  return v1::TxState_IsValid(state) ? static_cast<v1::TxState>(state) : v1::TX_STATE_UNSPECIFIED;
}

std::string_view ModeOfValue(std::string_view value) {
  return value.empty() ? value : value.substr(1);
}

size_t BucketOf(int64_t latency_ms) {
  const auto it = std::lower_bound(kBucketBoundsMs.begin(), kBucketBoundsMs.end(), latency_ms);
  return static_cast<size_t>(it - kBucketBoundsMs.begin());
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

}  // namespace treaty::readmodel::internal
