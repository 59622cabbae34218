// bank-participant: a bank-account service that takes part in Treaty transactions.
//
//   bank-participant --service bank-a --listen 127.0.0.1:7101 --coordinator 127.0.0.1:7000[,...]
//                    --data-dir /tmp/bank-a --accounts alice=100,bob=50 [--log-level info]
//                    [--fault none|fail|hang|slow [--fault-delay-ms N]]
//   bank-participant balances --listen 127.0.0.1:7101 [--output json|table]
//   bank-participant fault --listen 127.0.0.1:7101 --mode none|fail|hang|slow [--delay-ms N]
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/logging.h"
#include "examples/bank/bank.h"
#include "examples/bank/fault.h"
#include "net/rpc.h"
#include "participant/participant.h"

namespace {

// Deadline of the balances call, milliseconds.
constexpr int64_t kBalancesTimeoutMs = 3000;
// Deadline of the fault call, milliseconds. The control method does not queue behind handlers,
// so it answers promptly even from a hanging participant.
constexpr int64_t kFaultTimeoutMs = 3000;
// Fault modes accepted on the command line (examples/bank/fault.h).
const std::vector<std::string> kFaultModes = {"none", "fail", "hang", "slow"};

// The fault setting named by a mode flag and an optional delay flag; prints the error and
// returns nullopt if the delay is out of range.
std::optional<treaty::bank::FaultSetting> FaultFromFlags(const std::string& mode,
                                                         const CLI::Option* delay_flag,
                                                         int64_t delay_ms) {
  std::optional<int64_t> delay;
  if (delay_flag->count() > 0) delay = delay_ms;
  treaty::Result<treaty::bank::FaultSetting> setting = treaty::bank::MakeFaultSetting(mode, delay);
  if (!setting.ok()) {
    std::cerr << "bank-participant: " << setting.status().message() << "\n";
    return std::nullopt;
  }
  return *setting;
}

int RunFault(const std::string& address, const treaty::bank::FaultSetting& setting) {
  treaty::net::RpcClient client;
  treaty::Result<std::string> reply =
      client.Call(address, treaty::bank::kSetFaultMethod, treaty::bank::FaultSettingJson(setting),
                  kFaultTimeoutMs);
  if (!reply.ok()) {
    std::cerr << "bank-participant: cannot set the fault mode of " << address << ": "
              << reply.status().ToString() << "\n";
    return 1;
  }
  std::cout << *reply << "\n";
  return 0;
}

int RunBalances(const std::string& address, const std::string& output) {
  treaty::net::RpcClient client;
  treaty::Result<std::string> reply =
      client.Call(address, treaty::bank::kBalancesMethod, "", kBalancesTimeoutMs);
  if (!reply.ok()) {
    std::cerr << "bank-participant: cannot get balances from " << address << ": "
              << reply.status().ToString() << "\n";
    return 1;
  }
  treaty::Result<treaty::bank::Balances> balances = treaty::bank::ParseBalancesJson(*reply);
  if (!balances.ok()) {
    std::cerr << "bank-participant: " << address
              << " sent an unexpected reply: " << balances.status().ToString() << "\n";
    return 1;
  }
  if (output == "table") {
    std::cout << treaty::bank::BalancesTable(*balances);
  } else {
    std::cout << treaty::bank::BalancesJson(*balances) << "\n";
  }
  return 0;
}

int RunParticipant(treaty::participant::ParticipantOptions options, const std::string& accounts,
                   const std::string& log_level, treaty::bank::FaultSetting fault) {
  treaty::SetupLogging("bank-participant", log_level);
  treaty::Result<treaty::bank::Balances> initial = treaty::bank::ParseAccounts(accounts);
  if (!initial.ok()) {
    spdlog::error("--accounts: {}", initial.status().ToString());
    return 2;
  }
  // Block the stop signals in every thread (threads inherit the mask) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const std::string service = options.service;
  treaty::participant::Participant participant(std::move(options));
  auto faults = std::make_shared<treaty::bank::FaultInjector>(fault);
  if (fault.mode != treaty::bank::FaultMode::kNone) {
    spdlog::warn("bank-participant service={} starts with injected fault mode={} delay_ms={}",
                 service, treaty::bank::FaultModeName(fault.mode), fault.delay_ms);
  }
  treaty::bank::InstallBank(participant, std::move(*initial), faults);
  treaty::Status started = participant.Start();
  if (!started.ok()) {
    spdlog::error("bank-participant service={} cannot start: {}", service, started.ToString());
    return 1;
  }
  spdlog::info("bank-participant service={} listening on {}", service, participant.address());
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("bank-participant service={} stopping on signal {}", service, signal_number);
  faults->Shutdown();  // releases a hanging handler, which Stop would otherwise wait for
  participant.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bank-participant: a bank-account service taking part in Treaty transactions"};
  treaty::participant::ParticipantOptions options;
  std::string accounts;
  std::string log_level = "info";
  app.add_option("--service", options.service, "Service name, e.g. bank-a");
  app.add_option("--listen", options.listen, "host:port to serve on")->capture_default_str();
  app.add_option("--coordinator", options.coordinator,
                 "Coordinator host:port, or a cluster's addresses comma-separated");
  app.add_option("--weight", options.weight, "Share of new branches under weighted balancing")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10'000u));
  app.add_option("--data-dir", options.data_dir, "Directory of this participant's RocksDB");
  app.add_option("--accounts", accounts,
                 "Initial balances for a new data dir, e.g. alice=100,bob=50");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  std::string start_fault = "none";
  int64_t start_fault_delay_ms = 0;
  app.add_option("--fault", start_fault,
                 "Injected fault from the start: none, fail, hang or slow (see README)")
      ->check(CLI::IsMember(kFaultModes))
      ->capture_default_str();
  CLI::Option* start_fault_delay =
      app.add_option("--fault-delay-ms", start_fault_delay_ms,
                     "Wait of hang / slow, ms (default: hang 600000, slow 100)");

  std::string balances_address;
  std::string output = "json";
  CLI::App* balances = app.add_subcommand("balances", "Print a running participant's balances");
  balances->add_option("--listen", balances_address, "host:port of the participant")->required();
  balances->add_option("--output", output, "json or table")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str();

  std::string fault_address;
  std::string fault_mode;
  int64_t fault_delay_ms = 0;
  CLI::App* fault = app.add_subcommand(
      "fault", "Make a running participant fail, hang or slow down (or recover)");
  fault->add_option("--listen", fault_address, "host:port of the participant")->required();
  fault->add_option("--mode", fault_mode, "none, fail, hang or slow")
      ->check(CLI::IsMember(kFaultModes))
      ->required();
  CLI::Option* fault_delay = fault->add_option(
      "--delay-ms", fault_delay_ms, "Wait of hang / slow, ms (default: hang 600000, slow 100)");
  app.require_subcommand(0, 1);

  CLI11_PARSE(app, argc, argv);
  if (balances->parsed()) return RunBalances(balances_address, output);
  if (fault->parsed()) {
    std::optional<treaty::bank::FaultSetting> setting =
        FaultFromFlags(fault_mode, fault_delay, fault_delay_ms);
    return setting ? RunFault(fault_address, *setting) : 2;
  }
  if (options.service.empty() || options.data_dir.empty() || options.coordinator.empty()) {
    std::cerr << "bank-participant: --service, --coordinator and --data-dir are required\n"
              << app.help();
    return 2;
  }
  std::optional<treaty::bank::FaultSetting> start_setting =
      FaultFromFlags(start_fault, start_fault_delay, start_fault_delay_ms);
  if (!start_setting) return 2;
  return RunParticipant(std::move(options), accounts, log_level, *start_setting);
}
