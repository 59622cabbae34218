// The barrier rules of participant.h ("Barrier", "Saga barrier") as pure functions: given what the
// barrier table holds for one 2PC branch or saga step, how a request is answered and what is
// recorded. This is Treaty's barrier, learned from DTM: idempotency (a repeated request is
// answered from the record and runs no handler again), null abort / null compensation (a decision
// that overtakes its request is recorded and acknowledged) and anti-hanging (a request arriving
// after such a record is refused, so it leaves nothing locked or applied).
//
// No storage, clock, logging or thread: the worker applies these rules to RocksDB, and the
// simulation (tests/sim/) to an in-memory table. Includable outside participant/ with
// barrier.h and saga_barrier.h; none of them includes RocksDB.
//
// A caller acts in this order: read the branch's (or step's) records; apply the rule; if it says
// to run a handler, run it in a local transaction and write the record the rule names together
// with the handler's writes as one atomic batch (nothing, if the handler fails); make every write
// durable before sending the answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "participant/barrier.h"
#include "participant/participant.h"
#include "participant/saga_barrier.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::participant {

// The request a rule is applied to; only used to word refusals. id is the branch id (2PC) or the
// step index (saga).
struct BarrierTarget {
  std::string_view service;
  std::string_view xid;
  uint32_t id = 0;
};

// ---- Two-phase commit ----

// The NO reason of a prepare that arrives after a null abort (the branch never voted).
inline constexpr char kAbortedBeforePrepare[] = "aborted before prepare";
// The NO reason of a prepare of a branch that voted YES and was then aborted.
inline constexpr char kAlreadyAborted[] = "branch already aborted";

struct PrepareRule {
  enum class Kind {
    kRunHandler,     // nothing recorded: run the prepare handler, then write RecordVote
    kRepeat,         // the branch voted before: answer that vote again
    kRefuseAborted,  // the branch is ABORTED without a NO vote of its own: answer NO
  };
  Kind kind = Kind::kRunHandler;
  // The answer (kRepeat, kRefuseAborted).
  v1::Vote vote = v1::VOTE_UNSPECIFIED;
  std::string reason;
};

// The rule for a PREPARE of a branch whose record is `existing` (nullopt: none):
//   none       -> kRunHandler;
//   PREPARED   -> kRepeat, YES;
//   COMMITTED  -> kRepeat, YES (it voted YES and its decision was COMMIT);
//   READ_ONLY  -> kRepeat, READ_ONLY with the recorded reason;
//   ABORTED    -> NO whatever vote it once recorded: a NO voter repeats its NO and reason
//                 (kRepeat); a null abort answers kAbortedBeforePrepare and a branch aborted after
//                 voting YES answers kAlreadyAborted (kRefuseAborted). An aborted branch never
//                 votes YES again, so a coordinator that resumes the prepare cannot commit it.
PrepareRule OnPrepare(const std::optional<BarrierRecord>& existing);

// The record written after the prepare handler of `op` returned `vote` at now_unix_ms:
//   YES       -> PREPARED, with op, payload and prepared_unix_ms = now_unix_ms (for commit/abort
//                and in-doubt resolution), written together with the handler's writes;
//   NO        -> ABORTED with the reason; the handler's writes are discarded;
//   READ_ONLY -> READ_ONLY with the reason; the handler's writes are discarded.
// The answer is the record's vote and reason.
BarrierRecord RecordVote(const PrepareResult& vote, std::string_view op, std::string_view payload,
                         int64_t now_unix_ms);

struct DecisionRule {
  enum class Kind {
    kAcknowledge,      // already decided this way (or READ_ONLY): answer OK, write nothing
    kRunHandler,       // PREPARED: run the decision handler of the recorded op and payload, write
                       // `record` with its writes, answer OK
    kRecordNullAbort,  // nothing recorded: write `record` (ABORTED, no vote), answer OK
    kRefuse,           // protocol violation: answer `refusal`, write nothing
  };
  Kind kind = Kind::kAcknowledge;
  // The record to write (kRunHandler, kRecordNullAbort).
  BarrierRecord record;
  // kRefuse: FAILED_PRECONDITION naming the branch, and what was violated (for the log).
  Status refusal;
  std::string violation;
};

