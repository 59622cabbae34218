#include "cli/query_commands.h"


#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <iomanip>
#include <set>
#include <sstream>
#include <thread>

#include "common/text.h"
#include "net/cluster_client.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::cli {
namespace {

// Longest single Watch call, ms; the loop re-polls (so Ctrl-C and --for stay responsive).
constexpr int64_t kWatchPollMs = 10'000;
// Extra RPC budget beyond the Watch hold time, ms.
constexpr int64_t kWatchRpcSlackMs = 5'000;
// How often rebuild-readmodel polls Stats for progress, ms.
constexpr int64_t kRebuildPollMs = 500;

int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<v1::TxFilter> FilterOf(const std::string& state, const std::string& service,
                              const std::string& mode) {
  v1::TxFilter filter;
  if (!state.empty()) {
    auto parsed = ParseStateArg(state);
    if (!parsed.ok()) return parsed.status();
    filter.set_state(*parsed);
  }
  filter.set_service(service);
  filter.set_mode(mode);
  return filter;
}

std::string Services(const v1::TxSummary& s) {
  std::set<std::string> names;
  for (const auto& b : s.branches()) names.insert(b.service());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out.empty() ? "-" : out;
}

// "served by node 2 (follower), Raft index 1234 of 1240 applied", for a cluster node only.
void PrintServedBy(std::ostream& out, const v1::ServedBy& by) {
  if (by.node_id() == 0) return;
  out << "served by  node " << by.node_id() << " (" << by.role() << "), Raft index "
      << by.applied_index() << " of " << by.commit_index() << " applied\n";
}

void PrintSummaryRow(std::ostream& out, const v1::TxSummary& s) {
  out << std::left << std::setw(26) << FormatUnixMs(s.updated_unix_ms()) << std::setw(24) << s.xid()
      << std::setw(12) << v1::TxState_Name(s.state()) << std::setw(6) << s.mode() << std::setw(24)
      << Services(s) << (s.reason().empty() ? "" : s.reason()) << "\n";
}

std::string Fixed(double value, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << value;
  return s.str();
}

void PrintServiceRow(std::ostream& out, const std::string& name, const v1::ServiceStats& s) {
  const uint64_t finished = s.committed().count() + s.aborted().count();
  out << std::left << std::setw(20) << name << std::right << std::setw(10) << s.committed().count()
      << std::setw(9) << s.aborted().count() << std::setw(9)
      << (finished == 0 ? "-" : Fixed(100.0 * s.success_rate(), 1) + "%") << std::setw(9)
      << Fixed(s.committed().latency().p50_ms(), 1) << std::setw(9)
      << Fixed(s.committed().latency().p90_ms(), 1) << std::setw(9)
      << Fixed(s.committed().latency().p99_ms(), 1) << std::setw(13)
      << Fixed(s.aborted().latency().p99_ms(), 1) << "\n";
}

Result<v1::StatsResponse> FetchStats(net::ClusterClient& client, const GlobalOptions& global) {
  return net::Decode<v1::StatsResponse>(
      CallCoordinator(client, global, v1::methods::kStats, v1::StatsRequest().SerializeAsString()));
}

}  // namespace

Result<int64_t> ParseDurationArg(std::string_view text) {
  return ParseDurationMs(text, /*bare_number_is_ms=*/false);
}

Result<int64_t> ParseTimeArg(std::string_view text, int64_t now_unix_ms) {
  if (text == "now") return now_unix_ms;
  if (auto ms = ParseInt64(text)) return *ms;
  if (auto ms = ParseRfc3339Ms(text)) return *ms;
  if (auto ago = ParseDurationArg(text); ago.ok()) return now_unix_ms - *ago;
  return Status::InvalidArgument(
      "'" + std::string(text) +
      "' is not a time: use RFC 3339 (2026-01-02T15:04:05Z), a duration ago (10m, 2h) or Unix ms");
}

