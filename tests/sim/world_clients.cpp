// World: clients that submit (and resubmit) 2PC transactions and sagas to whichever node they
// believe leads, what they are told, and an operator who aborts, retries and marks steps
// compensated (`treaty tx resolve`).
#include <string>
#include <utility>

#include "tests/sim/incarnation.h"
#include "tests/sim/world.h"

namespace treaty::sim {
namespace {

bool IsRefusal(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kAlreadyExists;
}

// The decision a 2PC state reports, DECISION_UNSPECIFIED while preparing.
v1::Decision DecisionOf(v1::TxState state) {
  if (state == v1::COMMITTING || state == v1::COMMITTED) return v1::COMMIT;
  if (state == v1::ABORTING || state == v1::ABORTED) return v1::ABORT;
  return v1::DECISION_UNSPECIFIED;
}

}  // namespace

void World::Submit(size_t index, bool again) {
  const Client& client = clients_[index];
  if (client.satisfied && !again) return;
  Incarnation* target = Target();
  if (target == nullptr) return Retry(index, Status::Unavailable("no leader"));
  const uint64_t inc = target->id;
  At(Now() + NetDelay(), [this, index, inc] {
    if (Live(inc) == nullptr) return Retry(index, Status::Unavailable("connection refused"));
    AtIncarnation(inc, Now(), [this, index, inc] {
      Incarnation& i = *Live(inc);
      const Client& c = clients_[index];
      if (c.saga) {
        if (i.twopc->Holds(c.xid)) return Violation(c.xid, "a saga's xid is held as 2PC");
        saga::Submit in;
        in.xid = c.xid;
        in.definition = c.definition;
        in.wait = c.wait;
        in.client = index;
        i.sagas->Submit(std::move(in), [](saga::Submit& s) {
          for (auto& step : *s.definition.mutable_steps()) step.set_instance(step.service());
          return Status::Ok();
        });
        return;
      }
      twopc::Submit in;
      in.xid = c.xid;
      in.branches = c.branches;
      in.prepare_timeout_ms = c.prepare_timeout_ms;
      in.wait = c.wait;
      in.client = index;
      i.twopc->Submit(std::move(in), [](twopc::Submit& s) {
        for (v1::Branch& b : s.branches) b.set_instance(b.service());
        return Status::Ok();
      });
    });
  });
}

void World::Retry(size_t index, const Status& /*why*/) {
  ++result_.stats.client_retries;
  At(Now() + 20 + static_cast<int64_t>(random_.Uniform(80)), [this, index] { Submit(index); });
}

void World::OnTwoPcReply(const twopc::Reply& reply) {
  if (reply.client >= clients_.size() || clients_[reply.client].xid != reply.xid) {
    return Violation(reply.xid, "reply routed to the wrong client " + std::to_string(reply.client));
  }
  Client& c = clients_[reply.client];
  Trace("reply to " + c.xid + ": " +
        (reply.status.ok() ? v1::TxState_Name(reply.state) : reply.status.ToString()));
  if (!reply.status.ok()) {
    if (IsRefusal(reply.status))
      return Violation(c.xid, "valid submission refused: " + reply.status.ToString());
    return Retry(reply.client, reply.status);
  }
  const v1::Decision told = DecisionOf(reply.state);
  if (reply.state == v1::PREPARING) {
    if (c.wait) Violation(c.xid, "a waiting client was answered PREPARING");
  } else if (told == v1::DECISION_UNSPECIFIED) {
    return Violation(c.xid, "reply without a state");
  } else {
    // What a client is told must be the durable decision. Only a single node, which presumes
    // abort on recovery, may tell ABORT before its ABORT is durable.
    const v1::TxnRecord* rec = log_.Record(c.xid);
    const bool durable = rec != nullptr && DecisionOf(rec->state()) == told;
    if (!durable && (options_.nodes > 1 || told == v1::COMMIT)) {
      Violation(c.xid, "the client is told " + v1::Decision_Name(told) +
                           " before that decision is durable");
    }
    auto ever = ever_decided_.find(c.xid);
    if (ever != ever_decided_.end() && ever->second != told) {
      Violation(c.xid, "the client is told " + v1::Decision_Name(told) + " but " +
                           v1::Decision_Name(ever->second) + " is durable");
    }
    if (c.told.has_value() && *c.told != told) {
      Violation(c.xid, "the client was told " + v1::Decision_Name(*c.told) + " and later " +
                           v1::Decision_Name(told));
    }
    c.told = told;
  }
  c.satisfied = true;
}

void World::OnSagaReply(const saga::Reply& reply) {
  if (reply.client >= kFirstOperatorClient) {  // an operator's Resolve
    if (!reply.status.ok()) operator_refused_.insert(reply.client);
    return;
  }
  if (reply.client >= clients_.size() || clients_[reply.client].xid != reply.xid) {
    return Violation(reply.xid, "reply routed to the wrong client " + std::to_string(reply.client));
  }
  Client& c = clients_[reply.client];
  if (!reply.status.ok()) {
    if (IsRefusal(reply.status))
      return Violation(c.xid, "valid submission refused: " + reply.status.ToString());
    return Retry(reply.client, reply.status);
  }
  const v1::TxnRecord* rec = log_.Record(c.xid);
  const bool final = reply.state == v1::SAGA_COMPLETED || reply.state == v1::SAGA_COMPENSATED;
  if (rec == nullptr || (final && rec->saga_state() != reply.state)) {
    Violation(c.xid, "the client is told " + v1::SagaState_Name(reply.state) +
                         " but the log says " +
                         (rec == nullptr ? "nothing" : v1::SagaState_Name(rec->saga_state())));
  }
  if (final) {
    if (c.final.has_value() && *c.final != reply.state) {
      Violation(c.xid, "the client was told " + v1::SagaState_Name(*c.final) + " and later " +
                           v1::SagaState_Name(reply.state));
    }
    c.final = reply.state;
  } else if (c.wait && reply.state != v1::SAGA_STUCK) {
    Violation(c.xid, "a waiting client was answered " + v1::SagaState_Name(reply.state));
  }
  c.satisfied = true;
}

void World::OperatorAbort(size_t index) {
  Incarnation* leader = Leader();
  if (leader == nullptr) return;
  const uint64_t inc = leader->id;
  const Client& c = clients_[index];
  ++result_.stats.resolves;
  AtIncarnation(inc, Now() + NetDelay(), [this, inc, xid = c.xid, saga = c.saga] {
    Incarnation& i = *Live(inc);
    const uint64_t client = next_operator_client_++;
    if (saga) {
      i.sagas->Resolve(
          saga::Resolve{xid, saga::ResolveAction::kAbort, 0, "sim-operator", "abort test", client});
    } else if (i.twopc->Holds(xid)) {
      auto view = i.twopc->Get(xid);
      const twopc::ResolveAction action = view && view->state() == v1::PREPARING
                                              ? twopc::ResolveAction::kAbort
                                              : twopc::ResolveAction::kRetry;
      i.twopc->Resolve(twopc::Resolve{xid, action, "sim-operator", "resolve test", client});
    }
  });
}

// Every 100 ms from the start: resolve every STUCK saga, alternating retry and compensate by hand
// + mark compensated.
void World::OperatorRound() {
  bool busy = false;
  Incarnation* leader = Leader();
  for (const Client& c : clients_) {
    if (!c.satisfied) busy = true;
    if (!c.saga || leader == nullptr) continue;
    const std::optional<v1::Transaction> view = leader->sagas->Get(c.xid);
    if (!view.has_value()) continue;
    busy = true;
    if (view->saga_state() != v1::SAGA_STUCK) {
      stuck_since_.erase(c.xid);
      continue;
    }
    // The documented procedure: a STUCK saga makes no more calls, but a request sent before it
    // got stuck may still be on its way (a slow network: up to ~450 ms here), and in a cluster a
    // deposed leader that does not know it yet may still send compensations (up to ~1.4 s here):
    // wait longer than either, then act.
    const int64_t settle_ms = options_.nodes > 1 ? 2000 : 500;
    const int64_t since = stuck_since_.emplace(c.xid, Now()).first->second;
    if (Now() - since < settle_ms) continue;
    stuck_since_.erase(c.xid);
    ++result_.stats.resolves;
    // A step still to compensate (COMPENSATING, or about to be: its compensation may be held
    // back while its instance's breaker is open).
    std::vector<uint32_t> open_steps;
    for (int i = 0; i < view->steps_size(); ++i) {
      const v1::StepState st = view->steps(i).state();
      if (st == v1::STEP_COMPENSATING || st == v1::STEP_SUCCEEDED || st == v1::STEP_RUNNING ||
          st == v1::STEP_FAILED) {
        open_steps.push_back(static_cast<uint32_t>(i));
      }
    }
    std::optional<uint32_t> step;
    for (uint32_t i : open_steps) {
      if (undone_by_hand_.count({c.xid, i}) != 0) step = i;
    }
    if (!step.has_value() && !open_steps.empty()) {
      step = open_steps[random_.Uniform(open_steps.size())];
    }
    const uint64_t client = next_operator_client_++;
    // A step undone by hand whose mark was not logged (the coordinator went down) is marked
    // again; it must never be compensated by the coordinator as well.
    const bool undone = step.has_value() && undone_by_hand_.count({c.xid, *step}) != 0;
    if (step.has_value() && (undone || random_.Chance(0.5))) {
      // The operator undoes the step by hand, outside the barrier, and marks it compensated; a
      // refused resolution means the operator did not touch the step.
      leader->sagas->Resolve(saga::Resolve{c.xid, saga::ResolveAction::kMarkCompensated, *step,
                                           "sim-operator", "undone by hand", client});
      if (!undone && operator_refused_.count(client) == 0) {
        ParticipantFor(view->steps(static_cast<int>(*step)).service()).UndoByHand(c.xid, *step);
        undone_by_hand_.insert({c.xid, *step});
      }
    } else {
      leader->sagas->Resolve(
          saga::Resolve{c.xid, saga::ResolveAction::kRetry, 0, "sim-operator", "healed", client});
    }
  }
  if (busy || leader == nullptr) At(Now() + 100, [this] { OperatorRound(); });
}

}  // namespace treaty::sim
