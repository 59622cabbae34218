// treatyd: the Treaty coordinator daemon.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "common/logging.h"
#include "coordinator/coordinator.h"

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
  app.add_option("--decision-timeout-ms", options.caller.decision_call_timeout_ms,
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
  std::string event_retention = "24h", readmodel_retention = "7d";
  app.add_option("--event-retention", event_retention,
                 "Delete events of finished transactions this long after END (0: keep)")
      ->capture_default_str();
  app.add_option("--readmodel-retention", readmodel_retention,
                 "Delete transaction summaries this long after END (0: keep)")
      ->capture_default_str();
  app.add_flag("--rebuild-readmodel", options.read_side.rebuild_at_start,
               "Rebuild the read model from the log before serving");
  bool no_readmodel = false;
  app.add_flag("--no-readmodel", no_readmodel, "Run without the read model (benchmark baseline)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  options.group_commit = !no_group_commit;
  options.read_side.enabled = !no_readmodel;
  for (auto [flag, text, out] : {std::tuple{"--event-retention", &event_retention,
                                            &options.read_side.event_retention_ms},
                                 std::tuple{"--readmodel-retention", &readmodel_retention,
                                            &options.read_side.summary_retention_ms}}) {
    auto ms = treaty::coordinator::ParseDurationMs(*text);
    if (!ms.ok()) {
      std::fprintf(stderr, "treatyd: %s: %s\n", flag, ms.status().message().c_str());
      return 2;
    }
    *out = *ms;
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
  treaty::Status fatal;
  std::mutex fatal_mu;
  pthread_t main_thread = pthread_self();
  options.on_fatal = [&fatal, &fatal_mu, main_thread](const treaty::Status& s) {
    {
      std::lock_guard lock(fatal_mu);
      fatal = s;
    }
    pthread_kill(main_thread, SIGTERM);
  };
  auto coordinator = treaty::coordinator::Coordinator::Start(options);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "treatyd: %s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*coordinator)->Stop();
  std::lock_guard lock(fatal_mu);
  if (!fatal.ok()) {
    std::fprintf(stderr, "treatyd: stopped: %s\n", fatal.ToString().c_str());
    return 1;
  }
  return 0;
}
