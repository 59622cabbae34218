// `treaty cluster status`: what every coordinator node says about the cluster (ClusterStatus).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::cli {

// Most time one node may take to answer ClusterStatus, milliseconds (--timeout-ms lowers it): a
// node that does not answer by then is shown as unreachable.
inline constexpr int64_t kClusterStatusTimeoutMs = 2000;

// One address of --coordinator and its answer.
struct NodeReport {
  std::string address;
  std::optional<v1::ClusterStatusResponse> status;  // nullopt: no status from this node
  // Why not: UNAVAILABLE or DEADLINE_EXCEEDED when the node did not answer (unreachable), else
  // the error it answered (e.g. NOT_FOUND from a treatyd without ClusterStatus).
  Status error;
};

// Asks every address at once, each with a deadline of timeout_ms; reports in address order.
std::vector<NodeReport> FetchClusterStatus(const std::vector<std::string>& addresses,
                                           int64_t timeout_ms);

// Prints the reports as a table (node id, address, role, serving, term, leader id, commit and
// applied index, lag = highest commit index seen - applied index; "unreachable" or "error" and
// the reason for a node without a status) or as JSON, and returns the exit code: kExitOk if a
// node answered as a serving leader ("leader", or "single" for a node without Raft), else
// kExitUnreachable, with "no coordinator reachable" (no node answered at all) or "no leader" on
// err.
int PrintClusterStatus(const std::vector<NodeReport>& nodes, const std::string& output,
                       std::ostream& out, std::ostream& err);

// `treaty cluster status`: FetchClusterStatus over global.coordinators, then PrintClusterStatus.
int ClusterStatus(const GlobalOptions& global, std::ostream& out, std::ostream& err);

// `treaty cluster add-node ID RAFT_ADDR [--client-address A]` and `treaty cluster remove-node
// ID`: coordinator.ChangeMembership on the leader (found as for every call), within
// global.timeout_ms. Prints the configuration after the change (table or JSON). Exit codes as
// ExitCodeFor: 0 done, 5 refused (e.g. another change in progress, the last voter), 6 no leader
// reachable, 4 no answer in time (the change may still complete: check `treaty cluster status`).
int ClusterAddNode(const GlobalOptions& global, uint64_t id, const std::string& raft_address,
                   const std::string& client_address, std::ostream& out, std::ostream& err);
int ClusterRemoveNode(const GlobalOptions& global, uint64_t id, std::ostream& out,
                      std::ostream& err);
// Prints a ChangeMembership answer (exposed for tests).
void PrintMembership(const v1::ChangeMembershipResponse& resp, const std::string& output,
                     std::ostream& out);

}  // namespace treaty::cli
