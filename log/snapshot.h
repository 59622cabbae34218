// Private to log/: cluster mode's Raft snapshots — the whole applied state of the log's database
// (every family of Store::state_families) encoded as a treaty.v1.RaftSnapshot, and its restore.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "log/store.h"
#include "treaty/v1/log.pb.h"

namespace treaty::log::internal {

// The state as of applied_index, encoded. UNAVAILABLE / CORRUPTION from RocksDB, INTERNAL if it
// is too large to encode.
Result<std::string> EncodeSnapshot(const Store& store, uint64_t applied_index);

// Replaces the state with snap's, the schema marker kept, and stores snap's applied index, in one
// synced WriteBatch; returns the log's last lsn afterwards. A family snap lacks (one from before
// that family existed) ends up empty. CORRUPTION for a family this log does not have.
Result<uint64_t> RestoreSnapshot(const Store& store, const v1::RaftSnapshot& snap);

}  // namespace treaty::log::internal
