// The saga protocol core: a deterministic state machine with no I/O, shaped like
// twopc/twopc_core.h. The shell feeds it inputs (a submission, a step reply, a call failure,
// a timer, a log completion, an operator's resolution, recovered records) and executes the effects
// it returns (append events to the log atomically, call a participant, set a timer, reply to a
// client). The same core runs under tests/sim/ with a simulated network, disk and clock.
//
// Protocol, per saga:
//   Submit -> Append [SagaBegun, StepChanged RUNNING for every step with no `after`]
//   -> (durable) reply to non-waiting clients, send those actions (independent steps in parallel).
//   A step's action DONE -> Append [StepChanged SUCCEEDED, StepChanged RUNNING for every step that
//   became ready] -> (durable) send the new actions. All steps SUCCEEDED -> SagaChanged COMPLETED.
//   Every action is sent only once its StepChanged RUNNING is durable, and a step becomes RUNNING
//   only in the same or a later append than its dependencies' SUCCEEDED: so the durable record
//   names every step whose action may have been sent.
//
//   Turning around: an action REFUSED (business failure: never retried), a definitive error, or a
//   transient error after the step's max attempts (default 3) -> Append [StepChanged FAILED,
//   StepChanged SKIPPED for every step never started, SagaChanged COMPENSATING] -> (durable)
//   compensations. Resolve abort does the same for a RUNNING saga. Transient failures (timeout
//   after send, connection reset, a reply without an outcome) are ambiguous: the action may have
//   executed, so they are retried with backoff and never count as success.
//
//   Compensating: every step that may have executed is compensated: RUNNING, SUCCEEDED, FAILED
//   (a REFUSED action too: the participant's barrier makes compensating an action without effect a
//   null compensation, and one rule for all FAILED steps needs no record of why a step failed).
//   SKIPPED steps never ran and are not compensated. A step's compensation is sent only after the
//   COMPENSATED of every step that comes after it is durable (reverse dependency order; independent
//   steps in parallel). An action still in flight when the saga turns around is not waited for:
//   its step is compensated at once and the late reply is ignored; the barrier either undoes the
//   action or, if the compensation arrived first, records a null compensation and refuses the late
//   action. A compensation refused by an open circuit breaker (CallFailed::breaker_open: never
//   sent) is held here, not in the shell, and tried again after breaker_wait_ms without spending
//   its budget; an operator's mark-compensated cancels it. Compensations retry with capped backoff;
//   after max_compensation_attempts (default 10) calls for one step -> Append [StepChanged
//   COMPENSATING (attempts, error), SagaChanged STUCK]: the saga stays held and visible and makes
//   no more calls until resolved. When every step that needed it is COMPENSATED -> SagaChanged
//   COMPENSATED.
//
//   Waiting clients are answered with the final state (COMPLETED, COMPENSATED, or STUCK) once it is
//   durable; the others once SagaBegun is durable (RUNNING). A failed append (other than the first)
//   is retried after CoreOptions::log_retry_ms with the same events; progress that depends on it
//   waits. A failed first append drops the saga and answers its clients with the error.
//
// Attempt counts are logged with each step outcome, not with every call: after a restart a step's
// count resumes from its last logged value.
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
#include "saga/definition.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::saga {

// TxnRecord.mode and Transaction.mode of a saga.
inline constexpr char kSagaMode[] = "saga";

struct SagaCoreOptions {
  // Backoff before retrying a failed log append, milliseconds. Default 100.
  int64_t log_retry_ms = 100;
  // How long a compensation refused by an open circuit breaker (never sent) waits before it is
  // tried again, milliseconds. Such a refusal does not count against the step's compensation
  // budget. Default 200.
  int64_t breaker_wait_ms = 200;
};

enum class Phase { kAction, kCompensate };
const char* PhaseName(Phase phase);

enum class ResolveAction { kRetry, kMarkCompensated, kAbort };
// "retry", "mark-compensated", "abort" (the Resolved event's action).
const char* ResolveActionName(ResolveAction action);

// ---- Inputs ----

struct Submit {
  std::string xid;                // non-empty; the shell generates one if the client gave none
  v1::SagaDefinition definition;  // steps' instance fields chosen by the shell
  bool wait = false;              // reply at COMPLETED / COMPENSATED / STUCK instead of at begin
  uint64_t client = 0;            // opaque id the shell uses to route the Reply
};

// A participant answered participant.Action / participant.Compensate.
struct StepReplied {
  std::string xid;
  uint32_t step = 0;
  Phase phase = Phase::kAction;
  v1::StepOutcome outcome = v1::STEP_OUTCOME_UNSPECIFIED;  // UNSPECIFIED: treated as ambiguous
  std::string reason;
};

// A call got no StepResponse: transport error, deadline, or an error status.
struct CallFailed {
  std::string xid;
  uint32_t step = 0;
  Phase phase = Phase::kAction;
  uint32_t attempt = 0;  // CallStep::attempt of the failed call; 0: unknown (accepted)
  Status status;         // UNAVAILABLE / DEADLINE_EXCEEDED / ... transient, others definitive
  // The call was never sent: the instance's circuit breaker is open.
  bool breaker_open = false;
};

