// Prometheus metrics of the coordinator. Thread-safe: the I/O thread records, the admin HTTP
// server scrapes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "log/log.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/saga.pb.h"

namespace prometheus {
struct MetricFamily;
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace treaty::coordinator {

class Metrics {
 public:
  // log may be null (no log metrics). It must outlive this object.
  explicit Metrics(const log::EventLog* log);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A 2PC transaction finished (COMMITTED or ABORTED): treaty_tx_total{mode="2pc",outcome}.
  void TxFinished(v1::TxState state, int64_t duration_ms);
  // A saga reached COMPLETED or COMPENSATED (treaty_tx_total{mode="saga",outcome="completed" or
  // "compensated"} and its duration), or became STUCK (outcome="stuck", no duration: a stuck saga
  // is counted again when an operator's resolution lets it finish).
  void SagaFinished(v1::SagaState state, int64_t duration_ms);
  void TxSubmitted();
  void SubmitRejected();
  // A submission refused by admission control; reason "rate" (client token bucket) or
  // "in_flight" (global bound).
  void Throttled(const char* reason);
  void SetActive(size_t active);

  // Adds metrics computed at scrape time by another component (e.g. the read model's lag).
  // collect runs on an admin HTTP thread and must be thread-safe.
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
  void AddCollector(Collector collect);

  // The Prometheus text exposition of every metric.
  std::string Scrape() const;

  // The shared registry, for components that register their own families (thread-safe).
  prometheus::Registry& registry() { return *registry_; }

 private:
  const log::EventLog* log_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* committed_;
  prometheus::Counter* aborted_;
  prometheus::Counter* submitted_;
  prometheus::Counter* rejected_;
  prometheus::Counter* throttled_rate_;
  prometheus::Counter* throttled_in_flight_;
  prometheus::Gauge* active_;
  prometheus::Histogram* commit_latency_;
  prometheus::Histogram* abort_latency_;
  prometheus::Counter* saga_completed_;
  prometheus::Counter* saga_compensated_;
  prometheus::Counter* saga_stuck_;
  prometheus::Histogram* saga_completed_latency_;
  prometheus::Histogram* saga_compensated_latency_;
  mutable std::mutex collectors_mu_;
  std::vector<Collector> collectors_;
};

// A one-sample counter or gauge family, for collectors.
prometheus::MetricFamily SingleMetric(const std::string& name, const std::string& help,
                                      bool is_counter, double value);

}  // namespace treaty::coordinator
