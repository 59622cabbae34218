// Reading treatyd's Prometheus endpoint (/metrics on its --admin address).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treaty::bench {

// GET http://<address><path>. UNAVAILABLE if the server cannot be reached or answers non-200.
Result<std::string> HttpGet(const std::string& address, const std::string& path,
                            int64_t timeout_ms);

// Sum of every sample of the metric `name` whose label set contains `label` (e.g.
// `outcome="committed"`; empty matches any labels) in Prometheus text format; nullopt if there is
// no such sample.
std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                std::string_view label = "");

// The coordinator counters the benchmark reports per transaction.
struct CoordinatorCounters {
  double tx_committed = 0;      // treaty_tx_total{mode="2pc",outcome="committed"}
  double tx_aborted = 0;        // treaty_tx_total{mode="2pc",outcome="aborted"}
  double log_syncs = 0;         // treaty_log_syncs_total
  double log_batches = 0;       // treaty_log_batches_total
  double log_events = 0;        // treaty_log_events_total
  double log_sync_seconds = 0;  // treaty_log_sync_seconds_total
  double cpu_seconds = 0;       // treaty_process_cpu_seconds_total

  // Field-wise this - before.
  CoordinatorCounters Minus(const CoordinatorCounters& before) const;
};

// Scrapes /metrics. UNAVAILABLE if unreachable; INTERNAL naming the first missing metric.
Result<CoordinatorCounters> ScrapeCoordinator(const std::string& admin_address);

}  // namespace treaty::bench
