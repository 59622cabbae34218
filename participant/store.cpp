#include "participant/store.h"

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>
#include <system_error>

namespace treaty::participant {
namespace {

constexpr char kDataFamily[] = "data";
constexpr char kBarrierFamily[] = "barrier";
constexpr char kSagaFamily[] = "saga";
constexpr char kSchemaKey[] = "schema";
constexpr char kServiceKey[] = "service";
// Written on creation; a different value means a store this version cannot read.
constexpr char kSchemaVersion[] = "treaty-participant/1";

Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  std::string message = context + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(std::move(message));
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return Status::Unavailable(std::move(message));
  }
  return Status::Internal(std::move(message));
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// True for the files RocksDB leaves in a directory, e.g. after a crash during creation.
bool IsRocksDbFile(std::string_view name) {
  return name == "LOCK" || name == "IDENTITY" || StartsWith(name, "LOG") ||
         StartsWith(name, "OPTIONS-") || StartsWith(name, "MANIFEST-") || EndsWith(name, ".log") ||
         EndsWith(name, ".sst") || EndsWith(name, ".dbtmp");
}

// FAILED_PRECONDITION if dir exists and holds something other than a (possibly half-created)
// RocksDB database: a participant must not scatter its files through an unrelated directory.
Status CheckDirectory(const std::string& dir, bool* exists_db) {
  namespace fs = std::filesystem;
  std::error_code ec;
  *exists_db = false;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Status::Unavailable("cannot access data dir " + dir + ": " + ec.message());
  }
  if (!fs::exists(st)) return Status::Ok();
  if (!fs::is_directory(st)) {
    return Status::FailedPrecondition("data dir " + dir +
                                      " is not a directory; pass a directory path");
  }
  if (fs::exists(fs::path(dir) / "CURRENT", ec)) {
    *exists_db = true;
    return Status::Ok();
  }
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!IsRocksDbFile(name)) {
      return Status::FailedPrecondition("data dir " + dir +
                                        " is not empty and holds no database (found " + name +
                                        "); pass an empty or new directory");
    }
  }
  if (ec) return Status::Unavailable("cannot list data dir " + dir + ": " + ec.message());
  return Status::Ok();
}

bool IsEmpty(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  return !it->Valid();
}

}  // namespace

StoreTxn::StoreTxn(Store& store)
    : store_(store),
      batch_(std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(), 0,
                                                            /*overwrite_key=*/true)) {}

StoreTxn::~StoreTxn() = default;

Result<std::optional<std::string>> StoreTxn::Get(std::string_view key) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = batch_->GetFromBatchAndDB(store_.db_.get(), rocksdb::ReadOptions(),
                                                store_.data_cf_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "read of a service key");
  return std::optional<std::string>(value.ToString());
}

