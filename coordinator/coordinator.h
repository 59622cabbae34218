// treatyd's coordinator: serves the client API, runs two-phase commit and sagas against registered
// participants, and keeps every state change in the durable event log (log/log.h).
//
// Threads: one I/O thread runs the RPC server, participant calls, timers and the protocol core
// (coordinator/twopc_core.h); the log has its own writer thread (group commit); the optional admin
// HTTP server has its own threads and reads only thread-safe counters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/participant_caller.h"
#include "coordinator/read_side.h"
#include "coordinator/registry.h"
#include "coordinator/twopc_core.h"
#include "saga/saga_core.h"
#include "resilience/token_bucket.h"

namespace treaty::coordinator {

// Most transactions held in memory at once. Beyond it Submit answers RESOURCE_EXHAUSTED, which
// keeps memory bounded under overload (a held transaction costs roughly 1-2 KiB).
inline constexpr size_t kDefaultMaxActiveTransactions = 100'000;

struct CoordinatorOptions {
  // Data directory. Required. Layout: <data_dir>/log (the event log, RocksDB) and
  // <data_dir>/readmodel (the projected views). Any other entry makes Start refuse the directory.
  std::string data_dir;
  // Client API address, host:port. Port 0 picks a free port (see Coordinator::port()).
  std::string listen = "127.0.0.1:7700";
  // Admin HTTP address (/healthz, /metrics); empty disables it.
  std::string admin;
  // Group commit in the log (false = one fsync per append, the benchmark baseline). Default true.
  bool group_commit = true;
  // Protocol knobs (prepare timeout, retry backoff).
  CoreOptions core;
  // Saga core knobs (log append retry).
  saga::SagaCoreOptions saga;
  // Participant registry: lease length, load-balancing policies.
  RegistryOptions registry;
  // Participant calls: circuit breaker, bulkhead, COMMIT/ABORT call budget.
  CallerOptions caller;
  // Admission: token bucket per client id (rate and burst of submissions per second).
  resilience::TokenBucketOptions admission;
  // See kDefaultMaxActiveTransactions: the global bound on transactions in flight.
  size_t max_active_transactions = kDefaultMaxActiveTransactions;
  // The read model: query API, retention, --no-readmodel (coordinator/read_side.h).
  ReadSideOptions read_side;
  // Called once (from an internal thread) when the coordinator cannot go on safely, e.g. the log
  // stopped after a failed write. The owner should stop the process; a restart recovers from the
  // log (fail-stop). Default: none (the coordinator then only stops serving).
  std::function<void(const Status&)> on_fatal;
};

class Coordinator {
 public:
  // Opens the log, loads registered services, resumes every unfinished transaction, then starts
  // serving. Errors: the log's Open errors (foreign/corrupt/locked data dir), UNAVAILABLE if an
  // address cannot be bound, INVALID_ARGUMENT for bad options.
  static Result<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);

  // Stops serving and closes the log (queued appends finish first).
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  void Stop();
  uint16_t port() const;
  uint16_t admin_port() const;  // 0 if the admin server is off

  struct Impl;

 private:
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::coordinator
