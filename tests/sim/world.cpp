// World: setup, the coordinator incarnations (the production drivers on simulated ports), leader
// faults and the event loop.
#include "tests/sim/world.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "tests/sim/incarnation.h"

namespace treaty::sim {

WorldStats& WorldStats::operator+=(const WorldStats& o) {
  events += o.events;
  committed += o.committed;
  aborted += o.aborted;
  completed += o.completed;
  compensated += o.compensated;
  stuck += o.stuck;
  resolves += o.resolves;
  leader_faults += o.leader_faults;
  deposed_running += o.deposed_running;
  lost_in_flight += o.lost_in_flight;
  recovered_preparing += o.recovered_preparing;
  recovered_decided += o.recovered_decided;
  recovered_sagas += o.recovered_sagas;
  log_failures += o.log_failures;
  dropped_messages += o.dropped_messages;
  duplicated_messages += o.duplicated_messages;
  breaker_refusals += o.breaker_refusals;
  in_doubt_queries += o.in_doubt_queries;
  barred_actions += o.barred_actions;
  null_compensations += o.null_compensations;
  client_retries += o.client_retries;
  return *this;
}

World::World(uint64_t seed, WorldOptions options)
    : seed_(seed),
      options_(std::move(options)),
      random_(seed),
      log_(loop_, random_,
           SimLogOptions{options_.nodes > 1, options_.max_commit_delay_ms,
                         options_.nodes > 1 ? 0.0 : options_.log_failure,
                         options_.ambiguous_log_failure},
           *this) {
  for (int i = 0; i < options_.services; ++i) {
    participants_.push_back(std::make_unique<SimParticipant>("s" + std::to_string(i), *this));
  }
  for (int n = 0; n < options_.nodes; ++n) {
    mono_offset_ms_.push_back(static_cast<int64_t>(random_.Uniform(1'000'000)));
    const auto skew = static_cast<int64_t>(
        random_.Uniform(static_cast<uint64_t>(2 * options_.max_wall_skew_ms + 1)));
    wall_skew_ms_.push_back(options_.nodes > 1 ? skew - options_.max_wall_skew_ms : 0);
  }
}

World::~World() = default;

// ---- Event loop ----

void World::AtIncarnation(uint64_t inc, int64_t at_ms, std::function<void()> fn) {
  At(at_ms, [this, inc, fn = std::move(fn)]() mutable {
    Incarnation* i = Live(inc);
    if (i == nullptr) return;
    if (i->frozen_until_ms > Now()) {  // paused: it runs once the process is resumed
      AtIncarnation(inc, i->frozen_until_ms, std::move(fn));
      return;
    }
    fn();
  });
}

int64_t World::NetDelay() {
  const auto spread = static_cast<uint64_t>(options_.max_delay_ms - options_.min_delay_ms + 1);
  return options_.min_delay_ms + static_cast<int64_t>(random_.Uniform(spread));
}

void World::Violation(const std::string& xid, const std::string& what) {
  AddViolation(&result_.violations, Now() - start_ms_, xid, what);
  Trace("VIOLATION xid=" + xid + ": " + what);
}

void World::Trace(const std::string& what) const {
  if (options_.trace)
    std::fprintf(stderr, "t=%lldms %s\n", static_cast<long long>(Now() - start_ms_), what.c_str());
}

WorldResult World::Run() {
  start_ms_ = Now();
  Setup();
  StartIncarnation(0);
  At(start_ms_ + options_.fault_phase_ms, [this] { Heal(); });
  At(start_ms_ + 100, [this] { OperatorRound(); });
  const bool quiet =
      loop_.Run(options_.max_events, &result_.stats.events, [this] { CheckCores(); });
  if (!quiet) {
    for (const auto& [id, inc] : incarnations_) {
      for (const Client& c : clients_) {
        auto view = c.saga ? inc->sagas->Get(c.xid) : inc->twopc->Get(c.xid);
        if (view) Trace("held by " + std::to_string(id) + ": " + view->ShortDebugString());
      }
    }
    Violation("-", "no quiescence after " + std::to_string(options_.max_events) +
                       " events (a retry loop that never ends?)");
  } else {
    CheckQuiescent();
  }
  for (const auto& [xid, rec] : log_.records()) {
    loop_.Mix(std::hash<std::string>{}(rec.SerializeAsString()));
  }
  result_.stats.log_failures = log_.failures();
  for (const auto& p : participants_) {
    result_.stats.barred_actions += p->barred_actions();
    result_.stats.null_compensations += p->null_compensations();
  }
  result_.trace_hash = loop_.hash();
  incarnations_.clear();
  return std::move(result_);
}

// ---- Setup and faults ----

v1::SagaDefinition World::RandomSaga() {
  v1::SagaDefinition def;
  const uint64_t steps = 1 + random_.Uniform(static_cast<uint64_t>(options_.max_steps));
  for (uint64_t i = 0; i < steps; ++i) {
    v1::SagaStep* step = def.add_steps();
    step->set_id("k" + std::to_string(i));
    step->set_service("s" + std::to_string(random_.Uniform(participants_.size())));
    step->set_action(kSimAction);
    step->set_compensation(kSimCompensation);
    step->set_payload("{\"amount\":" + std::to_string(random_.Uniform(100)) + "}");
    for (uint64_t j = 0; j < i; ++j) {
      if (random_.Chance(0.5)) step->add_after("k" + std::to_string(j));
    }
    // Above the worst round trip (2 * max_delay_ms) so only faults time a call out.
    step->set_timeout_ms(static_cast<uint32_t>(2 * options_.max_delay_ms + 10) +
                         static_cast<uint32_t>(random_.Uniform(80)));
    step->mutable_retry()->set_max_attempts(1 + static_cast<uint32_t>(random_.Uniform(4)));
    step->mutable_retry()->set_initial_backoff_ms(5);
    step->mutable_retry()->set_max_backoff_ms(50);
  }
  if (random_.Chance(options_.small_compensation_budget)) def.set_max_compensation_attempts(2);
  return def;
}

void World::Setup() {
  constexpr uint32_t kPrepareTimeoutsMs[] = {100, 300, 1000};
  const auto submit_window =
      static_cast<uint64_t>(std::max<int64_t>(1, options_.fault_phase_ms / 2));
  for (int i = 0; i < options_.transactions + options_.sagas; ++i) {
    Client c;
    c.saga = i >= options_.transactions;
    if (c.saga) {
      c.xid = "saga" + std::to_string(i - options_.transactions);
      c.definition = RandomSaga();
    } else {
      c.xid = "tx" + std::to_string(i);
      const uint64_t branches = 1 + random_.Uniform(static_cast<uint64_t>(options_.max_branches));
      for (uint64_t b = 0; b < branches; ++b) {
        v1::Branch branch;
        branch.set_service("s" + std::to_string(random_.Uniform(participants_.size())));
        branch.set_op("transfer");
        branch.set_payload("{\"amount\":" + std::to_string(random_.Uniform(100)) + "}");
        c.branches.push_back(std::move(branch));
      }
      c.prepare_timeout_ms = kPrepareTimeoutsMs[random_.Uniform(3)];
    }
    c.wait = random_.Chance(0.5);
    const size_t index = clients_.size();
    client_of_xid_[c.xid] = index;
    clients_.push_back(std::move(c));
    const int64_t at = start_ms_ + static_cast<int64_t>(random_.Uniform(submit_window));
    At(at, [this, index] { Submit(index); });
    if (random_.Chance(options_.duplicate_submit)) {
      At(at + static_cast<int64_t>(random_.Uniform(60)),
         [this, index] { Submit(index, /*again=*/true); });
    }
    if (random_.Chance(options_.operator_abort)) {
      At(at + static_cast<int64_t>(random_.Uniform(400)), [this, index] { OperatorAbort(index); });
    }
  }
  const uint64_t faults = random_.Uniform(static_cast<uint64_t>(options_.max_leader_faults) + 1);
  for (uint64_t i = 0; i < faults; ++i) {
    At(start_ms_ +
           static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.fault_phase_ms))),
       [this] {
         if (faults_) LeaderFault();
       });
  }
  for (size_t p = 0; p < participants_.size(); ++p) {
    const uint64_t outages =
        random_.Uniform(static_cast<uint64_t>(options_.max_participant_outages) + 1);
    for (uint64_t i = 0; i < outages; ++i) {
      const auto at =
          start_ms_ +
          static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.fault_phase_ms)));
      const int64_t max_downtime = random_.Chance(options_.long_outage)
                                       ? options_.long_downtime_ms
                                       : options_.max_participant_downtime_ms;
      const auto downtime =
          1 + static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(max_downtime)));
      At(at, [this, p, downtime] {
        if (faults_) participants_[p]->CrashUntil(Now() + downtime);
      });
    }
    At(start_ms_ + 100 + static_cast<int64_t>(random_.Uniform(100)),
       [this, p] { InDoubtRound(p); });
  }
}