Result<v1::TxState> ParseStateArg(std::string_view text) {
  std::string upper(text);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  v1::TxState state = v1::TX_STATE_UNSPECIFIED;
  if (!v1::TxState_Parse(upper, &state) || state == v1::TX_STATE_UNSPECIFIED) {
    return Status::InvalidArgument(
        "unknown state '" + std::string(text) +
        "' (one of preparing, committing, aborting, committed, aborted)");
  }
  return state;
}

int ListTransactions(const GlobalOptions& global, const ListOptions& options, std::ostream& out,
                     std::ostream& err) {
  v1::ListTransactionsRequest req;
  auto filter = FilterOf(options.state, options.service, options.mode);
  if (!filter.ok()) {
    err << "error: " << filter.status().message() << "\n";
    return kExitUsage;
  }
  *req.mutable_filter() = *filter;
  const int64_t now = UnixNowMs();
  for (const auto& [text, setter] : {std::pair{options.since, &v1::TxFilter::set_since_unix_ms},
                                     std::pair{options.until, &v1::TxFilter::set_until_unix_ms}}) {
    if (text.empty()) continue;
    auto t = ParseTimeArg(text, now);
    if (!t.ok()) {
      err << "error: " << t.status().message() << "\n";
      return kExitUsage;
    }
    (req.mutable_filter()->*setter)(*t);
  }
  req.set_limit(options.limit);
  req.set_page_token(options.page_token);

  net::ClusterClient client(global.coordinators, CoordinatorClientOptions());
  auto resp = net::Decode<v1::ListTransactionsResponse>(
      CallCoordinator(client, global, v1::methods::kListTransactions, req.SerializeAsString()));
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    return ExitCodeFor(resp.status());
  }
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
    return kExitOk;
  }
  out << std::left << std::setw(26) << "UPDATED" << std::setw(24) << "XID" << std::setw(12)
      << "STATE" << std::setw(6) << "MODE" << std::setw(24) << "SERVICES"
      << "REASON\n";
  for (const auto& s : resp->transactions()) PrintSummaryRow(out, s);
  if (resp->transactions().empty()) out << "(no transactions)\n";
  if (!resp->next_page_token().empty()) {
    out << "\nmore: add --page-token " << resp->next_page_token() << "\n";
  }
  PrintServedBy(out, resp->served_by());
  return kExitOk;
}

int WatchTransactions(const GlobalOptions& global, const WatchOptions& options, std::ostream& out,
                      std::ostream& err) {
  auto filter = FilterOf(options.state, options.service, "");
  if (!filter.ok()) {
    err << "error: " << filter.status().message() << "\n";
    return kExitUsage;
  }
  std::optional<std::chrono::steady_clock::time_point> end;
  if (!options.for_duration.empty()) {
    auto d = ParseDurationArg(options.for_duration);
    if (!d.ok()) {
      err << "error: --for: " << d.status().message() << "\n";
      return kExitUsage;
    }
    end = std::chrono::steady_clock::now() + std::chrono::milliseconds(*d);
  }
  v1::WatchRequest req;
  *req.mutable_filter() = *filter;
  req.set_from_now(true);
  net::ClusterClient client(global.coordinators, CoordinatorClientOptions());
  uint64_t printed = 0;
  for (;;) {
    int64_t hold = kWatchPollMs;
    if (end) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            *end - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return kExitOk;
      hold = std::min<int64_t>(hold, left);
    }
    req.set_timeout_ms(static_cast<uint32_t>(hold));
    auto resp = net::Decode<v1::WatchResponse>(CallCoordinator(
        client, global, v1::methods::kWatch, req.SerializeAsString(), hold + kWatchRpcSlackMs));
    if (!resp.ok()) {
      PrintError(err, resp.status(), "");
      return ExitCodeFor(resp.status());
    }
    for (const auto& s : resp->changes()) {
      if (global.output == "json") {
        out << ToJson(s) << "\n";
      } else {
        PrintSummaryRow(out, s);
      }
      out.flush();
      if (options.count > 0 && ++printed >= options.count) return kExitOk;
    }
    req.set_from_now(false);
    req.set_after_lsn(resp->lsn());
  }
}

