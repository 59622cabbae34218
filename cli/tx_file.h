// Parsing of transaction definition files (`treaty submit 2pc -f tx.json`).
//
//   {"xid": "optional-id", "prepare_timeout_ms": 5000,
//    "branches": [{"service": "bank-a", "op": "debit", "payload": {"account": "alice", "amount": 30}},
//                 {"service": "bank-b", "op": "credit", "payload": {"account": "bob", "amount": 30}}]}
//
// "payload" may be any JSON value; it is sent to the participant as its compact JSON text.
// "key" (optional string) is the routing key for services balanced by consistent hash.
// Unknown fields are errors (a typo must not silently change a transaction).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::cli {

// Largest transaction file accepted, bytes. Keeps a request well under the RPC frame limit.
inline constexpr size_t kMaxTxFileBytes = 1u << 20;
// Mirrors the coordinator's limit so the CLI can say so before sending.
inline constexpr size_t kMaxBranches = 64;

// Parses the JSON text of a 2PC transaction. INVALID_ARGUMENT with a message that names the
// offending field or position.
Result<v1::SubmitRequest> ParseTwoPcJson(std::string_view json_text);

// Reads a transaction or saga file ("-" reads standard input). INVALID_ARGUMENT if it cannot be
// opened or is larger than kMaxTxFileBytes.
Result<std::string> ReadTxFile(const std::string& path);

// Reads and parses a file ("-" reads standard input).
Result<v1::SubmitRequest> LoadTwoPcFile(const std::string& path);

}  // namespace treaty::cli
