// treaty-bench: load generator for a running treatyd.
//
//   treaty-bench 2pc --coordinator ADDR --concurrency N --duration S [--admin ADDR]
//                    [--accounts-per-bank K] [--services bank-a,bank-b] [--warmup S]
//                    [--connections C] [--output text|json]
//   treaty-bench saga --coordinator ADDR --concurrency N --duration S [--warmup S]
//                     [--connections C] [--output text|json]
//   treaty-bench services --coordinator ADDR --service S --live N [--wait-ms T]
//
// ADDR is one treatyd or a cluster's client addresses, comma-separated: submissions go to the
// leader and are retried with the same xid through a leader change (net/cluster_client.h), so an
// error is counted only when a submission's --timeout-ms passes.
// With --admin it scrapes treatyd's /metrics when the measured window opens and closes and reports
// fsyncs and coordinator CPU time per transaction. `saga` submits 3-step order sagas
// (examples/order: inventory needs "widget" stock for every saga) and reports sagas/s and latency.
// `services` waits until exactly N instances of service S are live at the coordinator and prints
// them (bench/run.sh uses it before a run). Exit codes: 0 ok, 1 the run failed (nothing answered,
// metrics unavailable, or the instances never reached N), 2 usage error.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/metrics_scrape.h"
#include "bench/saga_load.h"
#include "bench/services.h"
#include "bench/twopc_load.h"
#include "common/logging.h"
#include "common/random.h"