void World::Heal() {
  faults_ = false;
  for (auto& p : participants_) p->Heal();
}

void World::StartIncarnation(int node) {
  const uint64_t id = next_incarnation_++;
  Trace("incarnation " + std::to_string(id) + " starts on node " + std::to_string(node));
  auto inc = std::make_unique<Incarnation>(*this, id, node, seed_ * 0x9E3779B97F4A7C15ULL + id);
  Incarnation& i = *inc;
  incarnations_[id] = std::move(inc);
  log_.SetLeader(id);

  driver::Ports ports{&i, &i.caller, &i, &i, &i, &i.random};
  auto fatal = [this, id](const Status&) {
    // As the shell does: both drivers stop, once. The log stopped (single node: the shell
    // reopens it, which is a restart) or the leadership was lost (the world elects another).
    Incarnation* self = Live(id);
    if (self == nullptr || self->stopping) return;
    self->stopping = true;
    self->twopc->Stop();
    self->sagas->Stop();
    const bool restart = options_.nodes == 1 && log_.leader() == id;
    At(Now(), [this, id, restart] {
      Retire(id);
      if (!restart) return;
      At(Now() + 1 +
             static_cast<int64_t>(
                 random_.Uniform(static_cast<uint64_t>(options_.max_reopen_delay_ms))),
         [this] { StartIncarnation(0); });
    });
  };
  twopc::CoreOptions core;
  core.retry.initial_backoff_ms = 10;
  core.retry.max_backoff_ms = 200;
  core.log_retry_ms = 20;
  core.decision_call_timeout_ms = 2 * options_.max_delay_ms + 30;
  core.recovery =
      options_.nodes > 1 ? twopc::Recovery::kResumePrepare : twopc::Recovery::kPresumeAbort;
  driver::TwoPcDriver::Hooks twopc_hooks;
  twopc_hooks.reply = [this](twopc::Reply r) { OnTwoPcReply(r); };
  twopc_hooks.resolve_reply = [](twopc::Reply) {};
  twopc_hooks.fatal = fatal;
  i.twopc = std::make_unique<driver::TwoPcDriver>(core, ports, std::move(twopc_hooks));

  saga::SagaCoreOptions saga_options;
  saga_options.log_retry_ms = 20;
  driver::SagaDriver::Hooks saga_hooks;
  saga_hooks.reply = [this](saga::Reply r) { OnSagaReply(r); };
  saga_hooks.finished = [this](const saga::Finished& f) {
    if (f.state == v1::SAGA_STUCK) ++result_.stats.stuck;
  };
  saga_hooks.fatal = fatal;
  i.sagas = std::make_unique<driver::SagaDriver>(saga_options, ports, std::move(saga_hooks));

  std::vector<v1::TxnRecord> two_pc;
  std::vector<v1::TxnRecord> sagas;
  for (v1::TxnRecord& rec : log_.LoadActive()) {
    if (rec.mode() == saga::kSagaMode) {
      ++result_.stats.recovered_sagas;
      sagas.push_back(std::move(rec));
    } else {
      ++(rec.state() == v1::PREPARING ? result_.stats.recovered_preparing
                                      : result_.stats.recovered_decided);
      two_pc.push_back(std::move(rec));
    }
  }
  i.twopc->Recover(two_pc);
  i.sagas->Recover(sagas);
}

