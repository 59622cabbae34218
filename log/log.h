// The coordinator's durable event log on RocksDB, with group commit.
//
// Column families:
//   events    lsn (8-byte big-endian) -> treaty.v1.LogRecord   every event, in append order
//   txns      xid -> treaty.v1.TxnRecord                       active (unfinished) transactions
//   outcomes  xid -> treaty.v1.TxnRecord                       finished (COMMITTED/ABORTED)
//   meta      key -> bytes   schema marker, registered services ("service/<name>"), ...
//   xids      xid -> UsedXid (a few bytes)                     finished, outcome record dropped
// An Append writes the events and the folded txns/outcomes records in one WriteBatch, so the
// per-transaction records never disagree with the events.
//
// Retention (Purge): once the read model has projected a finished transaction and its retention
// passed, its events are deleted; its outcomes record stays (QueryOutcome from participants in
// doubt and idempotent resubmission rely on it) until the read model's longer summary retention
// passes. Dropping the outcomes record writes the xid's UsedXid in the same WriteBatch, so a
// finished xid is never unknown in between; that record has a retention of its own (ExpireXids),
// after which the xid is unknown. The txns family is never purged.
//
// Group commit: Append only enqueues. One writer thread drains everything queued into a single
// WriteBatch, writes it with sync=true (one fsync), then completes every caller of that batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "treaty/v1/log.pb.h"