struct TimerFired {
  std::string xid;
  uint64_t timer_id = 0;  // from SetTimer
};

struct LogDone {
  std::string xid;
  uint64_t token = 0;  // from AppendLog
  Status status;       // non-OK: the append failed and nothing of it is durable
};

// An operator's `treaty tx resolve`.
//   kRetry: a STUCK (or COMPENSATING) saga gets a fresh compensation budget for every step.
//   kMarkCompensated: `step` is recorded COMPENSATED (done by hand); compensation continues. A
//   held compensation of the step (open breaker) is cancelled; refused (FAILED_PRECONDITION)
//   while the step's compensation call is in flight, which could still undo it a second time.
//   kAbort: a RUNNING saga turns around and compensates now.
struct Resolve {
  std::string xid;
  ResolveAction action = ResolveAction::kRetry;
  uint32_t step = 0;  // kMarkCompensated: index in the definition
  std::string who;
  std::string why;
  uint64_t client = 0;  // answered once the Resolved event is durable (or at once with an error)
};

// ---- Effects ----

// Append these events in one atomic Append; answer with LogDone{xid, token}.
struct AppendLog {
  uint64_t token = 0;
  std::vector<v1::LogEvent> events;  // each has xid and unix_ms set
};

// Call participant.Action (kAction, op = the step's action) or participant.Compensate
// (kCompensate, op = its compensation) with StepRequest{xid, step, op, payload}.
struct CallStep {
  std::string xid;
  uint32_t step = 0;
  Phase phase = Phase::kAction;
  std::string service;
  std::string op;
  std::string payload;
  std::string routing_key;  // SagaStep.routing_key (empty: the xid)
  std::string instance;     // SagaStep.instance, may be empty
  uint32_t attempt = 1;     // 1-based, per step and phase
  int64_t deadline_ms = 0;  // time budget of this call (the step's timeout)
};

struct SetTimer {
  std::string xid;
  uint64_t timer_id = 0;
  int64_t delay_ms = 0;
};

struct Reply {
  uint64_t client = 0;
  std::string xid;
  Status status;  // non-OK: refused (Submit or Resolve) or the saga could not be logged
  v1::SagaState state = v1::SAGA_STATE_UNSPECIFIED;
  std::string reason;
};

// A saga reached a final state durably (for metrics and logs); the core no longer holds it.
struct Finished {
  std::string xid;
  v1::SagaState state = v1::SAGA_STATE_UNSPECIFIED;  // COMPLETED or COMPENSATED
  int64_t duration_ms = 0;  // Submit (or recovery) to the final state durable
};

struct Effects {
  std::vector<AppendLog> appends;
  std::vector<CallStep> calls;
  std::vector<SetTimer> timers;
  std::vector<Reply> replies;
  std::vector<Finished> finished;
  bool empty() const;
};

// The reply to a Submit for an xid that is logged but not held by the core (a finished saga): its
// state if the definitions match (the chosen instances aside), else ALREADY_EXISTS (also for a
// 2PC transaction's xid).
Reply ReplyForLogged(const Submit& in, const v1::TxnRecord& rec);

// The view of a saga from its log record (for sagas the core does not hold, e.g. finished ones):
// mode "saga", saga_state, reason, times, and per step its logged state, attempts and error.
v1::Transaction TransactionFromSagaRecord(const v1::TxnRecord& rec);

class SagaCore {
 public:
  SagaCore(SagaCoreOptions options, const Clock& clock, Random& random);
  SagaCore(const SagaCore&) = delete;
  SagaCore& operator=(const SagaCore&) = delete;

  // INVALID_ARGUMENT replies (nothing logged): empty xid, or a definition that fails Validate.
  // A Submit for an xid this core holds attaches to it (no second execution); a different
  // definition -> ALREADY_EXISTS. The shell must check the log for finished xids first.
  Effects Handle(const Submit& in);
  Effects Handle(const StepReplied& in);
  Effects Handle(const CallFailed& in);
  Effects Handle(const TimerFired& in);
  Effects Handle(const LogDone& in);
  // Replies: NOT_FOUND if the core does not hold xid (the shell answers FAILED_PRECONDITION for a
  // finished one from the log), INVALID_ARGUMENT for a bad step, FAILED_PRECONDITION when the
  // action does not apply (retry or mark-compensated of a RUNNING saga, abort of one already
  // compensating, a saga finishing or not yet durably begun, marking a step that never ran).
  Effects Handle(const Resolve& in);

  // Resumes unfinished sagas after a restart; records of other modes, finished sagas and xids
  // already held are ignored. RUNNING: actions of RUNNING steps are sent again (idempotent at the
  // participant). COMPENSATING: compensation resumes. STUCK: held until resolved.
  Effects Recover(const std::vector<v1::TxnRecord>& active);

