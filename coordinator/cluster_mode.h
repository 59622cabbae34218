// The coordinator's side of cluster mode (treatyd --node-id/--raft/--peers, log/log.h
// ClusterOptions): which requests this coordinator may answer, the redirect (net::NotLeader) for
// the others, the ClusterStatus RPC and /readyz, and treatyd's cluster flags.
//
// A coordinator is started either as the leader (the node is the serving Raft leader; it runs the
// protocol cores) or as a follower (it serves the read model's queries and redirects everything
// else). treatyd replaces the coordinator whenever the node's role changes; a coordinator never
// changes mode in place. Each leader records its client address in the log's meta under
// ClientAddressKey(id), so every node can name the leader's client address.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"
#include "coordinator/admin_http.h"
#include "log/log.h"
#include "treaty/v1/coordinator.pb.h"

namespace asio {
class io_context;
}

namespace treaty::net {
class RpcServer;
}

namespace treaty::coordinator {

// Most voters in a cluster: Raft needs a majority for every write, so more nodes only add latency
// (3 or 5 is the usual size; 7 tolerates 3 failures).
inline constexpr size_t kMaxClusterPeers = 7;

// Meta key holding the client API address of node id ("node/<id>/client_address").
std::string ClientAddressKey(uint64_t node_id);

// treatyd's cluster flags as given; nullopt = flag absent.
struct ClusterFlags {
  std::optional<uint64_t> node_id;              // --node-id N
  std::optional<std::string> raft;              // --raft HOST:PORT (this node's Raft transport)
  std::optional<std::string> peers;             // --peers 1=HOST:PORT,2=HOST:PORT,...
  std::optional<uint32_t> election_timeout_ms;  // --election-timeout-ms (default 500)
  std::optional<uint32_t> heartbeat_ms;         // --heartbeat-ms (default 50)
  bool join = false;                            // --join: wait to be added, never bootstrap
};

// The log's cluster options for treatyd's flags: nullopt when none of the cluster flags is given
// (single node), else options with raft_dir = <data_dir>/raft. INVALID_ARGUMENT, with a message
// naming the flag, when only some of --node-id/--raft/--peers are given, a timing flag is given
// without them, a peer entry is not ID=HOST:PORT, ids repeat or are 0, there are more than
// kMaxClusterPeers peers, the node id is not among the peers, --raft differs from the node's
// entry in --peers, the heartbeat is not shorter than the election timeout, or --join is given
// without the cluster flags. With --join only the node's own entry of --peers is used.
Result<std::optional<log::ClusterOptions>> ClusterOptionsFromFlags(const ClusterFlags& flags,
                                                                   const std::string& data_dir);

// Decides whether this coordinator may act as the leader, and answers for it when it may not.
// Thread-safe (reads only the log's thread-safe cluster state and meta).
class ClusterGate {
 public:
  // The client API address of a node by id, "" if unknown.
  using AddressOf = std::function<std::string(uint64_t node_id)>;

  // follower: the coordinator runs in follower mode. Otherwise it may act as the leader only in
  // the Raft term that is serving at construction (or always, on a single-node log).
  // address_of: empty = the address recorded in the log's meta under ClientAddressKey.
  ClusterGate(const log::EventLog& log, bool follower, AddressOf address_of);

  // OK on a single node (unless follower), and on the leader coordinator while the node is the
  // serving leader of the term the coordinator started in; NotLeader() otherwise.
  Status CheckServing() const;
  // net::NotLeader for this node, hinting the leader's client address when known.
  Status NotLeader() const;
  // True when an append failed because this node lost the leadership (cluster mode, UNAVAILABLE,
  // and the log did not stop after a local write failure): the outcome is unknown, and the new
  // leader, not this coordinator, finishes the transaction.
  bool LeadershipLost(const Status& append_status) const;
  // True with a Raft-replicated log.
  bool clustered() const { return !single_; }

  // The answer to coordinator.ClusterStatus.
  v1::ClusterStatusResponse Describe() const;
  // The log's current configuration, with client addresses where known.
  void DescribeNodes(google::protobuf::RepeatedPtrField<v1::ClusterNode>* nodes) const;
  // GET /readyz: 200 "ready" where CheckServing is OK, else 503 naming the leader.
  HttpReply Readiness() const;

 private:
  std::string ClientAddressOf(uint64_t node_id) const;

  const log::EventLog& log_;
  AddressOf address_of_;
  bool follower_ = false;
  bool single_ = false;
  std::optional<uint64_t> serving_term_;  // leader mode: the term this coordinator acts in
};

// Registers coordinator.ClusterStatus on server (REQUIRES: before Listen); gate must outlive it.
void ServeClusterStatus(net::RpcServer& server, const ClusterGate& gate);

// Registers coordinator.ChangeMembership on the leader coordinator's server (REQUIRES: before
// Listen): checks gate.CheckServing, records the optional client address, runs the change on
// log and answers from io once it finished (log completes it on its Raft thread, which must not
// touch the coordinator). gate, log and io must outlive server.
void ServeChangeMembership(net::RpcServer& server, asio::io_context& io, const ClusterGate& gate,
                           log::EventLog& log);

// Registers every method of the client API except the read model's ListTransactions, Stats and
// Watch (and ClusterStatus) to answer gate.NotLeader(): the follower's handlers. REQUIRES: before
// Listen, after ReadSide::Attach (it replaces the read side's GetTransaction and
// RebuildReadModel, which belong to the leader).
void ServeNotLeader(net::RpcServer& server, const ClusterGate& gate);

// Counts log callbacks (Append, Barrier) that have not run yet, so that their owner can wait for
// them before it is destroyed: a shared cluster log outlives the coordinator and would otherwise
// complete appends into a destroyed one. Thread-safe.
class PendingCallbacks {
 public:
  PendingCallbacks() = default;
  PendingCallbacks(const PendingCallbacks&) = delete;
  PendingCallbacks& operator=(const PendingCallbacks&) = delete;

  // done, counted until it has returned.
  log::AppendDone Track(log::AppendDone done);
  // Blocks until every tracked callback has returned.
  void WaitIdle();

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  uint64_t pending_ = 0;  // guarded by mu_
};

}  // namespace treaty::coordinator
