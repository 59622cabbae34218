// Conversions between the log's per-transaction records and the client API's views.
#pragma once

#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"

namespace treaty::coordinator {

// The client view of a logged transaction (finished, or active but not held in memory).
v1::Transaction TransactionFromRecord(const v1::TxnRecord& rec);

}  // namespace treaty::coordinator
