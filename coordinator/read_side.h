// The read side of treatyd: owns the read model (readmodel/readmodel.h) and serves it over the
// coordinator's RPC server, the admin HTTP server (JSON under /v1/) and the metrics.
//
// RPC methods (handlers run on the RPC server's I/O thread; they do point reads and bounded
// scans, or hand the work to the projector thread):
//   coordinator.GetTransaction    the summary, overlaid with the live view when the coordinator
//                                 holds the transaction; before the projector got to a new xid,
//                                 the live view or the log's record answers (read-your-writes)
//   coordinator.ListTransactions  a page of summaries
//   coordinator.Stats             counters, rates, latency percentiles, projector lag
//   coordinator.Watch             long poll, answered by the projector thread (bounded watchers)
//   coordinator.RebuildReadModel  runs on the projector thread; answers when done
// HTTP routes (on the admin server's threads; no live overlay there):
//   GET /v1/transactions?state=&service=&mode=&since=&until=&limit=&page_token=
//       since/until: Unix milliseconds or RFC 3339 ("2026-01-02T15:04:05Z"); state by name
//   GET /v1/transactions/{xid}     the summary (404 if unknown or expired)
//   GET /v1/stats                  GET /v1/attention?limit=
// Bodies are the JSON form of the query.proto messages (lowerCamelCase, 64-bit ints as strings);
// errors are {"error": "..."} with 400, 404 or 503.
//
// With enabled = false (treatyd --no-readmodel) no read model is opened and nothing is purged
// from the log; GetTransaction still answers from the live view and the log, the other query
// methods answer FAILED_PRECONDITION.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "log/log.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::net {
class RpcServer;
}

namespace treaty::coordinator {

class AdminServer;
class Metrics;

struct ReadSideOptions {
  // Run the read model. false = treatyd --no-readmodel (the benchmark's baseline). Default true.
  bool enabled = true;
  // Events of finished transactions are deleted from the log this long after END, milliseconds;
  // 0 keeps them forever. treatyd --event-retention. Default 24 h.
  int64_t event_retention_ms = 24LL * 3'600'000;
  // Summaries (and the log's outcome records) are deleted this long after END, milliseconds;
  // 0 keeps them forever. Never before the events are gone. treatyd --readmodel-retention.
  // Default 7 days.
  int64_t summary_retention_ms = 7LL * 24 * 3'600'000;
  // After its summary expired, the log remembers an xid as used (Submit refuses it, QueryOutcome
  // answers its outcome) until this long after END, milliseconds; 0 = forever. At least
  // summary_retention_ms unless either is 0. treatyd --xid-retention. Default 30 days.
  int64_t xid_retention_ms = 30LL * 24 * 3'600'000;
  // Time between retention passes, milliseconds. treatyd --retention-interval. Default 10 s.
  int64_t retention_interval_ms = 10'000;
  // Rebuild the read model from the log at startup, before serving. treatyd --rebuild-readmodel.
  bool rebuild_at_start = false;
  // A decided transaction not finished after this long is listed by /v1/attention,
  // milliseconds. Default 30 s.
  int64_t stuck_after_ms = 30'000;
  // Watch calls held at once. Default 256.
  size_t max_watchers = 256;
};

// Parses a duration: "0", "500ms", "90s", "10m", "24h", "7d" (a bare number is milliseconds).
// INVALID_ARGUMENT otherwise (negative values included).
Result<int64_t> ParseDurationMs(std::string_view text);

class ReadSide {
 public:
  // The coordinator's view of a transaction it holds in memory, or nullopt. Called only on the
  // RPC server's I/O thread (where the coordinator's core lives).
  using LiveView = std::function<std::optional<v1::Transaction>(const std::string& xid)>;

  // Opens <data_dir>/readmodel over log (and rebuilds it if rebuild_at_start). log and clock
  // must outlive the ReadSide. Errors: those of readmodel::ReadModel::Open and of the rebuild.
  static Result<std::unique_ptr<ReadSide>> Open(const ReadSideOptions& options,
                                                const std::string& data_dir, log::EventLog& log,
                                                const Clock& clock, LiveView live);
  // Stops the projector.
  ~ReadSide();
  ReadSide(const ReadSide&) = delete;
  ReadSide& operator=(const ReadSide&) = delete;

  // Registers the RPC methods above (REQUIRES: before server.Listen) and the read model's metrics
  // (lag in events and seconds, projected events, rebuilds, retention). The ReadSide must outlive
  // the server's handlers and the metrics' scrapes.
  void Attach(net::RpcServer& server, Metrics& metrics);
  // Adds the /v1/ routes to admin (if not null) and starts the projector thread.
  void Start(AdminServer* admin);
  // Stops the projector thread; pending Watch and RebuildReadModel calls get UNAVAILABLE.
  // Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit ReadSide(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::coordinator
