// Views: opening the database, projecting a batch of events, and the rebuild's wipe.

#include "readmodel/views.h"

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <filesystem>
#include <map>

#include "readmodel/fold.h"
#include "readmodel/keys.h"

namespace treaty::readmodel::internal {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Operations per WriteBatch while wiping (bounds the batch's memory).
constexpr size_t kWipeBatchOps = 10'000;

// Every prefix the wipe deletes wholesale (summaries are handled one by one).
constexpr std::string_view kDerivedPrefixes[] = {
    kUpdatedPrefix,     kStatePrefix,      kServicePrefix, kLsnIndexPrefix, kPurgeQueuePrefix,
    kExpiryQueuePrefix, kStateCountPrefix, kLivePrefix,    kStuckPrefix};

Status NotReadModel(const std::string& dir, std::string_view why) {
  return Status::FailedPrecondition(fmt::format(
      "{} is not a Treaty read model ({}); move it away (the read model is rebuilt from the log)",
      dir, why));
}

}  // namespace

bool ParseStored(std::string_view bytes, google::protobuf::MessageLite* message) {
  return bytes.size() <= static_cast<size_t>(INT_MAX) &&
         message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

Status FromRocks(const rocksdb::Status& status, std::string_view context) {
  const std::string message = fmt::format("read model: {}: {}", context, status.ToString());
  if (status.IsCorruption()) return Status::Corruption(message);
  return Status::Unavailable(message);
}

Result<std::unique_ptr<Views>> Views::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return Status::InvalidArgument("the read model needs a directory");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::exists(fs::path(dir) / "CURRENT", ec) && !fs::is_empty(dir, ec)) {
    return NotReadModel(dir, "it holds files but no RocksDB database");
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 4;
  // Small memtables and WAL: opening replays the WAL into a memtable, and a cluster node opens its
  // read model on every role change (failover). 8 MiB memtables keep that replay short.
  options.write_buffer_size = size_t{8} << 20;
  options.max_total_wal_size = uint64_t{32} << 20;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::Unavailable(fmt::format(
          "read model {} is locked: another treatyd may be using it ({})", dir, s.ToString()));
    }
    return FromRocks(s, fmt::format("cannot open {}", dir));
  }
  std::unique_ptr<Views> views(new Views(dir, db));

  rocksdb::ReadOptions read;
  Result<std::optional<std::string>> schema = views->Read(read, kSchemaKey);
  if (!schema.ok()) return schema.status();
  if (!schema->has_value()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
    it->SeekToFirst();
    if (it->Valid()) return NotReadModel(dir, "its database has no read model schema marker");
    rocksdb::WriteOptions sync;
    sync.sync = true;
    const rocksdb::Status put = db->Put(sync, ToSlice(kSchemaKey), ToSlice(kSchemaValue));
    if (!put.ok()) return FromRocks(put, "cannot write the schema marker");
  } else if (**schema != kSchemaValue) {
    return NotReadModel(dir, fmt::format("its schema is \"{}\"", **schema));
  }
  Result<std::optional<std::string>> lsn = views->Read(read, kLsnKey);
  if (!lsn.ok()) return lsn.status();
  if (lsn->has_value()) {
    if ((*lsn)->size() != 8) return Status::Corruption(fmt::format("{}: bad m/lsn", dir));
    views->projected_lsn_.store(ReadBigEndian(**lsn));
  }
  Result<std::optional<std::string>> wipe = views->Read(read, kRebuildKey);
  if (!wipe.ok()) return wipe.status();
  views->wipe_pending_ = wipe->has_value();
  return views;
}

Views::~Views() {
  const rocksdb::Status s = db_->Close();
  if (!s.ok()) spdlog::warn("read model: closing {}: {}", dir_, s.ToString());
  delete db_;
}

Result<std::optional<std::string>> Views::Read(const rocksdb::ReadOptions& options,
                                               std::string_view key) const {
  std::string value;
  const rocksdb::Status s = db_->Get(options, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "read");
  return std::optional<std::string>(std::move(value));
}

Result<std::optional<v1::SummaryRecord>> Views::ReadRecord(const rocksdb::ReadOptions& options,
                                                           std::string_view xid) const {
  Result<std::optional<std::string>> bytes = Read(options, SummaryKey(xid));
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return std::optional<v1::SummaryRecord>();
  v1::SummaryRecord rec;
  if (!ParseStored(**bytes, &rec)) {
    return Status::Corruption(fmt::format("read model: the summary of xid={} is unparsable", xid));
  }
  return std::optional<v1::SummaryRecord>(std::move(rec));
}

