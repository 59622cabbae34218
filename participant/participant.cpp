#include "participant/participant.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "net/cluster_client.h"
#include "net/leader.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "participant/store.h"
#include "participant/worker.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::participant {
namespace {

namespace methods = v1::methods;
using SteadyClock = std::chrono::steady_clock;

// Most in-doubt branches examined per scan. Bounds the time one scan holds the maintenance
// thread (each distinct xid costs one coordinator round trip); the rest wait for the next scan.
constexpr size_t kMaxInDoubtPerScan = 512;

bool IsParticipantMethod(const std::string& method) {
  return method == methods::kPrepare || method == methods::kCommit || method == methods::kAbort ||
         method == methods::kInspect || method == methods::kAction ||
         method == methods::kCompensate;
}

}  // namespace

struct Participant::Impl {
  explicit Impl(ParticipantOptions opts)
      : options(std::move(opts)), clock(options.clock ? options.clock : &system_clock) {}

  Status Validate() const;
  void RegisterMethods();
  Result<std::string> CallCoordinator(std::string_view method, std::string payload);
  void MaintenanceLoop();
  void RegisterOnce();
  void ResolveInDoubt();
  // Tears down whatever Start built, in dependency order. REQUIRES: lifecycle_mu held.
  void Shutdown();

  const ParticipantOptions options;
  SystemClock system_clock;
  const Clock* clock;
  std::map<std::string, OpHandlers> ops;
  std::map<std::string, SagaStepHandlers> saga_steps;  // by action name
  std::map<std::string, QueryHandler> queries;
  std::map<std::string, ControlHandler> controls;
  Initializer initializer;

  std::mutex lifecycle_mu;
  bool started = false;  // guarded by lifecycle_mu
  bool running = false;  // guarded by lifecycle_mu

  std::unique_ptr<Store> store;
  std::unique_ptr<Worker> worker;
  std::unique_ptr<net::IoThread> io;
  std::unique_ptr<net::RpcServer> server;
  // The coordinator cluster (options.coordinator's addresses), called from the maintenance
  // thread only; it finds the leader (net/cluster_client.h).
  std::unique_ptr<net::ClusterClient> coordinator;
  std::string address;  // written by Start before running is published
  std::atomic<uint16_t> port{0};

  std::thread maintenance;
  std::mutex maintenance_mu;
  std::condition_variable maintenance_cv;
  bool stopping = false;          // guarded by maintenance_mu
  bool registered = false;        // maintenance thread only
  bool register_failing = false;  // maintenance thread only
  bool query_failing = false;     // maintenance thread only
  // Worker counters as they were at Stop, so Stats stays meaningful afterwards.
  ParticipantStats final_stats;  // guarded by lifecycle_mu

  std::atomic<uint64_t> in_doubt_queries{0};
  std::atomic<uint64_t> resolved_in_doubt{0};
  std::atomic<uint64_t> registrations{0};
};

Status Participant::Impl::Validate() const {
  if (options.service.empty())
    return Status::InvalidArgument("ParticipantOptions.service is empty");
  if (options.data_dir.empty()) {
    return Status::InvalidArgument("ParticipantOptions.data_dir is empty");
  }
  if (options.register_interval_ms <= 0 || options.in_doubt_after_ms < 0 ||
      options.recovery_interval_ms <= 0 || options.coordinator_call_timeout_ms <= 0 ||
      options.max_queued_requests == 0 || options.max_round_requests == 0) {
    return Status::InvalidArgument("ParticipantOptions has a non-positive interval or limit");
  }
  if (!options.coordinator.empty()) {
    TREATY_RETURN_IF_ERROR(net::ParseAddressList(options.coordinator)
                               .status()
                               .WithPrefix("ParticipantOptions.coordinator"));
  }
  for (const auto& [op, handlers] : ops) {
    if (!handlers.prepare) {
      return Status::InvalidArgument("op '" + op + "' of service " + options.service +
                                     " has no prepare handler");
    }
  }
  std::map<std::string, std::string> action_of;  // compensation name -> action name
  for (const auto& [action, step] : saga_steps) {
    if (action.empty() || step.compensation.empty() || !step.run || !step.undo) {
      return Status::InvalidArgument("saga step '" + action + "' of service " + options.service +
                                     " needs an action name, a compensation name and both "
                                     "handlers");
    }
    auto [it, added] = action_of.emplace(step.compensation, action);
    if (!added) {
      return Status::InvalidArgument("compensation '" + step.compensation + "' of service " +
                                     options.service + " is registered for both action '" +
                                     it->second + "' and '" + action + "'");
    }
  }
  for (const auto& [method, handler] : queries) {
    if (IsParticipantMethod(method) || !handler) {
      return Status::InvalidArgument("query method '" + method + "' is reserved or has no handler");
    }
  }
  for (const auto& [method, handler] : controls) {
    if (IsParticipantMethod(method) || queries.count(method) != 0 || !handler) {
      return Status::InvalidArgument("control method '" + method +
                                     "' is reserved, also a query method, or has no handler");
    }
  }
  return Status::Ok();
}

