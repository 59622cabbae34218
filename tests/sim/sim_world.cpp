// SimWorld: event loop, fault schedule, the coordinator shell (clients, crash and restart) and the
// coordinator's simulated disk.
#include "tests/sim/sim_world.h"

#include <algorithm>
#include <string>
#include <utility>

#include "log/log.h"

namespace treaty::sim {

using twopc::AppendLog;
using twopc::Effects;
using twopc::LogDone;

const char* BranchFateName(BranchFate fate) {
  switch (fate) {
    case BranchFate::kUnknown:
      return "unknown";
    case BranchFate::kPrepared:
      return "prepared";
    case BranchFate::kCommitted:
      return "committed";
    case BranchFate::kAborted:
      return "aborted";
    case BranchFate::kReadOnly:
      return "read-only";
  }
  return "?";
}

SimStats& SimStats::operator+=(const SimStats& o) {
  events += o.events;
  committed += o.committed;
  aborted += o.aborted;
  coordinator_crashes += o.coordinator_crashes;
  recovered_preparing += o.recovered_preparing;
  recovered_committing += o.recovered_committing;
  recovered_aborting += o.recovered_aborting;
  log_failures += o.log_failures;
  log_reopens += o.log_reopens;
  dropped_messages += o.dropped_messages;
  duplicated_messages += o.duplicated_messages;
  participant_outages += o.participant_outages;
  late_votes_after_abort += o.late_votes_after_abort;
  client_retries += o.client_retries;
  return *this;
}

SimWorld::SimWorld(uint64_t seed, SimOptions options)
    : seed_(seed),
      options_(std::move(options)),
      random_(seed),
      core_random_(seed * 0x9E3779B97F4A7C15ULL + 1) {
  // Short timings keep a run to a few simulated seconds.
  core_options_.retry.initial_backoff_ms = 10;
  core_options_.retry.max_backoff_ms = 200;
  core_options_.log_retry_ms = 20;
  core_options_.resume_prepare_on_recovery = options_.resume_prepare_on_recovery;
  for (int i = 0; i < options_.services; ++i) {
    participants_.emplace_back("s" + std::to_string(i));
  }
}

// ---- Event loop ----

void SimWorld::AtCoordinator(int64_t at_ms, std::function<void()> fn) {
  const uint64_t incarnation = incarnation_;
  At(at_ms, [this, incarnation, fn = std::move(fn)] {
    if (Alive(incarnation)) fn();
  });
}

int64_t SimWorld::NetDelay() {
  const auto spread = static_cast<uint64_t>(options_.max_delay_ms - options_.min_delay_ms + 1);
  return options_.min_delay_ms + static_cast<int64_t>(random_.Uniform(spread));
}

void SimWorld::Violation(const std::string& xid, const std::string& what) {
  AddViolation(&result_.violations, Now() - start_ms_, xid, what);
}

SimResult SimWorld::Run() {
  start_ms_ = Now();
  disk_ready_ms_ = Now();
  core_ = std::make_unique<twopc::TwoPcCore>(core_options_, clock_, core_random_);
  up_ = true;
  Setup();
  At(start_ms_ + options_.fault_phase_ms, [this] { Heal(); });

  if (!loop_.Run(options_.max_events, &result_.stats.events)) {
    Violation("-", "no quiescence after " + std::to_string(options_.max_events) +
                       " events (a retry loop that never ends?)");
  } else {
    CheckQuiescent();
  }
  for (const DurableEvent& d : durable_) {
    loop_.Mix(std::hash<std::string>{}(d.event.SerializeAsString()));
  }
  result_.trace_hash = loop_.hash();
  return std::move(result_);
}

void SimWorld::Setup() {
  constexpr uint32_t kPrepareTimeoutsMs[] = {100, 300, 1000};
  for (int i = 0; i < options_.transactions; ++i) {
    Client c;
    c.xid = "tx" + std::to_string(i);
    const uint64_t branches = 1 + random_.Uniform(static_cast<uint64_t>(options_.max_branches));
    for (uint64_t b = 0; b < branches; ++b) {
      v1::Branch branch;
      branch.set_service("s" + std::to_string(random_.Uniform(participants_.size())));
      branch.set_op("transfer");
      branch.set_payload("{\"amount\":" + std::to_string(random_.Uniform(100)) + "}");
      c.branches.push_back(std::move(branch));
    }
    c.wait = random_.Chance(0.5);
    c.prepare_timeout_ms = kPrepareTimeoutsMs[random_.Uniform(3)];
    const size_t index = clients_.size();
    client_of_xid_[c.xid] = index;
    clients_.push_back(std::move(c));

    const int64_t at = start_ms_ + static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(
                                       std::max<int64_t>(1, options_.fault_phase_ms / 2))));
    At(at, [this, index] { SubmitFromClient(index); });
    if (random_.Chance(options_.duplicate_submit)) {
      // A second submission of the same transaction (a client retrying too eagerly).
      At(at + static_cast<int64_t>(random_.Uniform(60)),
         [this, index] { SubmitFromClient(index, /*again=*/true); });
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
        if (!faults_) return;
        ++result_.stats.participant_outages;
        participants_[p].CrashUntil(Now() + downtime);
      });
    }
  }
}