Result<std::vector<std::pair<std::string, std::string>>> StoreTxn::Scan(std::string_view prefix,
                                                                        size_t limit) {
  std::unique_ptr<rocksdb::Iterator> it(batch_->NewIteratorWithBase(
      store_.data_cf_, store_.db_->NewIterator(rocksdb::ReadOptions(), store_.data_cf_)));
  std::vector<std::pair<std::string, std::string>> out;
  for (it->Seek(prefix); it->Valid() && out.size() < limit; it->Next()) {
    if (!it->key().starts_with(prefix)) break;
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan of service keys");
  return out;
}

void StoreTxn::Put(std::string_view key, std::string_view value) {
  rocksdb::Status s = batch_->Put(store_.data_cf_, key, value);
  if (!s.ok() && status_.ok()) status_ = FromRocks(s, "buffered put");
}

void StoreTxn::Delete(std::string_view key) {
  rocksdb::Status s = batch_->Delete(store_.data_cf_, key);
  if (!s.ok() && status_.ok()) status_ = FromRocks(s, "buffered delete");
}

void StoreTxn::PutBarrier(std::string_view xid, uint32_t branch_id, const BarrierRecord& record) {
  rocksdb::Status s =
      batch_->Put(store_.barrier_cf_, BarrierKey(xid, branch_id), EncodeBarrier(record));
  if (!s.ok() && status_.ok()) status_ = FromRocks(s, "buffered barrier put");
}

void StoreTxn::PutStep(std::string_view xid, uint32_t step, StepKind kind,
                       const StepRecord& record) {
  rocksdb::Status s = batch_->Put(store_.saga_cf_, StepKey(xid, step, kind), EncodeStep(record));
  if (!s.ok() && status_.ok()) status_ = FromRocks(s, "buffered saga barrier put");
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const std::string& service,
                                           const Initializer& initializer) {
  bool exists_db = false;
  TREATY_RETURN_IF_ERROR(CheckDirectory(dir, &exists_db));

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  if (exists_db) {
    std::vector<std::string> families;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, dir, &families);
    if (!s.ok()) return FromRocks(s, "cannot read the database in data dir " + dir);
    for (const std::string& family : families) {
      if (family != rocksdb::kDefaultColumnFamilyName && family != kDataFamily &&
          family != kBarrierFamily && family != kSagaFamily) {
        return Status::FailedPrecondition(
            "data dir " + dir + " holds a database that is not a Treaty participant store " +
            "(column family '" + family + "'); pass another directory");
      }
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kDataFamily, rocksdb::ColumnFamilyOptions()},
      {kBarrierFamily, rocksdb::ColumnFamilyOptions()},
      {kSagaFamily, rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "cannot open data dir " + dir);

  std::unique_ptr<Store> store(new Store());
  store->db_.reset(raw);
  store->meta_cf_ = handles[0];
  store->data_cf_ = handles[1];
  store->barrier_cf_ = handles[2];
  store->saga_cf_ = handles[3];
  TREATY_RETURN_IF_ERROR(store->CheckOwner(dir, service));
  TREATY_RETURN_IF_ERROR(store->Initialize(service, initializer));
  return store;
}

Status Store::CheckOwner(const std::string& dir, const std::string& service) {
  std::string schema;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kSchemaKey, &schema);
  if (s.IsNotFound()) {
    // Not initialized yet: acceptable only if the database is empty (new, or creation crashed).
    if (IsEmpty(db_.get(), meta_cf_) && IsEmpty(db_.get(), data_cf_) &&
        IsEmpty(db_.get(), barrier_cf_) && IsEmpty(db_.get(), saga_cf_)) {
      return Status::Ok();
    }
    return Status::FailedPrecondition("data dir " + dir +
                                      " holds a database that is not a Treaty participant "
                                      "store (no schema marker); pass another directory");
  }
  if (!s.ok()) return FromRocks(s, "cannot read the schema marker in data dir " + dir);
  if (schema != kSchemaVersion) {
    return Status::FailedPrecondition("data dir " + dir + " has participant schema '" + schema +
                                      "', this build reads '" + kSchemaVersion + "'");
  }
  std::string owner;
  s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kServiceKey, &owner);
  if (!s.ok()) return FromRocks(s, "cannot read the owning service in data dir " + dir);
  if (owner != service) {
    return Status::FailedPrecondition("data dir " + dir + " belongs to service '" + owner +
                                      "', not '" + service + "'; pass that service's own dir");
  }
  return Status::Ok();
}

Status Store::Initialize(const std::string& service, const Initializer& initializer) {
  std::string ignored;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kSchemaKey, &ignored);
  if (s.ok()) return Status::Ok();  // already initialized
  std::unique_ptr<StoreTxn> txn = BeginTxn();
  if (initializer) {
    Status init;
    try {
      init = initializer(*txn);
    } catch (const std::exception& e) {
      init = Status::Internal(std::string("initializer threw: ") + e.what());
    } catch (...) {
      init = Status::Internal("initializer threw a non-standard exception");
    }
    if (!init.ok()) return init.WithPrefix("initializing a new participant store");
  }
  TREATY_RETURN_IF_ERROR(txn->status_);
  txn->batch_->Put(meta_cf_, kSchemaKey, kSchemaVersion);
  txn->batch_->Put(meta_cf_, kServiceKey, service);
  rocksdb::WriteOptions options;
  options.sync = true;
  s = db_->Write(options, txn->batch_->GetWriteBatch());
  return FromRocks(s, "cannot write the new participant store");
}