World::Incarnation* World::Live(uint64_t inc) const {
  auto it = incarnations_.find(inc);
  return it == incarnations_.end() ? nullptr : it->second.get();
}

World::Incarnation* World::Leader() const { return Live(log_.leader()); }

World::Incarnation* World::Target() {
  Incarnation* leader = Leader();
  if (options_.nodes > 1 && !incarnations_.empty() &&
      (leader == nullptr || random_.Chance(options_.stale_client))) {
    auto it = incarnations_.begin();
    std::advance(it, static_cast<long>(random_.Uniform(incarnations_.size())));
    return it->second.get();
  }
  return leader;
}

void World::LeaderFault() {
  Incarnation* leader = Leader();
  if (leader == nullptr) return;
  ++result_.stats.leader_faults;
  Trace("leader fault: incarnation " + std::to_string(leader->id) + " on node " +
        std::to_string(leader->node));
  const uint64_t id = leader->id;
  const int node = leader->node;
  // Of the appends in flight, some may already be on the disk (on a majority): a prefix survives.
  const size_t in_flight = log_.in_flight();
  log_.CutLeader(random_.Uniform(in_flight + 1));
  result_.stats.lost_in_flight += in_flight;
  if (options_.nodes == 1) {
    if (options_.lying_disk) log_.LoseDurableSince(Now() - 100);
    Retire(id);
    At(Now() + 1 +
           static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_downtime_ms))),
       [this] {
         if (log_.leader() == 0) StartIncarnation(0);
       });
    return;
  }
  if (random_.Chance(options_.deposed_keeps_running)) {
    // Cut off from the other nodes (or paused): it goes on believing it leads for a while.
    ++result_.stats.deposed_running;
    leader->deposed = true;
    int64_t learns_at =
        Now() +
        static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_unaware_ms) + 1));
    if (random_.Chance(options_.pause)) {
      leader->frozen_until_ms =
          Now() + options_.max_election_ms +
          static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_unaware_ms) + 1));
      learns_at = leader->frozen_until_ms + static_cast<int64_t>(random_.Uniform(60));
    }
    At(learns_at, [this, id] { Retire(id); });
  } else {
    Retire(id);  // killed
  }
  Elect(node);
}

