// bank-participant: a bank-account service that takes part in Treaty transactions.
//
//   bank-participant --service bank-a --listen 127.0.0.1:7101 --coordinator 127.0.0.1:7000
//                    --data-dir /tmp/bank-a --accounts alice=100,bob=50 [--log-level info]
//   bank-participant balances --listen 127.0.0.1:7101 [--output json|table]
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "common/logging.h"
#include "examples/bank/bank.h"
#include "net/rpc.h"
#include "participant/participant.h"

namespace {

// Deadline of the balances call, milliseconds.
constexpr int64_t kBalancesTimeoutMs = 3000;

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
                   const std::string& log_level) {
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
  treaty::bank::InstallBank(participant, std::move(*initial));
  treaty::Status started = participant.Start();
  if (!started.ok()) {
    spdlog::error("bank-participant service={} cannot start: {}", service, started.ToString());
    return 1;
  }
  spdlog::info("bank-participant service={} listening on {}", service, participant.address());
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("bank-participant service={} stopping on signal {}", service, signal_number);
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
  app.add_option("--coordinator", options.coordinator, "Coordinator host:port");
  app.add_option("--data-dir", options.data_dir, "Directory of this participant's RocksDB");
  app.add_option("--accounts", accounts,
                 "Initial balances for a new data dir, e.g. alice=100,bob=50");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  std::string balances_address;
  std::string output = "json";
  CLI::App* balances = app.add_subcommand("balances", "Print a running participant's balances");
  balances->add_option("--listen", balances_address, "host:port of the participant")->required();
  balances->add_option("--output", output, "json or table")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str();
  app.require_subcommand(0, 1);

  CLI11_PARSE(app, argc, argv);
  if (balances->parsed()) return RunBalances(balances_address, output);
  if (options.service.empty() || options.data_dir.empty() || options.coordinator.empty()) {
    std::cerr << "bank-participant: --service, --coordinator and --data-dir are required\n"
              << app.help();
    return 2;
  }
  return RunParticipant(std::move(options), accounts, log_level);
}