namespace treaty::log {

// Cluster mode: the log's events are replicated with Raft (libraft) before they are applied.
// A member's part in the Raft configuration: a voter counts for the majority; a standby gets
// the log without voting; a spare gets nothing (a node just added, before its promotion).
enum class ClusterMemberRole { kVoter, kStandby, kSpare };
std::string_view ClusterMemberRoleName(ClusterMemberRole role);  // "voter", "standby", "spare"

// One member of the cluster: of the voter set it was bootstrapped with, or of its current
// configuration (EventLog::cluster_peers).
struct ClusterPeer {
  uint64_t id = 0;           // >= 1, unique
  std::string raft_address;  // host:port of its Raft transport
  ClusterMemberRole role = ClusterMemberRole::kVoter;
};

// A membership change (EventLog::AddNode / RemoveNode / ChangeMembership).
struct MembershipChange {
  enum class Action { kAdd, kRemove };
  Action action = Action::kAdd;
  uint64_t id = 0;
  std::string raft_address;  // kAdd only: the new node's Raft address
};

struct ClusterOptions {
  uint64_t node_id = 0;  // this node; must be one of peers
  // Every voter, this node included (3 or 5 nodes; 1 works for tests). Every initial node is
  // started with the same list; a node whose Raft directory is empty bootstraps with it.
  std::vector<ClusterPeer> peers;
  // libraft's own directory (segments, metadata, snapshots); created if missing.
  std::string raft_dir;
  // Raft timing. An election takes one to two election timeouts after the leader is lost.
  uint32_t election_timeout_ms = 500;
  uint32_t heartbeat_timeout_ms = 50;
  // A snapshot of the applied state every this many entries; this many entries are kept after it.
  uint32_t snapshot_threshold = 4096;
  uint32_t snapshot_trailing = 2048;
  // Most entries proposed and not yet applied (each entry carries many appends).
  uint32_t max_entries_in_flight = 8;
  // Join an existing cluster: never bootstrap, even with an empty Raft directory; the node waits
  // until the leader adds it (EventLog::AddNode). Only this node's entry of peers is used then.
  bool join = false;
};

enum class ClusterRole { kSingle, kUnavailable, kFollower, kCandidate, kLeader };
std::string_view ClusterRoleName(ClusterRole role);  // "single", "unavailable", "follower", ...

struct ClusterState {
  uint64_t node_id = 0;
  ClusterRole role = ClusterRole::kSingle;
  // Leader only: every entry of earlier terms is applied (a barrier committed), so the local state
  // is complete and appends are accepted. A single-node log is always serving.
  bool serving = false;
  uint64_t term = 0;
  uint64_t leader_id = 0;  // 0 = unknown
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_log_index = 0;
  // Incremented whenever role, serving, term or leader_id change.
  uint64_t epoch = 0;
};

struct LogOptions {
  // Directory of the RocksDB database; created if missing. A directory holding a database that is
  // not a Treaty log (no schema marker) is refused with FAILED_PRECONDITION.
  std::string dir;
  // true: concurrent appends share one synced WriteBatch. false: one synced write per Append
  // (the benchmark's baseline). Default true.
  bool group_commit = true;
  // Upper bound on events in one WriteBatch; bounds a batch's latency and memory. Default 4096.
  size_t max_batch_events = 4096;
  // fsync each batch. Only tests that do not care about durability turn this off. Default true.
  bool sync = true;
  // Fault point for tests: when N > 0, every Nth batch write fails with UNAVAILABLE
  // ("injected fault") without touching the database; the other batches are unaffected. Open sets
  // it from the environment variable TREATY_FAULT_LOG_FAIL_EVERY=N when that is present (a value
  // that is not a positive integer makes Open fail with INVALID_ARGUMENT). Default 0 (off).
  uint32_t fail_every_n_batches = 0;
  // Set: cluster mode. Appends, PutMeta and Purge go through Raft: they are accepted only while
  // this node is the serving leader (else UNAVAILABLE), and complete once a majority has them and
  // this node applied them to its RocksDB state (with the Raft index, atomically). Every node
  // applies every committed entry. group_commit/max_batch_events then bound what one Raft entry
  // carries. Unset: the single-node log (group commit + fsync).
  std::optional<ClusterOptions> cluster;
};

struct LogStats {
  uint64_t appends = 0;      // Append calls completed
  uint64_t events = 0;       // events written
  uint64_t batches = 0;      // WriteBatches written
  uint64_t syncs = 0;        // synced writes (fsyncs)
  uint64_t sync_micros = 0;  // total time spent in synced writes, microseconds
};

// Retention: what to delete of one finished transaction (see EventLog::Purge).
struct PurgeRequest {
  std::string xid;
  // Lsns of xid's event records to delete (the caller, the read model's projector, saw them).
  std::vector<uint64_t> lsns;
  // Also delete xid's record in outcomes, and remember the xid in xids instead (same WriteBatch):
  // Find no longer returns it, FindUsedXid does until ExpireXids deletes it.
  bool drop_outcome = false;
  // Nothing is deleted unless xid finished (its record is in outcomes) with its last event
  // (updated_unix_ms) at or before this time, Unix milliseconds.
  int64_t ended_before_unix_ms = 0;
};

struct PurgeResult {
  uint64_t events_deleted = 0;    // event records deleted
  uint64_t outcomes_deleted = 0;  // outcomes records deleted (each xid remembered in xids)
  uint64_t skipped = 0;  // requests refused: xid not finished, finished too recently, or unknown
  uint64_t foreign = 0;  // listed lsns whose record belongs to another xid (left alone)
};

// What the log remembers of a finished xid once retention dropped its outcomes record (the xids
// column family): enough to refuse its reuse and to answer a participant in doubt.
struct UsedXid {
  enum class Mode : uint8_t { kTwoPc = 1, kSaga = 2 };
  // The final state: kCommitted / kAborted for 2PC, kCompleted / kCompensated for a saga.
  enum class Outcome : uint8_t { kCommitted = 1, kAborted = 2, kCompleted = 3, kCompensated = 4 };
  Mode mode = Mode::kTwoPc;
  Outcome outcome = Outcome::kAborted;
  int64_t finished_unix_ms = 0;  // time of the transaction's last event (END), Unix milliseconds
};
std::string_view UsedXidModeName(UsedXid::Mode mode);           // "2PC", "saga"
std::string_view UsedXidOutcomeName(UsedXid::Outcome outcome);  // "committed", "aborted", ...

// Most xids one ExpireXids call deletes: keeps one Raft entry (an xid is at most 128 bytes) under
// about 0.5 MiB and one synced WriteBatch small.
inline constexpr size_t kMaxXidsPerExpiry = 4096;

struct XidExpiryResult {
  uint64_t expired = 0;  // remembered xids deleted
  uint64_t skipped = 0;  // picked but no longer remembered, or re-remembered with a later finish
};

// Called once per Append, on the log's writer thread, after the events are durable (or failed).
// last_lsn is the lsn of the Append's last event (0 when status is not OK). An Append made after
// the log began shutting down is completed at once on the caller's thread with UNAVAILABLE.
// A callback may call Append again; it must not destroy the EventLog.
using AppendDone = std::function<void(Status status, uint64_t last_lsn)>;

class EventLog {
 public:
  // Opens (or creates) the log. Errors: FAILED_PRECONDITION for a directory that is not a Treaty
  // log, CORRUPTION if RocksDB reports corruption, UNAVAILABLE for I/O errors (e.g. lock held by
  // another process), INVALID_ARGUMENT for bad options (empty dir, max_batch_events == 0, a bad
  // TREATY_FAULT_LOG_FAIL_EVERY). Each message names the directory and what to do.
  static Result<std::unique_ptr<EventLog>> Open(const LogOptions& options);