Result<std::optional<v1::Transaction>> Views::ReadSaga(
    const rocksdb::ReadOptions& options, const std::optional<v1::SummaryRecord>& rec) const {
  if (!rec || rec->summary().mode() != kModeSaga) return std::optional<v1::Transaction>();
  const std::string& xid = rec->summary().xid();
  Result<std::optional<std::string>> bytes = Read(options, SagaKey(xid));
  if (!bytes.ok()) return bytes.status();
  v1::Transaction saga;
  if (!bytes->has_value() || !ParseStored(**bytes, &saga)) {
    return Status::Corruption(
        fmt::format("read model: the saga view of xid={} is missing or unparsable", xid));
  }
  return std::optional<v1::Transaction>(std::move(saga));
}

Result<v1::AggregateRecord> Views::ReadAggregate(std::string_view key) const {
  Result<std::optional<std::string>> bytes = Read(rocksdb::ReadOptions(), key);
  if (!bytes.ok()) return bytes.status();
  v1::AggregateRecord rec;
  if (bytes->has_value() && !ParseStored(**bytes, &rec)) {
    return Status::Corruption("read model: an aggregate record is unparsable");
  }
  return rec;
}

Status Views::Write(rocksdb::WriteBatch* batch) {
  // No fsync: the views are derived; a machine crash loses a suffix of batches together with
  // their position (the WAL is a prefix), and they are projected again.
  const rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), batch);
  if (!s.ok()) return FromRocks(s, "write");
  return Status::Ok();
}

Status Views::AddAggregates(const std::string& prefix,
                            const std::map<std::string, std::vector<int64_t>>& deltas, int64_t sign,
                            rocksdb::WriteBatch* batch) {
  for (const auto& [suffix, delta] : deltas) {
    const std::string key = prefix + suffix;
    Result<v1::AggregateRecord> rec = ReadAggregate(key);
    if (!rec.ok()) return rec.status();
    AddCounts(delta, sign, &*rec);
    const rocksdb::Status s = batch->Put(key, rec->SerializeAsString());
    if (!s.ok()) return FromRocks(s, "stage an aggregate");
  }
  return Status::Ok();
}

Status Views::AddStateCounts(const std::map<v1::TxState, int64_t>& deltas,
                             rocksdb::WriteBatch* batch) {
  for (const auto& [state, delta] : deltas) {
    if (delta == 0) continue;
    const std::string key = StateCountKey(state);
    Result<std::optional<std::string>> bytes = Read(rocksdb::ReadOptions(), key);
    if (!bytes.ok()) return bytes.status();
    int64_t count = bytes->has_value() && (*bytes)->size() == 8
                        ? static_cast<int64_t>(ReadBigEndian(**bytes))
                        : 0;
    count += delta;
    const rocksdb::Status s = count > 0 ? batch->Put(key, BigEndian(count)) : batch->Delete(key);
    if (!s.ok()) return FromRocks(s, "stage a state count");
  }
  return Status::Ok();
}

Status Views::DeleteRange(std::string_view prefix, rocksdb::WriteBatch* batch) {
  const rocksdb::Status s = batch->DeleteRange(ToSlice(prefix), PrefixEnd(prefix));
  if (!s.ok()) return FromRocks(s, "stage a range deletion");
  return Status::Ok();
}

