// Barrier records: the per-branch state a participant keeps in the "barrier" column family.
//
// Key:   xid + '\0' + branch_id (4 bytes, big-endian), so every branch of an xid shares the prefix
//        xid + '\0' and sorts by branch_id.
// Value: version byte (1), state byte (treaty.v1.BranchState), vote byte (treaty.v1.Vote),
//        prepared_unix_ms (8 bytes, big-endian, two's complement), then op, payload and reason,
//        each as a 4-byte big-endian length followed by the bytes.
// Shared with tests/sim/ through barrier_rules.h, so it includes no RocksDB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/limits.h"
#include "common/status.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant {

struct BarrierRecord {
  v1::BranchState state = v1::BRANCH_STATE_UNKNOWN;
  // The vote this participant gave; VOTE_UNSPECIFIED if it never voted (aborted before prepare).
  v1::Vote vote = v1::VOTE_UNSPECIFIED;
  // When the branch was prepared (Clock::UnixMs), 0 if it never was.
  int64_t prepared_unix_ms = 0;
  // The operation and payload of the prepare, kept while PREPARED so commit/abort can run.
  std::string op;
  std::string payload;
  // The NO vote's reason, returned again to a repeated prepare.
  std::string reason;
};

// INVALID_ARGUMENT if xid is empty, longer than kMaxXidBytes (common/limits.h) or contains a NUL
// byte. Applied to every request.
Status ValidateXid(std::string_view xid);
// True if xid can head a barrier or step key: non-empty and NUL-free (a NUL ends the xid in a
// key). Any length: keys written while a participant accepted xids of up to 256 bytes stay
// readable.
bool XidFitsKey(std::string_view xid);

std::string BarrierKey(std::string_view xid, uint32_t branch_id);
// The prefix shared by every branch of xid.
std::string BarrierPrefix(std::string_view xid);
// Splits a barrier key. False if key is not one (its xid must pass XidFitsKey).
bool ParseBarrierKey(std::string_view key, std::string* xid, uint32_t* branch_id);

std::string EncodeBarrier(const BarrierRecord& record);
// CORRUPTION if bytes are not a barrier record of a known version.
Result<BarrierRecord> DecodeBarrier(std::string_view bytes);

const char* BranchStateName(v1::BranchState state);

}  // namespace treaty::participant