namespace {

using treaty::bench::CoordinatorCounters;
using treaty::bench::TwoPcLoadOptions;
using treaty::bench::TwoPcLoadResult;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// User + system CPU time of this process, seconds.
double OwnCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

struct PerTx {
  double fsyncs = 0;   // synced log writes per transaction
  double batches = 0;  // log WriteBatches per transaction
  double events_per_batch = 0;
  double cpu_us = 0;  // coordinator CPU microseconds per transaction
  double sync_us_per_sync = 0;
  double coordinator_tx = 0;  // transactions finished per the coordinator's counters
};

PerTx Derive(const CoordinatorCounters& d) {
  PerTx p;
  p.coordinator_tx = d.tx_committed + d.tx_aborted;
  if (p.coordinator_tx > 0) {
    p.fsyncs = d.log_syncs / p.coordinator_tx;
    p.batches = d.log_batches / p.coordinator_tx;
    p.cpu_us = d.cpu_seconds * 1e6 / p.coordinator_tx;
  }
  if (d.log_batches > 0) p.events_per_batch = d.log_events / d.log_batches;
  if (d.log_syncs > 0) p.sync_us_per_sync = d.log_sync_seconds * 1e6 / d.log_syncs;
  return p;
}

// Client (this process) CPU microseconds per answered transaction in the window.
double ClientCpuUsPerTx(const TwoPcLoadResult& r, double cpu_seconds) {
  const auto answered = static_cast<double>(r.committed + r.aborted);
  return answered > 0 ? cpu_seconds * 1e6 / answered : 0;
}

nlohmann::json ToJson(const TwoPcLoadOptions& o, const TwoPcLoadResult& r,
                      const std::optional<PerTx>& per_tx, double client_cpu_s) {
  nlohmann::json j = {
      {"concurrency", o.concurrency},
      {"connections", o.connections},
      {"duration_s", r.measured_s},
      {"warmup_s", o.warmup_s},
      {"services", {o.debit_service, o.credit_service}},
      {"accounts_per_bank", o.accounts_per_bank},
      {"committed", r.committed},
      {"aborted", r.aborted},
      {"errors", r.errors},
      {"first_error", r.first_error},
      {"tx_per_s", r.TxPerSecond()},
      {"client_cpu_us_per_tx", ClientCpuUsPerTx(r, client_cpu_s)},
      {"latency_ms",
       {{"p50", r.LatencyMs(0.50)},
        {"p90", r.LatencyMs(0.90)},
        {"p99", r.LatencyMs(0.99)},
        {"p999", r.LatencyMs(0.999)},
        {"max", r.LatencyMs(1.0)}}},
  };
  if (per_tx) {
    j["coordinator"] = {
        {"tx", per_tx->coordinator_tx},          {"fsyncs_per_tx", per_tx->fsyncs},
        {"log_batches_per_tx", per_tx->batches}, {"log_events_per_batch", per_tx->events_per_batch},
        {"cpu_us_per_tx", per_tx->cpu_us},       {"fsync_us", per_tx->sync_us_per_sync}};
  }
  return j;
}

void PrintText(const TwoPcLoadOptions& o, const TwoPcLoadResult& r,
               const std::optional<PerTx>& per_tx, double client_cpu_s) {
  std::printf(
      "treaty-bench 2pc: %s -> %s, concurrency %d over %d connection(s), %.1f s (+%.1f s "
      "warm-up), %d accounts per bank\n",
      o.debit_service.c_str(), o.credit_service.c_str(), o.concurrency, o.connections, r.measured_s,
      o.warmup_s, o.accounts_per_bank);
  std::printf("  transactions  %llu committed, %llu aborted, %llu errors%s%s\n",
              static_cast<unsigned long long>(r.committed),
              static_cast<unsigned long long>(r.aborted), static_cast<unsigned long long>(r.errors),
              r.errors ? " (first: " : "", r.errors ? (r.first_error + ")").c_str() : "");
  std::printf("  throughput    %.0f tx/s (client %.1f CPU us/tx)\n", r.TxPerSecond(),
              ClientCpuUsPerTx(r, client_cpu_s));
  std::printf("  latency ms    p50 %.2f  p90 %.2f  p99 %.2f  p999 %.2f  max %.2f\n",
              r.LatencyMs(0.5), r.LatencyMs(0.9), r.LatencyMs(0.99), r.LatencyMs(0.999),
              r.LatencyMs(1.0));
  if (per_tx) {
    std::printf(
        "  coordinator   %.3f fsyncs/tx, %.3f log batches/tx (%.1f events/batch, "
        "%.0f us/fsync), %.1f CPU us/tx\n",
        per_tx->fsyncs, per_tx->batches, per_tx->events_per_batch, per_tx->sync_us_per_sync,
        per_tx->cpu_us);
  }
}

int RunSagaBench(const treaty::bench::LoadSpec& spec, const std::string& output) {
  treaty::SetupLogging("treaty-bench", "warn");
  double cpu_start = 0;
  double cpu_end = 0;
  auto r = treaty::bench::RunSagaLoad(
      spec, [&] { cpu_start = OwnCpuSeconds(); }, [&] { cpu_end = OwnCpuSeconds(); });
  if (!r.ok()) {
    std::cerr << "error: " << r.status().ToString() << "\n";
    return r.status().code() == treaty::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  if (output == "json") {
    nlohmann::json j = {{"mode", "saga"},
                        {"concurrency", spec.concurrency},
                        {"connections", spec.connections},
                        {"duration_s", r->measured_s},
                        {"warmup_s", spec.warmup_s},
                        {"completed", r->committed},
                        {"not_completed", r->aborted},
                        {"errors", r->errors},
                        {"first_error", r->first_error},
                        {"sagas_per_s", r->TxPerSecond()},
                        {"client_cpu_us_per_saga", ClientCpuUsPerTx(*r, cpu_end - cpu_start)},
                        {"latency_ms",
                         {{"p50", r->LatencyMs(0.50)},
                          {"p90", r->LatencyMs(0.90)},
                          {"p99", r->LatencyMs(0.99)},
                          {"p999", r->LatencyMs(0.999)},
                          {"max", r->LatencyMs(1.0)}}}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf(
        "treaty-bench saga: reserve -> charge -> schedule, concurrency %d over %d "
        "connection(s), %.1f s (+%.1f s warm-up)\n",
        spec.concurrency, spec.connections, r->measured_s, spec.warmup_s);
    std::printf("  sagas         %llu completed, %llu not completed, %llu errors%s%s\n",
                static_cast<unsigned long long>(r->committed),
                static_cast<unsigned long long>(r->aborted),
                static_cast<unsigned long long>(r->errors), r->errors ? " (first: " : "",
                r->errors ? (r->first_error + ")").c_str() : "");
    std::printf("  throughput    %.0f sagas/s\n", r->TxPerSecond());
    std::printf("  latency ms    p50 %.2f  p90 %.2f  p99 %.2f  p999 %.2f  max %.2f\n",
                r->LatencyMs(0.5), r->LatencyMs(0.9), r->LatencyMs(0.99), r->LatencyMs(0.999),
                r->LatencyMs(1.0));
  }
  if (r->committed + r->aborted == 0) {
    std::cerr << "error: no saga was answered"
              << (r->first_error.empty() ? "" : ": " + r->first_error) << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  TwoPcLoadOptions options;
  options.seed = treaty::EntropySeed();
  std::string admin;
  std::string services = "bank-a,bank-b";
  std::string output = "text";

  CLI::App app{"treaty-bench - load generator for treatyd"};
  app.require_subcommand(1);
  auto* twopc =
      app.add_subcommand("2pc", "Closed-loop 2PC transfers (debit 1 at A, credit 1 at B)");
  twopc
      ->add_option("--coordinator", options.coordinator,
                   "treatyd client address host:port, or a cluster's, comma-separated")
      ->required();
  twopc->add_option("--concurrency,-c", options.concurrency, "Clients (one submission each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  twopc->add_option("--connections", options.connections, "TCP connections per coordinator address")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  twopc->add_option("--duration,-d", options.duration_s, "Measured seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  twopc->add_option("--warmup", options.warmup_s, "Unmeasured warm-up seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  twopc->add_option("--admin", admin, "treatyd admin address host:port (scrapes /metrics)");
  twopc
      ->add_option("--accounts-per-bank", options.accounts_per_bank,
                   "Accounts acct0..acct<K-1> at each service")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  twopc->add_option("--services", services, "Debit and credit services, comma-separated")
      ->capture_default_str();
  twopc->add_option("--timeout-ms", options.call_timeout_ms, "Deadline of one submission")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  twopc->add_option("--seed", options.seed, "Seed of the account choice (default: random)");
  twopc->add_option("--output,-o", output, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  treaty::bench::LoadSpec saga_spec;
  saga_spec.seed = options.seed;
  auto* saga_cmd = app.add_subcommand("saga", "Closed-loop 3-step order sagas (wait for the end)");
  saga_cmd
      ->add_option("--coordinator", saga_spec.coordinator,
                   "treatyd client address host:port, or a cluster's, comma-separated")
      ->required();
  saga_cmd->add_option("--concurrency,-c", saga_spec.concurrency, "Clients (one saga each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  saga_cmd->add_option("--connections", saga_spec.connections, "TCP connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  saga_cmd->add_option("--duration,-d", saga_spec.duration_s, "Measured seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  saga_cmd->add_option("--warmup", saga_spec.warmup_s, "Unmeasured warm-up seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  saga_cmd->add_option("--timeout-ms", saga_spec.call_timeout_ms, "Deadline of one saga")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  saga_cmd->add_option("--output,-o", output, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  treaty::bench::WaitInstancesOptions wait_instances;
  auto* services_cmd = app.add_subcommand(
      "services", "Wait until exactly N instances of a service are live, then list them");
  services_cmd
      ->add_option("--coordinator", wait_instances.coordinator,
                   "treatyd client address host:port, or a cluster's, comma-separated")
      ->required();
  services_cmd->add_option("--service", wait_instances.service, "Service name")->required();
  services_cmd->add_option("--live", wait_instances.live, "Live instances wanted")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  services_cmd->add_option("--wait-ms", wait_instances.wait_ms, "How long to wait")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (services_cmd->parsed()) {
    treaty::SetupLogging("treaty-bench", "warn");
    auto listing = treaty::bench::WaitForLiveInstances(wait_instances);
    if (!listing.ok()) {
      std::cerr << "error: " << listing.status().message() << "\n";
      return kExitFailed;
    }
    std::cout << *listing;
    return kExitOk;
  }
  if (saga_cmd->parsed()) return RunSagaBench(saga_spec, output);
  const size_t comma = services.find(',');
  if (comma == std::string::npos || comma == 0 || comma + 1 == services.size()) {
    std::cerr << "error: --services wants two names, e.g. bank-a,bank-b\n";
    return kExitUsage;
  }
  options.debit_service = services.substr(0, comma);
  options.credit_service = services.substr(comma + 1);
  treaty::SetupLogging("treaty-bench", "warn");

  std::optional<CoordinatorCounters> before;
  std::optional<CoordinatorCounters> after;
  std::string scrape_error;
  auto scrape = [&](std::optional<CoordinatorCounters>& into) {
    if (admin.empty()) return;
    auto c = treaty::bench::ScrapeCoordinator(admin);
    if (c.ok()) {
      into = *c;
    } else if (scrape_error.empty()) {
      scrape_error = c.status().ToString();
    }
  };
  double cpu_start = 0;
  double cpu_end = 0;
  auto result = treaty::bench::RunTwoPcLoad(
      options,
      [&] {
        cpu_start = OwnCpuSeconds();
        scrape(before);
      },
      [&] {
        cpu_end = OwnCpuSeconds();
        scrape(after);
      });
  if (!result.ok()) {
    std::cerr << "error: " << result.status().ToString() << "\n";
    return result.status().code() == treaty::StatusCode::kInvalidArgument ? kExitUsage
                                                                          : kExitFailed;
  }
  std::optional<PerTx> per_tx;
  if (before && after) per_tx = Derive(after->Minus(*before));

  if (output == "json") {
    std::cout << ToJson(options, *result, per_tx, cpu_end - cpu_start).dump(2) << "\n";
  } else {
    PrintText(options, *result, per_tx, cpu_end - cpu_start);
  }
  if (!scrape_error.empty()) {
    std::cerr << "error: metrics: " << scrape_error << "\n";
    return kExitFailed;
  }
  if (result->committed + result->aborted == 0) {
    std::cerr << "error: no submission was answered"
              << (result->first_error.empty() ? "" : ": " + result->first_error) << "\n";
    return kExitFailed;
  }
  return kExitOk;
}
