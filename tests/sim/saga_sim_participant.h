// A simulated saga participant with the barrier semantics of participant/: every step's record is
// durable (a crash only makes the participant unreachable for a while); an action or compensation
// repeated returns its first result (idempotency); a compensation of an action that never arrived
// is recorded and succeeds (null compensation); an action arriving after its compensation is
// refused (anti-hanging). It counts every business effect so the checker can prove none happened
// twice.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "common/random.h"
#include "common/status.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::sim {

enum class StepFate {
  kNone,             // nothing arrived
  kApplied,          // the action took effect
  kRefused,          // the action was refused (business failure); nothing took effect
  kCompensated,      // the action took effect and was compensated
  kNullCompensated,  // the compensation arrived first: nothing to undo, the action is barred
};
const char* StepFateName(StepFate fate);

// How a participant answers, in percent.
struct StepMix {
  int refuse_pct = 10;                // first action call: business failure
  int action_transient_pct = 8;       // an action call fails with UNAVAILABLE, nothing recorded
  int garbled_reply_pct = 3;          // the reply has no outcome (the action may have applied)
  int compensate_transient_pct = 15;  // a compensation fails with UNAVAILABLE (fault phase only)
};

struct StepAnswer {
  Status status;  // non-OK: the call failed (no StepResponse)
  v1::StepOutcome outcome = v1::STEP_OUTCOME_UNSPECIFIED;
  std::string reason;
};

class SagaSimParticipant {
 public:
  explicit SagaSimParticipant(std::string service) : service_(std::move(service)) {}

  bool down(int64_t now_ms) const { return now_ms < down_until_ms_; }
  void CrashUntil(int64_t until_ms) { down_until_ms_ = std::max(down_until_ms_, until_ms); }
  void Heal() { down_until_ms_ = 0; }

  // faults: transient failures are injected only while true.
  StepAnswer Action(const std::string& xid, uint32_t step, const StepMix& mix, bool faults,
                    Random& random) {
    Record& r = records_[{xid, step}];
    switch (r.fate) {
      case StepFate::kApplied:
        return {Status::Ok(), v1::STEP_DONE, ""};
      case StepFate::kRefused:
        return {Status::Ok(), v1::STEP_REFUSED, "out of stock"};
      case StepFate::kCompensated:
      case StepFate::kNullCompensated:
        ++r.barred_actions;
        return {Status::Ok(), v1::STEP_REFUSED, "already compensated"};
      case StepFate::kNone:
        break;
    }
    const auto roll = static_cast<int>(random.Uniform(100));
    if (roll < mix.refuse_pct) {
      r.fate = StepFate::kRefused;
      return {Status::Ok(), v1::STEP_REFUSED, "out of stock"};
    }
    if (faults && roll < mix.refuse_pct + mix.action_transient_pct) {
      return {Status::Unavailable("database busy"), v1::STEP_OUTCOME_UNSPECIFIED, ""};
    }
    if (faults && static_cast<int>(random.Uniform(100)) < mix.garbled_reply_pct) {
      // An error body: ambiguous. Half the time the action took effect before the failure.
      if (random.Chance(0.5)) {
        r.fate = StepFate::kApplied;
        ++r.applied;
      }
      return {Status::Ok(), v1::STEP_OUTCOME_UNSPECIFIED, ""};
    }
    r.fate = StepFate::kApplied;
    ++r.applied;
    return {Status::Ok(), v1::STEP_DONE, ""};
  }

  StepAnswer Compensate(const std::string& xid, uint32_t step, const StepMix& mix, bool faults,
                        Random& random) {
    Record& r = records_[{xid, step}];
    if (faults && static_cast<int>(random.Uniform(100)) < mix.compensate_transient_pct) {
      return {Status::Unavailable("compensation store down"), v1::STEP_OUTCOME_UNSPECIFIED, ""};
    }
    Undo(r);
    return {Status::Ok(), v1::STEP_DONE, ""};
  }

  // An operator compensates by hand before `treaty tx resolve --mark-compensated`.
  void CompensateByHand(const std::string& xid, uint32_t step) { Undo(records_[{xid, step}]); }

  StepFate FateOf(const std::string& xid, uint32_t step) const {
    auto it = records_.find({xid, step});
    return it == records_.end() ? StepFate::kNone : it->second.fate;
  }
  // Times the action's / the compensation's business effect took place.
  uint32_t Applied(const std::string& xid, uint32_t step) const { return Get(xid, step).applied; }
  uint32_t Undone(const std::string& xid, uint32_t step) const { return Get(xid, step).undone; }
  uint64_t barred_actions() const {
    uint64_t n = 0;
    for (const auto& [key, r] : records_) n += r.barred_actions;
    return n;
  }
  uint64_t null_compensations() const {
    uint64_t n = 0;
    for (const auto& [key, r] : records_) n += r.fate == StepFate::kNullCompensated ? 1 : 0;
    return n;
  }

 private:
  struct Record {
    StepFate fate = StepFate::kNone;
    uint32_t applied = 0;
    uint32_t undone = 0;
    uint32_t barred_actions = 0;  // actions refused because the compensation came first
  };

  static void Undo(Record& r) {
    switch (r.fate) {
      case StepFate::kNone:
        r.fate = StepFate::kNullCompensated;
        break;
      case StepFate::kApplied:
        r.fate = StepFate::kCompensated;
        ++r.undone;
        break;
      default:
        break;  // refused (nothing to undo) or already compensated: idempotent
    }
  }

  Record Get(const std::string& xid, uint32_t step) const {
    auto it = records_.find({xid, step});
    return it == records_.end() ? Record{} : it->second;
  }

  std::string service_;
  int64_t down_until_ms_ = 0;
  std::map<std::pair<std::string, uint32_t>, Record> records_;
};

}  // namespace treaty::sim
