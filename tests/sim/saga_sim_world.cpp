// SagaSimWorld: event loop, fault schedule, the coordinator shell (clients, operator, crash and
// restart) and the coordinator's simulated disk.
#include "tests/sim/saga_sim_world.h"

#include <algorithm>
#include <string>
#include <utility>

#include "log/log.h"

namespace treaty::sim {

using saga::AppendLog;
using saga::Effects;

const char* StepFateName(StepFate fate) {
  switch (fate) {
    case StepFate::kNone:
      return "untouched";
    case StepFate::kApplied:
      return "applied";
    case StepFate::kRefused:
      return "refused";
    case StepFate::kCompensated:
      return "compensated";
    case StepFate::kNullCompensated:
      return "null-compensated";
  }
  return "?";
}

SagaSimStats& SagaSimStats::operator+=(const SagaSimStats& o) {
  events += o.events;
  completed += o.completed;
  compensated += o.compensated;
  stuck += o.stuck;
  resolves += o.resolves;
  aborts += o.aborts;
  coordinator_crashes += o.coordinator_crashes;
  recovered_running += o.recovered_running;
  recovered_compensating += o.recovered_compensating;
  recovered_stuck += o.recovered_stuck;
  log_failures += o.log_failures;
  log_reopens += o.log_reopens;
  dropped_messages += o.dropped_messages;
  duplicated_messages += o.duplicated_messages;
  slow_requests += o.slow_requests;
  barred_actions += o.barred_actions;
  null_compensations += o.null_compensations;
  client_retries += o.client_retries;
  return *this;
}

SagaSimWorld::SagaSimWorld(uint64_t seed, SagaSimOptions options)
    : seed_(seed),
      options_(std::move(options)),
      random_(seed),
      core_random_(seed * 0x9E3779B97F4A7C15ULL + 7) {
  core_options_.log_retry_ms = 20;
  for (int i = 0; i < options_.services; ++i) participants_.emplace_back("s" + std::to_string(i));
}

// ---- Event loop ----

void SagaSimWorld::AtCoordinator(int64_t at_ms, std::function<void()> fn) {
  const uint64_t incarnation = incarnation_;
  At(at_ms, [this, incarnation, fn = std::move(fn)] {
    if (Alive(incarnation)) fn();
  });
}

int64_t SagaSimWorld::NetDelay() {
  const auto spread = static_cast<uint64_t>(options_.max_delay_ms - options_.min_delay_ms + 1);
  return options_.min_delay_ms + static_cast<int64_t>(random_.Uniform(spread));
}

void SagaSimWorld::Violation(const std::string& xid, const std::string& what) {
  AddViolation(&result_.violations, Now() - start_ms_, xid, what);
}

SagaSimResult SagaSimWorld::Run() {
  start_ms_ = Now();
  disk_ready_ms_ = Now();
  core_ = std::make_unique<saga::SagaCore>(core_options_, clock_, core_random_);
  up_ = true;
  Setup();
  At(start_ms_ + options_.fault_phase_ms, [this] { Heal(); });

  if (!loop_.Run(options_.max_events, &result_.stats.events)) {
    Violation("-", "no quiescence after " + std::to_string(options_.max_events) +
                       " events (a retry loop that never ends, or a saga that never finishes?)");
  } else {
    CheckQuiescent();
  }
  for (const DurableEvent& d : durable_) {
    loop_.Mix(std::hash<std::string>{}(d.event.SerializeAsString()));
  }
  result_.trace_hash = loop_.hash();
  return std::move(result_);
}

v1::SagaDefinition SagaSimWorld::RandomSaga() {
  v1::SagaDefinition def;
  const uint64_t steps = 1 + random_.Uniform(static_cast<uint64_t>(options_.max_steps));
  for (uint64_t i = 0; i < steps; ++i) {
    v1::SagaStep* step = def.add_steps();
    step->set_id("k" + std::to_string(i));
    step->set_service("s" + std::to_string(random_.Uniform(participants_.size())));
    step->set_action("act");
    step->set_compensation("undo");
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

void SagaSimWorld::Setup() {
  for (int i = 0; i < options_.sagas; ++i) {
    Client c;
    c.xid = "saga" + std::to_string(i);
    c.definition = RandomSaga();
    c.wait = random_.Chance(0.5);
    const size_t index = clients_.size();
    client_of_xid_[c.xid] = index;
    clients_.push_back(std::move(c));
    const int64_t at = start_ms_ + static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(
                                       std::max<int64_t>(1, options_.fault_phase_ms / 2))));
    At(at, [this, index] { SubmitFromClient(index); });
    if (random_.Chance(options_.duplicate_submit)) {
      At(at + static_cast<int64_t>(random_.Uniform(60)),
         [this, index] { SubmitFromClient(index, /*again=*/true); });
    }
    if (random_.Chance(options_.operator_abort)) {
      const std::string xid = clients_[index].xid;
      At(at + static_cast<int64_t>(random_.Uniform(300)), [this, xid] {
        if (!up_) return;
        ++result_.stats.aborts;
        Feed(saga::Resolve{xid, saga::ResolveAction::kAbort, 0, "sim-operator", "abort test",
                           next_operator_client_++});
      });
    }
  }
  const uint64_t crashes =
      random_.Uniform(static_cast<uint64_t>(options_.max_coordinator_crashes) + 1);
  for (uint64_t i = 0; i < crashes; ++i) {
    At(start_ms_ +
           static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.fault_phase_ms))),
       [this] {
         if (up_ && faults_) Crash();
       });
  }
  for (size_t p = 0; p < participants_.size(); ++p) {
    const uint64_t outages =
        random_.Uniform(static_cast<uint64_t>(options_.max_participant_outages) + 1);
    for (uint64_t i = 0; i < outages; ++i) {
      const auto at =
          start_ms_ +
          static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.fault_phase_ms)));
      const auto downtime = 1 + static_cast<int64_t>(random_.Uniform(
                                    static_cast<uint64_t>(options_.max_participant_downtime_ms)));
      At(at, [this, p, downtime] {
        if (faults_) participants_[p].CrashUntil(Now() + downtime);
      });
    }
  }
}

