// The deterministic world in which Treaty's own coordinator code runs: the production effect
// drivers (driver/twopc_driver.h, driver/saga_driver.h), their cores and the participant calls'
// breakers and bulkheads, on simulated ports: a simulated durable log (single node or Raft
// cluster, tests/sim/sim_log.h), a network that delays, drops, duplicates and reorders, timers and
// clocks (skewed per node), and participants that run the participant library's real barrier
// rules (tests/sim/sim_participant.h). Clients submit 2PC transactions and sagas, participants in
// doubt ask for outcomes, an operator aborts and resolves. One seed drives everything.
//
// Single node (nodes = 1): the coordinator crashes and restarts (presumed abort recovery), its
// log fails, sometimes ambiguously (the shell reopens it: a restart). Cluster (nodes = 3): the
// leader is lost again and again: killed, cut off from the others while it keeps running (it
// still reaches participants and clients, and believes it leads for a while), or paused (its
// timers fire late, all at once); a new leader recovers from the replicated log and resumes the
// prepare of PREPARING transactions. Wall clocks are skewed between nodes.
//
// Until options.fault_phase_ms faults are injected; then the world heals and runs until no event
// remains. Invariants are checked after every event (each live core's CheckInvariants, what the
// participants apply, what clients are told) and at quiescence.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "driver/saga_driver.h"
#include "driver/twopc_driver.h"
#include "tests/sim/sim_log.h"
#include "tests/sim/sim_loop.h"
#include "tests/sim/sim_participant.h"

namespace treaty::sim {

struct WorldOptions {
  int nodes = 1;  // 1: a single treatyd; 3: a cluster
  int transactions = 8;
  int sagas = 5;
  int services = 3;
  int max_branches = 3;
  int max_steps = 4;
  int64_t fault_phase_ms = 2000;
  // Network: one-way delay uniform in [min, max]; independent delays reorder messages.
  int64_t min_delay_ms = 1;
  int64_t max_delay_ms = 25;
  double drop_request = 0.05;
  double drop_response = 0.05;
  double duplicate_request = 0.05;
  double slow_request = 0.02;  // held in the network for up to 400 ms
  // The coordinator: crashes (single node) or leader losses (cluster) in the fault phase.
  int max_leader_faults = 2;
  int64_t max_downtime_ms = 300;  // single node: down after a crash
  // Cluster: of the leader losses, the share where the old leader keeps running (cut off from the
  // other nodes, or paused) instead of dying, and of those the share that is a pause.
  double deposed_keeps_running = 0.6;
  double pause = 0.3;
  int64_t max_unaware_ms = 1000;   // a cut-off leader believes it leads up to this long
  int64_t max_election_ms = 300;   // no leader for up to this long
  int64_t max_wall_skew_ms = 500;  // each node's wall clock is off by up to this, either way
  // Participants.
  int max_participant_outages = 2;  // per participant
  int64_t max_participant_downtime_ms = 400;
  // Share of outages that last up to long_downtime_ms instead (breakers stay open meanwhile).
  double long_outage = 0.15;
  int64_t long_downtime_ms = 1500;
  HandlerMix handlers;
  int64_t in_doubt_after_ms = 400;  // a PREPARED branch older than this asks for its outcome
  // Single node's log.
  double log_failure = 0.03;
  double ambiguous_log_failure = 0.5;
  int64_t max_reopen_delay_ms = 30;
  int64_t max_commit_delay_ms = 6;
  // Clients and the operator.
  double duplicate_submit = 0.2;  // a client submits its transaction twice
  double stale_client = 0.2;      // cluster: a request goes to a node that may not lead
  double operator_abort = 0.08;   // `treaty tx resolve --abort` of a transaction at a random time
  double small_compensation_budget = 0.3;  // sagas that give up (STUCK) after 2 attempts
  // Checker self-test only: a crash also loses writes durable in the last 100 ms (a disk that
  // lies about fsync). Single node. Runs with this set are expected to violate invariants.
  bool lying_disk = false;
  // A run still busy after this many events does not quiesce (a liveness bug).
  uint64_t max_events = 200'000;
  // Prints what happens (durable events, leader faults, calls, replies) to stderr: for replaying
  // one seed (TREATY_SIM_TRACE=1).
  bool trace = false;
};

struct WorldStats {
  uint64_t events = 0;
  uint64_t committed = 0;
  uint64_t aborted = 0;
  uint64_t completed = 0;    // sagas
  uint64_t compensated = 0;  // sagas
  uint64_t stuck = 0;        // times a saga became STUCK durably
  uint64_t resolves = 0;
  uint64_t leader_faults = 0;        // crashes (single node) or leader losses (cluster)
  uint64_t deposed_running = 0;      // cluster: old leaders that kept running for a while
  uint64_t lost_in_flight = 0;       // appends in flight when a leader was lost
  uint64_t recovered_preparing = 0;  // 2PC transactions a new coordinator found PREPARING
  uint64_t recovered_decided = 0;
  uint64_t recovered_sagas = 0;
  uint64_t log_failures = 0;
  uint64_t dropped_messages = 0;
  uint64_t duplicated_messages = 0;
  uint64_t breaker_refusals = 0;
  uint64_t in_doubt_queries = 0;
  uint64_t barred_actions = 0;
  uint64_t null_compensations = 0;
  uint64_t client_retries = 0;
  WorldStats& operator+=(const WorldStats& o);
};

struct WorldResult {
  std::vector<std::string> violations;  // empty when every invariant held
  WorldStats stats;
  uint64_t trace_hash = 0;  // equal for equal (seed, options): the run is reproducible
  bool ok() const { return violations.empty(); }
};

class World : public SimLogObserver, public ParticipantObserver {
 public:
  World(uint64_t seed, WorldOptions options);
  ~World() override;
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  WorldResult Run();