  // Waits for queued appends to finish, then closes the database.
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Thread-safe. Queues events (each must name an xid and set exactly one event) and calls done
  // when they are durable. Events of one Append are written atomically and in order; lsns follow
  // Append call order. An event that contradicts the transaction's history (a second decision
  // that differs from the first, a decision for an unknown xid, END before a decision) fails the
  // whole Append with FAILED_PRECONDITION and writes nothing of it; an empty Append, an event
  // without an xid or without an event fails with INVALID_ARGUMENT, one over 1 GiB encoded with
  // RESOURCE_EXHAUSTED. If the database write fails, every Append of that batch fails with
  // UNAVAILABLE and, because the write's effect on disk is then unknown, every later Append fails
  // with UNAVAILABLE until the process reopens the log.
  void Append(std::vector<v1::LogEvent> events, AppendDone done);

  // Calls done once everything appended before it is durable and applied. In cluster mode it
  // proposes an empty entry: OK proves this node still led when the entry committed, so reads
  // made after it see every decision any leader made before (use it before answering "unknown
  // xid" = presumed abort). UNAVAILABLE when this node is not the serving leader.
  void Barrier(AppendDone done);

  // Every unfinished transaction (the txns column family). For recovery.
  Result<std::vector<v1::TxnRecord>> LoadActive() const;

  // The transaction's record, active or finished; nullopt if the xid was never logged, or if
  // retention dropped its outcomes record (then ask FindUsedXid).
  Result<std::optional<v1::TxnRecord>> Find(std::string_view xid) const;

  // What the log remembers of an xid whose outcomes record retention dropped; nullopt if it
  // remembers nothing (never logged, expired by ExpireXids, or still in txns/outcomes: Find).
  // Call it after Find returned nullopt: a Purge drops the outcome and writes this record in one
  // WriteBatch, so in that order no finished xid is ever missed. Append does not consult it:
  // refusing to begin a remembered xid again is the caller's decision.
  Result<std::optional<UsedXid>> FindUsedXid(std::string_view xid) const;

  // Up to max records with lsn >= from_lsn, in lsn order (lsns deleted by Purge are absent).
  // CORRUPTION names the bad lsn.
  Result<std::vector<v1::LogRecord>> Read(uint64_t from_lsn, size_t max) const;

  // Retention: deletes event records (and, if asked, outcomes records) of finished transactions,
  // as described by each request; a request that does not qualify deletes nothing and is counted
  // as skipped. Listed lsns already gone are ignored (a repeated Purge is harmless); lsns whose
  // record names another xid are left alone. The newest event of the log is never deleted, so the
  // lsn sequence continues after a reopen even when every older event was purged. The txns column
  // family (unfinished transactions) is never touched. Everything deleted by one call goes in one
  // synced WriteBatch. Thread-safe; runs beside appends (their lsns are above everything
  // purgeable). A purged lsn is simply absent: Read skips it. Errors: UNAVAILABLE / CORRUPTION from
  // RocksDB, with nothing deleted.
  Result<PurgeResult> Purge(const std::vector<PurgeRequest>& requests);

