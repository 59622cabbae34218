// A simulated participant that runs the participant library's real barrier rules
// (participant/barrier_rules.h) on an in-memory barrier table, behind the same wire messages as a
// real one (participant.Prepare/Commit/Abort/Action/Compensate, serialized). Only the business
// handlers are simulated: their answers are drawn from a seeded mix, and their effects are
// counted so the checker can prove that nothing took effect twice or against the decision.
//
// Every record is durable (a crash only makes the participant unreachable for a while), as the
// real worker syncs before it answers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/random.h"
#include "common/status.h"
#include "participant/barrier_rules.h"

namespace treaty::sim {

// The simulated handlers' answers, in percent.
struct HandlerMix {
  // First PREPARE of a branch (the rest vote YES).
  int no_pct = 8;
  int read_only_pct = 7;
  int refuse_pct = 3;     // the handler fails definitively (FAILED_PRECONDITION), nothing recorded
  int transient_pct = 5;  // UNAVAILABLE, nothing recorded; a retry decides afresh
  // First ACTION of a saga step.
  int action_refuse_pct = 10;    // business failure: REFUSED
  int action_transient_pct = 8;  // UNAVAILABLE, nothing recorded (fault phase only)
  int garbled_reply_pct = 3;     // the action ran but the reply has no outcome (fault phase only)
  // A COMPENSATE that must run the undo handler.
  int compensate_transient_pct = 15;  // UNAVAILABLE, nothing recorded (fault phase only)
};

// What the world watches a participant do (each call gives the decision made and the records).
class ParticipantObserver {
 public:
  virtual ~ParticipantObserver() = default;
  // A protocol violation the real worker would log ("protocol violation: ..."), or a branch
  // committing while another branch of its transaction is aborted.
  virtual void ParticipantViolation(const std::string& xid, const std::string& what) = 0;
  // Asked before a branch commits (its record is PREPARED): every branch of xid must be
  // prepared, committed or read-only. Reports a violation otherwise.
  virtual void BeforeCommit(const std::string& xid, uint32_t branch) = 0;
};

class SimParticipant {
 public:
  SimParticipant(std::string service, ParticipantObserver& observer)
      : service_(std::move(service)), observer_(observer) {}

  const std::string& service() const { return service_; }
  bool down(int64_t now_ms) const { return now_ms < down_until_ms_; }
  void CrashUntil(int64_t until_ms) { down_until_ms_ = std::max(down_until_ms_, until_ms); }
  void Heal() { down_until_ms_ = 0; }

  // Serves one request (method and serialized message, as on the wire). faults: the handlers'
  // transient failures are drawn only while true.
  Result<std::string> Serve(const std::string& method, const std::string& payload,
                            const HandlerMix& mix, bool faults, Random& random,
                            int64_t now_unix_ms);

  // Applies an outcome learned by in-doubt recovery to a prepared branch (as the participant
  // library does after QueryOutcome): COMMIT or ABORT through the same rules.
  void ApplyOutcome(const std::string& xid, uint32_t branch, bool commit);

  // PREPARED branches, for in-doubt recovery.
  struct PreparedBranch {
    std::string xid;
    uint32_t branch = 0;
    int64_t prepared_unix_ms = 0;
  };
  std::vector<PreparedBranch> Prepared() const;

  // An operator undoes a step's action by hand, outside the barrier (then marks it compensated):
  // only if the business data shows it applied and not undone.
  void UndoByHand(const std::string& xid, uint32_t step) {
    Effects& e = effects_[{xid, step}];
    if (e.applied > e.undone + e.by_hand) ++e.by_hand;
  }

  const participant::BarrierRecord* Branch(const std::string& xid, uint32_t branch) const;
  const participant::StepRecord* Step(const std::string& xid, uint32_t step,
                                      participant::StepKind kind) const;

  // Business effects of a 2PC branch or a saga step, as the handlers applied them.
  struct Effects {
    uint32_t prepared = 0;   // prepare handler voted YES (locked)
    uint32_t committed = 0;  // commit handler ran
    uint32_t aborted = 0;    // abort handler ran (of a prepared branch)
    uint32_t applied = 0;    // saga action took effect
    uint32_t undone = 0;     // saga compensation handler undid it
    uint32_t by_hand = 0;    // an operator undid it by hand
  };
  Effects EffectsOf(const std::string& xid, uint32_t id) const;

  uint64_t null_compensations() const { return null_compensations_; }
  uint64_t barred_actions() const { return barred_actions_; }

 private:
  using Key = std::pair<std::string, uint32_t>;
  Result<std::string> Prepare(const std::string& payload, const HandlerMix& mix, bool faults,
                              Random& random, int64_t now_unix_ms);
  Result<std::string> Decide(const std::string& xid, uint32_t branch, bool commit);
  Result<std::string> Action(const std::string& payload, const HandlerMix& mix, bool faults,
                             Random& random);
  Result<std::string> Compensate(const std::string& payload, const HandlerMix& mix, bool faults,
                                 Random& random);
  std::optional<participant::BarrierRecord> BranchRecord(const Key& key) const;
  std::optional<participant::StepRecord> StepRecordOf(const std::string& xid, uint32_t step,
                                                      participant::StepKind kind) const;

  std::string service_;
  ParticipantObserver& observer_;
  int64_t down_until_ms_ = 0;
  std::map<Key, participant::BarrierRecord> branches_;
  std::map<std::tuple<std::string, uint32_t, participant::StepKind>, participant::StepRecord>
      steps_;
  std::map<Key, Effects> effects_;
  uint64_t null_compensations_ = 0;
  uint64_t barred_actions_ = 0;
};

// The simulated saga steps' action and compensation names.
inline constexpr char kSimAction[] = "act";
inline constexpr char kSimCompensation[] = "undo";

}  // namespace treaty::sim
