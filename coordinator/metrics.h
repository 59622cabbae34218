// Prometheus metrics of the coordinator. Thread-safe: the I/O thread records, the admin HTTP
// server scrapes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "log/log.h"
#include "treaty/v1/coordinator.pb.h"

namespace prometheus {
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

  void TxFinished(v1::TxState state, int64_t duration_ms);
  void TxSubmitted();
  void SubmitRejected();
  void SetActive(size_t active);

  // The Prometheus text exposition of every metric.
  std::string Scrape() const;

 private:
  const log::EventLog* log_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* committed_;
  prometheus::Counter* aborted_;
  prometheus::Counter* submitted_;
  prometheus::Counter* rejected_;
  prometheus::Gauge* active_;
  prometheus::Histogram* commit_latency_;
  prometheus::Histogram* abort_latency_;
};

}  // namespace treaty::coordinator