void SimWorld::Heal() {
  faults_ = false;
  for (SimParticipant& p : participants_) p.Heal();
  if (!up_) Restart();
}

// ---- Coordinator crash and restart ----

void SimWorld::Crash(bool planned) {
  ++(planned ? result_.stats.log_reopens : result_.stats.coordinator_crashes);
  up_ = false;
  ++incarnation_;  // drops its pending timers, log completions and call outcomes
  core_.reset();
  open_calls_.clear();
  disk_ready_ms_ = Now();  // appends not yet durable are lost
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

void SimWorld::Restart() {
  up_ = true;
  log_broken_ = false;  // the log was reopened
  core_ = std::make_unique<twopc::TwoPcCore>(core_options_, clock_, core_random_);
  std::vector<v1::TxnRecord> active;
  for (const auto& [xid, rec] : FoldDurable()) {
    switch (rec.state()) {
      case v1::PREPARING:
        ++result_.stats.recovered_preparing;
        break;
      case v1::COMMITTING:
        ++result_.stats.recovered_committing;
        break;
      case v1::ABORTING:
        ++result_.stats.recovered_aborting;
        break;
      default:
        continue;
    }
    active.push_back(rec);
  }
  Execute(core_->Recover(active));
  // Clients whose request died with the old process submit again.
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (clients_[i].satisfied) continue;
    ++result_.stats.client_retries;
    At(Now() + static_cast<int64_t>(random_.Uniform(30)), [this, i] { SubmitFromClient(i); });
  }
}

// ---- Coordinator shell ----

void SimWorld::Execute(const Effects& effects) {
  for (const AppendLog& a : effects.appends) Append(a);
  for (const twopc::CallParticipant& c : effects.calls) Call(c);
  for (const twopc::SetTimer& t : effects.timers) {
    AtCoordinator(Now() + t.delay_ms, [this, t] {
      Feed(twopc::TimerFired{t.xid, t.timer_id});
    });
  }
  for (const twopc::Reply& r : effects.replies) OnReply(r);
  for (const twopc::Finished& f : effects.finished) OnFinished(f);
}

void SimWorld::SubmitFromClient(size_t index, bool again) {
  const Client& c = clients_[index];
  if ((c.satisfied && !again) || !up_) return;  // a restart resubmits for clients still waiting
  // As the real shell does: a finished xid is answered from the log, not from the core.
  auto rec = records_.find(c.xid);
  if (rec != records_.end() &&
      (rec->second.state() == v1::COMMITTED || rec->second.state() == v1::ABORTED)) {
    OnReply({index, c.xid, Status::Ok(), rec->second.state(), rec->second.reason()});
    return;
  }
  twopc::Submit in;
  in.xid = c.xid;
  in.branches = c.branches;
  in.prepare_timeout_ms = c.prepare_timeout_ms;
  in.wait = c.wait;
  in.client = index;
  Feed(in);
}

