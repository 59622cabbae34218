// SimWorld: the network between the coordinator and its participants, and the participants'
// side of PREPARE / COMMIT / ABORT with the invariants checked when a participant acts.
#include <string>
#include <utility>

#include "tests/sim/sim_world.h"

namespace treaty::sim {

using twopc::CallParticipant;
using twopc::Phase;

SimParticipant& SimWorld::ParticipantFor(const std::string& service) {
  // Services are named "s<index>" by Setup.
  return participants_.at(std::stoul(service.substr(1)));
}

void SimWorld::Call(const CallParticipant& call) {
  if (call.phase == Phase::kCommit) {
    auto decided = ever_decided_.find(call.xid);
    auto rec = records_.find(call.xid);
    const bool durable_commit =
        decided != ever_decided_.end() && decided->second == v1::COMMIT && rec != records_.end() &&
        (rec->second.state() == v1::COMMITTING || rec->second.state() == v1::COMMITTED);
    if (!durable_commit) {
      Violation(call.xid, "COMMIT sent to branch " + std::to_string(call.branch) +
                              " before the COMMIT decision was durable");
    }
  }
  const uint64_t id = next_call_id_++;
  open_calls_.insert(id);
  // The caller gives up at the call's deadline unless a response came first.
  AtCoordinator(Now() + call.deadline_ms, [this, id, call] {
    if (open_calls_.erase(id) == 0) return;
    Feed(twopc::CallFailed{
        call.xid, call.branch, call.phase,
        Status::DeadlineExceeded("no response within " + std::to_string(call.deadline_ms) +
                                 " ms")});
  });
  if (faults_ && random_.Chance(options_.drop_request)) {
    ++result_.stats.dropped_messages;
    return;
  }
  int copies = 1;
  if (faults_ && random_.Chance(options_.duplicate_request)) {
    ++result_.stats.duplicated_messages;
    copies = 2;
  }
  const uint64_t incarnation = incarnation_;
  for (int i = 0; i < copies; ++i) {
    // Not tied to the incarnation: a request in flight still arrives after the caller died.
    At(Now() + NetDelay(), [this, id, call, incarnation] { Serve(id, call, incarnation); });
  }
}

void SimWorld::Serve(uint64_t call_id, const CallParticipant& call, uint64_t incarnation) {
  SimParticipant& p = ParticipantFor(call.service);
  std::function<void()> respond;
  if (p.down(Now())) {
    if (random_.Chance(0.5)) return;  // silence: the caller times out
    respond = [this, call] {
      Feed(twopc::CallFailed{call.xid, call.branch, call.phase,
                                   Status::Unavailable("connection refused by " + call.service)});
    };
  } else if (call.phase == Phase::kPrepare) {
    PrepareAnswer answer = p.Prepare(call.xid, call.branch, options_.votes, random_);
    respond = [this, call, answer = std::move(answer)] {
      if (!answer.status.ok()) {
        Feed(twopc::CallFailed{call.xid, call.branch, call.phase, answer.status});
        return;
      }
      if (core_->OutcomeOf(call.xid) == v1::OUTCOME_ABORT) ++result_.stats.late_votes_after_abort;
      Feed(twopc::VoteReceived{call.xid, call.branch, answer.vote, answer.reason});
    };
  } else if (call.phase == Phase::kCommit) {
    CheckCommitAllowed(call);
    const BranchFate before = p.Commit(call.xid, call.branch);
    if (before == BranchFate::kUnknown || before == BranchFate::kAborted) {
      Violation(call.xid, "COMMIT reached branch " + std::to_string(call.branch) + " which is " +
                              BranchFateName(before));
    }
    respond = [this, call] { Feed(twopc::Acked{call.xid, call.branch, call.phase}); };
  } else {
    const BranchFate before = p.Abort(call.xid, call.branch);
    if (before == BranchFate::kCommitted) {
      Violation(call.xid,
                "ABORT reached branch " + std::to_string(call.branch) + " which had committed");
    }
    respond = [this, call] { Feed(twopc::Acked{call.xid, call.branch, call.phase}); };
  }
  if (faults_ && random_.Chance(options_.drop_response)) {
    ++result_.stats.dropped_messages;
    return;
  }
  At(Now() + NetDelay(), [this, call_id, incarnation, respond = std::move(respond)] {
    // A response for a dead incarnation, or after the caller gave up, is discarded.
    if (!Alive(incarnation) || open_calls_.erase(call_id) == 0) return;
    respond();
  });
}

// A branch may commit only if every branch of its transaction voted YES or READ_ONLY. Votes are
// durable at the participants, so their recorded fates are the ground truth.
void SimWorld::CheckCommitAllowed(const CallParticipant& call) {
  auto client = client_of_xid_.find(call.xid);
  if (client == client_of_xid_.end()) {
    Violation(call.xid, "COMMIT for a transaction no client submitted");
    return;
  }
  const std::vector<v1::Branch>& branches = clients_[client->second].branches;
  for (uint32_t b = 0; b < branches.size(); ++b) {
    const BranchFate fate = ParticipantFor(branches[b].service()).FateOf(call.xid, b);
    if (fate != BranchFate::kPrepared && fate != BranchFate::kCommitted &&
        fate != BranchFate::kReadOnly) {
      Violation(call.xid, "branch " + std::to_string(call.branch) + " commits while branch " +
                              std::to_string(b) + " is " + BranchFateName(fate));
    }
  }
}

}  // namespace treaty::sim
