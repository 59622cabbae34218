#include "coordinator/cluster_mode.h"

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <charconv>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string_view>

#include "net/leader.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "treaty/v1/methods.h"

namespace treaty::coordinator {
namespace {

constexpr uint32_t kDefaultElectionTimeoutMs = 500;
constexpr uint32_t kDefaultHeartbeatMs = 50;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "ID=HOST:PORT" -> peer. INVALID_ARGUMENT naming the entry.
Result<log::ClusterPeer> ParsePeer(std::string_view entry) {
  const std::string shown(entry);
  const size_t eq = entry.find('=');
  if (eq == std::string_view::npos) {
    return Status::InvalidArgument("--peers: '" + shown + "' is not ID=HOST:PORT");
  }
  const std::string_view id_text = Trim(entry.substr(0, eq));
  log::ClusterPeer peer;
  const auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), peer.id);
  if (id_text.empty() || ec != std::errc() || end != id_text.data() + id_text.size() ||
      peer.id == 0) {
    return Status::InvalidArgument("--peers: '" + shown + "': the node id must be an integer >= 1");
  }
  peer.raft_address = std::string(Trim(entry.substr(eq + 1)));
  std::string host;
  uint16_t port = 0;
  Status s = net::ParseAddress(peer.raft_address, &host, &port);
  if (!s.ok() || port == 0) {
    return Status::InvalidArgument("--peers: '" + shown + "': '" + peer.raft_address +
                                   "' is not a HOST:PORT with a non-zero port");
  }
  return peer;
}

}  // namespace

std::string ClientAddressKey(uint64_t node_id) {
  return "node/" + std::to_string(node_id) + "/client_address";
}

