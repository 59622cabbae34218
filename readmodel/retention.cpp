// Views: retention — deleting old events from the log, old summaries from the views, and old
// remembered xids from the log.
//
// Order of effects, so that a crash between them is harmless: the log's deletion comes first
// (Purge is idempotent), then the views record it. A pass that crashes in between is repeated by
// the next one, whose Purge finds nothing left to delete.

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "readmodel/fold.h"
#include "readmodel/keys.h"
#include "readmodel/views.h"

namespace treaty::readmodel::internal {
namespace {

// Transactions handled per log Purge call and views WriteBatch.
constexpr size_t kRetentionChunk = 512;
// Chunks per step of one pass: bounds how long one pass keeps the projector from projecting.
// What is left is done by the next pass.
constexpr size_t kMaxChunksPerPass = 16;

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Up to kRetentionChunk summaries queued under prefix whose time is at or before cutoff_ms.
Result<std::vector<v1::SummaryRecord>> Due(rocksdb::DB* db, std::string_view prefix,
                                           int64_t cutoff_ms) {
  std::vector<v1::SummaryRecord> out;
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db->GetSnapshot();
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  Status status;
  for (it->Seek(ToSlice(prefix));
       it->Valid() && it->key().starts_with(ToSlice(prefix)) && out.size() < kRetentionChunk;
       it->Next()) {
    std::optional<TimedKey> key = ParseTimedKey(it->key().ToStringView(), prefix.size());
    if (!key || static_cast<int64_t>(key->time) > cutoff_ms) break;
    std::string bytes;
    const rocksdb::Status s = db->Get(read, SummaryKey(key->xid), &bytes);
    if (s.IsNotFound()) continue;  // cannot happen in a snapshot; tolerated
    if (!s.ok()) {
      status = FromRocks(s, "read a summary due for retention");
      break;
    }
    v1::SummaryRecord rec;
    if (!ParseStored(bytes, &rec)) {
      status = Status::Corruption(
          fmt::format("read model: the summary of xid={} is unparsable", key->xid));
      break;
    }
    out.push_back(std::move(rec));
  }
  if (status.ok() && !it->status().ok()) status = FromRocks(it->status(), "scan a retention queue");
  it.reset();
  db->ReleaseSnapshot(snapshot);
  if (!status.ok()) return status;
  return out;
}

// Has the log forget the xids that finished at or before cutoff_ms, a bounded number per pass.
Result<uint64_t> ExpireXids(log::EventLog& log, int64_t cutoff_ms) {
  uint64_t total = 0;
  for (size_t chunk = 0; chunk < kMaxChunksPerPass; ++chunk) {
    Result<log::XidExpiryResult> expired = log.ExpireXids(cutoff_ms, kRetentionChunk);
    if (!expired.ok()) return expired.status();
    total += expired->expired;
    if (expired->expired + expired->skipped < kRetentionChunk) break;
  }
  return total;
}

}  // namespace

Result<RetentionResult> Views::PurgeEvents(log::EventLog& log, int64_t cutoff_ms,
                                           int64_t now_unix_ms) {
  RetentionResult total;
  for (size_t chunk = 0; chunk < kMaxChunksPerPass; ++chunk) {
    Result<std::vector<v1::SummaryRecord>> due = Due(db_, kPurgeQueuePrefix, cutoff_ms);
    if (!due.ok()) return due.status();
    if (due->empty()) break;
    std::vector<log::PurgeRequest> requests;
    for (const v1::SummaryRecord& rec : *due) {
      requests.push_back({rec.summary().xid(),
                          {rec.event_lsns().begin(), rec.event_lsns().end()},
                          /*drop_outcome=*/false,
                          cutoff_ms});
    }
    Result<log::PurgeResult> purged = log.Purge(requests);
    if (!purged.ok()) return purged.status();
    if (purged->skipped > 0) {
      spdlog::warn(
          "read model: the log kept the events of {} finished transactions (not finished "
          "there, or finished later); they stay until a rebuild",
          purged->skipped);
    }
    total.events_purged += purged->events_deleted;

    // The summaries become the only copy; their counters move to the archive.
    rocksdb::WriteBatch batch;
    Contribution moved;
    for (v1::SummaryRecord rec : *due) {
      const std::map<std::string, std::string> before = IndexEntries(rec);
      for (auto& [key, delta] : ContributionOf(rec.summary(), now_unix_ms)) {
        Accumulate(key, delta, &moved);
      }
      rec.set_events_purged(true);
      rec.clear_event_lsns();
      const std::map<std::string, std::string> after = IndexEntries(rec);
      rocksdb::Status s;
      for (const auto& [key, value] : before) {
        if (s.ok() && after.count(key) == 0) s = batch.Delete(key);
      }
      for (const auto& [key, value] : after) {
        if (s.ok() && before.count(key) == 0) s = batch.Put(key, value);
      }
      if (s.ok()) s = batch.Put(SummaryKey(rec.summary().xid()), rec.SerializeAsString());
      if (!s.ok()) return FromRocks(s, "stage a purged summary");
      ++total.transactions_purged;
    }
    TREATY_RETURN_IF_ERROR(AddAggregates(std::string(kLivePrefix), moved, -1, &batch));
    TREATY_RETURN_IF_ERROR(AddAggregates(std::string(kArchivePrefix), moved, 1, &batch));
    TREATY_RETURN_IF_ERROR(Write(&batch));
    if (due->size() < kRetentionChunk) break;
  }
  return total;
}

Result<RetentionResult> Views::ExpireSummaries(log::EventLog& log, int64_t cutoff_ms) {
  RetentionResult total;
  for (size_t chunk = 0; chunk < kMaxChunksPerPass; ++chunk) {
    Result<std::vector<v1::SummaryRecord>> due = Due(db_, kExpiryQueuePrefix, cutoff_ms);
    if (!due.ok()) return due.status();
    if (due->empty()) break;
    std::vector<log::PurgeRequest> requests;
    for (const v1::SummaryRecord& rec : *due) {
      requests.push_back({rec.summary().xid(), {}, /*drop_outcome=*/true, cutoff_ms});
    }
    Result<log::PurgeResult> purged = log.Purge(requests);
    if (!purged.ok()) return purged.status();

    rocksdb::WriteBatch batch;
    std::map<v1::TxState, int64_t> state_deltas;
    for (const v1::SummaryRecord& rec : *due) {
      rocksdb::Status s;
      for (const auto& [key, value] : IndexEntries(rec)) {
        if (s.ok()) s = batch.Delete(key);
      }
      if (s.ok()) s = batch.Delete(SummaryKey(rec.summary().xid()));
      if (s.ok()) s = batch.Delete(SagaKey(rec.summary().xid()));
      if (!s.ok()) return FromRocks(s, "stage an expired summary");
      --state_deltas[rec.summary().state()];
      ++total.summaries_expired;
    }
    TREATY_RETURN_IF_ERROR(AddStateCounts(state_deltas, &batch));
    TREATY_RETURN_IF_ERROR(Write(&batch));
    if (due->size() < kRetentionChunk) break;
  }
  return total;
}

Status Views::DropOldRateBuckets(int64_t now_unix_ms) {
  const int64_t horizon = now_unix_ms - kRateHorizonMs;
  if (horizon <= 0) return Status::Ok();
  const int64_t first_kept = horizon / kRateBucketMs * kRateBucketMs;
  rocksdb::WriteBatch batch;
  for (std::string_view prefix : {kLivePrefix, kArchivePrefix}) {
    const rocksdb::Status s = batch.DeleteRange(RateKey(prefix, 0), RateKey(prefix, first_kept));
    if (!s.ok()) return FromRocks(s, "stage old rate buckets");
  }
  return Write(&batch);
}

Result<RetentionResult> Views::Retention(log::EventLog& log, const ReadModelOptions& options,
                                         int64_t now_unix_ms) {
  RetentionResult result;
  if (options.event_retention_ms > 0) {
    Result<RetentionResult> events =
        PurgeEvents(log, now_unix_ms - options.event_retention_ms, now_unix_ms);
    if (!events.ok()) return events.status();
    result = *events;
    if (options.summary_retention_ms > 0) {
      const int64_t keep = std::max(options.summary_retention_ms, options.event_retention_ms);
      Result<RetentionResult> summaries = ExpireSummaries(log, now_unix_ms - keep);
      if (!summaries.ok()) return summaries.status();
      result.summaries_expired = summaries->summaries_expired;
    }
    if (options.xid_retention_ms > 0) {
      Result<uint64_t> xids = ExpireXids(log, now_unix_ms - options.xid_retention_ms);
      if (!xids.ok()) return xids.status();
      result.xids_expired = *xids;
    }
  }
  TREATY_RETURN_IF_ERROR(DropOldRateBuckets(now_unix_ms));
  if (result.transactions_purged > 0 || result.summaries_expired > 0 || result.xids_expired > 0) {
    spdlog::info(
        "read model: retention purged the events of {} transactions ({} events), "
        "expired {} summaries and {} remembered xids",
        result.transactions_purged, result.events_purged, result.summaries_expired,
        result.xids_expired);
  }
  return result;
}

}  // namespace treaty::readmodel::internal
