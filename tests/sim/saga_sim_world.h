// A deterministic world for the saga core: simulated clock and event queue, network (delay, drop,
// duplicate, reorder, slow requests), participants with the barrier, the coordinator's disk
// (crashes lose appends not yet durable; appends fail, some ambiguously) and an operator who
// aborts running sagas and resolves stuck ones, all driven by one seed.
//
// Until options.fault_phase_ms faults are injected; then the world heals, the operator resolves
// whatever is STUCK, and the run continues until no event remains. A restarted coordinator folds
// its durable events with treaty::log::Fold and calls SagaCore::Recover. Invariants are checked as
// the run goes and at quiescence; each violation names the simulated time and xid.
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
#include "saga/saga_core.h"
#include "tests/sim/saga_sim_participant.h"
#include "tests/sim/sim_loop.h"

namespace treaty::sim {

struct SagaSimOptions {
  int sagas = 4;
  int services = 3;
  int max_steps = 4;
  int64_t fault_phase_ms = 2000;
  int64_t min_delay_ms = 1;
  int64_t max_delay_ms = 25;
  double drop_request = 0.05;
  double drop_response = 0.05;
  double duplicate_request = 0.05;
  double slow_request = 0.03;  // a request held in the network for up to 400 ms (reordered)
  int max_coordinator_crashes = 2;
  int64_t max_coordinator_downtime_ms = 300;
  int max_participant_outages = 2;
  int64_t max_participant_downtime_ms = 400;
  double log_failure = 0.03;
  double ambiguous_log_failure = 0.5;
  int64_t max_reopen_delay_ms = 30;
  int64_t max_disk_delay_ms = 6;
  double duplicate_submit = 0.2;
  double operator_abort = 0.1;  // a saga is aborted by an operator at a random time
  // Share of sagas with a small compensation budget (2), which get STUCK under faults.
  double small_compensation_budget = 0.3;
  StepMix steps;
  // Checker self-test: a crash also loses writes durable in the last 100 ms.
  bool lying_disk = false;
  uint64_t max_events = 300'000;
};

struct SagaSimStats {
  uint64_t events = 0;
  uint64_t completed = 0;
  uint64_t compensated = 0;
  uint64_t stuck = 0;  // times a saga became STUCK (durably)
  uint64_t resolves = 0;
  uint64_t aborts = 0;
  uint64_t coordinator_crashes = 0;
  uint64_t recovered_running = 0;
  uint64_t recovered_compensating = 0;
  uint64_t recovered_stuck = 0;
  uint64_t log_failures = 0;
  uint64_t log_reopens = 0;
  uint64_t dropped_messages = 0;
  uint64_t duplicated_messages = 0;
  uint64_t slow_requests = 0;
  uint64_t barred_actions = 0;      // actions refused because their compensation came first
  uint64_t null_compensations = 0;  // compensations of actions that never took effect
  uint64_t client_retries = 0;
  SagaSimStats& operator+=(const SagaSimStats& o);
};

struct SagaSimResult {
  std::vector<std::string> violations;
  SagaSimStats stats;
  uint64_t trace_hash = 0;
  bool ok() const { return violations.empty(); }
};

class SagaSimWorld {
 public:
  SagaSimWorld(uint64_t seed, SagaSimOptions options);
  SagaSimWorld(const SagaSimWorld&) = delete;
  SagaSimWorld& operator=(const SagaSimWorld&) = delete;

  SagaSimResult Run();

 private:
  struct Client {
    std::string xid;
    v1::SagaDefinition definition;
    bool wait = false;
    bool satisfied = false;
    std::optional<v1::SagaState> reported;  // final state a waiting client was told
  };
  struct DurableEvent {
    v1::LogEvent event;
    int64_t durable_at_ms;
  };

  int64_t Now() const { return clock_.NowMs(); }
  void At(int64_t at_ms, std::function<void()> fn) { loop_.At(at_ms, std::move(fn)); }
  void AtCoordinator(int64_t at_ms, std::function<void()> fn);
  bool Alive(uint64_t incarnation) const { return up_ && incarnation == incarnation_; }
  int64_t NetDelay();
  void Violation(const std::string& xid, const std::string& what);

  void Setup();
  v1::SagaDefinition RandomSaga();
  void Heal();
  void OperatorRound();
  void Crash(bool planned = false);
  void Restart();

  template <typename Input>
  void Feed(const Input& in) {
    Execute(core_->Handle(in));
  }
  void Execute(const saga::Effects& effects);
  void SubmitFromClient(size_t client, bool again = false);
  void OnReply(const saga::Reply& reply);
  void OnFinished(const saga::Finished& finished);

  void Append(const saga::AppendLog& append);
  void MakeDurable(const std::vector<v1::LogEvent>& events);
  std::map<std::string, v1::TxnRecord> FoldDurable() const;

  void Call(const saga::CallStep& call);
  void CheckCallAllowed(const saga::CallStep& call);
  void Serve(uint64_t call_id, const saga::CallStep& call, uint64_t incarnation);
  SagaSimParticipant& ParticipantFor(const std::string& service);

  void CheckQuiescent();

  const uint64_t seed_;
  const SagaSimOptions options_;
  saga::SagaCoreOptions core_options_;
  FakeClock clock_;
  SeededRandom random_;
  SeededRandom core_random_;
  SimLoop loop_{clock_};
  int64_t start_ms_ = 0;
  bool faults_ = true;

  std::unique_ptr<saga::SagaCore> core_;
  bool up_ = false;
  uint64_t incarnation_ = 0;
  std::set<uint64_t> open_calls_;
  uint64_t next_call_id_ = 1;
  uint64_t next_operator_client_ = 1'000'000;  // Resolve replies; apart from client indexes

  std::vector<DurableEvent> durable_;
  std::map<std::string, v1::TxnRecord> records_;  // fold of durable_
  std::set<std::string> ever_stuck_;              // xids whose STUCK was ever durable
  int64_t disk_ready_ms_ = 0;
  bool log_broken_ = false;

  std::vector<SagaSimParticipant> participants_;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_of_xid_;

  SagaSimResult result_;
};

}  // namespace treaty::sim
