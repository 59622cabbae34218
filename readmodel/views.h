// Private to readmodel/: the views' RocksDB database and every operation on it — projection of a
// batch, retention, the rebuild's wipe, and the queries. ReadModel (read_model.cpp) adds the
// projector thread and the watches around it.
//
// Thread-safety: queries may run on any thread at any time. Project, Retention and Wipe change
// the views and REQUIRE external serialization (ReadModel's projection mutex).
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "log/log.h"
#include "readmodel/readmodel.h"
#include "treaty/v1/query.pb.h"

namespace treaty::readmodel::internal {

class Views {
 public:
  // Opens or creates the database in dir (see ReadModelOptions::dir).
  static Result<std::unique_ptr<Views>> Open(const std::string& dir);
  ~Views();
  Views(const Views&) = delete;
  Views& operator=(const Views&) = delete;

  // Lsn of the last projected event (0 for empty views).
  uint64_t projected_lsn() const { return projected_lsn_.load(); }
  // True if a rebuild's wipe was interrupted (Wipe must run before projecting).
  bool wipe_pending() const { return wipe_pending_; }

  // ---- Changes (serialized by the caller) ----

  // Folds records (in lsn order) into the views and stores the last one's lsn, all in one
  // WriteBatch. Records at or below projected_lsn() are skipped. now_unix_ms decides which rate
  // buckets are still kept (see ContributionOf).
  Status Project(const std::vector<v1::LogRecord>& records, int64_t now_unix_ms);

  // One retention pass (see readmodel.h) at now_unix_ms, deleting from log through Purge.
  Result<RetentionResult> Retention(log::EventLog& log, const ReadModelOptions& options,
                                    int64_t now_unix_ms);

  // Deletes every view and sets the position to 0, keeping the summaries whose events were
  // purged (and re-indexing them) and the archived aggregates unless full. Crash-safe: an
  // interrupted wipe is reported by wipe_pending() after reopening. Returns the summaries kept.
  Result<uint64_t> Wipe(bool full);

  // ---- Queries (any thread) ----

  Result<std::optional<v1::TxSummary>> Get(std::string_view xid) const;
  // See ReadModel::GetTransaction.
  Result<std::optional<v1::Transaction>> GetTransaction(std::string_view xid,
                                                        const v1::Transaction* live) const;
  Result<v1::ListTransactionsResponse> List(const v1::ListTransactionsRequest& request) const;
  // Changes after after_lsn matching filter (state, service, mode), at most kMaxWatchChanges;
  // lsn of the answer is where the next scan starts.
  Result<v1::WatchResponse> Changes(const v1::TxFilter& filter, uint64_t after_lsn) const;
  // Everything of StatsResponse except the projector status.
  Result<v1::StatsResponse> Stats(int64_t now_unix_ms) const;
  Result<v1::AttentionResponse> Attention(int64_t now_unix_ms, int64_t stuck_after_ms,
                                          size_t limit) const;

 private:
  Views(std::string dir, rocksdb::DB* db) : dir_(std::move(dir)), db_(db) {}

  Result<std::optional<std::string>> Read(const rocksdb::ReadOptions& options,
                                          std::string_view key) const;
  Result<std::optional<v1::SummaryRecord>> ReadRecord(const rocksdb::ReadOptions& options,
                                                      std::string_view xid) const;
  // The stored client view of rec's saga; nullopt if rec is absent or not a saga.
  Result<std::optional<v1::Transaction>> ReadSaga(
      const rocksdb::ReadOptions& options, const std::optional<v1::SummaryRecord>& rec) const;
  Result<v1::AggregateRecord> ReadAggregate(std::string_view key) const;
  Status Write(rocksdb::WriteBatch* batch);
  // Moves (or, with sign, adds) a contribution into the aggregates under prefix.
  Status AddAggregates(const std::string& prefix,
                       const std::map<std::string, std::vector<int64_t>>& deltas, int64_t sign,
                       rocksdb::WriteBatch* batch);
  Status AddStateCounts(const std::map<v1::TxState, int64_t>& deltas, rocksdb::WriteBatch* batch);
  Status DeleteRange(std::string_view prefix, rocksdb::WriteBatch* batch);

  // Retention steps.
  Result<RetentionResult> PurgeEvents(log::EventLog& log, int64_t cutoff_ms, int64_t now_unix_ms);
  Result<RetentionResult> ExpireSummaries(log::EventLog& log, int64_t cutoff_ms);
  Status DropOldRateBuckets(int64_t now_unix_ms);

  const std::string dir_;
  rocksdb::DB* db_;
  std::atomic<uint64_t> projected_lsn_{0};
  bool wipe_pending_ = false;
};

// Parses a stored record; false if the bytes are not one.
bool ParseStored(std::string_view bytes, google::protobuf::MessageLite* message);

// Converts a RocksDB error: corruption -> CORRUPTION, anything else -> UNAVAILABLE.
Status FromRocks(const rocksdb::Status& status, std::string_view context);

}  // namespace treaty::readmodel::internal