void SagaSimWorld::Heal() {
  faults_ = false;
  for (SagaSimParticipant& p : participants_) p.Heal();
  if (!up_) Restart();
  At(Now() + 50, [this] { OperatorRound(); });
}

// After the faults: resolve every STUCK saga, alternating retry and compensate-by-hand + mark.
void SagaSimWorld::OperatorRound() {
  bool busy = false;
  for (const Client& c : clients_) {
    if (!c.satisfied) busy = true;
    const std::optional<v1::Transaction> view = up_ ? core_->Get(c.xid) : std::nullopt;
    if (!view.has_value()) continue;
    busy = true;
    if (view->saga_state() != v1::SAGA_STUCK) continue;
    ++result_.stats.resolves;
    std::optional<uint32_t> step;
    for (int i = 0; i < view->steps_size(); ++i) {
      if (view->steps(i).state() == v1::STEP_COMPENSATING) step = static_cast<uint32_t>(i);
    }
    if (step.has_value() && random_.Chance(0.5)) {
      ParticipantFor(view->steps(static_cast<int>(*step)).service()).CompensateByHand(c.xid, *step);
      Feed(saga::Resolve{c.xid, saga::ResolveAction::kMarkCompensated, *step, "sim-operator",
                         "undone by hand", next_operator_client_++});
    } else {
      Feed(saga::Resolve{c.xid, saga::ResolveAction::kRetry, 0, "sim-operator", "healed",
                         next_operator_client_++});
    }
  }
  if (busy || !up_) At(Now() + 100, [this] { OperatorRound(); });
}

// ---- Coordinator crash and restart ----

