// SimWorld: the invariants that must hold once the healed world has no event left.
#include <string>

#include "tests/sim/sim_world.h"

namespace treaty::sim {

void SimWorld::CheckQuiescent() {
  if (!up_) Violation("-", "coordinator down at quiescence");
  if (core_ != nullptr && core_->active() != 0) {
    Violation("-", "the core still holds " + std::to_string(core_->active()) +
                       " transaction(s) with nothing left to happen");
  }
  for (const auto& [xid, rec] : records_) {
    if (client_of_xid_.count(xid) == 0) Violation(xid, "logged but never submitted");
  }
  for (const Client& c : clients_) {
    if (!c.satisfied) Violation(c.xid, "the client never got its reply");
    if (c.wait && c.satisfied && !c.reported.has_value()) {
      Violation(c.xid, "a waiting client was satisfied without an outcome");
    }
    auto rec = records_.find(c.xid);
    if (rec == records_.end()) {
      if (c.satisfied) Violation(c.xid, "the client got an OK reply but nothing was logged");
      continue;
    }
    const v1::TxState state = rec->second.state();
    if (state != v1::COMMITTED && state != v1::ABORTED) {
      Violation(c.xid, "unfinished at quiescence: " + v1::TxState_Name(state));
      continue;
    }
    const v1::Decision decision = state == v1::COMMITTED ? v1::COMMIT : v1::ABORT;
    ++(decision == v1::COMMIT ? result_.stats.committed : result_.stats.aborted);
    if (c.reported.has_value() && *c.reported != decision) {
      Violation(c.xid, "the client was told " + v1::Decision_Name(*c.reported) +
                           " but the log decided " + v1::Decision_Name(decision));
    }
    // Every branch that prepared got the decision: nothing may be left prepared.
    for (uint32_t b = 0; b < c.branches.size(); ++b) {
      const BranchFate fate = ParticipantFor(c.branches[b].service()).FateOf(c.xid, b);
      const bool consistent = decision == v1::COMMIT
                                  ? fate == BranchFate::kCommitted || fate == BranchFate::kReadOnly
                                  : fate == BranchFate::kAborted || fate == BranchFate::kReadOnly ||
                                        fate == BranchFate::kUnknown;
      if (!consistent) {
        Violation(c.xid, "branch " + std::to_string(b) + " (" + c.branches[b].service() + ") is " +
                             BranchFateName(fate) + " after " + v1::Decision_Name(decision));
      }
    }
  }
}

}  // namespace treaty::sim
