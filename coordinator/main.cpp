// treatyd: the Treaty coordinator daemon.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/logging.h"
#include "common/text.h"
#include "coordinator/cluster_mode.h"
#include "coordinator/coordinator.h"
#include "log/log.h"
#include "net/rpc.h"

namespace {

using treaty::Status;
using treaty::coordinator::Coordinator;
using treaty::coordinator::CoordinatorOptions;

// How often the role loop looks at the node's Raft state when nothing changes (it wakes at once
// on a change), and so the longest SIGINT/SIGTERM waits to be noticed, milliseconds.
constexpr int64_t kRolePollMs = 200;

// The retention flags' rules that a single flag's parse cannot check.
Status CheckRetentions(const treaty::coordinator::ReadSideOptions& r) {
  if (r.retention_interval_ms <= 0) {
    return Status::InvalidArgument("--retention-interval must be positive (e.g. 10s)");
  }
  if (r.xid_retention_ms > 0 && r.summary_retention_ms > 0 &&
      r.xid_retention_ms < r.summary_retention_ms) {
    return Status::InvalidArgument(
        "--xid-retention " + treaty::FormatDurationMs(r.xid_retention_ms) +
        " is shorter than --readmodel-retention " +
        treaty::FormatDurationMs(r.summary_retention_ms) +
        ": an xid must be refused at least as long as its summary is kept; raise it (or 0: "
        "forever)");
  }
  return Status::Ok();
}

// Set by on_fatal (any thread), read by main after the signal it sends.
struct FatalState {
  std::mutex mu;
  Status status;
};

// Cluster mode: opens the Raft-replicated log, then runs the coordinator that fits the node's
// role until SIGINT/SIGTERM (signals must be blocked in every thread): a leader coordinator while
// the node is the serving leader (a new one for every term), else a follower coordinator. Each
// replacement destroys the old coordinator first, so the same ports are bound again. Returns the
// process exit code.
int RunCluster(CoordinatorOptions options, treaty::log::ClusterOptions cluster,
               const sigset_t& signals, FatalState& fatal) {
  if (Status dir = treaty::coordinator::CheckDataDir(options.data_dir); !dir.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", dir.ToString().c_str());
    return 1;
  }
  treaty::log::LogOptions log_options;
  log_options.dir = options.data_dir + "/log";
  log_options.group_commit = options.group_commit;
  log_options.cluster = std::move(cluster);
  auto opened = treaty::log::EventLog::Open(log_options);
  if (!opened.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<treaty::log::EventLog> log = std::move(*opened);
  options.log = log.get();
  // A transaction left PREPARING by a previous leader is prepared again, not presumed aborted:
  // a failover is latency for the client, not a rollback (twopc_core.h).
  options.core.recovery = treaty::twopc::Recovery::kResumePrepare;
  // Losing the leadership is not fatal (the loop starts a follower); a local write failure is.
  auto on_fatal = options.on_fatal;
  options.on_fatal = [on_fatal, raw = log.get()](const Status& s) {
    if (raw->stopped_after_failure()) on_fatal(s);
  };

  std::unique_ptr<Coordinator> coordinator;
  bool running = false;
  bool running_leader = false;
  uint64_t running_term = 0;
  treaty::log::ClusterState state = log->cluster_state();
  const timespec no_wait{0, 0};
  while (sigtimedwait(&signals, nullptr, &no_wait) < 0) {
    const bool leader = state.role == treaty::log::ClusterRole::kLeader && state.serving;
    // A leader coordinator that stopped because an append failed for lack of leadership is
    // replaced too, even if the loop saw no change of role or term.
    if (!running || leader != running_leader || (leader && state.term != running_term) ||
        coordinator->lost_leadership()) {
      const auto switch_start = std::chrono::steady_clock::now();
      auto ms_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t)
            .count();
      };
      coordinator.reset();  // first: frees the ports, and ends a deposed leader's work
      running = false;
      // Every node can then name the leader's client address (NotLeader hints, ClusterStatus).
      // Committed and applied in order, it is also the barrier after which the new leader's
      // recovery sees every entry (of earlier terms and of an earlier coordinator of this term).
      Status ready = leader ? log->PutMeta(treaty::coordinator::ClientAddressKey(state.node_id),
                                           options.listen)
                            : Status::Ok();
      if (ready.ok()) {
        options.follower = !leader;
        auto started = Coordinator::Start(options);
        if (!started.ok()) {
          std::fprintf(stderr, "treatyd: %s\n", started.status().ToString().c_str());
          return 1;
        }
        coordinator = std::move(*started);
        options.read_side.rebuild_at_start = false;  // --rebuild-readmodel: once per process
        running = true;
        running_leader = leader;
        running_term = state.term;
        spdlog::info("cluster: role switch took {} ms", ms_since(switch_start));
        spdlog::info("cluster: node {} serves as {} (term {}, leader {})", state.node_id,
                     leader ? "the leader" : "a follower", state.term, state.leader_id);
      } else if (log->stopped_after_failure()) {
        std::fprintf(stderr, "treatyd: stopped: %s\n", ready.ToString().c_str());
        return 1;
      } else {
        // Lost the leadership meanwhile, most likely: look again.
        spdlog::warn("cluster: cannot record this node's client address: {}", ready.ToString());
      }
    }
    state = log->WaitClusterChange(state.epoch, kRolePollMs);
    if (log->stopped_after_failure()) {
      // Applying a committed entry failed locally (disk): fail-stop; Raft replays it on restart.
      std::fprintf(stderr, "treatyd: stopped: the log failed to apply a committed entry\n");
      coordinator.reset();
      return 1;
    }
  }
  coordinator.reset();
  std::lock_guard lock(fatal.mu);
  if (!fatal.status.ok()) {
    std::fprintf(stderr, "treatyd: stopped: %s\n", fatal.status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  treaty::coordinator::CoordinatorOptions options;
  std::string log_level = "info";
  bool no_group_commit = false;

  CLI::App app{"treatyd - Treaty transaction coordinator"};
  app.add_option("--data-dir", options.data_dir, "Directory of the durable event log")->required();
  app.add_option("--listen", options.listen, "Client API address host:port")
      ->capture_default_str();
  app.add_option("--admin", options.admin, "Admin HTTP address host:port (/healthz, /metrics)");
  app.add_flag("--no-group-commit", no_group_commit,
               "One fsync per log append (benchmark baseline)");
  app.add_option("--prepare-timeout-ms", options.core.default_prepare_timeout_ms,
                 "Default prepare-phase budget")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--decision-timeout-ms", options.core.decision_call_timeout_ms,
                 "Budget of one COMMIT/ABORT call")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  app.add_option("--retry-initial-ms", options.core.retry.initial_backoff_ms, "First retry backoff")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{60'000}));
  app.add_option("--retry-max-ms", options.core.retry.max_backoff_ms, "Retry backoff cap")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  app.add_option("--max-active", options.max_active_transactions,
                 "Transactions held at once before Submit answers RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  app.add_option("--lease-ms", options.registry.lease_ms,
                 "A participant instance leaves the rotation this long after its last heartbeat")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}));
  std::string lb_default = "round-robin";
  std::vector<std::string> lb_services;
  app.add_option("--lb", lb_default,
                 "Default load balancing: round-robin, weighted, least-outstanding, "
                 "consistent-hash")
      ->capture_default_str();
  app.add_option("--lb-service", lb_services, "Per-service policy, SERVICE=POLICY (repeatable)");
  auto& breaker = options.caller.breaker;
  app.add_option("--breaker-failures", breaker.consecutive_failures,
                 "Consecutive failures that open an instance's circuit breaker (0: off)")
      ->capture_default_str();
  app.add_option("--breaker-failure-rate", breaker.failure_rate,
                 "Failure share over the window that opens the breaker")
      ->capture_default_str();
  app.add_option("--breaker-window-ms", breaker.window_ms, "Failure-rate window")
      ->capture_default_str();
  app.add_option("--breaker-min-calls", breaker.min_calls_in_window,
                 "Calls in the window before the failure rate counts")
      ->capture_default_str();
  app.add_option("--breaker-reset-ms", breaker.reset_timeout_ms,
                 "Open breaker: time before a half-open probe")
      ->capture_default_str();
  app.add_option("--max-in-flight-per-service", options.caller.max_in_flight_per_service,
                 "Bulkhead: participant calls in flight per service")
      ->capture_default_str();
  app.add_option("--admission-rate", options.admission.rate_per_sec,
                 "Submissions per second per client id (token bucket refill)")
      ->capture_default_str();
  app.add_option("--admission-burst", options.admission.burst,
                 "Token bucket capacity per client id")
      ->capture_default_str();
  std::string event_retention = "24h", readmodel_retention = "7d", xid_retention = "30d";
  std::string retention_interval = "10s";
  app.add_option("--event-retention", event_retention,
                 "Delete events of finished transactions this long after END (0: keep)")
      ->capture_default_str();
  app.add_option("--readmodel-retention", readmodel_retention,
                 "Delete transaction summaries this long after END (0: keep)")
      ->capture_default_str();
  app.add_option("--xid-retention", xid_retention,
                 "Refuse a finished transaction's xid this long after END (0: forever); at least "
                 "--readmodel-retention")
      ->capture_default_str();
  app.add_option("--retention-interval", retention_interval, "Time between retention passes")
      ->capture_default_str();
  app.add_flag("--rebuild-readmodel", options.read_side.rebuild_at_start,
               "Rebuild the read model from the log before serving");
  bool no_readmodel = false;
  app.add_flag("--no-readmodel", no_readmodel, "Run without the read model (benchmark baseline)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  uint64_t node_id = 0;
  std::string raft, peers;
  uint32_t election_timeout_ms = 0, heartbeat_ms = 0;
  app.add_option("--node-id", node_id, "Cluster mode: this node's id (one of --peers)");
  app.add_option("--raft", raft, "Cluster mode: this node's Raft address host:port");
  app.add_option("--peers", peers, "Cluster mode: every voter, 1=HOST:PORT,2=HOST:PORT,...");
  app.add_option("--election-timeout-ms", election_timeout_ms,
                 "Cluster mode: Raft election timeout (default 500)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Cluster mode: Raft heartbeat (default 50)");
  bool join = false;
  app.add_flag("--join", join,
               "Cluster mode: join a running cluster (never bootstrap; wait for `treaty cluster "
               "add-node`). --peers then needs only this node's entry");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  treaty::coordinator::ClusterFlags cluster_flags;
  if (app.count("--node-id") > 0) cluster_flags.node_id = node_id;
  if (app.count("--raft") > 0) cluster_flags.raft = raft;
  if (app.count("--peers") > 0) cluster_flags.peers = peers;
  if (app.count("--election-timeout-ms") > 0) {
    cluster_flags.election_timeout_ms = election_timeout_ms;
  }
  if (app.count("--heartbeat-ms") > 0) cluster_flags.heartbeat_ms = heartbeat_ms;
  cluster_flags.join = join;
  auto cluster = treaty::coordinator::ClusterOptionsFromFlags(cluster_flags, options.data_dir);
  if (!cluster.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", cluster.status().message().c_str());
    return 2;
  }
  if (cluster->has_value()) {
    // The listen address is what other nodes hand to clients as the leader's address.
    std::string host;
    uint16_t port = 0;
    if (!treaty::net::ParseAddress(options.listen, &host, &port).ok() || port == 0) {
      std::fprintf(stderr, "treatyd: --listen %s: cluster mode needs a fixed HOST:PORT\n",
                   options.listen.c_str());
      return 2;
    }
  }
  options.group_commit = !no_group_commit;
  options.read_side.enabled = !no_readmodel;
  for (auto [flag, text, out] :
       {std::tuple{"--event-retention", &event_retention, &options.read_side.event_retention_ms},
        std::tuple{"--readmodel-retention", &readmodel_retention,
                   &options.read_side.summary_retention_ms},
        std::tuple{"--xid-retention", &xid_retention, &options.read_side.xid_retention_ms},
        std::tuple{"--retention-interval", &retention_interval,
                   &options.read_side.retention_interval_ms}}) {
    auto ms = treaty::coordinator::ParseDurationMs(*text);
    if (!ms.ok()) {
      std::fprintf(stderr, "treatyd: %s: %s\n", flag, ms.status().message().c_str());
      return 2;
    }
    *out = *ms;
  }
  if (Status s = CheckRetentions(options.read_side); !s.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", s.ToString().c_str());
    return 2;
  }
  auto policy = treaty::coordinator::ParseLbPolicy(lb_default);
  if (!policy.ok()) {
    std::fprintf(stderr, "treatyd: --lb: %s\n", policy.status().message().c_str());
    return 2;
  }
  options.registry.default_policy = *policy;
  for (const auto& entry : lb_services) {
    auto eq = entry.find('=');
    auto p = eq == std::string::npos ? policy : treaty::coordinator::ParseLbPolicy(entry.substr(eq + 1));
    if (eq == std::string::npos || eq == 0 || !p.ok()) {
      std::fprintf(stderr, "treatyd: --lb-service %s: expected SERVICE=POLICY%s%s\n",
                   entry.c_str(), p.ok() ? "" : ": ", p.ok() ? "" : p.status().message().c_str());
      return 2;
    }
    options.registry.policies[entry.substr(0, eq)] = *p;
  }
  treaty::SetupLogging("treatyd", log_level);

  // Every thread started below inherits this mask; the main thread waits for the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // A fatal error (e.g. the log stopped after a failed write) wakes the sigwait below.
  FatalState fatal;
  pthread_t main_thread = pthread_self();
  options.on_fatal = [&fatal, main_thread](const treaty::Status& s) {
    {
      std::lock_guard lock(fatal.mu);
      fatal.status = s;
    }
    pthread_kill(main_thread, SIGTERM);
  };
  if (cluster->has_value()) return RunCluster(options, std::move(**cluster), signals, fatal);
  auto coordinator = treaty::coordinator::Coordinator::Start(options);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*coordinator)->Stop();
  std::lock_guard lock(fatal.mu);
  if (!fatal.status.ok()) {
    std::fprintf(stderr, "treatyd: stopped: %s\n", fatal.status.ToString().c_str());
    return 1;
  }
  return 0;
}
