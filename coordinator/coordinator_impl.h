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
#include "common/random.h"
#include "coordinator/admin_http.h"
#include "coordinator/cluster_mode.h"
#include "coordinator/coordinator.h"
#include "coordinator/metrics.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "coordinator/saga_shell.h"
#include "log/log.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "resilience/token_bucket.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::coordinator {

// Longest client-chosen xid; xids are keys in the log and appear in every log line.
inline constexpr size_t kMaxXidBytes = 128;

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
  std::unique_ptr<twopc::TwoPcCore> core;
  std::unique_ptr<SagaShell> sagas;
  std::unique_ptr<net::RpcServer> server;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<ParticipantCaller> caller;
  std::unique_ptr<resilience::KeyedTokenBuckets> admission;
  std::unordered_map<uint64_t, net::Responder> waiting;  // Submit callers by client id
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

  // ---- effects ----

  void Execute(twopc::Effects fx);
  void Append(twopc::AppendLog a);
  void Call(twopc::CallParticipant c);
  void StartTimer(const twopc::SetTimer& t);
  // resolve: r answers a Resolve input (a ResolveResponse), else a Submit.
  void SendReply(twopc::Reply r, bool resolve = false);
  // Fail-stop: nothing more is decided or sent; the owner is told to stop the process. A cluster
  // leader that lost the leadership stops the same way, but the process goes on (its owner
  // starts a follower): the new leader recovers the transactions from the replicated log.
  void Fatal(const Status& s);

  // Transactions held in memory by both cores.
  size_t active() const { return core->active() + (sagas ? sagas->active() : 0); }

  // ---- client API (coordinator_requests.cpp) ----

  // The xid length limit (a refusal counts as a rejected submission).
  Status CheckXid(const std::string& xid);
  // A new submission (2PC or saga) passes admission and gets its instances, or is refused (and
  // counted); services: those it touches.
  template <typename Req>
  Status AdmitNew(Req& req, const std::vector<std::string>& services) {
    Status s = Admit(services, req.client_id());
    if (s.ok()) s = ChooseInstances(req);
    if (!s.ok()) {
      metrics->SubmitRejected();
      spdlog::debug("xid={} submission refused: {}", req.xid(), s.ToString());
      return s;
    }
    metrics->TxSubmitted();
    return Status::Ok();
  }
  void HandleSubmit(v1::SubmitRequest req, net::Responder respond);
  // Admission: the global bound on transactions in flight, then the client's token bucket.
  // services: those the transaction touches (empty names are left to the cores' validation).
  Status Admit(const std::vector<std::string>& services, const std::string& client_id);
  // Fixes the participant instance of every branch of a new transaction (recorded in BEGIN, so
  // PREPARE, COMMIT and ABORT, also after a restart, reach the instance holding the branch).
  Status ChooseInstances(v1::SubmitRequest& req);
  // The same for every step of a new saga (recorded in SagaBegun).
  Status ChooseInstances(v1::SubmitSagaRequest& req);
  Result<std::string> PickInstance(const std::string& service, const std::string& key);
  Result<std::string> ReplyForLogged(const v1::SubmitRequest& req, const v1::TxnRecord& rec);
  void HandleSubmitSaga(v1::SubmitSagaRequest req, net::Responder respond);
  void HandleResolve(const v1::ResolveRequest& req, net::Responder respond);
  void HandleQueryOutcome(const v1::QueryOutcomeRequest& req, net::Responder respond);
  // The outcome of xid from the core, else from the log (presumed abort for an unknown xid).
  Result<std::string> OutcomeOf(const std::string& xid);
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
