// The coordinator shell: executes the 2PC core's effects with Asio, the RPC transport and the log,
// admits sagas and hands them to the saga shell (coordinator/saga_shell.h).
#include "coordinator/coordinator.h"

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "common/clock.h"
#include "common/random.h"
#include "coordinator/admin_http.h"
#include "coordinator/cluster_mode.h"
#include "coordinator/metrics.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "coordinator/resolve.h"
#include "coordinator/saga_shell.h"
#include "coordinator/transactions.h"
#include "coordinator/twopc_rules.h"
#include "log/log.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "resilience/retry.h"
#include "saga/definition.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::coordinator {

// Longest client-chosen xid; xids are keys in the log and appear in every log line.
inline constexpr size_t kMaxXidBytes = 128;

namespace {

// The data directory holds one folder per store. Anything else there means the directory belongs
// to something else, and treatyd refuses it rather than write beside foreign files.
constexpr const char* kDataDirEntries[] = {"log", "readmodel", "raft"};

}  // namespace

Status CheckDataDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return Status::Unavailable("cannot create --data-dir " + dir + ": " + ec.message());
    return Status::Ok();
  }
  if (!fs::is_directory(dir, ec)) {
    return Status::FailedPrecondition("--data-dir " + dir + " is not a directory");
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    bool known = false;
    for (const char* k : kDataDirEntries) known = known || name == k;
    if (!known) {
      return Status::FailedPrecondition(
          dir + " is not a Treaty data directory (it contains '" + name +
          "'); point --data-dir at an empty directory or one treatyd created");
    }
  }
  if (ec) return Status::Unavailable("cannot read --data-dir " + dir + ": " + ec.message());
  return Status::Ok();
}

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
  std::unique_ptr<TwoPcCore> core;
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

  void Execute(Effects fx) {
    for (auto& a : fx.appends) Append(std::move(a));
    for (auto& c : fx.calls) Call(std::move(c));
    for (const auto& t : fx.timers) StartTimer(t);
    for (auto& r : fx.replies) SendReply(std::move(r));
    for (auto& r : fx.resolve_replies) SendReply(std::move(r), /*resolve=*/true);
    for (const auto& f : fx.finished) {
      metrics->TxFinished(f.state, f.duration_ms);
      spdlog::debug("xid={} finished state={} duration_ms={}", f.xid, v1::TxState_Name(f.state),
                    f.duration_ms);
    }
    metrics->SetActive(active());
  }

  // Transactions held in memory by both cores.
  size_t active() const { return core->active() + (sagas ? sagas->active() : 0); }

  void Append(AppendLog a) {
    std::string xid = a.event.xid();
    LogStep step = a.step;
    std::vector<v1::LogEvent> events;
    events.push_back(std::move(a.event));
    log->Append(std::move(events), pending.Track([this, xid, step](Status s, uint64_t) {
      asio::post(io(), [this, xid, step, s] {
        if (stopped) return;
        if (!s.ok()) {
          spdlog::error("xid={} log append failed: {}", xid, s.ToString());
          if (log->stopped_after_failure() || gate->LeadershipLost(s)) return Fatal(s);
        }
        Execute(core->Handle(LogDone{xid, step, s}));
      });
    }));
  }

  void Call(CallParticipant c) {
    std::string instance = c.instance;
    if (instance.empty()) {
      // Only transactions logged before instances were recorded lack one: any live instance.
      auto picked = registry->Pick(
          c.service, c.xid, clock.NowMs(), [](const std::string&) { return true; },
          [](const std::string&) { return 0u; });
      if (!picked.ok()) {
        asio::post(io(),
                   [this, xid = c.xid, branch = c.branch, phase = c.phase, s = picked.status()] {
                     if (!stopped) Execute(core->Handle(CallFailed{xid, branch, phase, s}));
                   });
        return;
      }
      instance = *picked;
    }
    caller->Call(c, instance,
                 [this, xid = c.xid, branch = c.branch, phase = c.phase,
                  service = c.service](Result<std::string> r) {
                   if (stopped) return;
                   if (!r.ok()) {
                     spdlog::debug("xid={} branch={} {} to {} failed: {}", xid, branch,
                                   PhaseName(phase), service, r.status().ToString());
                     Execute(core->Handle(CallFailed{xid, branch, phase, r.status()}));
                     return;
                   }
                   if (phase != Phase::kPrepare) {
                     Execute(core->Handle(Acked{xid, branch, phase}));
                     return;
                   }
                   auto vote = net::Decode<v1::PrepareResponse>(r);
                   if (!vote.ok()) {
                     Execute(core->Handle(CallFailed{xid, branch, phase, vote.status()}));
                     return;
                   }
                   Execute(core->Handle(VoteReceived{xid, branch, vote->vote(), vote->reason()}));
                 });
  }

  void StartTimer(const SetTimer& t) {
    auto timer = std::make_shared<asio::steady_timer>(io(), std::chrono::milliseconds(t.delay_ms));
    timer->async_wait([this, timer, xid = t.xid, id = t.timer_id](const asio::error_code& ec) {
      if (ec || stopped) return;
      Execute(core->Handle(TimerFired{xid, id}));
    });
  }

  // resolve: r answers a Resolve input (a ResolveResponse), else a Submit.
  void SendReply(Reply r, bool resolve = false) {
    auto it = waiting.find(r.client);
    if (it == waiting.end()) return;
    net::Responder respond = std::move(it->second);
    waiting.erase(it);
    if (resolve) return respond(ResolveResponseOf(r));
    if (!r.status.ok()) {
      respond(r.status);
      return;
    }
    v1::SubmitResponse resp;
    resp.set_xid(r.xid);
    resp.set_state(r.state);
    resp.set_reason(r.reason);
    respond(resp.SerializeAsString());
  }

  // Fail-stop: nothing more is decided or sent; the owner is told to stop the process. A cluster
  // leader that lost the leadership stops the same way, but the process goes on (its owner
  // starts a follower): the new leader recovers the transactions from the replicated log.
  void Fatal(const Status& s) {
    if (stopped) return;
    stopped = true;
    if (gate->LeadershipLost(s)) {
      lost_leadership = true;
      spdlog::warn("coordinator: leadership lost ({}); no longer driving {} transactions",
                   s.ToString(), active());
      const Status unknown =
          Status::Unavailable("leadership lost; outcome unknown, retry with the same xid");
      for (auto& [client, respond] : waiting) respond(unknown);
      waiting.clear();
      sagas->FailWaiting(unknown);
      return;
    }
    spdlog::critical("coordinator stopping: {}", s.ToString());
    if (options.on_fatal) options.on_fatal(s);
  }

  // ---- client API ----

  void HandleSubmit(v1::SubmitRequest req, net::Responder respond) {
    if (req.xid().empty()) req.set_xid(NewXid(random, "tx"));
    if (req.xid().size() > kMaxXidBytes) {
      metrics->SubmitRejected();
      respond(
          Status::InvalidArgument("xid is longer than " + std::to_string(kMaxXidBytes) + " bytes"));
      return;
    }
    if (sagas->Holds(req.xid())) {
      respond(Status::AlreadyExists("xid " + req.xid() + " is used by a saga"));
      return;
    }
    if (!core->Get(req.xid())) {
      // Not held in memory: it may be finished (or ending) in the log.
      auto found = log->Find(req.xid());
      if (!found.ok()) {
        respond(found.status());
        return;
      }
      if (found->has_value()) {
        respond(ReplyForLogged(req, **found));
        return;
      }
      std::vector<std::string> services;
      for (const auto& b : req.branches()) services.push_back(b.service());
      Status s = Admit(services, req.client_id());
      if (s.ok()) s = ChooseInstances(req);
      if (!s.ok()) {
        metrics->SubmitRejected();
        spdlog::debug("xid={} submission refused: {}", req.xid(), s.ToString());
        respond(s);
        return;
      }
      metrics->TxSubmitted();
    }
    uint64_t client = next_client++;
    waiting.emplace(client, std::move(respond));
    Submit in;
    in.xid = req.xid();
    in.branches.assign(req.branches().begin(), req.branches().end());
    in.prepare_timeout_ms = req.prepare_timeout_ms();
    in.wait = req.wait();
    in.client = client;
    Execute(core->Handle(in));
  }

  // Admission: the global bound on transactions in flight, then the client's token bucket.
  // services: those the transaction touches (empty names are left to the cores' validation).
  Status Admit(const std::vector<std::string>& services, const std::string& client_id) {
    for (const auto& service : services) {
      if (!service.empty() && !registry->Known(service)) {
        return Status::NotFound("unknown service '" + service +
                                "' (registered: " + registry->Names() + ")");
      }
    }
    if (active() >= options.max_active_transactions) {
      metrics->Throttled("in_flight");
      return Status::ResourceExhausted("coordinator is holding " + std::to_string(active()) +
                                       " transactions (its limit); retry after 100 ms");
    }
    const std::string& client = client_id.empty() ? "anonymous" : client_id;
    int64_t now_ms = clock.NowMs();
    if (!admission->TryTake(client, now_ms)) {
      metrics->Throttled("rate");
      int64_t after_ms = std::max<int64_t>(1, admission->RetryAfterMs(client, now_ms));
      return Status::ResourceExhausted("client '" + client +
                                       "' is over its submission rate; retry after " +
                                       std::to_string(after_ms) + " ms");
    }
    return Status::Ok();
  }

  // Fixes the participant instance of every branch of a new transaction (recorded in BEGIN, so
  // PREPARE, COMMIT and ABORT, also after a restart, reach the instance holding the branch).
  Status ChooseInstances(v1::SubmitRequest& req) {
    for (auto& b : *req.mutable_branches()) {
      b.clear_instance();
      if (b.service().empty()) continue;  // refused by the core's validation
      auto picked =
          PickInstance(b.service(), b.routing_key().empty() ? req.xid() : b.routing_key());
      if (!picked.ok()) return picked.status();
      b.set_instance(*picked);
    }
    return Status::Ok();
  }

  // The same for every step of a new saga (recorded in SagaBegun).
  Status ChooseInstances(v1::SubmitSagaRequest& req) {
    for (auto& step : *req.mutable_saga()->mutable_steps()) {
      step.clear_instance();
      if (step.service().empty()) continue;  // refused by the core's validation
      auto picked =
          PickInstance(step.service(), step.routing_key().empty() ? req.xid() : step.routing_key());
      if (!picked.ok()) return picked.status();
      step.set_instance(*picked);
    }
    return Status::Ok();
  }

  Result<std::string> PickInstance(const std::string& service, const std::string& key) {
    auto picked = registry->Pick(
        service, key, clock.NowMs(), [this](const std::string& a) { return caller->Usable(a); },
        [this](const std::string& a) { return caller->Outstanding(a); });
    if (picked.ok() || picked.status().code() == StatusCode::kNotFound) return picked;
    // Temporary (leases come back, breakers half-open): "busy, retry later", not a rejection of
    // the transaction itself, and not UNAVAILABLE, which clients read as "this coordinator is
    // unreachable".
    return Status::ResourceExhausted(picked.status().message() + "; retry after " +
                                     std::to_string(options.caller.breaker.reset_timeout_ms) +
                                     " ms");
  }

  Result<std::string> ReplyForLogged(const v1::SubmitRequest& req, const v1::TxnRecord& rec) {
    if (rec.mode() == saga::kSagaMode) {
      return Status::AlreadyExists("xid " + req.xid() + " is used by a saga");
    }
    if (!internal::SameBranches(req.branches(), rec.branches())) {
      return Status::AlreadyExists("xid " + req.xid() +
                                   " was already used for a different transaction");
    }
    v1::SubmitResponse resp;
    resp.set_xid(rec.xid());
    resp.set_state(rec.state());
    resp.set_reason(rec.reason());
    return resp.SerializeAsString();
  }

  // ---- sagas ----

  void HandleSubmitSaga(v1::SubmitSagaRequest req, net::Responder respond) {
    if (req.xid().empty()) req.set_xid(NewXid(random, "saga"));
    if (req.xid().size() > kMaxXidBytes) {
      metrics->SubmitRejected();
      respond(
          Status::InvalidArgument("xid is longer than " + std::to_string(kMaxXidBytes) + " bytes"));
      return;
    }
    if (core->Get(req.xid())) {
      respond(Status::AlreadyExists("xid " + req.xid() + " is used by a 2PC transaction"));
      return;
    }
    if (!sagas->Holds(req.xid())) {
      auto found = log->Find(req.xid());
      if (!found.ok()) {
        respond(found.status());
        return;
      }
      if (found->has_value()) {
        respond(SagaShell::ReplyForLogged(req, **found));
        return;
      }
      std::vector<std::string> services;
      for (const auto& step : req.saga().steps()) services.push_back(step.service());
      Status s = Admit(services, req.client_id());
      if (s.ok()) s = ChooseInstances(req);
      if (!s.ok()) {
        metrics->SubmitRejected();
        spdlog::debug("xid={} saga refused: {}", req.xid(), s.ToString());
        respond(s);
        return;
      }
      metrics->TxSubmitted();
    }
    sagas->Submit(std::move(req), std::move(respond));
  }

  void HandleResolve(const v1::ResolveRequest& req, net::Responder respond) {
    if (req.xid().empty()) return respond(Status::InvalidArgument("Resolve needs an xid"));
    if (sagas->Holds(req.xid())) return sagas->Resolve(req, std::move(respond));
    if (core->Get(req.xid())) {
      auto in = TwoPcResolveOf(req);
      if (!in.ok()) return respond(in.status());
      in->client = next_client++;
      waiting.emplace(in->client, std::move(respond));
      return Execute(core->Handle(*in));
    }
    auto found = log->Find(req.xid());
    if (!found.ok()) return respond(found.status());
    if (!found->has_value()) {
      return respond(Status::NotFound("no transaction with xid " + req.xid()));
    }
    respond(ResolveRefusalForLogged(req, **found));
  }

  void HandleQueryOutcome(const v1::QueryOutcomeRequest& req, net::Responder respond) {
    if (core->OutcomeOf(req.xid()) || !gate->clustered()) return respond(OutcomeOf(req.xid()));
    // Not held here. In a cluster, "unknown => ABORT" is only safe once no other leader can have
    // begun the xid: the barrier commits only while this node still leads, and once it is applied
    // every decision of earlier leaders is in the local state.
    log->Barrier(pending.Track([this, xid = req.xid(), respond](Status s, uint64_t) {
      asio::post(io(), [this, xid, respond, s] {
        if (!s.ok()) return respond(gate->NotLeader());
        if (stopped) return respond(Status::Unavailable("coordinator is shutting down"));
        respond(OutcomeOf(xid));
      });
    }));
  }

  // The outcome of xid from the core, else from the log (presumed abort for an unknown xid).
  Result<std::string> OutcomeOf(const std::string& xid) {
    v1::QueryOutcomeResponse resp;
    if (auto outcome = core->OutcomeOf(xid)) {
      resp.set_outcome(*outcome);
      return resp.SerializeAsString();
    }
    auto found = log->Find(xid);
    if (!found.ok()) return found.status();
    resp.set_outcome(found->has_value() ? OutcomeOfRecord(**found) : v1::OUTCOME_ABORT);
    return resp.SerializeAsString();
  }

  // Why a leader-only request is refused now, or OK. In a cluster, a deposed leader must not
  // answer from its stale state: NotLeader until it is replaced.
  Status Refusal() const {
    TREATY_RETURN_IF_ERROR(gate->CheckServing());
    if (stopped) return Status::Unavailable("coordinator is shutting down");
    return Status::Ok();
  }

  Result<std::string> HandleRegister(const v1::RegisterRequest& req) {
    TREATY_RETURN_IF_ERROR(registry->Register(req.service(), req.address(), req.weight(),
                                              clock.NowMs(), clock.UnixMs()));
    v1::RegisterResponse resp;
    resp.set_lease_ms(static_cast<uint32_t>(registry->lease_ms()));
    return resp.SerializeAsString();
  }

  Result<std::string> HandleListServices() {
    v1::ListServicesResponse resp;
    for (const auto& s : registry->List(clock.NowMs())) {
      auto* info = resp.add_services();
      info->set_name(s.name);
      info->set_policy(LbPolicyName(s.policy));
      info->set_in_flight(caller->ServiceInFlight(s.name));
      info->set_max_in_flight(caller->max_in_flight_per_service());
      for (const auto& i : s.instances) {
        auto stats = caller->StatsOf(i.address);
        auto* out = info->add_instances();
        out->set_address(i.address);
        out->set_weight(i.weight);
        out->set_lease_age_ms(i.lease_age_ms);
        out->set_live(i.live);
        out->set_breaker(stats.breaker);
        out->set_in_flight(stats.in_flight);
        out->set_rejected(stats.rejected);
      }
    }
    return resp.SerializeAsString();
  }

  // Registers a handler that decodes Req and answers synchronously with fn's result.
  template <typename Req, typename Fn>
  void Serve(const char* method, Fn fn) {
    server->Register(method, [this, fn](std::string payload, uint32_t, net::Responder respond) {
      if (Status refused = Refusal(); !refused.ok()) return respond(refused);
      auto req = net::DecodeRequest<Req>(payload);
      if (!req.ok()) return respond(req.status());
      respond(fn(*req));
    });
  }

  void RegisterHandlers() {
    server->Register(v1::methods::kSubmit,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       if (Status no = Refusal(); !no.ok()) return respond(no);
                       auto req = net::DecodeRequest<v1::SubmitRequest>(payload);
                       if (!req.ok()) return respond(req.status());
                       HandleSubmit(std::move(*req), std::move(respond));
                     });
    server->Register(v1::methods::kSubmitSaga,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       if (Status no = Refusal(); !no.ok()) return respond(no);
                       auto req = net::DecodeRequest<v1::SubmitSagaRequest>(payload);
                       if (!req.ok()) return respond(req.status());
                       HandleSubmitSaga(std::move(*req), std::move(respond));
                     });
    server->Register(v1::methods::kResolve,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       if (Status no = Refusal(); !no.ok()) return respond(no);
                       auto req = net::DecodeRequest<v1::ResolveRequest>(payload);
                       if (!req.ok()) return respond(req.status());
                       HandleResolve(*req, std::move(respond));
                     });
    server->Register(v1::methods::kQueryOutcome,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       if (Status no = Refusal(); !no.ok()) return respond(no);
                       auto req = net::DecodeRequest<v1::QueryOutcomeRequest>(payload);
                       if (!req.ok()) return respond(req.status());
                       HandleQueryOutcome(*req, std::move(respond));
                     });
    Serve<v1::RegisterRequest>(v1::methods::kRegister,
                               [this](const auto& r) { return HandleRegister(r); });
    Serve<v1::ListServicesRequest>(v1::methods::kListServices,
                                   [this](const auto&) { return HandleListServices(); });
  }
};

