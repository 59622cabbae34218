// Calling a coordinator cluster: one logical call over a list of coordinator addresses that finds
// the leader and rides through leader changes.
//
// Rule (the same for the CLI, participants and treaty-bench):
//   1. A call goes first to the last leader found (initially the first address of the list).
//   2. An UNAVAILABLE answer carrying a leader hint (net::LeaderHint, "[leader=HOST:PORT]") is
//      followed at once: the hinted address is tried next and remembered as the leader.
//   3. Any other UNAVAILABLE (refused or broken connection, a node without a leader) moves on to
//      the next address of the list not tried in this round.
//   4. When every address of a round failed that way, the call waits (initial_backoff_ms,
//      doubling up to max_backoff_ms) and starts a new round, until its deadline passes; it then
//      fails with the last error seen (or earlier, see unreachable_timeout_ms).
//   5. DEADLINE_EXCEEDED of one attempt counts as UNAVAILABLE only for an idempotent call (one
//      that is safe to send twice, e.g. Submit with a client-chosen xid); otherwise it is returned
//      at once, as is every other status (OK, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED...).
// UNAVAILABLE is retried for every call, as Treaty's clients always did: a connection that broke
// after the request left is ambiguous, so callers must only send calls that are safe to repeat on
// UNAVAILABLE (Submit with its xid, Register, queries) or accept that risk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "net/rpc.h"

namespace treaty::net {

struct ClusterClientOptions {
  // Pause after a round in which no address could serve the call, milliseconds; doubled after
  // every such round up to max_backoff_ms. Defaults 50 and 250: an election takes 0.5-1 s, and a
  // client should notice the new leader soon after (a round costs one small RPC per node).
  int64_t initial_backoff_ms = 50;
  int64_t max_backoff_ms = 250;
  // Upper bound of one attempt of an idempotent call, milliseconds, so that one hung node does not
  // use up its whole budget; 0 (default): the remaining budget. An attempt of a call that is not
  // idempotent always gets the remaining budget, since its timeout ends the call.
  int64_t attempt_timeout_ms = 0;
  // A call also ends (with the last error) when no node has answered it for this long,
  // milliseconds: every attempt failed to connect or lost its connection. A leader change refuses
  // connections for a second or two; a cluster that refuses for longer is down, and a tool should
  // say so rather than wait out its whole budget. 0 (default): only the deadline ends a call.
  int64_t unreachable_timeout_ms = 0;
  // TCP connections per address; calls are spread over them round-robin. Default 1.
  int connections_per_address = 1;
  RpcOptions rpc;
};

// Thread-safe. Callbacks run on the I/O thread.
class ClusterClient {
 public:
  // Runs its own I/O thread (tools, the CLI).
  explicit ClusterClient(std::vector<std::string> addresses, ClusterClientOptions options = {});
  // Runs on io, which must keep running until every call has completed (asynchronous users that
  // already own an I/O thread: participants, treaty-bench).
  ClusterClient(asio::io_context& io, std::vector<std::string> addresses,
                ClusterClientOptions options = {});
  // Close()s; with its own I/O thread, also waits for the callbacks of the failed calls.
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // One logical call with an overall budget of deadline_ms (> 0), following the rule above.
  // done runs exactly once, with the leader's answer or the status described above; an empty
  // address list fails with UNAVAILABLE.
  void CallAsync(std::string_view method, std::string payload, int64_t deadline_ms, bool idempotent,
                 Callback done);
  // The blocking form. REQUIRES: not called on the I/O thread (FAILED_PRECONDITION there, with
  // the client's own I/O thread).
  Result<std::string> Call(std::string_view method, std::string payload, int64_t deadline_ms,
                           bool idempotent);

  // Where the next call starts: the last leader found (possibly a hinted address outside the
  // list), else an address of the list.
  std::string leader() const;
  const std::vector<std::string>& addresses() const;

  // Fails calls in flight and later calls with UNAVAILABLE ("closed"), also those waiting to
  // retry. Idempotent.
  void Close();

 private:
  struct Impl;
  std::unique_ptr<IoThread> own_io_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace treaty::net