void World::Elect(int not_node) {
  if (electing_) return;
  electing_ = true;
  const int64_t after =
      1 + static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_election_ms)));
  At(Now() + after, [this, not_node] {
    electing_ = false;
    int node = static_cast<int>(random_.Uniform(static_cast<uint64_t>(options_.nodes - 1)));
    if (node >= not_node) ++node;
    StartIncarnation(node);
  });
}

void World::Retire(uint64_t inc) {
  Trace("incarnation " + std::to_string(inc) + " retires");
  // A coordinator that stops while it leads (its log stopped after an ambiguous failure):
  // nothing it appended after the failure reaches the disk.
  if (log_.leader() == inc) log_.CutLeader(0);
  log_.LeadershipLost(inc);
  incarnations_.erase(inc);
  // Clients waiting on it are told "leadership lost, outcome unknown" and try again.
  for (size_t c = 0; c < clients_.size(); ++c) {
    if (!clients_[c].satisfied) Retry(c, Status::Unavailable("leadership lost"));
  }
}

void World::CheckCores() {
  for (const auto& [id, inc] : incarnations_) {
    for (Status s : {inc->twopc->core().CheckInvariants(), inc->sagas->core().CheckInvariants()}) {
      // Reported once: a broken state usually lasts several events.
      if (!s.ok() && broken_cores_.insert(s.message()).second) {
        Violation("-", "core of incarnation " + std::to_string(id) + ": " + s.message());
      }
    }
  }
}

// ---- Log observation ----

void World::Durable(const v1::LogEvent& event) {
  if (options_.trace) Trace("durable " + event.ShortDebugString());
  if (!event.has_decided()) return;
  auto [it, inserted] = ever_decided_.emplace(event.xid(), event.decided().decision());
  if (!inserted && it->second != event.decided().decision()) {
    Violation(event.xid(), "both " + v1::Decision_Name(it->second) + " and " +
                               v1::Decision_Name(event.decided().decision()) + " became durable");
  }
  auto client = client_of_xid_.find(event.xid());
  if (client != client_of_xid_.end()) {
    const Client& c = clients_[client->second];
    if (c.told.has_value() && *c.told != event.decided().decision()) {
      Violation(event.xid(), "the client was told " + v1::Decision_Name(*c.told) + " but " +
                                 v1::Decision_Name(event.decided().decision()) + " became durable");
    }
  }
}

void World::Refused(const std::string& xid, const Status& why) {
  Violation(xid, "the log refuses an append: " + why.ToString());
}

}  // namespace treaty::sim
