// The treaty CLI's read-model commands: tx list, tx watch, stats, admin rebuild-readmodel. They
// call the coordinator's query methods (proto/treaty/v1/query.proto). Exit codes: cli/commands.h.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "cli/commands.h"
#include "common/status.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::cli {

struct ListOptions {
  std::string state;    // TxState name, any case; empty = any
  std::string service;  // empty = any
  std::string mode;     // "2pc"; empty = any
  std::string since;    // time argument (see ParseTimeArg); empty = no bound
  std::string until;
  uint32_t limit = 0;  // 0 = the server's default (50)
  std::string page_token;
};

// `treaty tx list`: one page, newest change first; a table with the next page's flag, or the
// ListTransactionsResponse as JSON.
int ListTransactions(const GlobalOptions& global, const ListOptions& options, std::ostream& out,
                     std::ostream& err);

struct WatchOptions {
  std::string state;         // only changes into this state; empty = any
  std::string service;       // only transactions with a branch on this service
  uint64_t count = 0;        // stop after this many changes; 0 = no limit
  std::string for_duration;  // stop after this long (see ParseDurationArg); empty = until Ctrl-C
};

// `treaty tx watch`: prints each change as one line (a table row, or one JSON TxSummary per line)
// as the coordinator reports it; follows from the moment it starts. Returns kExitOk when --count
// or --for ends it.
int WatchTransactions(const GlobalOptions& global, const WatchOptions& options, std::ostream& out,
                      std::ostream& err);

// `treaty stats`: throughput, success/abort rates and latency percentiles per service, the
// transactions per state and the projector's lag.
int ShowStats(const GlobalOptions& global, std::ostream& out, std::ostream& err);

// `treaty admin rebuild-readmodel`: asks the coordinator to rebuild its read model, shows
// progress on err while it runs (polling Stats), then the result. timeout_ms bounds the wait.
int RebuildReadModel(const GlobalOptions& global, int64_t timeout_ms, std::ostream& out,
                     std::ostream& err);

// ---- Argument parsing (exposed for tests) ----

// "500ms", "90s", "10m", "2h", "7d" -> milliseconds. INVALID_ARGUMENT otherwise.
Result<int64_t> ParseDurationArg(std::string_view text);
// A point in time, Unix ms: RFC 3339 ("2026-01-02T15:04:05Z", fraction and offset allowed), a
// duration meaning that long before now ("10m" = ten minutes ago), "now", or Unix milliseconds.
Result<int64_t> ParseTimeArg(std::string_view text, int64_t now_unix_ms);
// A state name in any case ("committed"). INVALID_ARGUMENT names the valid ones.
Result<v1::TxState> ParseStateArg(std::string_view text);

}  // namespace treaty::cli
