// order-participant: one of the order saga's services (inventory, payment or shipping) taking part
// in Treaty sagas.
//
//   order-participant --service inventory|payment|shipping --listen 127.0.0.1:7201
//                     --coordinator 127.0.0.1:7000[,...] --data-dir /tmp/inventory
//                     [--stock widget=10,...] [--credit-limit 1000] [--fail-action NAME]...
//                     [--advertise HOST:PORT] [--log-level info]
//   order-participant state --listen 127.0.0.1:7201
//   order-participant fault --listen 127.0.0.1:7202 --action charge --mode none|refuse|fail
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/logging.h"
#include "examples/order/fault.h"
#include "examples/order/order.h"
#include "net/rpc.h"
#include "participant/participant.h"

namespace {

// Deadline of the state and fault calls, milliseconds.
constexpr int64_t kCallTimeoutMs = 3000;

int RunCall(const std::string& address, const char* method, const std::string& payload,
            const char* what) {
  treaty::net::RpcClient client;
  treaty::Result<std::string> reply = client.Call(address, method, payload, kCallTimeoutMs);
  if (!reply.ok()) {
    std::cerr << "order-participant: cannot " << what << " of " << address << ": "
              << reply.status().ToString() << "\n";
    return 1;
  }
  std::cout << *reply << "\n";
  return 0;
}

int RunParticipant(treaty::participant::ParticipantOptions options,
                   treaty::order::OrderOptions order, const std::vector<std::string>& fail_actions,
                   const std::string& log_level) {
  treaty::SetupLogging("order-participant", log_level);
  std::shared_ptr<treaty::order::OrderFaults> faults = treaty::order::MakeFaults(order.service);
  for (const std::string& action : fail_actions) {
    treaty::Status set = faults->Set(action, treaty::order::FaultMode::kRefuse);
    if (!set.ok()) {
      spdlog::error("--fail-action: {}", set.message());
      return 2;
    }
    spdlog::warn("order-participant service={} refuses every {} (--fail-action)", options.service,
                 action);
  }
  // Block the stop signals in every thread (threads inherit the mask) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const std::string service = options.service;
  treaty::participant::Participant participant(std::move(options));
  treaty::Status installed =
      treaty::order::InstallOrderService(participant, std::move(order), faults);
  if (!installed.ok()) {
    spdlog::error("order-participant: {}", installed.ToString());
    return 2;
  }
  treaty::Status started = participant.Start();
  if (!started.ok()) {
    spdlog::error("order-participant service={} cannot start: {}", service, started.ToString());
    return 1;
  }
  spdlog::info("order-participant service={} listening on {}", service, participant.address());
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("order-participant service={} stopping on signal {}", service, signal_number);
  participant.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"order-participant: an order saga service (inventory, payment or shipping)"};
  treaty::participant::ParticipantOptions options;
  std::string service;
  std::string stock;
  int64_t credit_limit = treaty::order::kDefaultCreditLimit;
  std::vector<std::string> fail_actions;
  std::string log_level = "info";
  app.add_option("--service", service, "inventory, payment or shipping")
      ->check(CLI::IsMember({"inventory", "payment", "shipping"}));
  app.add_option("--listen", options.listen, "host:port to serve on")->capture_default_str();
  app.add_option("--coordinator", options.coordinator,
                 "Coordinator host:port, or a cluster's addresses comma-separated");
  app.add_option("--advertise", options.advertise,
                 "host:port the coordinator is told to call (default: the --listen address), "
                 "e.g. a proxy in front of this service");
  app.add_option("--data-dir", options.data_dir, "Directory of this participant's RocksDB");
  app.add_option("--stock", stock, "inventory: initial stock for a new data dir, e.g. widget=10");
  app.add_option("--credit-limit", credit_limit, "payment: largest amount one charge may take")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, treaty::order::kMaxAmount));
  app.add_option("--fail-action", fail_actions,
                 "Refuse this action (business failure) from the start; repeatable");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  std::string state_address;
  CLI::App* state = app.add_subcommand("state", "Print a running service's state as JSON");
  state->add_option("--listen", state_address, "host:port of the service")->required();

  std::string fault_address;
  std::string fault_action;
  std::string fault_mode;
  CLI::App* fault = app.add_subcommand(
      "fault", "Make an action of a running service refuse, or an operation fail (or recover)");
  fault->add_option("--listen", fault_address, "host:port of the service")->required();
  fault->add_option("--action", fault_action, "An action or compensation of the service")
      ->required();
  fault->add_option("--mode", fault_mode, "none, refuse or fail")
      ->check(CLI::IsMember({"none", "refuse", "fail"}))
      ->required();
  app.require_subcommand(0, 1);

  CLI11_PARSE(app, argc, argv);
  if (state->parsed()) {
    return RunCall(state_address, treaty::order::kStateMethod, "", "get the state");
  }
  if (fault->parsed()) {
    treaty::Result<treaty::order::FaultMode> mode = treaty::order::ParseFaultMode(fault_mode);
    if (!mode.ok()) {
      std::cerr << "order-participant: " << mode.status().message() << "\n";
      return 2;
    }
    return RunCall(fault_address, treaty::order::kSetFaultMethod,
                   treaty::order::FaultRequestJson(fault_action, *mode), "set a fault");
  }
  if (service.empty() || options.data_dir.empty() || options.coordinator.empty()) {
    std::cerr << "order-participant: --service, --coordinator and --data-dir are required\n"
              << app.help();
    return 2;
  }
  treaty::order::OrderOptions order;
  order.service = *treaty::order::ParseService(service);  // checked by CLI11 above
  order.credit_limit = credit_limit;
  treaty::Result<treaty::order::Stock> parsed_stock = treaty::order::ParseStock(stock);
  if (!parsed_stock.ok()) {
    std::cerr << "order-participant: --stock: " << parsed_stock.status().message() << "\n";
    return 2;
  }
  if (!parsed_stock->empty() && order.service != treaty::order::Service::kInventory) {
    std::cerr << "order-participant: --stock applies to the inventory service only\n";
    return 2;
  }
  order.stock = std::move(*parsed_stock);
  options.service = service;
  return RunParticipant(std::move(options), std::move(order), fail_actions, log_level);
}
