// A deterministic world for the 2PC core: simulated clock and event queue, network, participants,
// coordinator disk and crashes, all driven by one seed.
//
// A run has two phases. Until options.fault_phase_ms faults are injected: messages are delayed,
// dropped, duplicated and reordered, participants become unreachable, the coordinator crashes
// (losing appends that were not yet durable, its timers and its calls) and restarts by folding
// its durable log with treaty::log::Fold and calling TwoPcCore::Recover, and log appends fail.
// Then the world heals and runs until no event remains. Invariants are checked during the run
// and at quiescence; every violation is reported with the simulated time and xid.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "twopc/twopc_core.h"
#include "tests/sim/sim_loop.h"
#include "tests/sim/sim_participant.h"

namespace treaty::sim {

struct SimOptions {
  int transactions = 5;
  // The recovered coordinator resumes PREPARING transactions instead of aborting them (what a
  // cluster's new leader does: CoreOptions::resume_prepare_on_recovery).
  bool resume_prepare_on_recovery = false;
  int services = 3;
  int max_branches = 3;
  // Faults are injected only before this point (relative to the start), then the world heals.
  int64_t fault_phase_ms = 2000;
  // One-way message delay, uniform in [min, max]; independent delays reorder messages.
  int64_t min_delay_ms = 1;
  int64_t max_delay_ms = 25;
  double drop_request = 0.05;
  double drop_response = 0.05;
  double duplicate_request = 0.05;
  int max_coordinator_crashes = 2;  // per run, at random times in the fault phase
  int64_t max_coordinator_downtime_ms = 300;
  int max_participant_outages = 2;  // per participant
  int64_t max_participant_downtime_ms = 400;
  double log_failure = 0.03;  // an append fails
  // Share of log failures that are ambiguous, as in treaty_log: the write may or may not be
  // durable, and the log fails every later append until it is reopened. The shell then restarts
  // the coordinator (reopen + Recover) within max_reopen_delay_ms. Other failures write nothing.
  double ambiguous_log_failure = 0.5;
  int64_t max_reopen_delay_ms = 30;
  int64_t max_disk_delay_ms = 6;  // append to durable
  double duplicate_submit = 0.2;  // a client submits the same transaction twice
  VoteMix votes;
  // Checker self-test only: a crash also loses writes that were durable in the last 100 ms
  // (a disk that lies about fsync). Runs with this set are expected to violate invariants.
  bool lying_disk = false;
  // A run still busy after this many events is reported as not quiescing (a liveness bug).
  uint64_t max_events = 300'000;
};

struct SimStats {
  uint64_t events = 0;
  uint64_t committed = 0;
  uint64_t aborted = 0;
  uint64_t coordinator_crashes = 0;
  uint64_t recovered_preparing = 0;
  uint64_t recovered_committing = 0;
  uint64_t recovered_aborting = 0;
  uint64_t log_failures = 0;
  uint64_t log_reopens = 0;
  uint64_t dropped_messages = 0;
  uint64_t duplicated_messages = 0;
  uint64_t participant_outages = 0;
  uint64_t late_votes_after_abort = 0;
  uint64_t client_retries = 0;
  SimStats& operator+=(const SimStats& o);
};

struct SimResult {
  std::vector<std::string> violations;  // empty when every invariant held
  SimStats stats;
  uint64_t trace_hash = 0;  // equal for equal (seed, options): the run is reproducible
  bool ok() const { return violations.empty(); }
};

class SimWorld {
 public:
  SimWorld(uint64_t seed, SimOptions options);
  SimWorld(const SimWorld&) = delete;
  SimWorld& operator=(const SimWorld&) = delete;

  // Runs to quiescence (or options.max_events) once.
  SimResult Run();

 private:
  struct Client {
    std::string xid;
    std::vector<v1::Branch> branches;
    bool wait = false;
    uint32_t prepare_timeout_ms = 0;
    bool satisfied = false;                // got the reply it waits for
    std::optional<v1::Decision> reported;  // outcome a reply told it
  };
  struct DurableEvent {
    v1::LogEvent event;
    int64_t durable_at_ms;
  };

  // Event loop.
  int64_t Now() const { return clock_.NowMs(); }
  void At(int64_t at_ms, std::function<void()> fn) { loop_.At(at_ms, std::move(fn)); }
  // Like At, but dropped if the current coordinator incarnation is gone by then.
  void AtCoordinator(int64_t at_ms, std::function<void()> fn);
  bool Alive(uint64_t incarnation) const { return up_ && incarnation == incarnation_; }
  int64_t NetDelay();
  void Violation(const std::string& xid, const std::string& what);

  // Setup and phases (sim_world.cpp).
  void Setup();
  void Heal();
  // planned: the shell restarts after an ambiguous log failure (not counted as a crash).
  void Crash(bool planned = false);
  void Restart();

  // Coordinator shell.
  template <typename Input>
  void Feed(const Input& in) {
    Execute(core_->Handle(in));
  }
  void Execute(const twopc::Effects& effects);
  // again: submit even if the client already has its reply (a duplicate submission).
  void SubmitFromClient(size_t client, bool again = false);
  void OnReply(const twopc::Reply& reply);
  void OnFinished(const twopc::Finished& finished);

  // Disk.
  void Append(const twopc::AppendLog& append);
  void MakeDurable(const v1::LogEvent& event);
  std::map<std::string, v1::TxnRecord> FoldDurable() const;

  // Network and participants (sim_network.cpp).
  void Call(const twopc::CallParticipant& call);
  void Serve(uint64_t call_id, const twopc::CallParticipant& call, uint64_t incarnation);
  void CheckCommitAllowed(const twopc::CallParticipant& call);
  SimParticipant& ParticipantFor(const std::string& service);

  // Final invariants (sim_checks.cpp).
  void CheckQuiescent();

  const uint64_t seed_;
  const SimOptions options_;
  twopc::CoreOptions core_options_;
  FakeClock clock_;
  SeededRandom random_;       // the world's choices
  SeededRandom core_random_;  // handed to the core (backoff jitter)
  SimLoop loop_{clock_};
  int64_t start_ms_ = 0;
  bool faults_ = true;

  std::unique_ptr<twopc::TwoPcCore> core_;
  bool up_ = false;
  uint64_t incarnation_ = 0;
  std::set<uint64_t> open_calls_;  // calls whose response or timeout has not been delivered
  uint64_t next_call_id_ = 1;

  std::vector<DurableEvent> durable_;                 // the coordinator's durable log, in lsn order
  std::map<std::string, v1::TxnRecord> records_;      // fold of durable_, per xid
  std::map<std::string, v1::Decision> ever_decided_;  // every decision that was ever durable
  int64_t disk_ready_ms_ = 0;                         // appends become durable in order
  bool log_broken_ = false;  // after an ambiguous failure, until the coordinator restarts

  std::vector<SimParticipant> participants_;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_of_xid_;

  SimResult result_;
};

}  // namespace treaty::sim
