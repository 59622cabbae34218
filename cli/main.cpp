// treaty: the command-line client of a Treaty coordinator.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace treaty::cli;
  GlobalOptions global;
  std::string coordinators = "127.0.0.1:7700";
  if (const char* env = std::getenv("TREATY_COORDINATOR")) coordinators = env;

  CLI::App app{"treaty - submit and inspect Treaty transactions"};
  app.require_subcommand(1);
  app.add_option("--coordinator", coordinators,
                 "Coordinator address(es), comma-separated (env TREATY_COORDINATOR)")
      ->capture_default_str();
  app.add_option("--timeout-ms", global.timeout_ms, "Request budget (for --wait: the whole wait)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86'400'000}));
  app.add_option("--output,-o", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  SubmitOptions submit;
  auto* submit_cmd = app.add_subcommand("submit", "Submit a transaction");
  submit_cmd->require_subcommand(1);
  auto* twopc = submit_cmd->add_subcommand("2pc", "Submit a two-phase-commit transaction");
  twopc->add_option("-f,--file", submit.file, "Transaction JSON file (- for stdin)")->required();
  twopc->add_option("--xid", submit.xid, "Transaction id (idempotent resubmission)");
  twopc->add_flag("--wait", submit.wait, "Wait for the decision; exit 0 only if committed");
  twopc->add_option("--output,-o", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}));

  std::string xid;
  auto* tx_cmd = app.add_subcommand("tx", "Inspect transactions");
  tx_cmd->require_subcommand(1);
  auto* get = tx_cmd->add_subcommand("get", "Show one transaction");
  get->add_option("xid", xid, "Transaction id")->required();
  get->add_option("--output,-o", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  auto list = ParseAddressList(coordinators);
  if (!list.ok()) {
    std::cerr << "error: --coordinator: " << list.status().message() << "\n";
    return kExitUsage;
  }
  global.coordinators = *list;
  if (twopc->parsed()) return SubmitTwoPc(global, submit, std::cout, std::cerr);
  if (get->parsed()) return GetTransaction(global, xid, std::cout, std::cerr);
  return kExitUsage;
}
