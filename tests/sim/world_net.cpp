// World: the network between coordinator incarnations and participants (delay, loss,
// duplication, reordering, slow requests, unreachable participants), and the participants'
// in-doubt recovery (QueryOutcome to whichever node they believe leads).
#include <string>
#include <utility>

#include "tests/sim/incarnation.h"
#include "tests/sim/world.h"

namespace treaty::sim {

SimParticipant& World::ParticipantFor(const std::string& instance) {
  // Services (and their single instances) are named "s<index>" by Setup.
  return *participants_.at(std::stoul(instance.substr(1)));
}

void World::Send(uint64_t inc, driver::Request request,
                 std::function<void(Result<std::string>)> done) {
  // The caller's side: the response, a transport error, or the deadline, whichever comes first.
  auto answered = std::make_shared<bool>(false);
  auto finish = [this, inc, answered, done = std::move(done)](int64_t at_ms,
                                                              Result<std::string> r) mutable {
    AtIncarnation(inc, at_ms, [answered, done, r = std::move(r)]() mutable {
      if (*answered) return;
      *answered = true;
      done(std::move(r));
    });
  };
  finish(Now() + request.deadline_ms,
         Status::DeadlineExceeded("no response within " + std::to_string(request.deadline_ms) +
                                  " ms"));
  if (faults_ && random_.Chance(options_.drop_request)) {
    ++result_.stats.dropped_messages;
    return;
  }
  int copies = 1;
  if (faults_ && random_.Chance(options_.duplicate_request)) {
    ++result_.stats.duplicated_messages;
    copies = 2;
  }
  for (int i = 0; i < copies; ++i) {
    int64_t delay = NetDelay();
    if (faults_ && random_.Chance(options_.slow_request)) {
      delay += static_cast<int64_t>(random_.Uniform(400));
    }
    // Not tied to the incarnation: a request in flight arrives even if its sender died.
    At(Now() + delay, [this, request, finish]() mutable {
      SimParticipant& p = ParticipantFor(request.instance);
      if (p.down(Now())) {
        if (random_.Chance(0.5)) return;  // silence: the caller times out
        finish(Now() + NetDelay(), Status::Unavailable("connection refused by " + p.service()));
        return;
      }
      Result<std::string> r = p.Serve(request.method, request.payload, options_.handlers, faults_,
                                      random_, 1'700'000'000'000 + Now());
      if (options_.trace) {
        Trace(p.service() + " served " + request.method + " -> " +
              (r.ok() ? std::to_string(r->size()) + " bytes" : r.status().ToString()));
      }
      if (faults_ && random_.Chance(options_.drop_response)) {
        ++result_.stats.dropped_messages;
        // The connection broke after the request was served: outcome unknown.
        if (random_.Chance(0.5)) {
          finish(Now() + NetDelay(), Status::Unavailable("connection reset"));
        }
        return;
      }
      finish(Now() + NetDelay(), std::move(r));
    });
  }
}

void World::InDoubtRound(size_t participant) {
  SimParticipant& p = *participants_[participant];
  constexpr int64_t kRoundMs = 200;
  const int64_t now_unix_ms = 1'700'000'000'000 + Now();
  bool busy = false;
  if (!p.down(Now())) {
    for (const SimParticipant::PreparedBranch& b : p.Prepared()) {
      busy = true;
      if (now_unix_ms - b.prepared_unix_ms < options_.in_doubt_after_ms) continue;
      Incarnation* target = Target();
      if (target == nullptr) continue;
      ++result_.stats.in_doubt_queries;
      const uint64_t inc = target->id;
      // The query and its answer each cross the network (either may be lost).
      At(Now() + NetDelay(), [this, inc, participant, xid = b.xid, branch = b.branch] {
        Incarnation* i = Live(inc);
        if (i == nullptr) return;
        AtIncarnation(inc, Now(), [this, inc, participant, xid, branch] {
          Live(inc)->twopc->QueryOutcome(
              xid, [this, participant, xid, branch](Result<v1::Outcome> r) {
                if (!r.ok() || *r == v1::OUTCOME_PENDING) return;
                const bool commit = *r == v1::OUTCOME_COMMIT;
                Trace("in doubt: " + xid + " outcome " + (commit ? "COMMIT" : "ABORT"));
                At(Now() + NetDelay(), [this, participant, xid, branch, commit] {
                  if (faults_ && random_.Chance(options_.drop_response)) return;
                  participants_[participant]->ApplyOutcome(xid, branch, commit);
                });
              });
        });
      });
    }
  }
  // Rounds continue while a branch is prepared, for a bounded time after the world healed (a
  // branch still prepared then is reported at quiescence).
  constexpr int64_t kMaxAfterHealMs = 30'000;
  if (faults_ || (busy && Now() < start_ms_ + options_.fault_phase_ms + kMaxAfterHealMs)) {
    At(Now() + kRoundMs, [this, participant] { InDoubtRound(participant); });
  }
}

}  // namespace treaty::sim
