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
#include "coordinator/coordinator_impl.h"
#include "coordinator/metrics.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "coordinator/resolve.h"
#include "log/log.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "resilience/retry.h"

namespace treaty::coordinator {

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

// ---- the drivers ----

void Coordinator::Impl::StartDrivers() {
  timers = std::make_unique<IoTimers>(io());
  transport = std::make_unique<RpcTransport>(io());
  log_port = std::make_unique<EventLogPort>(*log, *gate, io(), pending);
  router = std::make_unique<RegistryRouter>(*registry, clock);
  call_metrics = std::make_unique<CallMetrics>(metrics->registry());
  caller = std::make_unique<driver::Caller>(*transport, *timers, clock, options.caller,
                                            call_metrics.get());
  driver::Ports ports{log_port.get(), caller.get(), timers.get(), router.get(), &clock, &random};
  auto changed = [this] { metrics->SetActive(active()); };
  auto fatal = [this](const Status& s) { Fatal(s); };

  driver::TwoPcDriver::Hooks twopc_hooks;
  twopc_hooks.reply = [this](twopc::Reply r) { SendReply(std::move(r)); };
  twopc_hooks.resolve_reply = [this](twopc::Reply r) { SendReply(std::move(r)); };
  twopc_hooks.finished = [this](const twopc::Finished& f) {
    metrics->TxFinished(f.state, f.duration_ms);
    spdlog::debug("xid={} finished state={} duration_ms={}", f.xid, v1::TxState_Name(f.state),
                  f.duration_ms);
  };
  twopc_hooks.fatal = fatal;
  twopc_hooks.changed = changed;
  twopc = std::make_unique<driver::TwoPcDriver>(options.core, ports, std::move(twopc_hooks));

  driver::SagaDriver::Hooks saga_hooks;
  saga_hooks.reply = [this](saga::Reply r) { SendSagaReply(std::move(r)); };
  saga_hooks.finished = [this](const saga::Finished& f) {
    metrics->SagaFinished(f.state, f.duration_ms);
    spdlog::info("xid={} saga {} state={} duration_ms={}", f.xid,
                 f.state == v1::SAGA_STUCK ? "is" : "finished", v1::SagaState_Name(f.state),
                 f.duration_ms);
  };
  saga_hooks.fatal = fatal;
  saga_hooks.changed = changed;
  sagas = std::make_unique<driver::SagaDriver>(options.saga, ports, std::move(saga_hooks));
  service_wait = std::make_unique<ServiceWait>(clock.NowMs(), registry->lease_ms());
}

uint64_t Coordinator::Impl::AddWaiter(Asked asked, net::Responder respond) {
  const uint64_t client = next_client++;
  waiting.emplace(client, Waiter{asked, std::move(respond)});
  return client;
}

void Coordinator::Impl::SendReply(twopc::Reply r) {
  auto it = waiting.find(r.client);
  if (it == waiting.end()) return;
  Waiter waiter = std::move(it->second);
  waiting.erase(it);
  if (waiter.asked == Asked::kResolve) return waiter.respond(ResolveResponseOf(r));
  if (!r.status.ok()) return waiter.respond(r.status);
  v1::SubmitResponse resp;
  resp.set_xid(r.xid);
  resp.set_state(r.state);
  resp.set_reason(r.reason);
  waiter.respond(resp.SerializeAsString());
}

void Coordinator::Impl::SendSagaReply(saga::Reply r) {
  auto it = waiting.find(r.client);
  if (it == waiting.end()) return;
  Waiter waiter = std::move(it->second);
  waiting.erase(it);
  if (!r.status.ok()) return waiter.respond(r.status);
  if (waiter.asked == Asked::kResolve) {
    v1::ResolveResponse resp;
    resp.set_state(r.state);
    resp.set_message(r.reason.empty() ? "resolution recorded" : r.reason);
    return waiter.respond(resp.SerializeAsString());
  }
  v1::SubmitSagaResponse resp;
  resp.set_xid(r.xid);
  resp.set_state(r.state);
  resp.set_reason(r.reason);
  waiter.respond(resp.SerializeAsString());
}

void Coordinator::Impl::Fatal(const Status& s) {
  if (stopped) return;
  stopped = true;
  if (twopc) twopc->Stop();
  if (sagas) sagas->Stop();
  if (gate->LeadershipLost(s)) {
    lost_leadership = true;
    spdlog::warn("coordinator: leadership lost ({}); no longer driving {} transactions",
                 s.ToString(), active());
    const Status unknown =
        Status::Unavailable("leadership lost; outcome unknown, retry with the same xid");
    for (auto& [client, waiter] : waiting) waiter.respond(unknown);
    waiting.clear();
    for (auto& resume : service_wait->TakeAll()) resume();  // answered: shutting down
    return;
  }
  spdlog::critical("coordinator stopping: {}", s.ToString());
  if (options.on_fatal) options.on_fatal(s);
}

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
    impl->admission = std::make_unique<resilience::KeyedTokenBuckets>(options.admission);
    impl->StartDrivers();
    impl->RegisterHandlers();
    live = [raw](const std::string& xid) {
      auto held = raw->twopc->Get(xid);
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
      raw->twopc->Recover(two_pc);
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
