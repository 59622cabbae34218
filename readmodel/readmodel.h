// The read model (CQRS read side): views of the coordinator's transactions, projected from the
// event log, and the queries over them. Queries never read the log's write path.
//
// Storage: its own RocksDB database (treatyd: <data_dir>/readmodel), rebuildable from the log.
// Views (key layout in readmodel/keys.h):
//   summary by xid     mode ("2pc" or "saga"), state, branches (service, op, vote, acknowledged),
//                      reason, created/updated/decided/finished times, prepare timeout, last lsn
//   saga view by xid   sagas: saga state and steps (id, service, action, compensation, state,
//                      attempts, last error), served by GetTransaction
//   index by (state, update time), by update time, by service (each newest first), by last lsn
//   counters and latency histograms per service and outcome (COMMITTED/ABORTED), plus the total;
//   latency = BEGIN..END and BEGIN..decision, fixed buckets (kBucketBoundsMs in keys.h)
//   finished-per-10-s buckets for throughput, and the number of summaries per state
//
// Sagas share the 2PC views through their summary (TxSummary has no saga fields):
//   state      the saga state maps onto TxState, which the state index, TxFilter.state, the
//              state counts, Attention and retention use:
//                SAGA_RUNNING -> PREPARING          SAGA_COMPLETED   -> COMMITTED
//                SAGA_COMPENSATING, SAGA_STUCK -> ABORTING
//                SAGA_COMPENSATED -> ABORTED
//              so `--state=committed --mode=saga` lists completed sagas, `--state=aborting
//              --mode=saga` the compensating and stuck ones (Attention tells STUCK apart).
//   branches   one per step, in definition order: service, op = action, instance, attempts and
//              last_error as last logged, acknowledged = the step SUCCEEDED, was COMPENSATED or
//              SKIPPED; vote stays VOTE_UNSPECIFIED. The service index lists a saga under every
//              step's service.
//   times      decided = the saga first left RUNNING (COMPENSATING or COMPLETED), finished =
//              COMPLETED or COMPENSATED; prepare_timeout_ms is 0.
//   counters   a COMPLETED saga counts as a COMMITTED outcome and a COMPENSATED one as ABORTED,
//              per step service and in the total (latency = SagaBegun..finish, decision latency
//              = SagaBegun..turn-around or completion).
// Finished sagas follow the retention of finished 2PC transactions.
//
// Projection: one projector thread tails the log in lsn order (EventLog::Read), polling
// EventLog::last_lsn() every poll_interval_ms, and folds each batch of events into the views. A
// batch's view updates and its last lsn are one RocksDB WriteBatch, so a crash at any point leaves
// the views exactly at some batch boundary: nothing is counted twice or skipped. An event whose
// lsn is at or below the stored position (or below its summary's last lsn) changes nothing. The
// views are written without fsync: a process crash loses nothing, a machine crash may lose the
// newest batches and their position together, which are then projected again.
//
// Retention (run by the projector thread every retention_interval_ms):
//   - events: once a finished transaction's END is older than event_retention_ms, its event
//     records are deleted from the log (EventLog::Purge). Its summary stays, marked as the only
//     copy, and its share of the counters moves to an archive that a rebuild keeps.
//   - summaries: once END is older than max(summary_retention_ms, event_retention_ms) and its
//     events are gone, the summary and its index entries are deleted, and so is the log's outcomes
//     record of the xid, which the log then remembers as used (EventLog::FindUsedXid: its mode,
//     outcome and END time). Counters and histograms keep it.
//   - xids: once END is older than xid_retention_ms, the log forgets the xid
//     (EventLog::ExpireXids; from then on QueryOutcome answers ABORT and a Submit with that xid
//     starts a new transaction).
//   0 disables any of them. With event retention off nothing leaves the log, summaries stay too
//   and remembered xids are not expired (a follower's read model runs so: the leader's deletions
//   reach its log through Raft): the read model always holds a summary of every transaction whose
//   events are in the log. Each kind deletes at most kMaxChunksPerPass x kRetentionChunk
//   (retention.cpp) per pass; the rest waits for the next pass.
//
// Rebuild: wipes every view except the summaries whose events retention deleted (and the archived
// counters), then re-projects the log from its first retained lsn. The answers afterwards are the
// same as incremental projection's. Queries made during a rebuild see partial views (Stats says
// a rebuild is running). If the log is behind the stored position (a different or reset log),
// Open wipes everything, archive included, and projects from scratch.
//
// Thread-safety: every public method is thread-safe. Queries run on the caller's thread and do
// only point reads and bounded scans (RocksDB snapshots keep each answer consistent).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "log/log.h"
#include "treaty/v1/query.pb.h"