void SimWorld::OnReply(const twopc::Reply& reply) {
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
  v1::Decision told = v1::DECISION_UNSPECIFIED;
  switch (reply.state) {
    case v1::PREPARING:
      if (c.wait) Violation(c.xid, "a waiting client was answered PREPARING");
      break;
    case v1::COMMITTING:
    case v1::COMMITTED:
      told = v1::COMMIT;
      break;
    case v1::ABORTING:
    case v1::ABORTED:
      told = v1::ABORT;
      break;
    default:
      Violation(c.xid, "reply without a state");
      return;
  }
  if (told != v1::DECISION_UNSPECIFIED) {
    if (c.reported.has_value() && *c.reported != told) {
      Violation(c.xid, "client was told " + v1::Decision_Name(*c.reported) + " and later " +
                           v1::Decision_Name(told));
    }
    c.reported = told;
  }
  c.satisfied = true;
}

void SimWorld::OnFinished(const twopc::Finished& finished) {
  auto rec = records_.find(finished.xid);
  if (rec == records_.end() || rec->second.state() != finished.state) {
    Violation(finished.xid, "Finished(" + v1::TxState_Name(finished.state) +
                                ") but the durable log does not say so");
  }
}

// ---- Disk ----

void SimWorld::Append(const AppendLog& append) {
  const std::string xid = append.event.xid();
  const twopc::LogStep step = append.step;
  const uint64_t incarnation = incarnation_;
  // Appends complete in the order they were made (one log, group commit).
  disk_ready_ms_ = std::max(
      disk_ready_ms_,
      Now() + 1 +
          static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(options_.max_disk_delay_ms))));
  auto fail = [this, xid, step] {
    Feed(LogDone{xid, step, Status::Unavailable("injected log write failure")});
  };
  if (log_broken_) {
    AtCoordinator(disk_ready_ms_, fail);
    return;
  }
  if (faults_ && random_.Chance(options_.log_failure)) {
    ++result_.stats.log_failures;
    if (!random_.Chance(options_.ambiguous_log_failure)) {
      AtCoordinator(disk_ready_ms_, fail);  // nothing of it was written
      return;
    }
    log_broken_ = true;
    const bool written = random_.Chance(0.5);
    At(disk_ready_ms_, [this, incarnation, event = append.event, written, fail] {
      if (!Alive(incarnation)) return;
      if (written) MakeDurable(event);
      fail();
    });
    // The shell reopens the log, which means a fresh core that recovers from it.
    At(Now() + 1 +
           static_cast<int64_t>(
               random_.Uniform(static_cast<uint64_t>(options_.max_reopen_delay_ms))),
       [this, incarnation] {
         if (Alive(incarnation)) Crash(/*planned=*/true);
       });
    return;
  }
  At(disk_ready_ms_, [this, incarnation, event = append.event, xid, step] {
    if (!Alive(incarnation)) return;  // the process died before the sync: lost
    MakeDurable(event);
    // The completion may be lost to a crash after the write is durable.
    AtCoordinator(Now() + static_cast<int64_t>(random_.Uniform(3)), [this, xid, step] {
      Feed(LogDone{xid, step, Status::Ok()});
    });
  });
}

void SimWorld::MakeDurable(const v1::LogEvent& event) {
  durable_.push_back({event, Now()});
  if (event.has_decided()) {
    auto [it, inserted] = ever_decided_.emplace(event.xid(), event.decided().decision());
    if (!inserted && it->second != event.decided().decision()) {
      Violation(event.xid(), "both " + v1::Decision_Name(it->second) + " and " +
                                 v1::Decision_Name(event.decided().decision()) + " became durable");
    }
  }
  Status folded = log::Fold(event, durable_.size(), &records_[event.xid()]);
  if (!folded.ok()) Violation(event.xid(), "the log refuses the append: " + folded.ToString());
}

std::map<std::string, v1::TxnRecord> SimWorld::FoldDurable() const {
  std::map<std::string, v1::TxnRecord> records;
  for (size_t i = 0; i < durable_.size(); ++i) {
    const v1::LogEvent& event = durable_[i].event;
    // Errors were reported when the event became durable.
    (void)log::Fold(event, i + 1, &records[event.xid()]);
  }
  return records;
}

}  // namespace treaty::sim