Status Views::Project(const std::vector<v1::LogRecord>& records, int64_t now_unix_ms) {
  struct Touched {
    std::optional<v1::SummaryRecord> before;
    std::optional<v1::SummaryRecord> after;
    std::optional<v1::Transaction> saga_before;  // sagas only: the stored client view
    std::optional<v1::Transaction> saga_after;
    bool changed = false;
  };
  std::map<std::string, Touched> touched;
  Contribution added;
  uint64_t last = projected_lsn_.load();
  for (const v1::LogRecord& record : records) {
    if (record.lsn() <= last) continue;
    last = record.lsn();
    const std::string& xid = record.event().xid();
    auto it = touched.find(xid);
    if (it == touched.end()) {
      Result<std::optional<v1::SummaryRecord>> stored = ReadRecord(rocksdb::ReadOptions(), xid);
      if (!stored.ok()) return stored.status();
      Result<std::optional<v1::Transaction>> saga = ReadSaga(rocksdb::ReadOptions(), *stored);
      if (!saga.ok()) return saga.status();
      it = touched.emplace(xid, Touched{*stored, *stored, *saga, *saga, false}).first;
    }
    const FoldResult folded = FoldEvent(record, &it->second.after, &it->second.saga_after);
    it->second.changed |= folded.applied;
    if (folded.finished) {
      for (const auto& [key, delta] : ContributionOf(it->second.after->summary(), now_unix_ms)) {
        Accumulate(key, delta, &added);
      }
    }
  }
  if (last == projected_lsn_.load()) return Status::Ok();

  rocksdb::WriteBatch batch;
  std::map<v1::TxState, int64_t> state_deltas;
  for (const auto& [xid, t] : touched) {
    if (!t.changed) continue;
    std::map<std::string, std::string> old_entries;
    if (t.before) {
      old_entries = IndexEntries(*t.before, IsStuck(t.saga_before));
      --state_deltas[t.before->summary().state()];
    }
    const std::map<std::string, std::string> new_entries =
        IndexEntries(*t.after, IsStuck(t.saga_after));
    ++state_deltas[t.after->summary().state()];
    rocksdb::Status s;
    for (const auto& [key, value] : old_entries) {
      if (s.ok() && new_entries.count(key) == 0) s = batch.Delete(key);
    }
    for (const auto& [key, value] : new_entries) {
      if (s.ok()) s = batch.Put(key, value);
    }
    if (s.ok()) s = batch.Put(SummaryKey(xid), t.after->SerializeAsString());
    if (s.ok() && t.saga_after) s = batch.Put(SagaKey(xid), t.saga_after->SerializeAsString());
    if (s.ok() && !t.saga_after && t.saga_before) s = batch.Delete(SagaKey(xid));
    if (!s.ok()) return FromRocks(s, fmt::format("stage the summary of xid={}", xid));
  }
  TREATY_RETURN_IF_ERROR(AddStateCounts(state_deltas, &batch));
  TREATY_RETURN_IF_ERROR(AddAggregates(std::string(kLivePrefix), added, 1, &batch));
  const rocksdb::Status s = batch.Put(ToSlice(kLsnKey), BigEndianU(last));
  if (!s.ok()) return FromRocks(s, "stage the position");
  TREATY_RETURN_IF_ERROR(Write(&batch));
  projected_lsn_.store(last);
  return Status::Ok();
}

Result<uint64_t> Views::Wipe(bool full) {
  {
    rocksdb::WriteBatch start;
    rocksdb::Status s = start.Put(ToSlice(kRebuildKey), "1");
    if (!s.ok()) return FromRocks(s, "stage the wipe marker");
    for (std::string_view prefix : kDerivedPrefixes)
      TREATY_RETURN_IF_ERROR(DeleteRange(prefix, &start));
    if (full) {
      TREATY_RETURN_IF_ERROR(DeleteRange(kArchivePrefix, &start));
      TREATY_RETURN_IF_ERROR(DeleteRange(kSummaryPrefix, &start));
      TREATY_RETURN_IF_ERROR(DeleteRange(kSagaPrefix, &start));
    }
    TREATY_RETURN_IF_ERROR(Write(&start));
  }
  wipe_pending_ = true;
  projected_lsn_.store(0);

  // Summaries: keep (and re-index) the ones whose events are gone from the log.
  uint64_t kept = 0;
  std::map<v1::TxState, int64_t> counts;
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(ToSlice(kSummaryPrefix));
       it->Valid() && it->key().starts_with(ToSlice(kSummaryPrefix)); it->Next()) {
    v1::SummaryRecord rec;
    if (!ParseStored(it->value().ToStringView(), &rec)) {
      return Status::Corruption(fmt::format("read model: the summary under key {} is unparsable",
                                            it->key().ToStringView()));
    }
    rocksdb::Status s;
    if (rec.events_purged()) {
      ++kept;
      ++counts[rec.summary().state()];
      for (const auto& [key, value] : IndexEntries(rec)) {
        if (s.ok()) s = batch.Put(key, value);
      }
    } else {
      s = batch.Delete(it->key());
      if (s.ok()) s = batch.Delete(SagaKey(rec.summary().xid()));
    }
    if (!s.ok()) return FromRocks(s, "stage a summary during the wipe");
    if (batch.Count() >= kWipeBatchOps) {
      TREATY_RETURN_IF_ERROR(Write(&batch));
      batch.Clear();
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan summaries");
  for (const auto& [state, count] : counts) {
    const rocksdb::Status s = batch.Put(StateCountKey(state), BigEndian(count));
    if (!s.ok()) return FromRocks(s, "stage a state count");
  }
  rocksdb::Status s = batch.Put(ToSlice(kLsnKey), BigEndianU(0));
  if (s.ok()) s = batch.Delete(ToSlice(kRebuildKey));
  if (!s.ok()) return FromRocks(s, "stage the end of the wipe");
  TREATY_RETURN_IF_ERROR(Write(&batch));
  wipe_pending_ = false;
  return kept;
}

}  // namespace treaty::readmodel::internal