void SagaSimWorld::Crash(bool planned) {
  ++(planned ? result_.stats.log_reopens : result_.stats.coordinator_crashes);
  up_ = false;
  ++incarnation_;
  core_.reset();
  open_calls_.clear();
  disk_ready_ms_ = Now();
  if (options_.lying_disk) {
    std::erase_if(durable_, [&](const DurableEvent& d) { return d.durable_at_ms > Now() - 100; });
    records_ = FoldDurable();
  }
  const int64_t max_downtime_ms =
      planned ? options_.max_reopen_delay_ms : options_.max_coordinator_downtime_ms;
  const auto downtime =
      1 + static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(max_downtime_ms)));
  At(Now() + downtime, [this] {
    if (!up_) Restart();
  });
}

void SagaSimWorld::Restart() {
  up_ = true;
  log_broken_ = false;
  core_ = std::make_unique<saga::SagaCore>(core_options_, clock_, core_random_);
  std::vector<v1::TxnRecord> active;
  for (const auto& [xid, rec] : FoldDurable()) {
    switch (rec.saga_state()) {
      case v1::SAGA_RUNNING:
        ++result_.stats.recovered_running;
        break;
      case v1::SAGA_COMPENSATING:
        ++result_.stats.recovered_compensating;
        break;
      case v1::SAGA_STUCK:
        ++result_.stats.recovered_stuck;
        break;
      default:
        continue;
    }
    active.push_back(rec);
  }
  Execute(core_->Recover(active));
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (clients_[i].satisfied) continue;
    ++result_.stats.client_retries;
    At(Now() + static_cast<int64_t>(random_.Uniform(30)), [this, i] { SubmitFromClient(i); });
  }
}

// ---- Coordinator shell ----

void SagaSimWorld::Execute(const Effects& effects) {
  for (const AppendLog& a : effects.appends) Append(a);
  for (const saga::CallStep& c : effects.calls) Call(c);
  for (const saga::SetTimer& t : effects.timers) {
    AtCoordinator(Now() + t.delay_ms, [this, t] { Feed(saga::TimerFired{t.xid, t.timer_id}); });
  }
  for (const saga::Reply& r : effects.replies) OnReply(r);
  for (const saga::Finished& f : effects.finished) OnFinished(f);
}

void SagaSimWorld::SubmitFromClient(size_t index, bool again) {
  const Client& c = clients_[index];
  if ((c.satisfied && !again) || !up_) return;
  // As the shell does: a finished saga is answered from the log, not from the core.
  auto rec = records_.find(c.xid);
  if (rec != records_.end() && (rec->second.saga_state() == v1::SAGA_COMPLETED ||
                                rec->second.saga_state() == v1::SAGA_COMPENSATED)) {
    OnReply({index, c.xid, Status::Ok(), rec->second.saga_state(), rec->second.reason()});
    return;
  }
  Feed(saga::Submit{c.xid, c.definition, c.wait, index});
}

void SagaSimWorld::OnReply(const saga::Reply& reply) {
  if (reply.client >= 1'000'000) {  // an operator's Resolve
    if (reply.status.code() == StatusCode::kInvalidArgument) {
      Violation(reply.xid, "resolve refused as invalid: " + reply.status.ToString());
    }
    return;
  }
  if (reply.client >= clients_.size() || clients_[reply.client].xid != reply.xid) {
    Violation(reply.xid, "reply routed to the wrong client " + std::to_string(reply.client));
    return;
  }
  Client& c = clients_[reply.client];
  if (!reply.status.ok()) {
    if (reply.status.code() == StatusCode::kInvalidArgument ||
        reply.status.code() == StatusCode::kAlreadyExists) {
      Violation(c.xid, "valid submission refused: " + reply.status.ToString());
      return;
    }
    ++result_.stats.client_retries;
    const size_t index = reply.client;
    At(Now() + 20 + static_cast<int64_t>(random_.Uniform(80)),
       [this, index] { SubmitFromClient(index); });
    return;
  }
  const bool settled = reply.state == v1::SAGA_COMPLETED || reply.state == v1::SAGA_COMPENSATED ||
                       reply.state == v1::SAGA_STUCK;
  if (reply.state == v1::SAGA_STATE_UNSPECIFIED) {
    Violation(c.xid, "reply without a state");
    return;
  }
  if (c.wait && !settled) {
    Violation(c.xid, "a waiting client was answered " + v1::SagaState_Name(reply.state));
  }
  if (settled && reply.state != v1::SAGA_STUCK) {
    if (c.reported.has_value() && *c.reported != v1::SAGA_STUCK && *c.reported != reply.state) {
      Violation(c.xid, "client was told " + v1::SagaState_Name(*c.reported) + " and later " +
                           v1::SagaState_Name(reply.state));
    }
  }
  if (settled) c.reported = reply.state;
  c.satisfied = true;
}