// The rule for a COMMIT of `target` whose record is `existing`:
//   PREPARED             -> kRunHandler, record RecordDecision(existing, commit);
//   COMMITTED, READ_ONLY -> kAcknowledge;
//   none                 -> kRefuse "xid=X branch=N was never prepared at S";
//   ABORTED              -> kRefuse "xid=X branch=N is aborted at S; commit refused".
DecisionRule OnCommit(const BarrierTarget& target, const std::optional<BarrierRecord>& existing);

// The rule for an ABORT of `target` whose record is `existing`:
//   PREPARED           -> kRunHandler, record RecordDecision(existing, abort);
//   ABORTED, READ_ONLY -> kAcknowledge;
//   none               -> kRecordNullAbort (so that a PREPARE arriving later votes NO);
//   COMMITTED          -> kRefuse "xid=X branch=N is committed at S; abort refused".
DecisionRule OnAbort(const BarrierTarget& target, const std::optional<BarrierRecord>& existing);

// The record of a PREPARED branch after its decision: COMMITTED (commit) or ABORTED, keeping
// the vote (YES), op and prepared time; the payload, needed only while the decision is pending,
// is dropped. REQUIRES: prepared.state == BRANCH_PREPARED.
BarrierRecord RecordDecision(const BarrierRecord& prepared, bool commit);

// ---- Sagas ----

// The REFUSED reason of an action that arrives after its step's compensation.
inline constexpr char kCompensatedFirst[] = "compensated before the action arrived";

struct ActionRule {
  enum class Kind {
    kRunHandler,              // nothing recorded: run the action handler, then write RecordAction
    kRepeat,                  // the action ran before: answer its recorded outcome
    kRefuseCompensatedFirst,  // anti-hanging: answer REFUSED kCompensatedFirst (a barred action)
  };
  Kind kind = Kind::kRunHandler;
  // The answer (kRepeat, kRefuseCompensatedFirst).
  v1::StepOutcome outcome = v1::STEP_OUTCOME_UNSPECIFIED;
  std::string reason;
};

// The rule for an ACTION of a step whose action and compensation records are given:
//   compensation recorded -> kRefuseCompensatedFirst, whatever the action record holds;
//   action DONE           -> kRepeat, DONE;
//   action REFUSED        -> kRepeat, REFUSED with the recorded reason;
//   neither               -> kRunHandler.
ActionRule OnAction(const std::optional<StepRecord>& action,
                    const std::optional<StepRecord>& compensation);

// The action record after the handler of `action` answered `result`: DONE (written with the
// handler's writes), or REFUSED with the reason (the handler's writes are discarded). The answer
// is DONE or REFUSED with that reason.
StepRecord RecordAction(const StepResult& result, std::string_view action);

struct CompensateRule {
  enum class Kind {
    kRepeat,           // compensation recorded: answer DONE, write nothing
    kRecordNull,       // no action recorded: write `record` (NULL), answer DONE (null compensation)
    kRecordSkipped,    // the action REFUSED, nothing to undo: write `record` (SKIPPED), answer DONE
    kRunCompensation,  // the action DONE: run the compensation handler, write `record` (DONE)
                       // with its writes, answer DONE
    kRefuse,           // protocol violation: answer `refusal`, write nothing
  };
  Kind kind = Kind::kRepeat;
  // The compensation record to write (kRecordNull, kRecordSkipped, kRunCompensation).
  StepRecord record;
  // kRefuse: FAILED_PRECONDITION naming the step, and what was violated (for the log).
  Status refusal;
  std::string violation;
};

// The rule for a COMPENSATE of `target` by `compensation`, registered as the undo of the action
// `undoes`, given the step's action and compensation records:
//   compensation recorded -> kRepeat (idempotent);
//   no action             -> kRecordNull (refuses the action if it arrives later);
//   action REFUSED        -> kRecordSkipped;
//   action DONE           -> kRunCompensation if the recorded action is `undoes`, else kRefuse
//                            "xid=X step=N ran action A at S; compensation C undoes U" (the
//                            coordinator sent another step's compensation).
// A compensation is never answered REFUSED: it cannot be declined, only retried.
CompensateRule OnCompensate(const BarrierTarget& target, std::string_view compensation,
                            std::string_view undoes, const std::optional<StepRecord>& action,
                            const std::optional<StepRecord>& compensation_record);

}  // namespace treaty::participant
