// The two-phase-commit protocol core (presumed abort): a deterministic state machine with no I/O.
//
// The shell feeds it inputs (a submission, a vote, a call failure, an acknowledgement, a timer, a
// log completion, recovered records) and executes the effects it returns (append to the log, call
// a participant, set a timer, reply to a client). The same core runs under tests/sim/ with a
// simulated network, disk and clock.
//
// Protocol, per transaction:
//   Submit -> Append BEGIN -> (BEGIN durable) -> PREPARE to every branch in parallel
//   all YES/READ_ONLY -> Append COMMIT -> (durable) -> COMMIT to YES branches -> all acked -> END
//   any NO / definitive prepare error (an open breaker too) / prepare deadline -> Append ABORT
//   -> ABORT to every branch that may have prepared (no vote yet or YES) -> all acked -> END
// Commit/abort delivery is retried with capped, jittered backoff until acknowledged; it never gives
// up. Prepare calls that fail transiently are retried until the prepare deadline.
//
// The rule for ABORT (CoreOptions::recovery), the contract this core keeps:
//   A decision is delivered to participants, replied to clients and reported (OutcomeOf, Get) only
//   once it is durable -- with one exception: under Recovery::kPresumeAbort an ABORT may be
//   delivered, replied and reported as soon as it is decided. That is safe only where no other
//   coordinator can ever resume this transaction's prepare: a single node, whose restart aborts
//   every PREPARING transaction (presumed abort), so an ABORT that was lost with the process is
//   decided again. Wherever a prepare can be resumed (Recovery::kResumePrepare, a cluster), an
//   ABORT sent before it is durable lets a new leader commit what a participant already aborted,
//   or a deposed leader (cut off, but not yet aware of it) abort a branch the new leader committed.
//   Every effect batch obeys it: CheckInvariants() states it per transaction.
// The order in which a shell may run one batch of effects: appends, calls, timers, replies in any
// order; a COMMIT (and under kResumePrepare an ABORT) call is only ever emitted after the
// LogDone of its decision, so "persist before you send" holds without ordering inside a batch.
//
// Operator resolution (`treaty tx resolve`, input Resolve):
//   retry, decided (COMMITTING/ABORTING) -> Append Resolved{retry, who, why} -> (durable) ->
//     the decision to every unacknowledged branch now, backoff reset -> reply
//   abort, PREPARING -> decide ABORT (reason names who and why) -> (durable) -> reply
//   anything else is refused: FAILED_PRECONDITION (wrong state), INVALID_ARGUMENT
//   (mark-compensated: 2PC has no compensations), nothing logged.
//
// Thread-safety: none; the shell calls it from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/status.h"
#include "resilience/retry.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"