Store::~Store() {
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* cf : {meta_cf_, data_cf_, barrier_cf_, saga_cf_}) {
    if (cf != nullptr) db_->DestroyColumnFamilyHandle(cf);
  }
  rocksdb::Status s = db_->Close();
  if (!s.ok()) spdlog::error("participant: closing the data dir failed: {}", s.ToString());
}

std::unique_ptr<StoreTxn> Store::BeginTxn() {
  return std::unique_ptr<StoreTxn>(new StoreTxn(*this));
}

Status Store::Write(StoreTxn& txn) {
  TREATY_RETURN_IF_ERROR(txn.status_);
  rocksdb::WriteOptions options;
  options.sync = false;
  return FromRocks(db_->Write(options, txn.batch_->GetWriteBatch()), "local write");
}

Status Store::SyncWal() { return FromRocks(db_->SyncWAL(), "WAL sync"); }

Result<std::optional<BarrierRecord>> Store::ReadBarrier(std::string_view xid, uint32_t branch_id) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), barrier_cf_, BarrierKey(xid, branch_id), &value);
  if (s.IsNotFound()) return std::optional<BarrierRecord>();
  if (!s.ok()) return FromRocks(s, "barrier read");
  Result<BarrierRecord> record = DecodeBarrier(value);
  if (!record.ok()) {
    return record.status().WithPrefix("xid=" + std::string(xid) +
                                      " branch=" + std::to_string(branch_id));
  }
  return std::optional<BarrierRecord>(std::move(*record));
}

Result<std::vector<std::pair<uint32_t, BarrierRecord>>> Store::BarriersOf(std::string_view xid) {
  const std::string prefix = BarrierPrefix(xid);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), barrier_cf_));
  std::vector<std::pair<uint32_t, BarrierRecord>> out;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string key_xid;
    uint32_t branch_id = 0;
    if (!ParseBarrierKey(it->key().ToStringView(), &key_xid, &branch_id)) {
      return Status::Corruption("malformed barrier key for xid=" + std::string(xid));
    }
    Result<BarrierRecord> record = DecodeBarrier(it->value().ToStringView());
    if (!record.ok()) return record.status().WithPrefix("xid=" + std::string(xid));
    out.emplace_back(branch_id, std::move(*record));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "barrier scan");
  return out;
}

Result<std::vector<PreparedBranch>> Store::LoadPrepared() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), barrier_cf_));
  std::vector<PreparedBranch> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    PreparedBranch branch;
    if (!ParseBarrierKey(it->key().ToStringView(), &branch.xid, &branch.branch_id)) {
      return Status::Corruption("malformed barrier key in the participant store");
    }
    Result<BarrierRecord> record = DecodeBarrier(it->value().ToStringView());
    if (!record.ok()) return record.status().WithPrefix("xid=" + branch.xid);
    if (record->state != v1::BRANCH_PREPARED) continue;
    branch.prepared_unix_ms = record->prepared_unix_ms;
    out.push_back(std::move(branch));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "barrier scan");
  return out;
}

Result<std::optional<StepRecord>> Store::ReadStep(std::string_view xid, uint32_t step,
                                                  StepKind kind) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), saga_cf_, StepKey(xid, step, kind), &value);
  if (s.IsNotFound()) return std::optional<StepRecord>();
  if (!s.ok()) return FromRocks(s, "saga barrier read");
  Result<StepRecord> record = DecodeStep(value, kind);
  if (!record.ok()) {
    return record.status().WithPrefix("xid=" + std::string(xid) + " step=" + std::to_string(step));
  }
  return std::optional<StepRecord>(std::move(*record));
}

Result<std::vector<StoredStep>> Store::StepsOf(std::string_view xid) {
  const std::string prefix = BarrierPrefix(xid);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), saga_cf_));
  std::vector<StoredStep> out;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string key_xid;
    StoredStep stored;
    if (!ParseStepKey(it->key().ToStringView(), &key_xid, &stored.step, &stored.kind)) {
      return Status::Corruption("malformed saga barrier key for xid=" + std::string(xid));
    }
    Result<StepRecord> record = DecodeStep(it->value().ToStringView(), stored.kind);
    if (!record.ok()) return record.status().WithPrefix("xid=" + std::string(xid));
    stored.record = std::move(*record);
    out.push_back(std::move(stored));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "saga barrier scan");
  return out;
}

}  // namespace treaty::participant
