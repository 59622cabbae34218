#include "coordinator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>

#include <vector>

namespace treaty::coordinator {
namespace {

prometheus::MetricFamily Single(const std::string& name, const std::string& help,
                                prometheus::MetricType type, double value) {
  return SingleMetric(name, help, type == prometheus::MetricType::Counter, value);
}

double ProcessCpuSeconds();

}  // namespace

prometheus::MetricFamily SingleMetric(const std::string& name, const std::string& help,
                                      bool is_counter, double value) {
  auto type = is_counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

// Latency buckets in seconds: 0.5 ms .. 10 s.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};

}  // namespace

Metrics::Metrics(const log::EventLog* log)
    : log_(log), registry_(std::make_shared<prometheus::Registry>()) {
  auto& tx = prometheus::BuildCounter()
                 .Name("treaty_tx_total")
                 .Help(
                     "Transactions and sagas that reached a final state (or STUCK), by mode "
                     "and outcome")
                 .Register(*registry_);
  committed_ = &tx.Add({{"mode", "2pc"}, {"outcome", "committed"}});
  aborted_ = &tx.Add({{"mode", "2pc"}, {"outcome", "aborted"}});
  saga_completed_ = &tx.Add({{"mode", "saga"}, {"outcome", "completed"}});
  saga_compensated_ = &tx.Add({{"mode", "saga"}, {"outcome", "compensated"}});
  saga_stuck_ = &tx.Add({{"mode", "saga"}, {"outcome", "stuck"}});
  submitted_ = &prometheus::BuildCounter()
                    .Name("treaty_tx_submitted_total")
                    .Help("Submissions accepted (new transactions)")
                    .Register(*registry_)
                    .Add({});
  rejected_ = &prometheus::BuildCounter()
                   .Name("treaty_submit_rejected_total")
                   .Help("Submissions refused (invalid, unknown service, overload)")
                   .Register(*registry_)
                   .Add({});
  auto& throttled = prometheus::BuildCounter()
                        .Name("treaty_submit_throttled_total")
                        .Help("Submissions refused by admission control (RESOURCE_EXHAUSTED)")
                        .Register(*registry_);
  throttled_rate_ = &throttled.Add({{"reason", "rate"}});
  throttled_in_flight_ = &throttled.Add({{"reason", "in_flight"}});
  active_ = &prometheus::BuildGauge()
                 .Name("treaty_tx_active")
                 .Help("Transactions held by the coordinator, not yet finished")
                 .Register(*registry_)
                 .Add({});
  auto& latency = prometheus::BuildHistogram()
                      .Name("treaty_tx_duration_seconds")
                      .Help("Submit to the final state durable, by mode and outcome")
                      .Register(*registry_);
  commit_latency_ = &latency.Add({{"mode", "2pc"}, {"outcome", "committed"}}, kLatencyBuckets);
  abort_latency_ = &latency.Add({{"mode", "2pc"}, {"outcome", "aborted"}}, kLatencyBuckets);
  saga_completed_latency_ =
      &latency.Add({{"mode", "saga"}, {"outcome", "completed"}}, kLatencyBuckets);
  saga_compensated_latency_ =
      &latency.Add({{"mode", "saga"}, {"outcome", "compensated"}}, kLatencyBuckets);
}

Metrics::~Metrics() = default;

void Metrics::TxFinished(v1::TxState state, int64_t duration_ms) {
  double secs = static_cast<double>(duration_ms) / 1000.0;
  if (state == v1::COMMITTED) {
    committed_->Increment();
    commit_latency_->Observe(secs);
  } else {
    aborted_->Increment();
    abort_latency_->Observe(secs);
  }
}

void Metrics::SagaFinished(v1::SagaState state, int64_t duration_ms) {
  double secs = static_cast<double>(duration_ms) / 1000.0;
  switch (state) {
    case v1::SAGA_COMPLETED:
      saga_completed_->Increment();
      saga_completed_latency_->Observe(secs);
      break;
    case v1::SAGA_COMPENSATED:
      saga_compensated_->Increment();
      saga_compensated_latency_->Observe(secs);
      break;
    case v1::SAGA_STUCK:
      saga_stuck_->Increment();
      break;
    default:
      break;  // not an outcome
  }
}

void Metrics::AddCollector(Collector collect) {
  std::lock_guard lock(collectors_mu_);
  collectors_.push_back(std::move(collect));
}

void Metrics::TxSubmitted() { submitted_->Increment(); }
void Metrics::SubmitRejected() { rejected_->Increment(); }
void Metrics::Throttled(const char* reason) {
  (std::string_view(reason) == "rate" ? throttled_rate_ : throttled_in_flight_)->Increment();
}
void Metrics::SetActive(size_t active) { active_->Set(static_cast<double>(active)); }

std::string Metrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  using prometheus::MetricType;
  if (log_ != nullptr) {
    log::LogStats s = log_->Stats();
    families.push_back(Single("treaty_log_appends_total", "Log appends completed",
                              MetricType::Counter, static_cast<double>(s.appends)));
    families.push_back(Single("treaty_log_events_total", "Events written to the log",
                              MetricType::Counter, static_cast<double>(s.events)));
    families.push_back(Single("treaty_log_batches_total", "WriteBatches written (group commits)",
                              MetricType::Counter, static_cast<double>(s.batches)));
    families.push_back(Single("treaty_log_syncs_total", "Synced log writes (fsyncs)",
                              MetricType::Counter, static_cast<double>(s.syncs)));
    families.push_back(Single("treaty_log_sync_seconds_total", "Time spent in synced log writes",
                              MetricType::Counter, static_cast<double>(s.sync_micros) / 1e6));
    families.push_back(Single("treaty_log_last_lsn", "Lsn of the last durable event",
                              MetricType::Gauge, static_cast<double>(log_->last_lsn())));
    // Cluster mode only: a single node has no Raft state to report.
    const log::ClusterState raft = log_->cluster_state();
    if (raft.role != log::ClusterRole::kSingle) {
      const bool leader = raft.role == log::ClusterRole::kLeader;
      families.push_back(Single("treaty_raft_term", "Current Raft term", MetricType::Gauge,
                                static_cast<double>(raft.term)));
      families.push_back(Single("treaty_raft_commit_index",
                                "Raft commit index as this node knows it", MetricType::Gauge,
                                static_cast<double>(raft.commit_index)));
      families.push_back(Single("treaty_raft_applied_index",
                                "Last Raft entry applied to this node's state", MetricType::Gauge,
                                static_cast<double>(raft.applied_index)));
      families.push_back(Single("treaty_raft_is_leader", "1 if this node is the Raft leader",
                                MetricType::Gauge, leader ? 1.0 : 0.0));
      families.push_back(Single("treaty_raft_serving",
                                "1 if this node is the leader and serves writes", MetricType::Gauge,
                                leader && raft.serving ? 1.0 : 0.0));
    }
  }
  {
    std::lock_guard lock(collectors_mu_);
    for (const auto& collect : collectors_) {
      for (auto& f : collect()) families.push_back(std::move(f));
    }
  }
  families.push_back(Single("treaty_process_cpu_seconds_total", "User+system CPU time of treatyd",
                            MetricType::Counter, ProcessCpuSeconds()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace treaty::coordinator
