// A simulated 2PC participant with barrier semantics: every state change is durable (a crash only
// makes it unreachable for a while), PREPARE/COMMIT/ABORT are idempotent, and an ABORT that arrives
// before its PREPARE is remembered so the late PREPARE votes NO (anti-hanging).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "common/random.h"
#include "common/status.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::sim {

enum class BranchFate { kUnknown, kPrepared, kCommitted, kAborted, kReadOnly };
const char* BranchFateName(BranchFate fate);

// How a participant answers the first PREPARE of a branch, in percent (the rest votes YES).
struct VoteMix {
  int no_pct = 8;
  int read_only_pct = 7;
  int refuse_pct = 3;     // definitive error (FAILED_PRECONDITION); nothing recorded
  int transient_pct = 5;  // UNAVAILABLE; nothing recorded, a retry decides afresh
};

struct PrepareAnswer {
  Status status;  // non-OK: the call failed
  v1::Vote vote = v1::VOTE_UNSPECIFIED;
  std::string reason;
};

class SimParticipant {
 public:
  explicit SimParticipant(std::string service) : service_(std::move(service)) {}

  const std::string& service() const { return service_; }
  bool down(int64_t now_ms) const { return now_ms < down_until_ms_; }
  void CrashUntil(int64_t until_ms) { down_until_ms_ = std::max(down_until_ms_, until_ms); }
  void Heal() { down_until_ms_ = 0; }

  PrepareAnswer Prepare(const std::string& xid, uint32_t branch, const VoteMix& mix,
                        Random& random) {
    BranchFate& fate = fates_[{xid, branch}];
    switch (fate) {
      case BranchFate::kPrepared:
      case BranchFate::kCommitted:
        return {Status::Ok(), v1::YES, ""};
      case BranchFate::kReadOnly:
        return {Status::Ok(), v1::READ_ONLY, ""};
      case BranchFate::kAborted:
        return {Status::Ok(), v1::NO, "branch already aborted"};
      case BranchFate::kUnknown:
        break;
    }
    const auto roll = static_cast<int>(random.Uniform(100));
    int edge = mix.no_pct;
    if (roll < edge) {
      fate = BranchFate::kAborted;
      return {Status::Ok(), v1::NO, "insufficient funds"};
    }
    if (roll < (edge += mix.read_only_pct)) {
      fate = BranchFate::kReadOnly;
      return {Status::Ok(), v1::READ_ONLY, ""};
    }
    if (roll < (edge += mix.refuse_pct)) {
      return {Status::FailedPrecondition("account frozen"), v1::VOTE_UNSPECIFIED, ""};
    }
    if (roll < (edge += mix.transient_pct)) {
      return {Status::Unavailable("database busy"), v1::VOTE_UNSPECIFIED, ""};
    }
    fate = BranchFate::kPrepared;
    return {Status::Ok(), v1::YES, ""};
  }

  // Returns the fate before the call; COMMIT moves kPrepared to kCommitted and leaves the rest.
  BranchFate Commit(const std::string& xid, uint32_t branch) {
    BranchFate& fate = fates_[{xid, branch}];
    const BranchFate before = fate;
    if (fate == BranchFate::kPrepared) fate = BranchFate::kCommitted;
    return before;
  }

  // Returns the fate before the call; ABORT of an unknown branch is remembered (null compensation).
  BranchFate Abort(const std::string& xid, uint32_t branch) {
    BranchFate& fate = fates_[{xid, branch}];
    const BranchFate before = fate;
    if (fate == BranchFate::kPrepared || fate == BranchFate::kUnknown) fate = BranchFate::kAborted;
    return before;
  }

  BranchFate FateOf(const std::string& xid, uint32_t branch) const {
    auto it = fates_.find({xid, branch});
    return it == fates_.end() ? BranchFate::kUnknown : it->second;
  }

 private:
  std::string service_;
  int64_t down_until_ms_ = 0;
  std::map<std::pair<std::string, uint32_t>, BranchFate> fates_;
};

}  // namespace treaty::sim
