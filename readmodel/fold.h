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
inline constexpr char kModeSaga[] = "saga";

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
//
// Saga events also update *saga (the saga's client view: mode "saga", saga_state, steps; stored
// under d/<xid>), which must hold the stored view of a saga record (nullopt otherwise); FoldEvent
// resets it to nullopt when a 2PC BEGIN starts a new incarnation of the xid. saga may be null
// when record is not a saga event. A Resolved event of a 2PC transaction (`tx resolve --retry`)
// changes no state but is one of the transaction's events.
FoldResult FoldEvent(const v1::LogRecord& record, std::optional<v1::SummaryRecord>* rec,
                     std::optional<v1::Transaction>* saga = nullptr);

bool IsSagaEvent(const v1::LogEvent& event);

// The TxState a saga's summary carries (the state index, filters, counters and retention use
// it): RUNNING -> PREPARING, COMPENSATING and STUCK -> ABORTING, COMPLETED -> COMMITTED,
// COMPENSATED -> ABORTED.
v1::TxState SummaryStateOf(v1::SagaState state);

// Folds a saga event (REQUIRES: IsSagaEvent) into rec and saga; returns whether the saga just
// finished. The events the log refuses (see log/fold.cpp) change nothing here. Called by
// FoldEvent, which does the lsn bookkeeping.
bool FoldSagaEvent(const v1::LogEvent& event, std::optional<v1::SummaryRecord>* rec,
                   std::optional<v1::Transaction>* saga);

bool IsFinished(v1::TxState state);

// The distinct services of the summary's branches, sorted.
std::vector<std::string> ServicesOf(const v1::TxSummary& summary);

// Every index key (with its value) the record has: u/, s/, v/, l/ and p/ or x/, and k/ when
// stuck (a saga in SAGA_STUCK; only unfinished sagas can be).
std::map<std::string, std::string> IndexEntries(const v1::SummaryRecord& rec, bool stuck = false);

// The client view of a stored summary without live overlay: for a saga (saga non-null: its
// stored view) mode "saga", saga_state and steps with the summary's reason and times; otherwise
// TransactionView(summary, nullptr).
v1::Transaction SagaTransactionView(const v1::TxSummary& summary, const v1::Transaction* saga);

// Whether saga is the view of a saga in SAGA_STUCK.
bool IsStuck(const std::optional<v1::Transaction>& saga);

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