void Participant::Impl::RegisterMethods() {
  Worker* w = worker.get();
  server->Register(methods::kPrepare, [w](std::string payload, uint32_t, net::Responder respond) {
    Result<v1::PrepareRequest> req = net::DecodeRequest<v1::PrepareRequest>(payload);
    if (!req.ok()) return respond(req.status());
    Request r;
    r.kind = Request::Kind::kPrepare;
    r.xid = req->xid();
    r.branch_id = req->branch_id();
    r.op = req->op();
    r.payload = req->payload();
    r.done = std::move(respond);
    w->Submit(std::move(r));
  });
  for (const auto& [method, kind] : {std::pair{methods::kCommit, Request::Kind::kCommit},
                                     std::pair{methods::kAbort, Request::Kind::kAbort}}) {
    server->Register(
        method, [w, kind = kind](std::string payload, uint32_t, net::Responder respond) {
          Result<v1::DecisionRequest> req = net::DecodeRequest<v1::DecisionRequest>(payload);
          if (!req.ok()) return respond(req.status());
          Request r;
          r.kind = kind;
          r.xid = req->xid();
          r.branch_id = req->branch_id();
          r.done = std::move(respond);
          w->Submit(std::move(r));
        });
  }
  for (const auto& [method, kind] : {std::pair{methods::kAction, Request::Kind::kAction},
                                     std::pair{methods::kCompensate, Request::Kind::kCompensate}}) {
    server->Register(method,
                     [w, kind = kind](std::string payload, uint32_t, net::Responder respond) {
                       Result<v1::StepRequest> req = net::DecodeRequest<v1::StepRequest>(payload);
                       if (!req.ok()) return respond(req.status());
                       Request r;
                       r.kind = kind;
                       r.xid = req->xid();
                       r.branch_id = req->step();
                       r.op = req->op();
                       r.payload = req->payload();
                       r.done = std::move(respond);
                       w->Submit(std::move(r));
                     });
  }
  server->Register(methods::kInspect, [w](std::string payload, uint32_t, net::Responder respond) {
    Result<v1::InspectRequest> req = net::DecodeRequest<v1::InspectRequest>(payload);
    if (!req.ok()) return respond(req.status());
    Request r;
    r.kind = Request::Kind::kInspect;
    r.xid = req->xid();
    r.done = std::move(respond);
    w->Submit(std::move(r));
  });
  for (const auto& [method, handler] : queries) {
    const QueryHandler* query = &handler;
    server->Register(method, [w, query](std::string payload, uint32_t, net::Responder respond) {
      Request r;
      r.kind = Request::Kind::kQuery;
      r.payload = std::move(payload);
      r.query = query;
      r.done = std::move(respond);
      w->Submit(std::move(r));
    });
  }
  for (const auto& [method, handler] : controls) {
    const ControlHandler* control = &handler;
    server->Register(method, [control](std::string payload, uint32_t, net::Responder respond) {
      Result<std::string> response = Status::Internal("control handler threw");
      try {
        response = (*control)(payload);
      } catch (const std::exception& e) {
        response = Status::Internal(std::string("control handler threw: ") + e.what());
      } catch (...) {
        // response already says that the handler threw
      }
      respond(std::move(response));
    });
  }
}

Result<std::string> Participant::Impl::CallCoordinator(std::string_view method,
                                                       std::string payload) {
  // Register (a heartbeat) and QueryOutcome (a read) are safe to repeat.
  return coordinator->Call(method, std::move(payload), options.coordinator_call_timeout_ms,
                           /*idempotent=*/true);
}

void Participant::Impl::RegisterOnce() {
  v1::RegisterRequest req;
  req.set_service(options.service);
  req.set_address(address);
  req.set_weight(options.weight);
  Status s = CallCoordinator(methods::kRegister, req.SerializeAsString()).status();
  if (s.ok()) {
    registrations.fetch_add(1);
    if (!registered || register_failing) {
      spdlog::info("participant service={} registered {} with coordinator {}", options.service,
                   address, coordinator->leader());
    }
    registered = true;
    register_failing = false;
  } else if (!register_failing) {
    spdlog::warn(
        "participant service={} cannot register with coordinator {} (retrying every "
        "{} ms): {}",
        options.service, options.coordinator, options.register_interval_ms, s.ToString());
    register_failing = true;
  }
}

