#include "log/xids.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "log/event_log_impl.h"
#include "log/log.h"

namespace treaty::log::internal {
namespace {

constexpr char kRecordPrefix = 'r';
constexpr char kExpiryPrefix = 'e';
// Version of the record encoding; a reader refuses other versions instead of misreading them.
constexpr uint8_t kRecordVersion = 1;
// version, mode, outcome: one byte each; then the finish time, 8 bytes.
constexpr size_t kRecordBytes = 3 + 8;

std::string RecordKey(std::string_view xid) { return std::string(1, kRecordPrefix).append(xid); }

// Flipping the sign bit makes the bytewise order of the big-endian form the order of the times.
constexpr uint64_t kSignBit = uint64_t{1} << 63;
constexpr size_t kTimeBytes = 8;

std::string ExpiryKey(int64_t finished_unix_ms, std::string_view xid) {
  return std::string(1, kExpiryPrefix)
      .append(LsnKey(static_cast<uint64_t>(finished_unix_ms) ^ kSignBit))
      .append(xid);
}

std::string Encode(const UsedXid& used) {
  std::string value(1, static_cast<char>(kRecordVersion));
  value.push_back(static_cast<char>(used.mode));
  value.push_back(static_cast<char>(used.outcome));
  value.append(LsnKey(static_cast<uint64_t>(used.finished_unix_ms)));  // two's complement
  return value;
}

Result<UsedXid> Decode(std::string_view xid, std::string_view value) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("the xids record of xid={} is unreadable: {}", xid, why));
  };
  if (value.empty() || static_cast<uint8_t>(value[0]) != kRecordVersion) {
    return bad(value.empty() ? "empty" : "unknown version (written by a newer treatyd?)");
  }
  if (value.size() != kRecordBytes) return bad(fmt::format("{} bytes", value.size()));
  UsedXid used;
  const auto mode = static_cast<uint8_t>(value[1]);
  const auto outcome = static_cast<uint8_t>(value[2]);
  if (mode < 1 || mode > 2) return bad("bad mode");
  if (outcome < 1 || outcome > 4) return bad("bad outcome");
  used.mode = static_cast<UsedXid::Mode>(mode);
  used.outcome = static_cast<UsedXid::Outcome>(outcome);
  used.finished_unix_ms = static_cast<int64_t>(*ParseLsnKey(value.substr(3)));
  return used;
}

}  // namespace

UsedXid UsedXidOf(const v1::TxnRecord& rec) {
  UsedXid used;
  used.finished_unix_ms = rec.updated_unix_ms();
  if (rec.mode() == "saga") {
    used.mode = UsedXid::Mode::kSaga;
    used.outcome = rec.saga_state() == v1::SAGA_COMPLETED ? UsedXid::Outcome::kCompleted
                                                          : UsedXid::Outcome::kCompensated;
  } else {
    used.mode = UsedXid::Mode::kTwoPc;
    used.outcome =
        rec.state() == v1::COMMITTED ? UsedXid::Outcome::kCommitted : UsedXid::Outcome::kAborted;
  }
  return used;
}

Result<std::optional<UsedXid>> ReadUsedXid(const Store& store, std::string_view xid) {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      store.db()->Get(rocksdb::ReadOptions(), store.xids(), RecordKey(xid), &value);
  if (s.IsNotFound()) return std::optional<UsedXid>();
  if (!s.ok()) return FromRocks(s, fmt::format("xid={}: cannot read its xids record", xid));
  Result<UsedXid> used = Decode(xid, value.ToStringView());
  if (!used.ok()) return used.status();
  return std::optional<UsedXid>(*used);
}

Status StageUsedXid(const Store& store, std::string_view xid, const UsedXid& used,
                    rocksdb::WriteBatch* wb) {
  Result<std::optional<UsedXid>> older = ReadUsedXid(store, xid);
  if (!older.ok()) return older.status();
  rocksdb::Status s;
  if (older->has_value()) s = wb->Delete(store.xids(), ExpiryKey((*older)->finished_unix_ms, xid));
  if (s.ok()) s = wb->Put(store.xids(), RecordKey(xid), Encode(used));
  if (s.ok()) s = wb->Put(store.xids(), ExpiryKey(used.finished_unix_ms, xid), rocksdb::Slice());
  if (!s.ok()) return FromRocks(s, fmt::format("xid={}: cannot stage its xids record", xid));
  return Status::Ok();
}