namespace treaty::twopc {

// Most branches one transaction may have. Bounds per-transaction memory and fan-out.
inline constexpr size_t kMaxBranches = 64;

// The recovery of transactions still PREPARING (BEGIN durable, no decision) by the next
// coordinator, and what it implies for ABORT.
enum class Recovery {
  // A single node's restart aborts them (presumed abort); ABORT may go out before it is durable.
  kPresumeAbort,
  // A cluster's new leader prepares them again, with a full prepare budget counted on its own
  // monotonic clock (wall clocks of different nodes are never compared), so an election shows up
  // as latency, not as a rolled-back transaction. Safe because only the leader's decisions become
  // durable, every decision is delivered and reported only once durable, and a participant
  // answers a repeated PREPARE from its barrier: its first vote, and NO once the branch aborted.
  kResumePrepare,
};

struct CoreOptions {
  // Prepare phase budget when the submission does not set one, milliseconds. Default 5000.
  uint32_t default_prepare_timeout_ms = 5000;
  // Backoff of retried calls (full jitter; attempts unlimited: commit/abort delivery never
  // gives up, prepare retries stop at the prepare deadline). Default 20 ms doubling to 2000 ms.
  resilience::RetryPolicy retry;
  // Backoff before retrying a failed log append, milliseconds. Default 100.
  int64_t log_retry_ms = 100;
  // Budget of one COMMIT or ABORT call, milliseconds. Default 2000. (A PREPARE call's budget is
  // what is left of the transaction's prepare budget.)
  int64_t decision_call_timeout_ms = 2000;
  // What a coordinator that takes over does with a transaction still PREPARING, and therefore
  // when an ABORT may be delivered (see the rule at the top). Default kPresumeAbort.
  Recovery recovery = Recovery::kPresumeAbort;
};

enum class Phase { kPrepare, kCommit, kAbort };
const char* PhaseName(Phase phase);

// Which log append completed (see LogDone).
enum class LogStep { kBegin, kDecision, kEnd, kResolve };

// What an operator asked for (ResolveRequest.action: retry, abort, mark-compensated).
enum class ResolveAction { kRetry, kAbort, kMarkCompensated };

// ---- Inputs ----

struct Submit {
  std::string xid;  // non-empty; the shell generates one if the client gave none
  std::vector<v1::Branch> branches;
  uint32_t prepare_timeout_ms = 0;  // 0 = CoreOptions::default_prepare_timeout_ms
  bool wait = false;                // reply after the decision instead of after BEGIN
  uint64_t client = 0;              // opaque id the shell uses to route the Reply
};

struct VoteReceived {
  std::string xid;
  uint32_t branch = 0;
  v1::Vote vote = v1::VOTE_UNSPECIFIED;
  std::string reason;  // participant's reason for NO
};

struct CallFailed {
  std::string xid;
  uint32_t branch = 0;
  Phase phase = Phase::kPrepare;
  Status status;  // why: UNAVAILABLE / DEADLINE_EXCEEDED are transient, others definitive
  // The call was never sent: the instance's circuit breaker is open. A PREPARE refused so fails
  // the transaction at once (waiting for a broken participant would hold the other branches'
  // locks); a decision is retried like any transient failure.
  bool breaker_open = false;
};

struct Acked {  // a participant acknowledged COMMIT or ABORT
  std::string xid;
  uint32_t branch = 0;
  Phase phase = Phase::kCommit;
};

struct TimerFired {
  std::string xid;
  uint64_t timer_id = 0;  // from SetTimer
};

struct LogDone {
  std::string xid;
  LogStep step = LogStep::kBegin;
  Status status;  // non-OK: the append failed and nothing of it is durable
};

// An operator's `treaty tx resolve` of a transaction this core holds (see the top of the file).
struct Resolve {
  std::string xid;
  ResolveAction action = ResolveAction::kRetry;
  std::string who;      // recorded in the log
  std::string why;      // recorded in the log
  uint64_t client = 0;  // answered (Effects::resolve_replies) once the resolution is durable
};

// ---- Effects ----

struct AppendLog {
  LogStep step;
  v1::LogEvent event;  // event.xid is set
};

struct CallParticipant {
  std::string xid;
  uint32_t branch = 0;
  Phase phase = Phase::kPrepare;
  std::string service;
  std::string op;       // prepare only
  std::string payload;  // prepare only
  uint32_t attempt = 1;
  int64_t deadline_ms = 0;  // time budget for this call
  std::string instance;     // the branch's participant instance (Branch.instance), may be empty
};

struct SetTimer {
  std::string xid;
  uint64_t timer_id = 0;
  int64_t delay_ms = 0;
};

struct Reply {
  uint64_t client = 0;
  std::string xid;
  Status status;  // non-OK: the submission was refused or BEGIN could not be logged
  v1::TxState state = v1::TX_STATE_UNSPECIFIED;
  std::string reason;  // for a Resolve: what was done
};

// A transaction reached a final state (for metrics and logs).
struct Finished {
  std::string xid;
  v1::TxState state = v1::TX_STATE_UNSPECIFIED;
  int64_t duration_ms = 0;  // Submit (or recovery) to END durable
};

struct Effects {
  std::vector<AppendLog> appends;
  std::vector<CallParticipant> calls;
  std::vector<SetTimer> timers;
  std::vector<Reply> replies;          // to Submit inputs
  std::vector<Reply> resolve_replies;  // to Resolve inputs
  std::vector<Finished> finished;
  bool empty() const;
};

// The reply to a Submit for an xid that is logged but not held by the core (finished, or ending):
// its logged state if the branches are the same, else ALREADY_EXISTS (also for a saga's xid).
Reply ReplyForLogged(const Submit& in, const v1::TxnRecord& rec);

// What a participant in doubt should do for a logged transaction: COMMIT once a COMMIT decision
// is logged, PENDING while preparing, ABORT otherwise.
v1::Outcome OutcomeOfRecord(const v1::TxnRecord& rec);

class TwoPcCore {
 public:
  TwoPcCore(CoreOptions options, const Clock& clock, Random& random);
  TwoPcCore(const TwoPcCore&) = delete;
  TwoPcCore& operator=(const TwoPcCore&) = delete;