Result<std::optional<log::ClusterOptions>> ClusterOptionsFromFlags(const ClusterFlags& flags,
                                                                   const std::string& data_dir) {
  std::string missing;
  if (!flags.node_id) missing += " --node-id";
  if (!flags.raft) missing += " --raft";
  if (!flags.peers) missing += " --peers";
  const bool none = !flags.node_id && !flags.raft && !flags.peers;
  if (none) {
    if (flags.join) {
      return Status::InvalidArgument(
          "--join is a cluster flag: give it with --node-id, --raft and --peers");
    }
    if (flags.election_timeout_ms || flags.heartbeat_ms) {
      return Status::InvalidArgument(
          "--election-timeout-ms and --heartbeat-ms are cluster flags: give them with --node-id, "
          "--raft and --peers");
    }
    return std::optional<log::ClusterOptions>();
  }
  if (!missing.empty()) {
    return Status::InvalidArgument(
        "--node-id, --raft and --peers go together (cluster mode); missing:" + missing);
  }
  log::ClusterOptions out;
  out.node_id = *flags.node_id;
  if (out.node_id == 0) return Status::InvalidArgument("--node-id must be >= 1");
  std::set<uint64_t> ids;
  std::string_view list = *flags.peers;
  while (true) {
    const size_t comma = list.find(',');
    auto peer = ParsePeer(Trim(list.substr(0, comma)));
    if (!peer.ok()) return peer.status();
    if (!ids.insert(peer->id).second) {
      return Status::InvalidArgument("--peers: node id " + std::to_string(peer->id) +
                                     " appears twice");
    }
    out.peers.push_back(std::move(*peer));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (out.peers.size() > kMaxClusterPeers) {
    return Status::InvalidArgument("--peers: " + std::to_string(out.peers.size()) +
                                   " nodes; a cluster has at most " +
                                   std::to_string(kMaxClusterPeers) + " (3 or 5 is usual)");
  }
  const log::ClusterPeer* self = nullptr;
  for (const auto& p : out.peers) {
    if (p.id == out.node_id) self = &p;
  }
  if (self == nullptr) {
    return Status::InvalidArgument("--node-id " + std::to_string(out.node_id) +
                                   " is not one of the --peers");
  }
  if (std::string(Trim(*flags.raft)) != self->raft_address) {
    return Status::InvalidArgument("--raft " + *flags.raft + " differs from node " +
                                   std::to_string(out.node_id) + "'s entry in --peers (" +
                                   self->raft_address + "); give the same HOST:PORT in both");
  }
  out.election_timeout_ms = flags.election_timeout_ms.value_or(kDefaultElectionTimeoutMs);
  out.heartbeat_timeout_ms = flags.heartbeat_ms.value_or(kDefaultHeartbeatMs);
  if (out.heartbeat_timeout_ms == 0 || out.heartbeat_timeout_ms >= out.election_timeout_ms) {
    return Status::InvalidArgument(
        "--heartbeat-ms must be at least 1 and shorter than --election-timeout-ms (e.g. 50 and "
        "500)");
  }
  out.raft_dir = data_dir + "/raft";
  out.join = flags.join;
  return std::optional<log::ClusterOptions>(std::move(out));
}

ClusterGate::ClusterGate(const log::EventLog& log, bool follower, AddressOf address_of)
    : log_(log), address_of_(std::move(address_of)), follower_(follower) {
  const log::ClusterState state = log.cluster_state();
  single_ = state.role == log::ClusterRole::kSingle;
  // A leader coordinator acts only in the term it was started for: after another election its
  // in-memory state may be stale even if this node leads again (treatyd then replaces it).
  if (!single_ && !follower_ && state.role == log::ClusterRole::kLeader && state.serving) {
    serving_term_ = state.term;
  }
}

Status ClusterGate::CheckServing() const {
  if (follower_) return NotLeader();
  if (single_) return Status::Ok();
  if (serving_term_) {
    const log::ClusterState state = log_.cluster_state();
    if (state.role == log::ClusterRole::kLeader && state.serving && state.term == *serving_term_) {
      return Status::Ok();
    }
  }
  return NotLeader();
}

Status ClusterGate::NotLeader() const {
  const log::ClusterState state = log_.cluster_state();
  // A leader that is not serving (yet, or any more) hints nobody: the client retries.
  const bool other = state.leader_id != state.node_id || address_of_;
  return net::NotLeader(state.node_id, other ? ClientAddressOf(state.leader_id) : "");
}

bool ClusterGate::LeadershipLost(const Status& append_status) const {
  return !single_ && append_status.code() == StatusCode::kUnavailable &&
         !log_.stopped_after_failure();
}

std::string ClusterGate::ClientAddressOf(uint64_t node_id) const {
  if (address_of_) return address_of_(node_id);
  if (node_id == 0) return "";
  auto address = log_.GetMeta(ClientAddressKey(node_id));
  if (!address.ok()) {
    spdlog::debug("cluster: cannot read the client address of node {}: {}", node_id,
                  address.status().ToString());
    return "";
  }
  return address->value_or("");
}

v1::ClusterStatusResponse ClusterGate::Describe() const {
  const log::ClusterState state = log_.cluster_state();
  v1::ClusterStatusResponse resp;
  resp.set_node_id(state.node_id);
  resp.set_role(std::string(log::ClusterRoleName(state.role)));
  resp.set_serving(state.serving);
  resp.set_term(state.term);
  resp.set_leader_id(state.leader_id);
  if (state.leader_id != 0 || address_of_) {
    resp.set_leader_client_address(ClientAddressOf(state.leader_id));
  }
  resp.set_commit_index(state.commit_index);
  resp.set_applied_index(state.applied_index);
  resp.set_last_log_index(state.last_log_index);
  resp.set_last_lsn(log_.last_lsn());
  DescribeNodes(resp.mutable_nodes());
  return resp;
}

void ClusterGate::DescribeNodes(google::protobuf::RepeatedPtrField<v1::ClusterNode>* nodes) const {
  for (const auto& peer : log_.cluster_peers()) {
    auto* node = nodes->Add();
    node->set_id(peer.id);
    node->set_raft_address(peer.raft_address);
    node->set_client_address(ClientAddressOf(peer.id));
    node->set_role(std::string(log::ClusterMemberRoleName(peer.role)));
  }
}

HttpReply ClusterGate::Readiness() const {
  const Status serving = CheckServing();
  if (serving.ok()) return {200, "ready\n", "text/plain"};
  return {503, serving.message() + "\n", "text/plain"};
}

void ServeClusterStatus(net::RpcServer& server, const ClusterGate& gate) {
  server.Register(v1::methods::kClusterStatus,
                  [&gate](std::string payload, uint32_t, net::Responder respond) {
                    auto req = net::DecodeRequest<v1::ClusterStatusRequest>(payload);
                    if (!req.ok()) return respond(req.status());
                    respond(gate.Describe().SerializeAsString());
                  });
}

namespace {

// One ChangeMembership request waiting for the log: its result arrives on the Raft thread, which
// must not call into the coordinator (it may be gone by then), so the io thread looks for it.
struct MembershipWait : std::enable_shared_from_this<MembershipWait> {
  MembershipWait(asio::io_context& io, const ClusterGate& cluster_gate, net::Responder responder)
      : timer(io), gate(cluster_gate), respond(std::move(responder)) {}

  void Poll() {
    if (result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      timer.expires_after(std::chrono::milliseconds(20));
      timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        if (!ec) self->Poll();
      });
      return;
    }
    Status s = result.get();
    if (!s.ok()) return respond(s);
    v1::ChangeMembershipResponse resp;
    gate.DescribeNodes(resp.mutable_nodes());
    respond(resp.SerializeAsString());
  }

  asio::steady_timer timer;
  const ClusterGate& gate;
  net::Responder respond;
  std::future<Status> result;
};

}  // namespace