  // Retention of the remembered xids: deletes the records of up to max_xids (capped at
  // kMaxXidsPerExpiry) xids that finished at or before finished_before_unix_ms, oldest first;
  // those xids are unknown afterwards. Fewer than max_xids expired means none older is left.
  // The xids are picked from this node's state; in cluster mode the deletion is then replicated
  // (a RaftEntry's XidExpiryOp, like Purge) and every node deletes the same records, so only the
  // serving leader may call it (else UNAVAILABLE). Nothing to expire: OK without a write. A
  // repeated call is harmless. Errors: UNAVAILABLE / CORRUPTION from RocksDB, nothing deleted.
  Result<XidExpiryResult> ExpireXids(int64_t finished_before_unix_ms, size_t max_xids);

  // Meta entries. PutMeta is synced. ScanMeta returns every (key, value) whose key starts with
  // prefix, in key order.
  Status PutMeta(std::string_view key, std::string_view value);
  Result<std::optional<std::string>> GetMeta(std::string_view key) const;
  Result<std::vector<std::pair<std::string, std::string>>> ScanMeta(std::string_view prefix) const;

  // Lsn of the last durable event (0 for an empty log).
  uint64_t last_lsn() const;
  // True once a database write failed: every later Append fails until the log is reopened.
  // Thread-safe. The coordinator stops (fail-stop) and recovers from the log on restart.
  bool stopped_after_failure() const;
  LogStats Stats() const;

  // Cluster mode (LogOptions::cluster). Thread-safe. A single-node log reports role kSingle,
  // serving, and epoch 0.
  ClusterState cluster_state() const;
  // Blocks until cluster_state().epoch differs from seen_epoch or timeout_ms passes; returns the
  // state then. Never call it from an AppendDone callback.
  ClusterState WaitClusterChange(uint64_t seen_epoch, int64_t timeout_ms) const;
  // The current Raft configuration as this node knows it (the latest one in its log, committed
  // or not), with each member's role; empty for a single-node log and for a joining node that
  // was not added yet.
  std::vector<ClusterPeer> cluster_peers() const;

  // Membership changes, on the serving leader only (else UNAVAILABLE), one at a time (another
  // one in progress: FAILED_PRECONDITION). done runs once, on the Raft thread or, for an
  // immediate refusal, on the caller's: it must not block nor call back into this log's
  // blocking methods. A single-node log answers FAILED_PRECONDITION.
  //   kAdd: adds the node as a spare, then promotes it to voter once it has caught up (libraft
  //   does the catch-up). The node must run already, started to join (ClusterOptions::join).
  //   Adding a voter again with the same address is OK (nothing to do); an id or an address
  //   already used by another member is FAILED_PRECONDITION.
  //   kRemove: removes the node (OK when it is no member). Removing the last voter is
  //   FAILED_PRECONDITION. The leader may remove itself: it steps down once the change
  //   committed. A removed node keeps running and campaigning: stop it.
  void ChangeMembership(MembershipChange change, std::function<void(Status)> done);
  // The blocking forms; any thread except the log's own callbacks. DEADLINE_EXCEEDED when the
  // change did not finish in time: it may still complete (see cluster_peers()).
  Status AddNode(uint64_t id, std::string raft_address, int64_t timeout_ms = 30000);
  Status RemoveNode(uint64_t id, int64_t timeout_ms = 10000);

  struct Impl;  // log/event_log_impl.h

 private:
  explicit EventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The fold of one event into a transaction record (pure; exposed for tests). rec starts empty
// (default instance) for a new xid. Returns FAILED_PRECONDITION if the event contradicts rec,
// INVALID_ARGUMENT if the event has no xid, no event, no decision or another xid than rec; on
// error rec is unchanged. Repeating a decision or an END is idempotent (OK).
Status Fold(const v1::LogEvent& event, uint64_t lsn, v1::TxnRecord* rec);

// True for a record in a final state: a 2PC transaction COMMITTED or ABORTED, a saga COMPLETED or
// COMPENSATED (a STUCK saga is not finished). Finished records live in `outcomes`.
bool IsFinished(const v1::TxnRecord& rec);

}  // namespace treaty::log