  // Validation (INVALID_ARGUMENT replies, nothing logged): empty xid, no branches, more than
  // kMaxBranches, a branch without service or op. A Submit for an xid this core already holds
  // attaches to it (no second execution); different branches than the original -> ALREADY_EXISTS.
  // The shell must check the log for finished xids before calling this.
  Effects Handle(const Submit& in);
  Effects Handle(const VoteReceived& in);
  Effects Handle(const CallFailed& in);
  Effects Handle(const Acked& in);
  Effects Handle(const TimerFired& in);
  Effects Handle(const LogDone& in);
  // Replies at once with NOT_FOUND if the core does not hold in.xid (the shell answers for
  // transactions that are only in the log), or with a refusal (see the top of the file).
  Effects Handle(const Resolve& in);

  // Resumes unfinished transactions from the log after a restart: PREPARING ones are aborted
  // (kPresumeAbort) or prepared again with a fresh budget (kResumePrepare); COMMITTING/ABORTING
  // ones have their decision delivered again.
  Effects Recover(const std::vector<v1::TxnRecord>& active);

  // The transaction's live view, if this core holds it.
  std::optional<v1::Transaction> Get(const std::string& xid) const;
  // OUTCOME_PENDING while preparing, COMMIT/ABORT once its decision may be reported (see the
  // rule at the top); nullopt if not held here.
  std::optional<v1::Outcome> OutcomeOf(const std::string& xid) const;
  size_t active() const;

  // OK, or the first broken invariant of a held transaction (a bug): the rule of the header's
  // top for when a decision may be delivered, reported and ended. The simulation checks it after
  // every event.
  Status CheckInvariants() const;

 private:
  // Progress of one branch.
  struct BranchState {
    v1::Vote vote = v1::VOTE_UNSPECIFIED;
    bool needs_decision = false;  // the decision must be delivered (and acknowledged) here
    bool acked = false;           // the participant acknowledged the decision
    uint32_t attempts = 0;        // calls made in the current phase
    std::string last_error;       // last call failure in the current phase
    uint64_t retry_timer = 0;     // pending retry timer id, 0 if none
  };

  // A client waiting for a reply (not yet sent).
  struct Waiter {
    uint64_t client = 0;
    bool wait = false;  // reply at the decision instead of at BEGIN durable
  };

  enum class TimerKind { kPrepareDeadline, kRetryCall, kRetryLog };
  struct TimerPurpose {
    TimerKind kind = TimerKind::kPrepareDeadline;
    uint32_t branch = 0;             // kRetryCall
    Phase phase = Phase::kPrepare;   // kRetryCall
    LogStep step = LogStep::kBegin;  // kRetryLog
  };

