// World: the invariants that must hold once the healed world has no event left.
#include <string>

#include "tests/sim/incarnation.h"
#include "tests/sim/world.h"

namespace treaty::sim {

using participant::StepKind;

void World::CheckQuiescent() {
  if (Leader() == nullptr) Violation("-", "no coordinator leads at quiescence");
  for (const auto& [id, inc] : incarnations_) {
    if (inc->deposed) Violation("-", "a deposed leader still runs at quiescence");
    if (inc->twopc->active() + inc->sagas->active() != 0) {
      Violation("-", "a coordinator still holds " +
                         std::to_string(inc->twopc->active() + inc->sagas->active()) +
                         " transaction(s) with nothing left to happen");
    }
  }
  for (const auto& [xid, rec] : log_.records()) {
    if (client_of_xid_.count(xid) == 0) Violation(xid, "logged but never submitted");
  }
  for (const Client& c : clients_) {
    if (!c.satisfied) Violation(c.xid, "the client never got its reply");
    const v1::TxnRecord* rec = log_.Record(c.xid);
    if (rec == nullptr) {
      if (c.satisfied) Violation(c.xid, "the client got an OK reply but nothing was logged");
      continue;
    }
    if (c.saga) {
      CheckSaga(c, *rec);
    } else {
      CheckTwoPc(c, *rec);
    }
  }
}

void World::CheckTwoPc(const Client& c, const v1::TxnRecord& rec) {
  if (rec.state() != v1::COMMITTED && rec.state() != v1::ABORTED) {
    return Violation(c.xid, "unfinished at quiescence: " + v1::TxState_Name(rec.state()));
  }
  const v1::Decision decision = rec.state() == v1::COMMITTED ? v1::COMMIT : v1::ABORT;
  ++(decision == v1::COMMIT ? result_.stats.committed : result_.stats.aborted);
  if (c.wait && c.satisfied && !c.told.has_value()) {
    Violation(c.xid, "a waiting client was satisfied without an outcome");
  }
  if (c.told.has_value() && *c.told != decision) {
    Violation(c.xid, "the client was told " + v1::Decision_Name(*c.told) + " but the log decided " +
                         v1::Decision_Name(decision));
  }
  // Every branch agrees with the durable decision; nothing is left prepared; no effect twice.
  for (uint32_t b = 0; b < c.branches.size(); ++b) {
    const SimParticipant& p = ParticipantFor(c.branches[b].service());
    const participant::BarrierRecord* branch = p.Branch(c.xid, b);
    const v1::BranchState state = branch == nullptr ? v1::BRANCH_STATE_UNKNOWN : branch->state;
    const bool consistent = decision == v1::COMMIT
                                ? state == v1::BRANCH_COMMITTED || state == v1::BRANCH_READ_ONLY
                                : state == v1::BRANCH_ABORTED || state == v1::BRANCH_READ_ONLY ||
                                      state == v1::BRANCH_STATE_UNKNOWN;
    if (!consistent) {
      Violation(c.xid, "branch " + std::to_string(b) + " (" + p.service() + ") is " +
                           v1::BranchState_Name(state) + " after " + v1::Decision_Name(decision));
    }
    const SimParticipant::Effects e = p.EffectsOf(c.xid, b);
    if (e.prepared > 1 || e.committed > 1 || e.aborted > 1 || (e.committed && e.aborted)) {
      Violation(c.xid, "branch " + std::to_string(b) + " took effect more than once (prepared " +
                           std::to_string(e.prepared) + ", committed " +
                           std::to_string(e.committed) + ", aborted " + std::to_string(e.aborted) +
                           ")");
    }
  }
}

void World::CheckSaga(const Client& c, const v1::TxnRecord& rec) {
  const v1::SagaState state = rec.saga_state();
  if (state != v1::SAGA_COMPLETED && state != v1::SAGA_COMPENSATED) {
    return Violation(c.xid, "unfinished at quiescence: " + v1::SagaState_Name(state));
  }
  ++(state == v1::SAGA_COMPLETED ? result_.stats.completed : result_.stats.compensated);
  if (c.final.has_value() && *c.final != state) {
    Violation(c.xid, "the client was told " + v1::SagaState_Name(*c.final) + " but the log says " +
                         v1::SagaState_Name(state));
  }
  for (int i = 0; i < c.definition.steps_size(); ++i) {
    const auto step = static_cast<uint32_t>(i);
    const SimParticipant& p = ParticipantFor(c.definition.steps(i).service());
    const SimParticipant::Effects e = p.EffectsOf(c.xid, step);
    const uint32_t undone = e.undone + e.by_hand;
    const std::string name = "step " + std::to_string(step) + " (" + p.service() + ")";
    if (e.applied > 1)
      Violation(c.xid, name + " was applied " + std::to_string(e.applied) + " times");
    if (undone > 1)
      Violation(c.xid, name + " was compensated " + std::to_string(undone) + " times");
    if (state == v1::SAGA_COMPLETED && (e.applied != 1 || undone != 0)) {
      Violation(c.xid, name + " of a COMPLETED saga: applied " + std::to_string(e.applied) +
                           ", compensated " + std::to_string(undone));
    }
    if (state == v1::SAGA_COMPENSATED && e.applied != undone) {
      Violation(c.xid, name + " of a COMPENSATED saga: applied " + std::to_string(e.applied) +
                           ", compensated " + std::to_string(undone));
    }
  }
}

void World::ParticipantViolation(const std::string& xid, const std::string& what) {
  Violation(xid, what);
}

void World::BeforeCommit(const std::string& xid, uint32_t branch) {
  auto client = client_of_xid_.find(xid);
  if (client == client_of_xid_.end())
    return Violation(xid, "COMMIT for a transaction nobody submitted");
  const Client& c = clients_[client->second];
  auto ever = ever_decided_.find(xid);
  if (ever == ever_decided_.end() || ever->second != v1::COMMIT) {
    Violation(xid, "branch " + std::to_string(branch) + " commits but no COMMIT is durable");
  }
  // Votes are durable at the participants: their records are the ground truth.
  for (uint32_t b = 0; b < c.branches.size(); ++b) {
    const participant::BarrierRecord* rec = ParticipantFor(c.branches[b].service()).Branch(xid, b);
    const v1::BranchState state = rec == nullptr ? v1::BRANCH_STATE_UNKNOWN : rec->state;
    if (state != v1::BRANCH_PREPARED && state != v1::BRANCH_COMMITTED &&
        state != v1::BRANCH_READ_ONLY) {
      Violation(xid, "branch " + std::to_string(branch) + " commits while branch " +
                         std::to_string(b) + " is " + v1::BranchState_Name(state));
    }
  }
}

}  // namespace treaty::sim
