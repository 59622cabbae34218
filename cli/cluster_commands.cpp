#include "cli/cluster_commands.h"

#include <algorithm>
#include <future>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>

#include "net/cluster_client.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "treaty/v1/methods.h"

namespace treaty::cli {
namespace {

using nlohmann::json;

bool IsServingLeader(const v1::ClusterStatusResponse& s) {
  return s.serving() && (s.role() == "leader" || s.role() == "single");
}

std::string IdOrDash(uint64_t id) { return id == 0 ? "-" : std::to_string(id); }

bool Unreachable(const NodeReport& n) {
  return !n.status && (n.error.code() == StatusCode::kUnavailable ||
                       n.error.code() == StatusCode::kDeadlineExceeded);
}

}  // namespace

std::vector<NodeReport> FetchClusterStatus(const std::vector<std::string>& addresses,
                                           int64_t timeout_ms) {
  net::RpcClient client;
  std::vector<std::future<Result<std::string>>> answers;
  for (const std::string& address : addresses) {
    auto answer = std::make_shared<std::promise<Result<std::string>>>();
    answers.push_back(answer->get_future());
    client.CallAsync(address, v1::methods::kClusterStatus,
                     v1::ClusterStatusRequest().SerializeAsString(), timeout_ms,
                     [answer](Result<std::string> r) { answer->set_value(std::move(r)); });
  }
  std::vector<NodeReport> reports;
  for (size_t i = 0; i < addresses.size(); ++i) {
    NodeReport report;
    report.address = addresses[i];
    auto status = net::Decode<v1::ClusterStatusResponse>(answers[i].get());
    if (status.ok()) {
      report.status = std::move(*status);
    } else {
      report.error = status.status();
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

int PrintClusterStatus(const std::vector<NodeReport>& nodes, const std::string& output,
                       std::ostream& out, std::ostream& err) {
  uint64_t max_commit = 0;
  bool any_answered = false;
  const NodeReport* leader = nullptr;
  for (const NodeReport& n : nodes) {
    if (!Unreachable(n)) any_answered = true;
    if (!n.status) continue;
    max_commit = std::max(max_commit, n.status->commit_index());
    // During a leader change an old leader may still believe it leads: the highest term wins.
    if (IsServingLeader(*n.status) &&
        (leader == nullptr || n.status->term() > leader->status->term())) {
      leader = &n;
    }
  }
  auto lag = [max_commit](const v1::ClusterStatusResponse& s) {
    return max_commit > s.applied_index() ? max_commit - s.applied_index() : 0;
  };

  if (output == "json") {
    json j = {{"nodes", json::array()}, {"leader", nullptr}};
    for (const NodeReport& n : nodes) {
      json node = {{"address", n.address}, {"reachable", !Unreachable(n)}};
      if (n.status) {
        node["status"] = json::parse(ToJson(*n.status));
        node["lag"] = lag(*n.status);
      } else {
        node["error"] = n.error.ToString();
      }
      j["nodes"].push_back(std::move(node));
    }
    if (leader != nullptr) j["leader"] = leader->address;
    out << j.dump() << "\n";
  } else {
    out << std::left << std::setw(6) << "NODE" << std::setw(22) << "ADDRESS" << std::setw(16)
        << "ROLE" << std::setw(9) << "SERVING" << std::setw(8) << "TERM" << std::setw(8) << "LEADER"
        << std::setw(10) << "COMMIT" << std::setw(10) << "APPLIED"
        << "LAG\n";
    for (const NodeReport& n : nodes) {
      out << std::left;
      if (!n.status) {
        out << std::setw(6) << "-" << std::setw(22) << n.address
            << (Unreachable(n) ? "unreachable (" : "error (") << n.error.ToString() << ")\n";
        continue;
      }
      const v1::ClusterStatusResponse& s = *n.status;
      // A member that is not (yet) a voter says so: "follower/spare".
      std::string role = s.role();
      for (const auto& member : s.nodes()) {
        if (member.id() == s.node_id() && !member.role().empty() && member.role() != "voter") {
          role += "/" + member.role();
        }
      }
      out << std::setw(6) << IdOrDash(s.node_id()) << std::setw(22) << n.address << std::setw(16)
          << role << std::setw(9) << (s.serving() ? "yes" : "no") << std::setw(8) << s.term()
          << std::setw(8) << IdOrDash(s.leader_id()) << std::setw(10) << s.commit_index()
          << std::setw(10) << s.applied_index() << lag(s) << "\n";
    }
  }
  if (!any_answered) {
    err << "error: no coordinator reachable\n";
    return kExitUnreachable;
  }
  if (leader == nullptr) {
    err << "error: no leader: no node answered as a serving leader (election in progress, or "
           "no majority up)\n";
    return kExitUnreachable;
  }
  return kExitOk;
}

namespace {

int ChangeMembership(const GlobalOptions& global, const v1::ChangeMembershipRequest& req,
                     const std::string& done, std::ostream& out, std::ostream& err) {
  // Not idempotent for the client's retry rule: an attempt that timed out may still complete,
  // and the caller should look before repeating (repeating one that took effect is harmless).
  net::ClusterClient client(global.coordinators, CoordinatorClientOptions());
  auto resp = net::Decode<v1::ChangeMembershipResponse>(CallCoordinator(
      client, global, v1::methods::kChangeMembership, req.SerializeAsString(), 0, false));
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    if (resp.status().code() == StatusCode::kDeadlineExceeded) {
      err << "the change may still complete: check with treaty cluster status\n";
    }
    return ExitCodeFor(resp.status());
  }
  if (global.output != "json") out << done << "\n";
  PrintMembership(*resp, global.output, out);
  return kExitOk;
}

}  // namespace

void PrintMembership(const v1::ChangeMembershipResponse& resp, const std::string& output,
                     std::ostream& out) {
  if (output == "json") {
    out << ToJson(resp) << "\n";
    return;
  }
  out << std::left << std::setw(6) << "NODE" << std::setw(22) << "RAFT ADDRESS" << std::setw(9)
      << "ROLE"
      << "CLIENT ADDRESS\n";
  for (const v1::ClusterNode& n : resp.nodes()) {
    out << std::left << std::setw(6) << n.id() << std::setw(22) << n.raft_address() << std::setw(9)
        << n.role() << (n.client_address().empty() ? "-" : n.client_address()) << "\n";
  }
}

int ClusterAddNode(const GlobalOptions& global, uint64_t id, const std::string& raft_address,
                   const std::string& client_address, std::ostream& out, std::ostream& err) {
  v1::ChangeMembershipRequest req;
  req.set_action(v1::MEMBERSHIP_ACTION_ADD);
  req.set_node_id(id);
  req.set_raft_address(raft_address);
  req.set_client_address(client_address);
  return ChangeMembership(global, req, "node " + std::to_string(id) + " is a voter", out, err);
}

int ClusterRemoveNode(const GlobalOptions& global, uint64_t id, std::ostream& out,
                      std::ostream& err) {
  v1::ChangeMembershipRequest req;
  req.set_action(v1::MEMBERSHIP_ACTION_REMOVE);
  req.set_node_id(id);
  return ChangeMembership(global, req,
                          "node " + std::to_string(id) +
                              " is no member any more: stop its treatyd now (it keeps campaigning)",
                          out, err);
}

int ClusterStatus(const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  const int64_t timeout_ms = std::min(global.timeout_ms, kClusterStatusTimeoutMs);
  return PrintClusterStatus(FetchClusterStatus(global.coordinators, timeout_ms), global.output, out,
                            err);
}

}  // namespace treaty::cli