Result<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("--data-dir is required");
  if (options.follower && options.log == nullptr) {
    return Status::InvalidArgument("a follower coordinator needs the cluster's log");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  TREATY_RETURN_IF_ERROR(CheckDataDir(options.data_dir));
  if (options.log != nullptr) {
    impl->log = options.log;
  } else {
    log::LogOptions log_options;
    log_options.dir = options.data_dir + "/log";
    log_options.group_commit = options.group_commit;
    auto log = log::EventLog::Open(log_options);
    if (!log.ok()) return log.status();
    impl->owned_log = std::move(*log);
    impl->log = impl->owned_log.get();
  }
  impl->gate =
      std::make_unique<ClusterGate>(*impl->log, options.follower, options.client_address_of);
  impl->metrics = std::make_unique<Metrics>(impl->log);
  impl->server = std::make_unique<net::RpcServer>(impl->io());
  Impl* raw = impl.get();
  ReadSideOptions read_side_options = options.read_side;
  ReadSide::LiveView live;
  std::vector<v1::TxnRecord> active;
  if (options.follower) {
    // Retention deletes from the log, which only the leader writes; the leader's purges reach
    // this node's log through Raft. (0 turns both retentions off.)
    read_side_options.event_retention_ms = 0;
  } else {
    impl->registry = std::make_unique<Registry>(*impl->log, options.registry);
    TREATY_RETURN_IF_ERROR(impl->registry->Load(impl->clock.NowMs()));
    auto loaded = impl->log->LoadActive();
    if (!loaded.ok()) return loaded.status();
    active = std::move(*loaded);
    TREATY_RETURN_IF_ERROR(resilience::Validate(options.core.retry).WithPrefix("retry policy"));
    TREATY_RETURN_IF_ERROR(resilience::Validate(options.caller.breaker).WithPrefix("breaker"));
    TREATY_RETURN_IF_ERROR(resilience::Validate(options.admission).WithPrefix("admission"));
    impl->core = std::make_unique<TwoPcCore>(options.core, impl->clock, impl->random);
    impl->caller = std::make_unique<ParticipantCaller>(impl->io(), impl->clock, options.caller,
                                                       &impl->metrics->registry());
    impl->admission = std::make_unique<resilience::KeyedTokenBuckets>(options.admission);
    SagaShell::Env env;
    env.io = &impl->io();
    env.clock = &impl->clock;
    env.random = &impl->random;
    env.log = impl->log;
    env.registry = impl->registry.get();
    env.caller = impl->caller.get();
    env.metrics = impl->metrics.get();
    env.fatal = [raw](const Status& s) { raw->Fatal(s); };
    env.leadership_lost = [raw](const Status& s) { return raw->gate->LeadershipLost(s); };
    env.track = [raw](log::AppendDone done) { return raw->pending.Track(std::move(done)); };
    env.stopped = [raw] { return raw->stopped; };
    env.on_change = [raw] { raw->metrics->SetActive(raw->active()); };
    impl->sagas = std::make_unique<SagaShell>(std::move(env), options.saga);
    impl->RegisterHandlers();
    live = [raw](const std::string& xid) {
      auto held = raw->core->Get(xid);
      return held ? held : raw->sagas->Get(xid);
    };
  }
  ServeClusterStatus(*impl->server, *impl->gate);
  if (!options.follower) {
    ServeChangeMembership(*impl->server, impl->io(), *impl->gate, *impl->log);
  }
  auto read_side =
      ReadSide::Open(read_side_options, options.data_dir, *impl->log, impl->clock, std::move(live));
  if (!read_side.ok()) return read_side.status();
  impl->read_side = std::move(*read_side);
  impl->read_side->Attach(*impl->server, *impl->metrics);
  if (options.follower) ServeNotLeader(*impl->server, *impl->gate);

  if (!options.follower) {
    // Resume unfinished transactions before the first client request is read.
    std::vector<v1::TxnRecord> two_pc;
    std::vector<v1::TxnRecord> sagas;
    for (auto& rec : active) {
      (rec.mode() == saga::kSagaMode ? sagas : two_pc).push_back(std::move(rec));
    }
    spdlog::info("recovering {} unfinished transactions and {} sagas from {}", two_pc.size(),
                 sagas.size(), options.data_dir);
    asio::post(impl->io(), [raw, two_pc = std::move(two_pc), sagas = std::move(sagas)] {
      raw->Execute(raw->core->Recover(two_pc));
      raw->sagas->Recover(sagas);
    });
  }
  TREATY_RETURN_IF_ERROR(impl->server->Listen(options.listen));
  spdlog::info("treatyd listening on {} as {} (data dir {}, group commit {})", options.listen,
               options.follower ? "follower" : (impl->gate->clustered() ? "leader" : "single node"),
               options.data_dir, options.group_commit ? "on" : "off");
  if (!options.admin.empty()) {
    auto admin = AdminServer::Start(options.admin, [raw] { return raw->metrics->Scrape(); });
    if (!admin.ok()) return admin.status();
    impl->admin = std::move(*admin);
    impl->admin->AddRoute("/readyz", [raw](const HttpRequest&) { return raw->gate->Readiness(); });
  }
  impl->read_side->Start(impl->admin.get());
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() { Stop(); }

void Coordinator::Stop() {
  if (!impl_ || impl_->stopped) return;
  if (impl_->admin) impl_->admin->Stop();
  if (impl_->read_side) impl_->read_side->Stop();
  asio::post(impl_->io(), [raw = impl_.get()] { raw->stopped = true; });
  impl_->server->Stop();
  impl_->io_thread.Stop();
  impl_->stopped = true;
}

uint16_t Coordinator::port() const { return impl_->server->port(); }
bool Coordinator::lost_leadership() const { return impl_->lost_leadership; }
uint16_t Coordinator::admin_port() const { return impl_->admin ? impl_->admin->port() : 0; }

}  // namespace treaty::coordinator