void ServeChangeMembership(net::RpcServer& server, asio::io_context& io, const ClusterGate& gate,
                           log::EventLog& log) {
  server.Register(v1::methods::kChangeMembership, [&io, &gate, &log](std::string payload, uint32_t,
                                                                     net::Responder respond) {
    auto req = net::DecodeRequest<v1::ChangeMembershipRequest>(payload);
    if (!req.ok()) return respond(req.status());
    if (Status s = gate.CheckServing(); !s.ok()) return respond(s);
    log::MembershipChange change;
    change.id = req->node_id();
    if (change.id == 0) return respond(Status::InvalidArgument("node_id must be >= 1"));
    switch (req->action()) {
      case v1::MEMBERSHIP_ACTION_ADD: {
        change.action = log::MembershipChange::Action::kAdd;
        change.raft_address = req->raft_address();
        std::string host;
        uint16_t port = 0;
        if (!net::ParseAddress(change.raft_address, &host, &port).ok() || port == 0) {
          return respond(Status::InvalidArgument("raft_address '" + change.raft_address +
                                                 "' is not a HOST:PORT with a non-zero port"));
        }
        if (!req->client_address().empty()) {
          // Replicated like every meta write: a few milliseconds on the leader.
          Status s = log.PutMeta(ClientAddressKey(change.id), req->client_address());
          if (!s.ok()) return respond(s);
        }
        break;
      }
      case v1::MEMBERSHIP_ACTION_REMOVE:
        change.action = log::MembershipChange::Action::kRemove;
        break;
      default:
        return respond(Status::InvalidArgument("action must be ADD or REMOVE"));
    }
    auto wait = std::make_shared<MembershipWait>(io, gate, std::move(respond));
    auto promise = std::make_shared<std::promise<Status>>();
    wait->result = promise->get_future();
    log.ChangeMembership(std::move(change),
                         [promise](Status s) { promise->set_value(std::move(s)); });
    wait->Poll();
  });
}

void ServeNotLeader(net::RpcServer& server, const ClusterGate& gate) {
  for (const char* method : {v1::methods::kSubmit, v1::methods::kSubmitSaga, v1::methods::kResolve,
                             v1::methods::kGetTransaction, v1::methods::kRegister,
                             v1::methods::kQueryOutcome, v1::methods::kListServices,
                             v1::methods::kRebuildReadModel, v1::methods::kChangeMembership}) {
    server.Register(method, [&gate](std::string, uint32_t, net::Responder respond) {
      respond(gate.NotLeader());
    });
  }
}

log::AppendDone PendingCallbacks::Track(log::AppendDone done) {
  {
    std::lock_guard lock(mu_);
    ++pending_;
  }
  return [this, done = std::move(done)](Status status, uint64_t last_lsn) {
    done(std::move(status), last_lsn);
    // Notified under the lock: WaitIdle's caller may destroy this object as soon as it can
    // take the lock.
    std::lock_guard lock(mu_);
    if (--pending_ == 0) idle_.notify_all();
  };
}

void PendingCallbacks::WaitIdle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return pending_ == 0; });
}

}  // namespace treaty::coordinator
