// Conversions between the log's per-transaction records and the client API's views.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "log/log.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"

namespace treaty::coordinator {

// The client view of a logged transaction (finished, or active but not held in memory).
v1::Transaction TransactionFromRecord(const v1::TxnRecord& rec);

// ---- xids the log only remembers as used (log::EventLog::FindUsedXid) ----

// What twopc::OutcomeOfRecord answered before retention dropped the record: COMMIT for a committed 2PC
// transaction, ABORT otherwise (a saga's record has no 2PC state).
v1::Outcome OutcomeOfUsedXid(const log::UsedXid& used);

// "xid X was used by a 2PC transaction that finished at 2026-01-02T15:04:05.123Z (committed)".
std::string DescribeUsedXid(std::string_view xid, const log::UsedXid& used);

// A Submit of xid: OK when the log does not remember it as used; else ALREADY_EXISTS saying when
// that transaction finished, how long xids are remembered (xid_retention_ms, 0 = forever) and to
// use a new xid; or the log's read error. REQUIRES: EventLog::Find(xid) found nothing just before.
Status RefuseUsedXid(const log::EventLog& log, std::string_view xid, int64_t xid_retention_ms);

}  // namespace treaty::coordinator
