// Retention: deleting the events (and eventually the outcome) of finished transactions.
//
// Why this may run beside the writer thread without a lock: event records are written once, at
// lsns above every purgeable one, and never read back by the writer. An outcomes record is read by
// the writer only to fold a new event of an xid that already finished; the coordinator appends
// such an event only for an xid it holds in memory, which a transaction finished longer ago than
// the summary retention is not. Should one still slip in between our check and our delete, the
// worst case is that the outcome (which was being dropped anyway) is dropped. The xids family is
// not touched by the writer at all.

#include "log/purge.h"

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <string>

#include "log/event_log_impl.h"
#include "log/xids.h"

namespace treaty::log::internal {
namespace {

template <typename Message>
bool Parse(const rocksdb::PinnableSlice& value, Message* message) {
  return value.size() <= static_cast<size_t>(INT_MAX) &&
         message->ParseFromArray(value.data(), static_cast<int>(value.size()));
}

// The finished record of xid if it qualifies for request, nullopt if it does not.
Result<std::optional<v1::TxnRecord>> Qualifying(const Store& store, const PurgeRequest& request) {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      store.db()->Get(rocksdb::ReadOptions(), store.outcomes(), request.xid, &value);
  if (s.IsNotFound()) return std::optional<v1::TxnRecord>();
  if (!s.ok()) return FromRocks(s, fmt::format("xid={}: cannot read its outcome", request.xid));
  v1::TxnRecord rec;
  if (!Parse(value, &rec)) {
    return Status::Corruption(
        fmt::format("the outcomes record of xid={} in {} is unparsable", request.xid, store.dir()));
  }
  if (!IsFinished(rec) || rec.updated_unix_ms() > request.ended_before_unix_ms) {
    return std::optional<v1::TxnRecord>();
  }
  return std::optional<v1::TxnRecord>(std::move(rec));
}

}  // namespace

Result<PurgeResult> Purge(Store& store, const std::vector<PurgeRequest>& requests,
                          uint64_t newest_lsn) {
  PurgeResult result;
  rocksdb::WriteBatch wb;
  for (const PurgeRequest& request : requests) {
    Result<std::optional<v1::TxnRecord>> rec = Qualifying(store, request);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) {
      ++result.skipped;
      continue;
    }
    for (uint64_t lsn : request.lsns) {
      if (lsn >= newest_lsn) continue;  // keeps the lsn sequence recoverable
      const std::string key = LsnKey(lsn);
      rocksdb::PinnableSlice value;
      const rocksdb::Status s =
          store.db()->Get(rocksdb::ReadOptions(), store.events(), key, &value);
      if (s.IsNotFound()) continue;  // purged before
      if (!s.ok()) return FromRocks(s, fmt::format("cannot read the event at lsn={}", lsn));
      v1::LogRecord record;
      if (!Parse(value, &record)) {
        return Status::Corruption(
            fmt::format("the event record at lsn={} in {} is unparsable", lsn, store.dir()));
      }
      if (record.event().xid() != request.xid) {
        spdlog::warn("log: purge of xid={} listed lsn={}, which belongs to xid={}; left alone",
                     request.xid, lsn, record.event().xid());
        ++result.foreign;
        continue;
      }
      const rocksdb::Status d = wb.Delete(store.events(), key);
      if (!d.ok()) return FromRocks(d, "cannot stage an event deletion");
      ++result.events_deleted;
    }
    if (request.drop_outcome) {
      // The xid stays known: remembered in xids, in the same batch that forgets its outcome.
      TREATY_RETURN_IF_ERROR(StageUsedXid(store, request.xid, UsedXidOf(**rec), &wb));
      const rocksdb::Status d = wb.Delete(store.outcomes(), request.xid);
      if (!d.ok()) return FromRocks(d, "cannot stage an outcome deletion");
      ++result.outcomes_deleted;
    }
  }
  TREATY_RETURN_IF_ERROR(WriteSynced(store, &wb, "cannot purge from the log"));
  return result;
}

}  // namespace treaty::log::internal

namespace treaty::log {

Result<PurgeResult> EventLog::Purge(const std::vector<PurgeRequest>& requests) {
  if (impl_->replica_) {
    // Every node must delete the same records (a purged outcome changes what later appends
    // fold over), so retention is a replicated operation decided by the leader.
    internal::Pending pending;
    pending.purges = requests;
    pending.purge_result = std::make_shared<PurgeResult>();
    auto result = pending.purge_result;
    TREATY_RETURN_IF_ERROR(internal::ReplicateAndWait(*impl_, std::move(pending)));
    return *result;
  }
  std::lock_guard<std::mutex> lock(impl_->retention_mu_);
  return internal::Purge(*impl_->store_, requests, impl_->last_lsn_.load());
}

}  // namespace treaty::log
