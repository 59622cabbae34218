// Private to log/: retention's deletions (EventLog::Purge) on the log's database.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "log/log.h"
#include "log/store.h"

namespace treaty::log::internal {

// EventLog::Purge. newest_lsn is the log's last lsn: that record is never deleted.
// REQUIRES: serialized with ExpireXids (log/xids.h).
Result<PurgeResult> Purge(Store& store, const std::vector<PurgeRequest>& requests,
                          uint64_t newest_lsn);

}  // namespace treaty::log::internal
