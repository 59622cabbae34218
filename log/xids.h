// Private to log/: the xids column family — finished xids remembered after retention dropped
// their outcomes record (log.h: UsedXid, EventLog::FindUsedXid, EventLog::ExpireXids).
//
// Keys: kRecordPrefix + xid -> the record; kExpiryPrefix + 8-byte finish time + xid -> "" (an
// index in expiry order, oldest first). Both keys of an xid are written and deleted together.
// Record value (kRecordBytes, fixed width): version (kRecordVersion), mode, outcome, finish time
// (Unix ms, 8 bytes big-endian, two's complement).
//
// REQUIRES: the functions that write (StageUsedXid, ExpireXids) are serialized with each other
// (single node: EventLog's retention mutex; cluster mode: the Raft apply thread).
#pragma once

#include <rocksdb/write_batch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "log/log.h"
#include "log/store.h"

namespace treaty::log::internal {

// The remembered form of a finished record. REQUIRES: IsFinished(rec).
UsedXid UsedXidOf(const v1::TxnRecord& rec);

// Stages in wb: xid is remembered as used. An older record of the same xid (left by a use before
// the xid was begun again) is replaced and its index key deleted.
Status StageUsedXid(const Store& store, std::string_view xid, const UsedXid& used,
                    rocksdb::WriteBatch* wb);

// The record of xid; nullopt if none. CORRUPTION for a record this code cannot read.
Result<std::optional<UsedXid>> ReadUsedXid(const Store& store, std::string_view xid);

// Up to max xids whose record finished at or before finished_before_unix_ms, oldest first.
Result<std::vector<std::string>> ListExpiredXids(const Store& store,
                                                 int64_t finished_before_unix_ms, size_t max);

// Deletes the record (and index key) of every listed xid that finished at or before
// finished_before_unix_ms, in one synced WriteBatch; the others are counted as skipped.
Result<XidExpiryResult> ExpireXids(const Store& store, const std::vector<std::string>& xids,
                                   int64_t finished_before_unix_ms);

}  // namespace treaty::log::internal