namespace treaty::readmodel {

inline constexpr uint32_t kDefaultListLimit = 50;
inline constexpr uint32_t kMaxListLimit = 1000;
// Index entries one List page or Watch scan examines at most; bounds the time a query holds its
// (I/O) thread when a filter matches rarely. The page then ends early with a next_page_token.
inline constexpr size_t kMaxScanPerQuery = 20'000;
// Changes one Watch answer carries at most.
inline constexpr size_t kMaxWatchChanges = 500;
// Watch hold time when the request gives none, and its cap, milliseconds.
inline constexpr int64_t kDefaultWatchTimeoutMs = 10'000;
inline constexpr int64_t kMaxWatchTimeoutMs = 60'000;
// Items Attention returns at most.
inline constexpr size_t kMaxAttentionItems = 1000;

inline constexpr int64_t kHourMs = 3'600'000;

struct ReadModelOptions {
  // Directory of the read model's database; created if missing. A directory holding another
  // database is refused (FAILED_PRECONDITION).
  std::string dir;
  // How often the projector looks for new events when idle, milliseconds. Default 20.
  int64_t poll_interval_ms = 20;
  // Events folded per WriteBatch. Default 1024.
  size_t batch_events = 1024;
  // Event retention after END, milliseconds; 0 keeps events forever. Default 24 h.
  int64_t event_retention_ms = 24 * kHourMs;
  // Summary retention after END, milliseconds; 0 keeps summaries forever. Default 7 days.
  int64_t summary_retention_ms = 7 * 24 * kHourMs;
  // How long after END the log remembers an xid whose summary expired, milliseconds; 0 =
  // forever. At least summary_retention_ms unless either is 0 (Open refuses it otherwise).
  // Default 30 days.
  int64_t xid_retention_ms = 30 * 24 * kHourMs;
  // Time between retention passes, milliseconds. Default 10 s.
  int64_t retention_interval_ms = 10'000;
  // A decided transaction not finished after this long is listed by Attention, ms. Default 30 s.
  int64_t stuck_after_ms = 30'000;
  // Watch calls held at once; more get RESOURCE_EXHAUSTED. Default 256.
  size_t max_watchers = 256;
};

struct RebuildProgress {
  uint64_t events_done = 0;  // events re-projected so far
  uint64_t target_lsn = 0;   // the log's last lsn when the rebuild started
};
// Called on the rebuilding thread after every batch.
using ProgressFn = std::function<void(const RebuildProgress&)>;

struct RetentionResult {
  uint64_t transactions_purged = 0;  // transactions whose events left the log
  uint64_t events_purged = 0;        // event records deleted from the log
  uint64_t summaries_expired = 0;    // summaries (and log outcomes) deleted
  uint64_t xids_expired = 0;         // remembered xids the log forgot
};

// Completes a Watch: called once, on the caller's thread (immediate answer) or the projector's.
using WatchDone = std::function<void(Result<v1::WatchResponse>)>;
// Completes RequestRebuild, on the projector thread.
using RebuildDone = std::function<void(Result<v1::RebuildReadModelResponse>)>;

class ReadModel {
 public:
  // Opens (or creates) the views over log. log and clock must outlive the ReadModel. Resumes an
  // interrupted rebuild. Errors: FAILED_PRECONDITION for a foreign directory, UNAVAILABLE or
  // CORRUPTION from RocksDB, INVALID_ARGUMENT for bad options.
  static Result<std::unique_ptr<ReadModel>> Open(const ReadModelOptions& options,
                                                 log::EventLog& log, const Clock& clock);
  // Stops the projector thread (see Stop) and closes the database.
  ~ReadModel();
  ReadModel(const ReadModel&) = delete;
  ReadModel& operator=(const ReadModel&) = delete;