  struct Tx {
    std::string xid;
    std::vector<v1::Branch> branches;
    std::vector<BranchState> branch_states;  // parallel to branches
    uint32_t prepare_timeout_ms = 0;
    // PREPARING until the COMMIT decision is durable (COMMITTING) or ABORT is decided (ABORTING).
    v1::TxState state = v1::PREPARING;
    std::string reason;
    v1::Decision decision = v1::DECISION_UNSPECIFIED;  // set when decided, before it is durable
    bool begin_durable = false;
    bool decision_durable = false;
    bool ending = false;               // END was appended (or its retry is pending)
    std::optional<LogStep> appending;  // the append awaiting LogDone; at most one at a time
    v1::LogEvent decision_event;       // re-appended verbatim when the append fails
    int64_t start_ms = 0;              // monotonic: Submit or recovery
    int64_t prepare_deadline_ms = 0;   // monotonic; set when BEGIN is durable
    int64_t created_unix_ms = 0;
    int64_t updated_unix_ms = 0;
    std::vector<Waiter> waiters;              // clients not yet replied to
    std::vector<uint64_t> resolve_clients;    // Resolve inputs answered when their append is done
    std::map<uint64_t, TimerPurpose> timers;  // live timers; any other id is stale
  };

  Tx* Find(const std::string& xid);
  void Attach(Tx& tx, const Submit& in, Effects& out);
  void StartPrepare(Tx& tx, Effects& out);
  void SendPrepare(Tx& tx, uint32_t branch, uint32_t attempt, Effects& out);
  void SendDecision(Tx& tx, uint32_t branch, uint32_t attempt, Effects& out);
  void Decide(Tx& tx, v1::Decision decision, std::string reason, Effects& out);
  void DeliverDecision(Tx& tx, Effects& out);
  void OnDecisionDurable(Tx& tx, Effects& out);
  void DropFromDecision(Tx& tx, uint32_t branch, Effects& out);
  void MaybeEnd(Tx& tx, Effects& out);
  void AppendEnd(Tx& tx, Effects& out);
  // The refusal of in for tx's current state, or OK (twopc_resolve.cpp).
  Status CheckResolve(const Tx& tx, const Resolve& in) const;
  // The Resolved{retry} append completed: redeliver now, then answer (twopc_resolve.cpp).
  void OnResolveLogged(Tx& tx, const Status& status, Effects& out);
  // Answers the waiting Resolve clients: OK with the state, or why the append failed.
  void ReplyResolvers(Tx& tx, const Status& status, const std::string& message, Effects& out);
  void RetryCallLater(Tx& tx, uint32_t branch, Phase phase, Effects& out);
  uint64_t ArmTimer(Tx& tx, TimerPurpose purpose, int64_t delay_ms, Effects& out);
  void CancelTimer(Tx& tx, uint64_t timer_id);
  // Replies to every waiter whose point (BEGIN durable, or the decision) has passed.
  void ReplyWaiters(Tx& tx, Effects& out);
  void Forget(const std::string& xid);
  void Touch(Tx& tx);
  // Whether tx's decision may be delivered, replied and reported now (the rule at the top).
  bool Deliverable(const Tx& tx) const;
  // Moves to COMMITTING/ABORTING: the decision to its branches, replies to waiting clients.
  void StartDelivery(Tx& tx, Effects& out);
  // The phase whose calls the transaction currently makes (kPrepare before a deliverable decision).
  Phase CallPhase(const Tx& tx) const;
  // Full-jitter backoff after call number `attempt` failed (see CoreOptions), at least 1 ms.
  int64_t Backoff(uint32_t attempt);

  CoreOptions options_;
  const Clock& clock_;
  Random& random_;
  uint64_t next_timer_id_ = 1;
  // Node-based: references to a Tx stay valid while other transactions are added or removed.
  std::map<std::string, Tx> txs_;
};

}  // namespace treaty::twopc