void SagaSimWorld::OnFinished(const saga::Finished& finished) {
  auto rec = records_.find(finished.xid);
  if (rec == records_.end() || rec->second.saga_state() != finished.state) {
    Violation(finished.xid, "Finished(" + v1::SagaState_Name(finished.state) +
                                ") but the durable log does not say so");
  }
}

// ---- Disk ----

void SagaSimWorld::Append(const AppendLog& append) {
  const std::string xid = append.events.empty() ? "-" : append.events[0].xid();
  const uint64_t token = append.token;
  const uint64_t incarnation = incarnation_;
  disk_ready_ms_ = std::max(
      disk_ready_ms_,
      Now() + 1 +
          static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_disk_delay_ms))));
  auto fail = [this, xid, token] {
    Feed(saga::LogDone{xid, token, Status::Unavailable("injected log write failure")});
  };
  if (log_broken_) {
    AtCoordinator(disk_ready_ms_, fail);
    return;
  }
  if (faults_ && random_.Chance(options_.log_failure)) {
    ++result_.stats.log_failures;
    if (!random_.Chance(options_.ambiguous_log_failure)) {
      AtCoordinator(disk_ready_ms_, fail);
      return;
    }
    log_broken_ = true;
    const bool written = random_.Chance(0.5);
    At(disk_ready_ms_, [this, incarnation, events = append.events, written, fail] {
      if (!Alive(incarnation)) return;
      if (written) MakeDurable(events);
      fail();
    });
    At(Now() + 1 +
           static_cast<int64_t>(
               random_.Uniform(static_cast<uint64_t>(options_.max_reopen_delay_ms))),
       [this, incarnation] {
         if (Alive(incarnation)) Crash(/*planned=*/true);
       });
    return;
  }
  At(disk_ready_ms_, [this, incarnation, events = append.events, xid, token] {
    if (!Alive(incarnation)) return;  // the process died before the sync: lost
    MakeDurable(events);
    AtCoordinator(Now() + static_cast<int64_t>(random_.Uniform(3)), [this, xid, token] {
      Feed(saga::LogDone{xid, token, Status::Ok()});
    });
  });
}

void SagaSimWorld::MakeDurable(const std::vector<v1::LogEvent>& events) {
  for (const v1::LogEvent& event : events) {
    durable_.push_back({event, Now()});
    Status folded = log::Fold(event, durable_.size(), &records_[event.xid()]);
    if (!folded.ok()) Violation(event.xid(), "the log refuses the append: " + folded.ToString());
    if (event.has_saga_changed() && event.saga_changed().state() == v1::SAGA_STUCK) {
      ++result_.stats.stuck;
      ever_stuck_.insert(event.xid());
    }
  }
}

std::map<std::string, v1::TxnRecord> SagaSimWorld::FoldDurable() const {
  std::map<std::string, v1::TxnRecord> records;
  for (size_t i = 0; i < durable_.size(); ++i) {
    const v1::LogEvent& event = durable_[i].event;
    (void)log::Fold(event, i + 1, &records[event.xid()]);  // errors reported when made durable
  }
  return records;
}

}  // namespace treaty::sim