  // Starts the projector thread. Idempotent.
  void Start();
  // Stops and joins the projector thread; pending watches and rebuild requests complete with
  // UNAVAILABLE. Idempotent.
  void Stop();
  // Wakes the projector now instead of at its next poll.
  void Notify();

  // ---- Synchronous projection (any thread; serialized with the projector thread) ----

  // Projects everything up to the log's last lsn at the time of the call; returns the number of
  // events folded. Also answers the watches that can be answered.
  Result<uint64_t> CatchUp();
  // One retention pass at the clock's current time.
  Result<RetentionResult> RunRetention();
  // Rebuilds every view (see the file comment). progress may be empty.
  Result<v1::RebuildReadModelResponse> Rebuild(const ProgressFn& progress);
  // Queues a rebuild on the projector thread. FAILED_PRECONDITION if one is queued or running.
  // REQUIRES: Start() was called (otherwise done gets FAILED_PRECONDITION).
  void RequestRebuild(RebuildDone done);

  // ---- Queries ----

  // The summary of xid; nullopt if the read model has none.
  Result<std::optional<v1::TxSummary>> Get(std::string_view xid) const;
  // The client view (coordinator.GetTransaction) of xid, nullopt if the read model has none:
  // TransactionView(summary, saga view, live). live may be null. CORRUPTION if a saga's
  // stored view is missing or unparsable.
  Result<std::optional<v1::Transaction>> GetTransaction(std::string_view xid,
                                                        const v1::Transaction* live) const;
  // A page of summaries, newest change first. INVALID_ARGUMENT for a bad page token.
  Result<v1::ListTransactionsResponse> List(const v1::ListTransactionsRequest& request) const;
  // Counters, rates, percentiles, state counts and the projector's position, at the clock's time.
  Result<v1::StatsResponse> Stats() const;
  // Transactions needing an operator at now_unix_ms, oldest first, at most limit (capped at
  // kMaxAttentionItems): 2PC transactions decided but not finished for stuck_after_ms
  // ("stuck-in-delivery") and PREPARING past their prepare timeout ("prepare-overdue"); sagas
  // in SAGA_STUCK, at once ("saga-stuck", overdue since the saga's last event).
  Result<v1::AttentionResponse> Attention(int64_t now_unix_ms, size_t limit) const;
  // Long poll (see WatchRequest). Answers at once if changes exist; otherwise the projector
  // answers when a matching change is projected or the timeout passes (clock's NowMs).
  // RESOURCE_EXHAUSTED beyond max_watchers, UNAVAILABLE once stopped.
  void Watch(const v1::WatchRequest& request, WatchDone done);

  // The projector's position and counters (cheap: one log read for the lag's age).
  v1::ProjectorStatus ProjectorState() const;

  struct Impl;

 private:
  explicit ReadModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The client view (coordinator.GetTransaction) of a summary. When the coordinator still holds
// the transaction, live is its in-memory view and is overlaid: each branch's attempts, last_error
// and instance, votes and acknowledgements known only in memory, and state, reason and update time
// when the live view is further along (the projector lags the log by a few milliseconds).
// For a saga summary this is TransactionView(summary, nullptr, live).
v1::Transaction TransactionView(const v1::TxSummary& summary, const v1::Transaction* live);

// The client view of a summary of any mode. For a saga: mode "saga", state
// TX_STATE_UNSPECIFIED, no branches, reason and times from the summary, and saga_state and steps
// from saga (its stored view; when null they are derived from the summary: STUCK then shows as
// COMPENSATING and steps have no id, compensation or state). A live view (the saga core's)
// replaces saga_state and steps, and its reason and update time win. For 2PC summaries saga is
// ignored (TransactionView(summary, live)).
v1::Transaction TransactionView(const v1::TxSummary& summary, const v1::Transaction* saga,
                                const v1::Transaction* live);

// The p-th quantile (0..1) of a latency histogram (bucket_counts: one count per bucket of
// kBucketBoundsMs in readmodel/keys.h, plus the open bucket above the last bound),
// interpolated linearly within its bucket; 0 for an empty histogram. Exposed for tests.
double Quantile(const int64_t* bucket_counts, double p);

}  // namespace treaty::readmodel