  // SimLogObserver.
  void AtIncarnation(uint64_t inc, int64_t at_ms, std::function<void()> fn) override;
  void Durable(const v1::LogEvent& event) override;
  void Refused(const std::string& xid, const Status& why) override;
  // ParticipantObserver.
  void ParticipantViolation(const std::string& xid, const std::string& what) override;
  void BeforeCommit(const std::string& xid, uint32_t branch) override;

 private:
  struct Incarnation;  // one run of a coordinator process (world.cpp)
  struct Client {
    std::string xid;
    bool saga = false;
    std::vector<v1::Branch> branches;  // 2PC
    v1::SagaDefinition definition;     // saga
    uint32_t prepare_timeout_ms = 0;
    bool wait = false;
    bool satisfied = false;
    std::optional<v1::Decision> told;    // 2PC outcome a reply reported
    std::optional<v1::SagaState> final;  // saga final state a reply reported
  };

  int64_t Now() const { return clock_.NowMs(); }
  void At(int64_t at_ms, std::function<void()> fn) { loop_.At(at_ms, std::move(fn)); }
  int64_t NetDelay();
  void Violation(const std::string& xid, const std::string& what);
  void Trace(const std::string& what) const;

  // world.cpp: setup, coordinator incarnations, faults.
  void Setup();
  v1::SagaDefinition RandomSaga();
  void Heal();
  void StartIncarnation(int node);
  Incarnation* Live(uint64_t inc) const;
  Incarnation* Leader() const;
  // A node a client or participant sends to: the leader, or (stale_client) any live incarnation.
  Incarnation* Target();
  void LeaderFault();
  void Elect(int not_node);
  void Retire(uint64_t inc);  // the incarnation learned it lost the leadership, or died
  void CheckCores();

  // world_net.cpp: the transport between incarnations and participants, in-doubt recovery.
  void Send(uint64_t inc, driver::Request request, std::function<void(Result<std::string>)> done);
  SimParticipant& ParticipantFor(const std::string& instance);
  void InDoubtRound(size_t participant);

  // world_clients.cpp: clients and the operator.
  void Submit(size_t client, bool again = false);
  void OnTwoPcReply(const twopc::Reply& reply);
  void OnSagaReply(const saga::Reply& reply);
  void Retry(size_t client, const Status& why);
  void OperatorAbort(size_t client);
  void OperatorRound();

  // world_checks.cpp.
  void CheckQuiescent();
  void CheckTwoPc(const Client& c, const v1::TxnRecord& rec);
  void CheckSaga(const Client& c, const v1::TxnRecord& rec);

  const uint64_t seed_;
  const WorldOptions options_;
  FakeClock clock_;
  SeededRandom random_;
  SimLoop loop_{clock_};
  int64_t start_ms_ = 0;
  bool faults_ = true;
  SimLog log_;
  std::vector<std::unique_ptr<SimParticipant>> participants_;
  std::vector<int64_t> mono_offset_ms_;                            // per node
  std::vector<int64_t> wall_skew_ms_;                              // per node
  std::map<uint64_t, std::unique_ptr<Incarnation>> incarnations_;  // live ones, by id
  uint64_t next_incarnation_ = 1;
  bool electing_ = false;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_of_xid_;
  std::map<std::string, v1::Decision> ever_decided_;  // every 2PC decision ever durable
  // Client ids of the operator's Resolve inputs, apart from the clients' indexes.
  static constexpr uint64_t kFirstOperatorClient = 1'000'000;
  uint64_t next_operator_client_ = kFirstOperatorClient;
  std::set<uint64_t> operator_refused_;
  std::set<std::pair<std::string, uint32_t>> undone_by_hand_;  // (xid, step) the operator undid
  std::map<std::string, int64_t> stuck_since_;  // when the operator first saw a saga STUCK
  std::set<std::string> broken_cores_;  // core invariant violations already reported  // the
                                        // operator's Resolve inputs that were refused
  WorldResult result_;
};

}  // namespace treaty::sim
