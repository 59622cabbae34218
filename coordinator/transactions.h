// Conversions between the log's per-transaction records and the client API's views.
#pragma once

#include <google/protobuf/repeated_field.h>

#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"

namespace treaty::coordinator {

// True if both lists name the same branches (service, op, payload) in the same order.
bool SameBranches(const google::protobuf::RepeatedPtrField<v1::Branch>& a,
                  const google::protobuf::RepeatedPtrField<v1::Branch>& b);

// The client view of a logged transaction (finished, or active but not held in memory).
v1::Transaction TransactionFromRecord(const v1::TxnRecord& rec);

// What a participant in doubt should do for a logged transaction.
v1::Outcome OutcomeOfRecord(const v1::TxnRecord& rec);

}  // namespace treaty::coordinator
