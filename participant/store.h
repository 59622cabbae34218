// The participant's local RocksDB: the service's key space, the barriers, and the schema marker.
// Private to participant/.
//
// Column families:
//   default  schema marker ("schema" -> kSchemaVersion) and owning service ("service" -> name)
//   data     the service's own keys (LocalTxn / LocalReader)
//   barrier  BarrierKey(xid, branch_id) -> EncodeBarrier(record)                (2PC branches)
//   saga     StepKey(xid, step, kind) -> EncodeStep(record)                     (saga steps)
// A data dir written before the saga family existed gets it on open.
//
// Thread-safety: Open/destructor from one thread; everything else from the worker thread only
// (reads may also run on other threads, RocksDB allows it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "participant/barrier.h"
#include "participant/participant.h"
#include "participant/saga_barrier.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class WriteBatchWithIndex;
}  // namespace rocksdb

namespace treaty::participant {

class Store;

// A LocalTxn buffered in a WriteBatchWithIndex; nothing reaches the database until Store::Write.
class StoreTxn final : public LocalTxn {
 public:
  ~StoreTxn() override;
  StoreTxn(const StoreTxn&) = delete;
  StoreTxn& operator=(const StoreTxn&) = delete;

  Result<std::optional<std::string>> Get(std::string_view key) override;
  Result<std::vector<std::pair<std::string, std::string>>> Scan(std::string_view prefix,
                                                                size_t limit) override;
  void Put(std::string_view key, std::string_view value) override;
  void Delete(std::string_view key) override;

  // Adds the barrier record for (xid, branch_id) to this transaction.
  void PutBarrier(std::string_view xid, uint32_t branch_id, const BarrierRecord& record);
  // Adds the saga barrier record for (xid, step, kind) to this transaction.
  void PutStep(std::string_view xid, uint32_t step, StepKind kind, const StepRecord& record);

 private:
  friend class Store;
  explicit StoreTxn(Store& store);
  Store& store_;
  std::unique_ptr<rocksdb::WriteBatchWithIndex> batch_;
  // First error of a buffered write (reported by Store::Write).
  Status status_;
};

// A prepared branch found by LoadPrepared.
struct PreparedBranch {
  std::string xid;
  uint32_t branch_id = 0;
  int64_t prepared_unix_ms = 0;
};

// A saga barrier record found by StepsOf.
struct StoredStep {
  uint32_t step = 0;
  StepKind kind = StepKind::kAction;
  StepRecord record;
};

class Store {
 public:
  // Opens or creates the database in dir for service. On creation (and only then) runs
  // initializer (may be empty) and writes its writes with the schema marker in one synced batch.
  // Errors: see Participant::Start.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir, const std::string& service,
                                             const Initializer& initializer);
  // Closes the database.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  std::unique_ptr<StoreTxn> BeginTxn();
  // Applies txn's writes atomically, without syncing the WAL (see SyncWal).
  Status Write(StoreTxn& txn);
  // Makes every write so far durable.
  Status SyncWal();

  // The barrier record of one branch; nullopt if none.
  Result<std::optional<BarrierRecord>> ReadBarrier(std::string_view xid, uint32_t branch_id);
  // Every branch recorded for xid, by branch_id.
  Result<std::vector<std::pair<uint32_t, BarrierRecord>>> BarriersOf(std::string_view xid);
  // Every branch in state PREPARED (a full scan of the barrier; for Start).
  Result<std::vector<PreparedBranch>> LoadPrepared();

  // The saga barrier record of one step's action or compensation; nullopt if none.
  Result<std::optional<StepRecord>> ReadStep(std::string_view xid, uint32_t step, StepKind kind);
  // Every saga barrier record of xid, by (step, kind).
  Result<std::vector<StoredStep>> StepsOf(std::string_view xid);

 private:
  friend class StoreTxn;
  Store() = default;
  Status Initialize(const std::string& service, const Initializer& initializer);
  Status CheckOwner(const std::string& dir, const std::string& service);

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;  // the default family; owned by db_
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* barrier_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* saga_cf_ = nullptr;
};

}  // namespace treaty::participant