void Participant::Impl::ResolveInDoubt() {
  std::vector<PreparedBranch> branches =
      worker->InDoubt(clock->UnixMs(), options.in_doubt_after_ms, kMaxInDoubtPerScan);
  std::map<std::string, std::vector<uint32_t>> by_xid;
  for (PreparedBranch& b : branches) by_xid[std::move(b.xid)].push_back(b.branch_id);

  std::vector<std::future<Status>> applied;
  for (const auto& [xid, branch_ids] : by_xid) {
    {
      std::lock_guard<std::mutex> lock(maintenance_mu);
      if (stopping) break;
    }
    v1::QueryOutcomeRequest req;
    req.set_xid(xid);
    in_doubt_queries.fetch_add(1);
    Result<v1::QueryOutcomeResponse> reply = net::Decode<v1::QueryOutcomeResponse>(
        CallCoordinator(methods::kQueryOutcome, req.SerializeAsString()));
    if (!reply.ok()) {
      if (!query_failing) {
        spdlog::warn(
            "participant service={} xid={} in doubt; outcome query failed (retrying every "
            "{} ms): {}",
            options.service, xid, options.recovery_interval_ms, reply.status().ToString());
      }
      query_failing = true;
      const StatusCode code = reply.status().code();
      if (code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded) break;
      continue;
    }
    query_failing = false;
    const v1::Outcome outcome = reply->outcome();
    if (outcome != v1::OUTCOME_COMMIT && outcome != v1::OUTCOME_ABORT) continue;  // ask later
    const bool commit = outcome == v1::OUTCOME_COMMIT;
    spdlog::info("participant service={} xid={} in doubt; coordinator says {}", options.service,
                 xid, commit ? "COMMIT" : "ABORT");
    for (uint32_t branch_id : branch_ids) {
      auto done = std::make_shared<std::promise<Status>>();
      applied.push_back(done->get_future());
      Request r;
      r.kind = commit ? Request::Kind::kCommit : Request::Kind::kAbort;
      r.xid = xid;
      r.branch_id = branch_id;
      r.done = [done](Result<std::string> result) { done->set_value(result.status()); };
      worker->Submit(std::move(r));
    }
  }
  for (std::future<Status>& f : applied) {
    Status s = f.get();
    if (s.ok()) {
      resolved_in_doubt.fetch_add(1);
    } else {
      spdlog::warn("participant service={} applying an in-doubt outcome failed (will retry): {}",
                   options.service, s.ToString());
    }
  }
}

void Participant::Impl::MaintenanceLoop() {
  SteadyClock::time_point next_register = SteadyClock::now();
  SteadyClock::time_point next_scan = SteadyClock::now();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(maintenance_mu);
      maintenance_cv.wait_until(lock, std::min(next_register, next_scan),
                                [this] { return stopping; });
      if (stopping) return;
    }
    const SteadyClock::time_point now = SteadyClock::now();
    if (now >= next_register) {
      RegisterOnce();
      next_register = SteadyClock::now() + std::chrono::milliseconds(options.register_interval_ms);
    }
    if (now >= next_scan) {
      ResolveInDoubt();
      next_scan = SteadyClock::now() + std::chrono::milliseconds(options.recovery_interval_ms);
    }
  }
}

void Participant::Impl::Shutdown() {
  if (maintenance.joinable()) {
    {
      std::lock_guard<std::mutex> lock(maintenance_mu);
      stopping = true;
    }
    maintenance_cv.notify_all();
    if (coordinator) coordinator->Close();  // fails a call in flight so the loop exits promptly
    maintenance.join();
  }
  if (server) server->Stop();
  if (worker) worker->Stop();  // finishes queued requests; their responders become no-ops
  if (coordinator) coordinator->Close();
  if (io) io->Stop();
  if (worker) {
    final_stats.requests = worker->requests();
    final_stats.rounds = worker->rounds();
    final_stats.syncs = worker->syncs();
    final_stats.prepared = worker->prepared();
    final_stats.null_compensations = worker->null_compensations();
    final_stats.late_actions_refused = worker->late_actions_refused();
  }
  server.reset();
  coordinator.reset();
  io.reset();
  worker.reset();
  store.reset();  // closes the database
  running = false;
}

