// Private to readmodel/: the pure part of the projection — how one log event changes a
// transaction's summary, which index entries a summary has, and what a finished transaction adds
// to the aggregate views. No I/O; tested directly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "treaty/v1/log.pb.h"
#include "treaty/v1/query.pb.h"

namespace treaty::readmodel::internal {

inline constexpr char kMode2pc[] = "2pc";

struct FoldResult {
  // The event changed the record. False when the summary already reflects the event (its lsn is
  // not above summary.last_lsn): re-projection is a no-op.
  bool applied = false;
  // The transaction just became COMMITTED or ABORTED (its contribution must be counted).
  bool finished = false;
};

// Folds record (an event of the log) into rec, the summary of its xid (nullopt if the read model
// has none; set by the fold when the event creates one). Events the log could not contain (END
// before a decision, a second different decision) change nothing but the lsn bookkeeping. A
// BEGIN for an xid whose summary exists starts a new incarnation (possible only after the log
// dropped the old outcome).
FoldResult FoldEvent(const v1::LogRecord& record, std::optional<v1::SummaryRecord>* rec);

bool IsFinished(v1::TxState state);

// The distinct services of the summary's branches, sorted.
std::vector<std::string> ServicesOf(const v1::TxSummary& summary);

// Every index key (with its value) the record has: u/, s/, v/, l/ and p/ or x/.
std::map<std::string, std::string> IndexEntries(const v1::SummaryRecord& rec);

// Aggregate deltas: key (without the L/A prefix, e.g. "c..." or "r...") -> counter deltas.
using Contribution = std::map<std::string, std::vector<int64_t>>;

// What a finished transaction adds to the aggregates: one c-record per service plus the total,
// and its rate bucket if END is within kRateHorizonMs of now_unix_ms (older buckets are deleted by
// retention and never read). REQUIRES: IsFinished(summary.state()).
Contribution ContributionOf(const v1::TxSummary& summary, int64_t now_unix_ms);

// Adds delta to into[key], element by element (growing it as needed).
void Accumulate(const std::string& key, const std::vector<int64_t>& delta, Contribution* into);

// Adds delta (times sign) to counts, growing it as needed.
void AddCounts(const std::vector<int64_t>& delta, int64_t sign, v1::AggregateRecord* counts);

}  // namespace treaty::readmodel::internal
