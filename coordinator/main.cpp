// treatyd: the Treaty coordinator daemon.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <mutex>
#include <string>

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
  app.add_option("--decision-timeout-ms", options.decision_call_timeout_ms,
                 "Budget of one COMMIT/ABORT call")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  app.add_option("--retry-initial-ms", options.core.retry_initial_ms, "First retry backoff")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{60'000}));
  app.add_option("--retry-max-ms", options.core.retry_max_ms, "Retry backoff cap")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  app.add_option("--max-active", options.max_active_transactions,
                 "Transactions held at once before Submit answers RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  options.group_commit = !no_group_commit;
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