Result<std::vector<std::string>> ListExpiredXids(const Store& store,
                                                 int64_t finished_before_unix_ms, size_t max) {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      store.db()->NewIterator(rocksdb::ReadOptions(), store.xids()));
  for (it->Seek(std::string(1, kExpiryPrefix)); it->Valid() && out.size() < max; it->Next()) {
    const std::string_view key = it->key().ToStringView();
    if (key.empty() || key[0] != kExpiryPrefix) break;  // past the index
    const std::optional<uint64_t> time = ParseLsnKey(key.substr(1, kTimeBytes));
    if (key.size() < 1 + kTimeBytes || !time) {
      return Status::Corruption(
          fmt::format("an xids index key in {} has {} bytes", store.dir(), key.size()));
    }
    if (static_cast<int64_t>(*time ^ kSignBit) > finished_before_unix_ms) break;
    out.emplace_back(key.substr(1 + kTimeBytes));
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), fmt::format("cannot scan xids in {}", store.dir()));
  }
  return out;
}

Result<XidExpiryResult> ExpireXids(const Store& store, const std::vector<std::string>& xids,
                                   int64_t finished_before_unix_ms) {
  XidExpiryResult result;
  rocksdb::WriteBatch wb;
  for (const std::string& xid : xids) {
    Result<std::optional<UsedXid>> used = ReadUsedXid(store, xid);
    if (!used.ok()) return used.status();
    if (!used->has_value() || (*used)->finished_unix_ms > finished_before_unix_ms) {
      ++result.skipped;
      continue;
    }
    rocksdb::Status s = wb.Delete(store.xids(), RecordKey(xid));
    if (s.ok()) s = wb.Delete(store.xids(), ExpiryKey((*used)->finished_unix_ms, xid));
    if (!s.ok()) return FromRocks(s, "cannot stage an xid expiry");
    ++result.expired;
  }
  TREATY_RETURN_IF_ERROR(WriteSynced(store, &wb, "cannot expire xids"));
  return result;
}

}  // namespace treaty::log::internal

namespace treaty::log {

Result<std::optional<UsedXid>> EventLog::FindUsedXid(std::string_view xid) const {
  return internal::ReadUsedXid(*impl_->store_, xid);
}

Result<XidExpiryResult> EventLog::ExpireXids(int64_t finished_before_unix_ms, size_t max_xids) {
  std::unique_lock<std::mutex> lock(impl_->retention_mu_, std::defer_lock);
  if (!impl_->replica_) lock.lock();  // cluster mode: the apply thread serializes the deletions
  Result<std::vector<std::string>> xids = internal::ListExpiredXids(
      *impl_->store_, finished_before_unix_ms, std::min(max_xids, kMaxXidsPerExpiry));
  if (!xids.ok()) return xids.status();
  if (xids->empty()) return XidExpiryResult();
  if (impl_->replica_) {
    internal::Pending pending;
    pending.xid_expiry = internal::XidExpiry{std::move(*xids), finished_before_unix_ms};
    pending.xid_expiry_result = std::make_shared<XidExpiryResult>();
    auto result = pending.xid_expiry_result;
    TREATY_RETURN_IF_ERROR(internal::ReplicateAndWait(*impl_, std::move(pending)));
    return *result;
  }
  return internal::ExpireXids(*impl_->store_, *xids, finished_before_unix_ms);
}

std::string_view UsedXidModeName(UsedXid::Mode mode) {
  return mode == UsedXid::Mode::kSaga ? "saga" : "2PC";
}

std::string_view UsedXidOutcomeName(UsedXid::Outcome outcome) {
  switch (outcome) {
    case UsedXid::Outcome::kCommitted:
      return "committed";
    case UsedXid::Outcome::kAborted:
      return "aborted";
    case UsedXid::Outcome::kCompleted:
      return "completed";
    case UsedXid::Outcome::kCompensated:
      return "compensated";
  }
  return "unknown";
}

}  // namespace treaty::log
