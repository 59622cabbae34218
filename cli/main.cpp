// treaty: the command-line client of a Treaty coordinator.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "cli/cluster_commands.h"
#include "cli/commands.h"
#include "cli/query_commands.h"
#include "cli/saga_commands.h"
#include "net/leader.h"

int main(int argc, char** argv) {
  using namespace treaty::cli;
  GlobalOptions global;
  std::string coordinators = "127.0.0.1:7700";
  if (const char* env = std::getenv("TREATY_COORDINATOR")) coordinators = env;

  CLI::App app{"treaty - submit and inspect Treaty transactions"};
  app.require_subcommand(1);
  app.add_option("--coordinator", coordinators,
                 "Coordinator address(es), comma-separated: one node or a cluster's nodes (env "
                 "TREATY_COORDINATOR)")
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

  auto* saga_cmd = submit_cmd->add_subcommand("saga", "Submit a saga");
  saga_cmd->add_option("-f,--file", submit.file, "Saga JSON file (- for stdin)")->required();
  saga_cmd->add_option("--xid", submit.xid, "Saga id (idempotent resubmission)");
  saga_cmd->add_flag("--wait", submit.wait,
                     "Wait for the end; exit 0 only if completed (3 compensated, 8 stuck)");
  saga_cmd->add_option("--output,-o", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}));

  auto add_output = [&global](CLI::App* cmd) {
    cmd->add_option("--output,-o", global.output, "Output format")
        ->check(CLI::IsMember({"table", "json"}));
  };
  std::string xid;
  auto* tx_cmd = app.add_subcommand("tx", "Inspect transactions");
  tx_cmd->require_subcommand(1);
  auto* get = tx_cmd->add_subcommand("get", "Show one transaction");
  get->add_option("xid", xid, "Transaction id")->required();
  add_output(get);

  ResolveOptions resolve;
  auto* resolve_cmd = tx_cmd->add_subcommand(
      "resolve", "Resolve a stuck saga or a 2PC transaction stuck in delivery");
  resolve_cmd->add_option("xid", resolve.xid, "Transaction id")->required();
  auto* retry_flag = resolve_cmd->add_flag(
      "--retry", resolve.retry,
      "Saga: retry the compensations now, with a fresh attempt budget. 2PC: redeliver the "
      "decision to every unacknowledged branch now, backoff reset");
  auto* mark_opt = resolve_cmd->add_option("--mark-compensated", resolve.mark_compensated,
                                           "Record saga step STEP as compensated by hand");
  auto* abort_flag = resolve_cmd->add_flag(
      "--abort", resolve.abort, "Compensate a running saga now, or abort a PREPARING 2PC one");
  retry_flag->excludes(mark_opt)->excludes(abort_flag);
  mark_opt->excludes(abort_flag);
  resolve_cmd->add_option("--reason", resolve.reason, "Why (recorded in the log)");
  add_output(resolve_cmd);

  ListOptions list_options;
  auto* list_cmd = tx_cmd->add_subcommand("list", "List transactions, newest change first");
  list_cmd->add_option("--state", list_options.state,
                       "preparing, committing, aborting, committed or aborted");
  list_cmd->add_option("--service", list_options.service, "Only transactions touching SERVICE");
  list_cmd->add_option("--mode", list_options.mode, "Only transactions of this mode (2pc or saga)");
  list_cmd->add_option("--since", list_options.since,
                       "Changed at or after T (RFC 3339, or ago: 10m, 2h)");
  list_cmd->add_option("--until", list_options.until, "Changed before T");
  list_cmd->add_option("--limit", list_options.limit, "Page size (default 50, at most 1000)")
      ->check(CLI::Range(1u, 1000u));
  list_cmd->add_option("--page-token", list_options.page_token, "Token printed by the last page");
  add_output(list_cmd);

  WatchOptions watch_options;
  auto* watch_cmd = tx_cmd->add_subcommand("watch", "Print transactions as they change");
  watch_cmd->add_option("--state", watch_options.state, "Only changes into this state");
  watch_cmd->add_option("--service", watch_options.service, "Only transactions touching SERVICE");
  watch_cmd->add_option("--count", watch_options.count, "Stop after N changes");
  watch_cmd->add_option("--for", watch_options.for_duration, "Stop after DURATION (30s, 5m)");
  add_output(watch_cmd);

  auto* stats_cmd = app.add_subcommand("stats", "Throughput, outcomes, latency, projector lag");
  auto* services_cmd = app.add_subcommand(
      "services", "Services and instances: lease age, breaker state, calls in flight");
  services_cmd->add_option("--output,-o", global.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}));
  add_output(stats_cmd);

  auto* cluster_cmd =
      app.add_subcommand("cluster", "Inspect the coordinator cluster and change its members");
  cluster_cmd->require_subcommand(1);
  auto* cluster_status_cmd = cluster_cmd->add_subcommand(
      "status", "Every node's role, term, commit/applied index and lag; exit 0 if a leader serves");
  add_output(cluster_status_cmd);
  uint64_t member_id = 0;
  std::string member_raft, member_client;
  auto* add_node_cmd = cluster_cmd->add_subcommand(
      "add-node",
      "Add a node (running treatyd --join) as a voter; waits until it caught up (--timeout-ms)");
  add_node_cmd->add_option("id", member_id, "The new node's id")
      ->required()
      ->check(CLI::Range(uint64_t{1}, UINT64_MAX));
  add_node_cmd->add_option("raft_address", member_raft, "Its Raft address HOST:PORT")->required();
  add_node_cmd->add_option("--client-address", member_client,
                           "Its client API address (else learned once it leads)");
  add_output(add_node_cmd);
  auto* remove_node_cmd = cluster_cmd->add_subcommand(
      "remove-node", "Remove a node from the configuration; stop its treatyd afterwards");
  remove_node_cmd->add_option("id", member_id, "The node's id")
      ->required()
      ->check(CLI::Range(uint64_t{1}, UINT64_MAX));
  add_output(remove_node_cmd);

  auto* admin_cmd = app.add_subcommand("admin", "Operate the coordinator");
  admin_cmd->require_subcommand(1);
  auto* rebuild_cmd = admin_cmd->add_subcommand(
      "rebuild-readmodel", "Rebuild the read model from the event log (waits up to 1 h)");
  add_output(rebuild_cmd);

  // Global options may also follow a subcommand (`treaty submit 2pc -f F --timeout-ms 5000`).
  std::vector<CLI::App*> pending = app.get_subcommands({});
  while (!pending.empty()) {
    CLI::App* sub = pending.back();
    pending.pop_back();
    sub->fallthrough();
    for (CLI::App* child : sub->get_subcommands({})) pending.push_back(child);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  auto list = treaty::net::ParseAddressList(coordinators);
  if (!list.ok()) {
    std::cerr << "error: --coordinator: " << list.status().message() << "\n";
    return kExitUsage;
  }
  global.coordinators = *list;
  if (twopc->parsed()) return SubmitTwoPc(global, submit, std::cout, std::cerr);
  if (saga_cmd->parsed()) return SubmitSaga(global, submit, std::cout, std::cerr);
  if (resolve_cmd->parsed()) return ResolveTransaction(global, resolve, std::cout, std::cerr);
  if (get->parsed()) return GetTransaction(global, xid, std::cout, std::cerr);
  if (list_cmd->parsed()) return ListTransactions(global, list_options, std::cout, std::cerr);
  if (watch_cmd->parsed()) return WatchTransactions(global, watch_options, std::cout, std::cerr);
  if (stats_cmd->parsed()) return ShowStats(global, std::cout, std::cerr);
  if (services_cmd->parsed()) return ListServices(global, std::cout, std::cerr);
  if (cluster_status_cmd->parsed()) return ClusterStatus(global, std::cout, std::cerr);
  if (add_node_cmd->parsed()) {
    return ClusterAddNode(global, member_id, member_raft, member_client, std::cout, std::cerr);
  }
  if (remove_node_cmd->parsed()) {
    return ClusterRemoveNode(global, member_id, std::cout, std::cerr);
  }
  if (rebuild_cmd->parsed()) {
    // A rebuild outlasts the usual request budget unless --timeout-ms was given.
    const bool timeout_given = app.get_option("--timeout-ms")->count() > 0;
    return RebuildReadModel(global, timeout_given ? global.timeout_ms : 3'600'000, std::cout,
                            std::cerr);
  }
  return kExitUsage;
}
