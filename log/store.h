// Private to log/: the RocksDB database behind the event log — opening it safely, its column
// families and its key encoding.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treaty::log::internal {

// Meta key and value that mark a directory as a Treaty log. A column family added later needs no
// new marker: Store::Open creates the families a database lacks, empty.
inline constexpr std::string_view kSchemaKey = "schema";
inline constexpr std::string_view kSchemaValue = "treaty-log-v1";

inline constexpr std::string_view kEventsFamily = "events";
inline constexpr std::string_view kTxnsFamily = "txns";
inline constexpr std::string_view kOutcomesFamily = "outcomes";
inline constexpr std::string_view kMetaFamily = "meta";
inline constexpr std::string_view kXidsFamily = "xids";  // since the xid window; see log/xids.h

// The events key of lsn: 8 bytes big-endian, so RocksDB's bytewise order is lsn order.
std::string LsnKey(uint64_t lsn);
// The lsn of an events key; nullopt unless the key is exactly 8 bytes.
std::optional<uint64_t> ParseLsnKey(std::string_view key);

// Corruption -> CORRUPTION, anything else -> UNAVAILABLE; the message is "<context>: <rocksdb>".
Status FromRocks(const rocksdb::Status& status, std::string_view context);

class Store;
// Writes wb to store's database with sync=true; an empty wb writes nothing. Errors: FromRocks's,
// with "<what> in <dir>" as the context.
Status WriteSynced(const Store& store, rocksdb::WriteBatch* wb, std::string_view what);

// An open Treaty database and the handles of its column families. Thread-safe as RocksDB is;
// the destructor closes the database (REQUIRES: no other thread uses it any more).
class Store {
 public:
  // Opens dir, creating it (and the database, with its schema marker, synced) when it is missing
  // or empty, and creating any of Treaty's column families an older database lacks. Refuses with
  // FAILED_PRECONDITION a path that is not a directory, a non-empty directory without a RocksDB
  // database, and a database without the schema marker (or with another value) — except a database
  // whose column families are all Treaty's and all empty, which is what a crash between creating
  // the database and writing its marker leaves; that one is adopted. The refusal happens before
  // anything in the directory is modified. A lock held by another process (or another Store of this
  // one) -> UNAVAILABLE; RocksDB corruption -> CORRUPTION.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* events() const { return events_; }
  rocksdb::ColumnFamilyHandle* txns() const { return txns_; }
  rocksdb::ColumnFamilyHandle* outcomes() const { return outcomes_; }
  rocksdb::ColumnFamilyHandle* meta() const { return meta_; }
  rocksdb::ColumnFamilyHandle* xids() const { return xids_; }
  // Every family of the log's state (all but default and foreign ones): what a Raft snapshot
  // carries and what restoring one replaces.
  std::vector<rocksdb::ColumnFamilyHandle*> state_families() const {
    return {events_, txns_, outcomes_, meta_, xids_};
  }
  const std::string& dir() const { return dir_; }

 private:
  explicit Store(std::string dir) : dir_(std::move(dir)) {}

  std::string dir_;
  rocksdb::DB* db_ = nullptr;
  // Every open handle, including column families this code does not use (they must be opened).
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* txns_ = nullptr;
  rocksdb::ColumnFamilyHandle* outcomes_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* xids_ = nullptr;
};

}  // namespace treaty::log::internal