Participant::Participant(ParticipantOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Participant::~Participant() { Stop(); }

void Participant::RegisterOp(std::string op, OpHandlers handlers) {
  impl_->ops[std::move(op)] = std::move(handlers);
}

void Participant::RegisterSagaStep(std::string action, std::string compensation, ActionHandler run,
                                   CompensationHandler undo) {
  SagaStepHandlers step{action, std::move(compensation), std::move(run), std::move(undo)};
  impl_->saga_steps[std::move(action)] = std::move(step);
}

void Participant::RegisterQuery(std::string method, QueryHandler handler) {
  impl_->queries[std::move(method)] = std::move(handler);
}

void Participant::RegisterControl(std::string method, ControlHandler handler) {
  impl_->controls[std::move(method)] = std::move(handler);
}

void Participant::SetInitializer(Initializer initializer) {
  impl_->initializer = std::move(initializer);
}

Status Participant::Start() {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.lifecycle_mu);
  if (d.started) {
    return Status::FailedPrecondition("participant " + d.options.service +
                                      " was already started; create a new Participant");
  }
  d.started = true;
  TREATY_RETURN_IF_ERROR(d.Validate());
  std::string host;
  uint16_t listen_port = 0;
  TREATY_RETURN_IF_ERROR(net::ParseAddress(d.options.listen, &host, &listen_port)
                             .WithPrefix("listen address " + d.options.listen));

  Result<std::unique_ptr<Store>> store =
      Store::Open(d.options.data_dir, d.options.service, d.initializer);
  if (!store.ok()) return store.status();
  d.store = std::move(*store);
  Result<std::vector<PreparedBranch>> prepared = d.store->LoadPrepared();
  if (!prepared.ok()) {
    d.Shutdown();
    return prepared.status().WithPrefix("data dir " + d.options.data_dir);
  }

  WorkerOptions worker_options{d.options.service, d.options.sync, d.options.max_queued_requests,
                               d.options.max_round_requests, d.clock};
  d.worker = std::make_unique<Worker>(*d.store, d.ops, d.saga_steps, std::move(worker_options));
  d.worker->LoadPrepared(*prepared);
  d.worker->Start();

  d.io = std::make_unique<net::IoThread>();
  d.server = std::make_unique<net::RpcServer>(d.io->io());
  d.RegisterMethods();
  Status listening = d.server->Listen(d.options.listen);
  if (!listening.ok()) {
    d.Shutdown();
    return listening.WithPrefix("participant " + d.options.service);
  }
  d.port.store(d.server->port());
  if (!d.options.advertise.empty()) {
    d.address = d.options.advertise;
  } else {
    const bool ipv6 = host.find(':') != std::string::npos;
    d.address = (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(d.port.load());
    if (host == "0.0.0.0" || host == "::") {
      spdlog::warn(
          "participant service={} listens on a wildcard address and announces {}; set "
          "ParticipantOptions.advertise to a reachable address",
          d.options.service, d.address);
    }
  }
  if (!d.options.coordinator.empty()) {
    // The addresses were checked by Validate.
    d.coordinator = std::make_unique<net::ClusterClient>(
        d.io->io(), *net::ParseAddressList(d.options.coordinator));
    d.maintenance = std::thread([&d] { d.MaintenanceLoop(); });
  } else {
    spdlog::warn(
        "participant service={} has no coordinator address: no registration and no "
        "in-doubt resolution",
        d.options.service);
  }
  d.running = true;
  spdlog::info("participant service={} listening on {} data_dir={} prepared={}", d.options.service,
               d.address, d.options.data_dir, prepared->size());
  return Status::Ok();
}

void Participant::Stop() {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.lifecycle_mu);
  if (!d.running) return;
  d.Shutdown();
  spdlog::info("participant service={} stopped", d.options.service);
}

std::string Participant::address() const {
  std::lock_guard<std::mutex> lock(impl_->lifecycle_mu);
  return impl_->address;
}

uint16_t Participant::port() const { return impl_->port.load(); }

ParticipantStats Participant::Stats() const {
  const Impl& d = *impl_;
  ParticipantStats stats;
  stats.in_doubt_queries = d.in_doubt_queries.load();
  stats.resolved_in_doubt = d.resolved_in_doubt.load();
  stats.registrations = d.registrations.load();
  std::lock_guard<std::mutex> lock(impl_->lifecycle_mu);
  if (d.worker) {
    stats.requests = d.worker->requests();
    stats.rounds = d.worker->rounds();
    stats.syncs = d.worker->syncs();
    stats.prepared = d.worker->prepared();
    stats.null_compensations = d.worker->null_compensations();
    stats.late_actions_refused = d.worker->late_actions_refused();
  } else {
    stats.requests = d.final_stats.requests;
    stats.rounds = d.final_stats.rounds;
    stats.syncs = d.final_stats.syncs;
    stats.prepared = d.final_stats.prepared;
    stats.null_compensations = d.final_stats.null_compensations;
    stats.late_actions_refused = d.final_stats.late_actions_refused;
  }
  return stats;
}

}  // namespace treaty::participant
