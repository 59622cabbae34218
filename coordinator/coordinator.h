// treatyd's coordinator: serves the client API, runs two-phase commit and sagas against registered
// participants, and keeps every state change in the durable event log (log/log.h).
//
// Threads: one I/O thread runs the RPC server, participant calls, timers and the protocol core
// (twopc/twopc_core.h); the log has its own writer thread (group commit); the optional admin
// HTTP server has its own threads and reads only thread-safe counters.
//
// Cluster mode (CoordinatorOptions::log set, see coordinator/cluster_mode.h): the owner opens the
// Raft-replicated log and starts a Coordinator as the leader when the node is the serving Raft
// leader, as a follower otherwise, and replaces it with a new one whenever that changes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "driver/caller.h"
#include "log/log.h"
#include "resilience/token_bucket.h"
#include "saga/saga_core.h"
#include "twopc/twopc_core.h"

namespace treaty::coordinator {

// Most transactions held in memory at once. Beyond it Submit answers RESOURCE_EXHAUSTED, which
// keeps memory bounded under overload (a held transaction costs roughly 1-2 KiB).
inline constexpr size_t kDefaultMaxActiveTransactions = 100'000;

struct CoordinatorOptions {
  // Data directory. Required. Layout: <data_dir>/log (the event log, RocksDB),
  // <data_dir>/readmodel (the projected views) and, in cluster mode, <data_dir>/raft (libraft's
  // own files). Any other entry makes Start refuse the directory (see CheckDataDir).
  std::string data_dir;
  // Cluster mode: the Raft-replicated log (LogOptions::cluster), opened and owned by the caller,
  // who keeps it open until the Coordinator is destroyed. Default null: Start opens
  // <data_dir>/log itself (single node).
  log::EventLog* log = nullptr;
  // Cluster mode only: run as a follower. It serves the read model's ListTransactions, Stats and
  // Watch, and ClusterStatus; every other method answers UNAVAILABLE naming the leader
  // (net::NotLeader). No recovery, no registry, no log writes, no log retention. false: the
  // leader, which answers NotLeader as soon as its node stops being the serving leader of the
  // Raft term it started in. Default false.
  bool follower = false;
  // The client API address of a cluster node by id ("" if unknown), for the leader hint and
  // ClusterStatus. Default (empty): the address each node records in the log's meta when it
  // becomes leader (ClientAddressKey in cluster_mode.h).
  std::function<std::string(uint64_t node_id)> client_address_of;
  // Client API address, host:port. Port 0 picks a free port (see Coordinator::port()).
  std::string listen = "127.0.0.1:7700";
  // Admin HTTP address (/healthz, /metrics); empty disables it.
  std::string admin;
  // Group commit in the log (false = one fsync per append, the benchmark baseline). Default true.
  bool group_commit = true;
  // Protocol knobs (prepare timeout, retry backoff).
  twopc::CoreOptions core;
  // Saga core knobs (log append retry).
  saga::SagaCoreOptions saga;
  // Participant registry: lease length, load-balancing policies.
  RegistryOptions registry;
  // Participant calls: circuit breaker, bulkhead.
  driver::CallerOptions caller;
  // Admission: token bucket per client id (rate and burst of submissions per second).
  resilience::TokenBucketOptions admission;
  // See kDefaultMaxActiveTransactions: the global bound on transactions in flight.
  size_t max_active_transactions = kDefaultMaxActiveTransactions;
  // The read model: query API, retention, --no-readmodel (coordinator/read_side.h).
  ReadSideOptions read_side;
  // Called once (from an internal thread) when the coordinator cannot go on safely, e.g. the log
  // stopped after a failed write. The owner should stop the process; a restart recovers from the
  // log (fail-stop). Default: none (the coordinator then only stops serving). Not called when a
  // cluster leader loses the leadership: it stops driving transactions and fails the clients
  // waiting on them with UNAVAILABLE (outcome unknown); the owner replaces it.
  std::function<void(const Status&)> on_fatal;
};

// Checks that dir is a Treaty data directory (only log, readmodel and raft inside) or creates it.
// FAILED_PRECONDITION for a foreign directory, UNAVAILABLE if it cannot be read or created.
Status CheckDataDir(const std::string& dir);

class Coordinator {
 public:
  // Opens the log (unless options.log is given), loads registered services, resumes every
  // unfinished transaction, then starts serving; a follower only opens the read model and serves.
  // Errors: the log's Open errors (foreign/corrupt/locked data dir), UNAVAILABLE if an address
  // cannot be bound, INVALID_ARGUMENT for bad options.
  static Result<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);

  // Stops serving and closes the log if it owns it (queued appends finish first; with a shared
  // log, it waits for the completions of its own appends).
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  void Stop();
  uint16_t port() const;
  uint16_t admin_port() const;  // 0 if the admin server is off
  // Cluster mode: true once this leader stopped driving transactions because an append failed
  // for lack of leadership. Its owner replaces it. Thread-safe.
  bool lost_leadership() const;

  struct Impl;

 private:
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::coordinator
