// Private to log/: one member of a Raft cluster (Debian's libraft 0.15 with its libuv disk and TCP
// I/O), running on a thread of its own. It knows nothing of Treaty's records: entries and
// snapshots are bytes, applied by a RaftHost.
//
// Threads: libraft is single-threaded. Every libraft call and every RaftHost method runs on the
// node's raft thread (a uv loop). Other threads only call Wake() and read the published state.
//
// Why these settings (measured, see docs in the README "Cluster" section): TCP_NODELAY on every
// peer connection (the stock transport leaves Nagle on, which stalls pipelined appends by ~40 ms),
// pre-vote (a partitioned node rejoining with a higher term does not depose a healthy leader),
// SIGPIPE ignored (a write to a dead peer would otherwise kill the process).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "log/log.h"

namespace treaty::log::internal {

// The state machine behind a RaftNode. Every method runs on the raft thread.
class RaftHost {
 public:
  virtual ~RaftHost() = default;
  // Applies a committed entry (every node applies every entry, in index order). A non-OK status is
  // a local failure (e.g. the disk): the node stops applying and reports it (fail-stop).
  virtual Status Apply(uint64_t index, std::string_view entry) = 0;
  // The whole applied state, for a snapshot (taken as of the last applied entry).
  virtual Result<std::string> Snapshot() = 0;
  // Replaces the whole applied state with a snapshot's (at startup, or sent by the leader).
  virtual Status Restore(std::string_view snapshot) = 0;
  // Called after Wake() and whenever a proposal completed: propose what is queued (Propose).
  virtual void OnProposable() = 0;
  // A proposal with this tag was not applied here: refused, or leadership was lost before it
  // committed (its outcome is then unknown: a later leader may still commit it).
  virtual void OnProposalFailed(uint64_t tag, const Status& status) = 0;
  // Called when this node stops being the serving leader (deposed, or shutting down).
  virtual void OnLeadershipLost() = 0;
};

class RaftNode {
 public:
  // Starts the node: creates options.raft_dir, bootstraps it with options.peers when it holds no
  // Raft state yet (never with options.join), and starts the raft thread. Errors:
  // INVALID_ARGUMENT for bad options, UNAVAILABLE when the directory or the Raft address cannot be
  // used.
  static Result<std::unique_ptr<RaftNode>> Start(const ClusterOptions& options, RaftHost* host);

  // Stops the node (Stop()).
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Closes Raft and joins the raft thread. The host's OnLeadershipLost runs first if it led.
  // Callers should let proposals drain first (libraft 0.15 may double-free on close with
  // unpersisted appends).
  void Stop();

  // Any thread: run host->OnProposable() on the raft thread soon (coalesces).
  void Wake();

  // Raft thread only (from a RaftHost method). Proposes entry; the host sees it in Apply (with its
  // own bytes, so it matches them to its callers) or gets OnProposalFailed(tag).
  // UNAVAILABLE when this node is not the serving leader.
  Status Propose(std::string_view entry, uint64_t tag);

  // Proposals not yet applied or failed. Raft thread only.
  size_t in_flight() const { return in_flight_; }

  // Any thread: runs a membership change on the raft thread (EventLog::ChangeMembership has the
  // contract). done runs once, on the raft thread (or on the caller's if the node stopped).
  void ChangeMembership(MembershipChange change, std::function<void(Status)> done);

  // Thread-safe published state.
  ClusterState state() const;
  ClusterState WaitChange(uint64_t seen_epoch, int64_t timeout_ms) const;
  // The Raft configuration as last published (empty before this node has one).
  std::vector<ClusterPeer> configuration() const;
  // Raft thread only: whether this node is the serving leader right now.
  bool serving_on_loop() const { return serving_; }

  struct Loop;  // the uv loop, libraft and its I/O (raft_node.cpp)

 private:
  RaftNode() = default;
  // Raft thread: re-reads libraft's state, publishes changes, starts the leader barrier.
  void Poll();
  void Publish(const ClusterState& next);
  // Raft thread: publishes libraft's configuration when it changed.
  void PublishConfiguration();
  // Raft thread: membership changes.
  struct Change {
    MembershipChange change;
    std::function<void(Status)> done;
  };
  void StartChange(Change change);
  // The promotion of an added node, once its addition committed (not from libraft's callback).
  void PromoteAdded();
  void FinishChange(Status status);

  friend struct Loop;
  std::unique_ptr<Loop> loop_;
  RaftHost* host_ = nullptr;
  ClusterOptions options_;

  // Raft thread.
  size_t in_flight_ = 0;
  bool serving_ = false;
  bool barrier_pending_ = false;
  int last_role_ = -1;
  uint64_t last_term_ = 0;
  uint64_t barrier_term_ = 0;
  std::optional<Change> change_;  // the membership change in progress
  bool promote_due_ = false;      // change_ is an add whose first step committed
  bool promoting_ = false;        // change_ is an add in its second step (raft_assign)
  std::vector<ClusterPeer> last_configuration_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  ClusterState published_;                  // guarded by mu_
  std::vector<ClusterPeer> configuration_;  // guarded by mu_
  std::deque<Change> commands_;             // guarded by mu_; for the raft thread
  bool stopped_ = false;                    // guarded by mu_
};

}  // namespace treaty::log::internal