  // The saga's live view (mode "saga", saga_state, steps), if this core holds it.
  std::optional<v1::Transaction> Get(const std::string& xid) const;
  bool Holds(const std::string& xid) const { return sagas_.count(xid) != 0; }
  size_t active() const;

  // OK, or the first broken invariant of a held saga (a bug). The simulation checks it after
  // every event.
  Status CheckInvariants() const;

 private:
  struct Step {
    // Latest known, including events not yet durable. COMPENSATING is set when the first
    // compensation is sent and logged only with STUCK; the compensation's outcome is logged.
    v1::StepState state = v1::STEP_PENDING;
    v1::StepState durable = v1::STEP_PENDING;  // as far as the log has confirmed
    uint32_t attempts = 0;                     // calls made in the current phase
    // attempts when an operator's retry gave the step a fresh budget: the budget counts the calls
    // since (attempts - budget_base). attempts itself never goes back while a call may be in
    // flight, so a late failure of an earlier call is always recognised as stale.
    uint32_t budget_base = 0;
    std::string last_error;
    bool in_flight = false;    // a call of the current phase is outstanding
    uint64_t retry_timer = 0;  // pending retry timer id, 0 if none
  };
  struct Waiter {
    uint64_t client = 0;
    bool wait = false;
  };
  // One atomic append: in flight, or being retried after a failure.
  struct Batch {
    uint64_t token = 0;  // 0: none in flight
    std::vector<v1::LogEvent> events;
    std::vector<uint64_t> resolve_clients;  // answered when durable
  };
  enum class TimerKind { kRetryCall, kRetryLog };
  struct TimerPurpose {
    TimerKind kind = TimerKind::kRetryCall;
    uint32_t step = 0;
  };
  struct Saga {
    std::string xid;
    v1::SagaDefinition definition;
    StepGraph graph;
    std::vector<Step> steps;                             // parallel to definition.steps
    v1::SagaState state = v1::SAGA_RUNNING;              // including events not yet durable
    v1::SagaState durable = v1::SAGA_STATE_UNSPECIFIED;  // unspecified until SagaBegun durable
    std::string reason;
    Batch appending;                          // the append awaiting LogDone (or its retry)
    bool log_retry_pending = false;           // appending failed; a kRetryLog timer is armed
    Batch queued;                             // events waiting for the append in flight
    std::vector<Waiter> waiters;              // clients not yet replied to
    std::map<uint64_t, TimerPurpose> timers;  // live timers; any other id is stale
    int64_t start_ms = 0;
    int64_t created_unix_ms = 0;
    int64_t updated_unix_ms = 0;
  };

  // saga_core.cpp: lifecycle, log, recovery, queries.
  Saga* Find(const std::string& xid);
  void Attach(Saga& saga, const Submit& in, Effects& out);
  void Queue(Saga& saga, v1::LogEvent event);
  v1::LogEvent NewEvent(const Saga& saga) const;
  void QueueStep(Saga& saga, uint32_t step, v1::StepState state);
  void QueueSaga(Saga& saga, v1::SagaState state);
  void Flush(Saga& saga, Effects& out);
  void ApplyDurable(Saga& saga, const v1::LogEvent& event);
  // Queues what the current state implies, sends what the durable state justifies, flushes the
  // log and answers waiters. Called at the end of every input for the saga. May forget the saga.
  void Advance(Saga& saga, Effects& out);
  void QueueForward(Saga& saga);
  void ReplyWaiters(Saga& saga, Effects& out);
  void Touch(Saga& saga);

  // saga_core_compensate.cpp: calls, outcomes, turning around, resolution, timers.
  void SendCalls(Saga& saga, Effects& out);
  void SendCall(Saga& saga, uint32_t step, Phase phase, Effects& out);
  void OnActionFailed(Saga& saga, uint32_t step, const Status& status, Effects& out);
  void OnCompensationFailed(Saga& saga, uint32_t step, const std::string& error, Effects& out);
  void FailStep(Saga& saga, uint32_t step, std::string error);
  // Queues SKIPPED for steps never started and SagaChanged COMPENSATING (unless `by_resolve`: the
  // Resolved abort event turns the saga around itself).
  void TurnAround(Saga& saga, std::string reason, bool by_resolve);
  void ResetCompensationBudgets(Saga& saga);
  void RetryLater(Saga& saga, uint32_t step, Effects& out);
  uint64_t ArmTimer(Saga& saga, TimerPurpose purpose, int64_t delay_ms, Effects& out);
  void CancelRetry(Saga& saga, uint32_t step);
  void CancelAllRetries(Saga& saga);
  // Whether every step that comes after `step` needs no (more) compensation, durably.
  bool DependentsCompensated(const Saga& saga, uint32_t step) const;

  SagaCoreOptions options_;
  const Clock& clock_;
  Random& random_;
  uint64_t next_timer_id_ = 1;
  uint64_t next_token_ = 1;
  // Node-based: references to a Saga stay valid while other sagas are added or removed.
  std::map<std::string, Saga> sagas_;
};

}  // namespace treaty::saga