int ShowStats(const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  net::ClusterClient client(global.coordinators, CoordinatorClientOptions());
  auto stats = FetchStats(client, global);
  if (!stats.ok()) {
    PrintError(err, stats.status(), "");
    return ExitCodeFor(stats.status());
  }
  if (global.output == "json") {
    out << ToJson(*stats) << "\n";
    return kExitOk;
  }
  for (const auto& t : stats->throughput()) {
    out << "last " << std::left << std::setw(6) << (std::to_string(t.window_s()) + "s")
        << Fixed(t.committed_per_s(), 1) << " committed/s, " << Fixed(t.aborted_per_s(), 1)
        << " aborted/s\n";
  }
  out << "states     ";
  if (stats->states().empty()) out << "(none)";
  for (const auto& c : stats->states())
    out << v1::TxState_Name(c.state()) << " " << c.count() << "  ";
  out << "\n";
  const v1::ProjectorStatus& p = stats->projector();
  out << "projector  lsn " << p.projected_lsn() << " of " << p.log_last_lsn() << ", lag "
      << p.lag_events() << " events / " << Fixed(p.lag_seconds(), 3) << " s";
  if (p.rebuilding()) out << " (rebuilding: " << p.rebuild_events_done() << " events)";
  out << "\n";
  PrintServedBy(out, stats->served_by());
  out << "\n";
  out << std::left << std::setw(20) << "SERVICE" << std::right << std::setw(10) << "COMMITTED"
      << std::setw(9) << "ABORTED" << std::setw(9) << "SUCCESS" << std::setw(9) << "P50 ms"
      << std::setw(9) << "P90 ms" << std::setw(9) << "P99 ms" << std::setw(13) << "ABORT P99 ms"
      << "\n";
  PrintServiceRow(out, "(all)", stats->total());
  for (const auto& s : stats->services()) PrintServiceRow(out, s.service(), s);
  out << "\nlatency: BEGIN to END of committed transactions (ABORT: of aborted ones)\n";
  return kExitOk;
}

int RebuildReadModel(const GlobalOptions& global, int64_t timeout_ms, std::ostream& out,
                     std::ostream& err) {
  // Each node of a cluster keeps its own read model: this rebuilds the one of the first address,
  // without leader finding, and polls its progress there.
  const std::string& node = global.coordinators.front();
  net::RpcClient client;
  auto done = std::make_shared<std::promise<Result<std::string>>>();
  std::future<Result<std::string>> result = done->get_future();
  client.CallAsync(node, v1::methods::kRebuildReadModel,
                   v1::RebuildReadModelRequest().SerializeAsString(), timeout_ms,
                   [done](Result<std::string> r) { done->set_value(std::move(r)); });
  while (result.wait_for(std::chrono::milliseconds(kRebuildPollMs)) != std::future_status::ready) {
    auto stats = net::Decode<v1::StatsResponse>(client.Call(
        node, v1::methods::kStats, v1::StatsRequest().SerializeAsString(), global.timeout_ms));
    if (!stats.ok() || !stats->projector().rebuilding()) continue;
    const v1::ProjectorStatus& p = stats->projector();
    err << "rebuilding: " << p.rebuild_events_done() << " events re-projected (log at lsn "
        << p.rebuild_target_lsn() << ")\n";
  }
  auto resp = net::Decode<v1::RebuildReadModelResponse>(result.get());
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    return ExitCodeFor(resp.status());
  }
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
    return kExitOk;
  }
  out << "rebuilt the read model: " << resp->events() << " events re-projected, "
      << resp->kept_summaries() << " summaries kept (their events are past retention), at lsn "
      << resp->projected_lsn() << ", in " << resp->duration_ms() << " ms\n";
  return kExitOk;
}

}  // namespace treaty::cli
