// Helpers for the event log tests: temporary directories, event builders, synchronous appends,
// a way to hold the writer thread, and raw RocksDB access for damaging a log on purpose.
#pragma once

#include <rocksdb/db.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "log/log.h"
#include "tests/testing/temp_dir.h"

namespace treaty::log::testing {

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir : public ::treaty::testing::TempDir {
 public:
  TempDir() : ::treaty::testing::TempDir("log_test") {}
};

inline LogOptions Options(const std::string& dir) {
  LogOptions options;
  options.dir = dir;
  return options;
}

inline v1::LogEvent Begun(const std::string& xid, int64_t unix_ms = 1000) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::TxBegun* begun = event.mutable_begun();
  begun->set_prepare_timeout_ms(500);
  for (const char* service : {"bank-a", "bank-b"}) {
    v1::Branch* branch = begun->add_branches();
    branch->set_service(service);
    branch->set_op("transfer");
    branch->set_payload(R"({"amount":5})");
  }
  return event;
}

inline v1::LogEvent Decided(const std::string& xid, v1::Decision decision,
                            const std::string& reason = "", int64_t unix_ms = 2000) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  v1::TxDecided* decided = event.mutable_decided();
  decided->set_decision(decision);
  decided->set_reason(reason);
  if (decision == v1::COMMIT) {
    decided->add_votes(v1::YES);
    decided->add_votes(v1::READ_ONLY);
  }
  return event;
}

inline v1::LogEvent Ended(const std::string& xid, int64_t unix_ms = 3000) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  event.mutable_ended();
  return event;
}

struct Appended {
  Status status;
  uint64_t last_lsn = 0;
};

// Appends and waits for the completion callback.
inline Appended AppendAndWait(EventLog& log, std::vector<v1::LogEvent> events) {
  std::promise<Appended> done;
  std::future<Appended> result = done.get_future();
  log.Append(std::move(events), [&done](Status status, uint64_t last_lsn) {
    done.set_value({status, last_lsn});
  });
  return result.get();
}

// Appends without waiting; the outcome is collected in a future.
inline std::future<Appended> AppendAsync(EventLog& log, std::vector<v1::LogEvent> events) {
  auto done = std::make_shared<std::promise<Appended>>();
  std::future<Appended> result = done->get_future();
  log.Append(std::move(events), [done](Status status, uint64_t last_lsn) {
    done->set_value({status, last_lsn});
  });
  return result;
}

// Holds the log's writer thread inside the completion callback of one append, so that appends
// made meanwhile queue up and are taken together by the next batch. Declare it after the log so
// it releases the writer before the log is destroyed.
class WriterHold {
 public:
  WriterHold(EventLog& log, v1::LogEvent event) {
    std::shared_future<void> release = release_.get_future().share();
    log.Append({std::move(event)}, [this, release](Status status, uint64_t) {
      status_ = status;
      entered_.set_value();
      release.wait();
    });
    entered_.get_future().wait();
  }
  ~WriterHold() { Release(); }
  WriterHold(const WriterHold&) = delete;
  WriterHold& operator=(const WriterHold&) = delete;

  // Lets the writer go on. Idempotent.
  void Release() {
    if (released_) return;
    released_ = true;
    release_.set_value();
  }
  // The held append's own status.
  const Status& status() const { return status_; }

 private:
  std::promise<void> entered_;
  std::promise<void> release_;
  bool released_ = false;
  Status status_;
};

// A RocksDB database opened directly (not through EventLog), for building foreign or damaged
// directories. Opens every existing column family plus `create`.
class RawDb {
 public:
  RawDb(const std::string& dir, std::vector<std::string> create) {
    std::vector<std::string> families;
    rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &families).PermitUncheckedError();
    if (families.empty()) families.push_back(rocksdb::kDefaultColumnFamilyName);
    for (std::string& name : create) {
      if (std::find(families.begin(), families.end(), name) == families.end()) {
        families.push_back(std::move(name));
      }
    }
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : families)
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    status_ = rocksdb::DB::Open(options, dir, descriptors, &handles_, &db_);
    names_ = families;
  }
  ~RawDb() {
    if (db_ == nullptr) return;
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
    delete db_;
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  const rocksdb::Status& status() const { return status_; }
  // Writes key=value into the named column family; returns the RocksDB status text ("OK").
  std::string Put(const std::string& family, const std::string& key, const std::string& value) {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == family)
        return db_->Put(rocksdb::WriteOptions(), handles_[i], key, value).ToString();
    }
    return "no column family " + family;
  }

 private:
  rocksdb::Status status_;
  rocksdb::DB* db_ = nullptr;
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

// The events key of lsn, as the log stores it (8 bytes big-endian).
inline std::string LsnKey(uint64_t lsn) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i, lsn >>= 8)
    key[static_cast<size_t>(i)] = static_cast<char>(lsn & 0xff);
  return key;
}

// Bytes that no protobuf parser accepts (a varint longer than 10 bytes).
inline std::string Garbage() { return std::string(12, '\xff'); }

}  // namespace treaty::log::testing
