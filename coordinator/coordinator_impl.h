// Private to coordinator/: the coordinator shell's state and its methods, shared by
// coordinator.cpp (start, stop, executing the cores' effects) and coordinator_requests.cpp (the
// client API handlers).
#pragma once

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/limits.h"
#include "common/random.h"
#include "coordinator/admin_http.h"
#include "coordinator/asio_ports.h"
#include "coordinator/cluster_mode.h"
#include "coordinator/coordinator.h"
#include "coordinator/metrics.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "coordinator/service_wait.h"
#include "driver/saga_driver.h"
#include "driver/twopc_driver.h"
#include "log/log.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "resilience/token_bucket.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::coordinator {

struct Coordinator::Impl {
  CoordinatorOptions options;
  SystemClock clock;
  SeededRandom random{EntropySeed()};
  // The log's completions of this coordinator's appends and barriers not run yet; ~Impl waits for
  // them (a shared cluster log outlives the coordinator). Before the log: its last completions
  // run while it closes.
  PendingCallbacks pending;
  // Declared before the log so that it is destroyed after it: the log's last completions post
  // into this (already stopped) io_context.
  net::IoThread io_thread;
  std::unique_ptr<log::EventLog> owned_log;  // single node: opened by Start
  log::EventLog* log = nullptr;              // owned_log or options.log
  std::unique_ptr<ClusterGate> gate;
  // After the log (closed before it), before the server, admin and metrics (gone before it).
  std::unique_ptr<ReadSide> read_side;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<Metrics> metrics;
  // The drivers' ports (asio_ports.h) and the drivers (leader only).
  std::unique_ptr<IoTimers> timers;
  std::unique_ptr<RpcTransport> transport;
  std::unique_ptr<EventLogPort> log_port;
  std::unique_ptr<RegistryRouter> router;
  std::unique_ptr<CallMetrics> call_metrics;
  std::unique_ptr<driver::Caller> caller;
  std::unique_ptr<driver::TwoPcDriver> twopc;
  std::unique_ptr<driver::SagaDriver> sagas;
  std::unique_ptr<net::RpcServer> server;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<resilience::KeyedTokenBuckets> admission;
  // New submissions waiting for their services to register with this leader (service_wait.h).
  std::unique_ptr<ServiceWait> service_wait;
  // Clients waiting for the drivers' replies, by client id: the responder and what it asked.
  enum class Asked { kSubmit, kSubmitSaga, kResolve };
  struct Waiter {
    Asked asked = Asked::kSubmit;
    net::Responder respond;
  };
  std::unordered_map<uint64_t, Waiter> waiting;
  uint64_t next_client = 1;
  bool stopped = false;
  // Set (on the I/O thread) once it stopped after losing the leadership; read by the owner.
  std::atomic<bool> lost_leadership{false};

  // Stops the I/O thread before any member it uses is destroyed.
  ~Impl() {
    if (server) server->Stop();
    io_thread.Stop();
    pending.WaitIdle();
  }

  asio::io_context& io() { return io_thread.io(); }

  // Builds the ports and both drivers (leader only).
  void StartDrivers();
  uint64_t AddWaiter(Asked asked, net::Responder respond);
  // Answers the waiting client of a 2PC Submit or Resolve reply.
  void SendReply(twopc::Reply r);
  // Answers the waiting client of a saga Submit or Resolve reply.
  void SendSagaReply(saga::Reply r);
  // Fail-stop: nothing more is decided or sent; the owner is told to stop the process. A cluster
  // leader that lost the leadership stops the same way, but the process goes on (its owner
  // starts a follower): the new leader recovers the transactions from the replicated log.
  void Fatal(const Status& s);

  // Transactions held in memory by both drivers.
  size_t active() const { return twopc->active() + sagas->active(); }

  // ---- client API (coordinator_requests.cpp) ----

  // The xid length limit (a refusal counts as a rejected submission).
  Status CheckXid(const std::string& xid);
  // Counts a new submission's admission (s OK) or refusal, and returns s.
  Status Counted(const std::string& xid, Status s);
  // waited: it was held for its services already (service_wait.h) and is not held again.
  void HandleSubmit(v1::SubmitRequest req, net::Responder respond, bool waited = false);
  // Holds a new submission that names services this leader has not heard from yet, during its
  // first lease period (service_wait.h): resume runs once, when they registered or after at most
  // budget_ms. False if it is not held (resume is not called).
  bool HoldForServices(const std::vector<std::string>& services, int64_t budget_ms,
                       std::function<void()> resume);
  // Admission: the global bound on transactions in flight, then the client's token bucket.
  // services: those the transaction touches (empty names are left to the cores' validation).
  Status Admit(const std::vector<std::string>& services, const std::string& client_id);
  // Fixes the participant instance of every branch of a new transaction (recorded in BEGIN, so
  // PREPARE, COMMIT and ABORT, also after a restart, reach the instance holding the branch).
  Status ChooseInstances(const std::string& xid, std::vector<v1::Branch>& branches);
  // The same for every step of a new saga (recorded in SagaBegun).
  Status ChooseInstances(const std::string& xid, v1::SagaDefinition& saga);
  Result<std::string> PickInstance(const std::string& service, const std::string& key);
  void HandleSubmitSaga(v1::SubmitSagaRequest req, net::Responder respond, bool waited = false);
  void HandleResolve(const v1::ResolveRequest& req, net::Responder respond);
  void HandleQueryOutcome(const v1::QueryOutcomeRequest& req, net::Responder respond);
  // Why a leader-only request is refused now, or OK. In a cluster, a deposed leader must not
  // answer from its stale state: NotLeader until it is replaced.
  Status Refusal() const;
  Result<std::string> HandleRegister(const v1::RegisterRequest& req);
  Result<std::string> HandleListServices();
  void RegisterHandlers();

  // Registers a leader-only handler that decodes Req and hands it to fn(req, respond).
  template <typename Req, typename Fn>
  void ServeAsync(const char* method, Fn fn) {
    server->Register(method, [this, fn](std::string payload, uint32_t, net::Responder respond) {
      if (Status refused = Refusal(); !refused.ok()) return respond(refused);
      auto req = net::DecodeRequest<Req>(payload);
      if (!req.ok()) return respond(req.status());
      fn(std::move(*req), std::move(respond));
    });
  }
  // The same for a handler that answers synchronously with fn(req)'s result.
  template <typename Req, typename Fn>
  void Serve(const char* method, Fn fn) {
    ServeAsync<Req>(method, [fn](Req req, net::Responder respond) { respond(fn(req)); });
  }
};

}  // namespace treaty::coordinator
