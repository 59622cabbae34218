// Views: Stats — counters, success/abort rates, latency percentiles, throughput, state counts.

#include <algorithm>
#include <map>

#include "readmodel/keys.h"
#include "readmodel/readmodel.h"
#include "readmodel/views.h"

namespace treaty::readmodel {

double Quantile(const int64_t* bucket_counts, double p) {
  int64_t total = 0;
  for (size_t i = 0; i < internal::kBuckets; ++i) total += std::max<int64_t>(0, bucket_counts[i]);
  if (total == 0) return 0;
  const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(total);
  double below = 0;
  for (size_t i = 0; i < internal::kBuckets; ++i) {
    const auto count = static_cast<double>(std::max<int64_t>(0, bucket_counts[i]));
    if (count == 0) continue;
    const double lower = i == 0 ? 0.0 : static_cast<double>(internal::kBucketBoundsMs[i - 1]);
    if (i == internal::kBuckets - 1) return lower;  // the open bucket: its lower bound
    if (below + count >= rank) {
      const double upper = static_cast<double>(internal::kBucketBoundsMs[i]);
      return lower + (upper - lower) * std::clamp((rank - below) / count, 0.0, 1.0);
    }
    below += count;
  }
  return static_cast<double>(internal::kBucketBoundsMs.back());
}

namespace internal {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Windows reported as throughput, seconds.
constexpr uint32_t kThroughputWindowsS[] = {60, 300};

void FillLatency(const std::vector<int64_t>& c, size_t sum_index, size_t buckets_index,
                 v1::LatencyStats* out) {
  const int64_t count = c[kCount];
  out->set_count(static_cast<uint64_t>(std::max<int64_t>(0, count)));
  if (count <= 0) return;
  out->set_mean_ms(static_cast<double>(c[sum_index]) / static_cast<double>(count));
  const int64_t* buckets = c.data() + buckets_index;
  out->set_p50_ms(Quantile(buckets, 0.50));
  out->set_p90_ms(Quantile(buckets, 0.90));
  out->set_p99_ms(Quantile(buckets, 0.99));
}

void FillOutcome(const std::vector<int64_t>& c, v1::OutcomeStats* out) {
  out->set_count(static_cast<uint64_t>(std::max<int64_t>(0, c[kCount])));
  FillLatency(c, kLatencySumMs, kLatencyBuckets, out->mutable_latency());
  FillLatency(c, kDecisionSumMs, kDecisionBuckets, out->mutable_decision_latency());
}

// Counters of one service: [committed, aborted], each kCountersSize long.
struct ServiceCounters {
  std::vector<int64_t> committed = std::vector<int64_t>(kCountersSize, 0);
  std::vector<int64_t> aborted = std::vector<int64_t>(kCountersSize, 0);
};

void FillService(const std::string& name, const ServiceCounters& c, v1::ServiceStats* out) {
  out->set_service(name);
  FillOutcome(c.committed, out->mutable_committed());
  FillOutcome(c.aborted, out->mutable_aborted());
  const double committed = static_cast<double>(out->committed().count());
  const double aborted = static_cast<double>(out->aborted().count());
  if (committed + aborted > 0) {
    out->set_success_rate(committed / (committed + aborted));
    out->set_abort_rate(aborted / (committed + aborted));
  }
}

}  // namespace

Result<v1::StatsResponse> Views::Stats(int64_t now_unix_ms) const {
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  Status status;
  auto scan = [&](std::string_view prefix, auto&& visit) {
    for (it->Seek(ToSlice(prefix));
         status.ok() && it->Valid() && it->key().starts_with(ToSlice(prefix)); it->Next()) {
      visit(it->key().ToStringView().substr(prefix.size()), it->value().ToStringView());
    }
    if (status.ok() && !it->status().ok()) status = FromRocks(it->status(), "scan aggregates");
  };
  auto parse = [&](std::string_view bytes, std::vector<int64_t>* into) {
    v1::AggregateRecord rec;
    if (!ParseStored(bytes, &rec)) {
      status = Status::Corruption("read model: an aggregate record is unparsable");
      return;
    }
    if (into->size() < static_cast<size_t>(rec.counts_size())) into->resize(rec.counts_size(), 0);
    for (int i = 0; i < rec.counts_size(); ++i) (*into)[static_cast<size_t>(i)] += rec.counts(i);
  };

  std::map<std::string, ServiceCounters> services;  // "" = total
  services[""];
  std::vector<std::pair<int64_t, std::vector<int64_t>>> rates;  // bucket start -> counts
  const int64_t oldest_window_start =
      (now_unix_ms - int64_t{kThroughputWindowsS[1]} * 1000) / kRateBucketMs * kRateBucketMs;
  for (std::string_view side : {kLivePrefix, kArchivePrefix}) {
    const std::string counters_prefix = std::string(side) + "c";
    scan(counters_prefix, [&](std::string_view rest, std::string_view value) {
      if (rest.empty()) return;
      const auto outcome = static_cast<v1::TxState>(static_cast<unsigned char>(rest[0]));
      ServiceCounters& c = services[std::string(rest.substr(1))];
      parse(value, outcome == v1::COMMITTED ? &c.committed : &c.aborted);
    });
    const std::string rate_prefix = std::string(side) + "r";
    for (it->Seek(RateKey(side, oldest_window_start));
         status.ok() && it->Valid() && it->key().starts_with(rate_prefix); it->Next()) {
      const std::string_view rest = it->key().ToStringView().substr(rate_prefix.size());
      if (rest.size() != 8) continue;
      std::vector<int64_t> counts;
      parse(it->value().ToStringView(), &counts);
      rates.emplace_back(static_cast<int64_t>(ReadBigEndian(rest)), std::move(counts));
    }
  }
  v1::StatsResponse response;
  scan(kStateCountPrefix, [&](std::string_view rest, std::string_view value) {
    if (rest.size() != 1 || value.size() != 8) return;
    v1::StateCount* count = response.add_states();
    count->set_state(static_cast<v1::TxState>(static_cast<unsigned char>(rest[0])));
    count->set_count(ReadBigEndian(value));
  });
  it.reset();
  db_->ReleaseSnapshot(snapshot);
  if (!status.ok()) return status;

  for (const auto& [name, counters] : services) {
    FillService(name, counters, name.empty() ? response.mutable_total() : response.add_services());
  }
  for (uint32_t window_s : kThroughputWindowsS) {
    const int64_t start = (now_unix_ms - int64_t{window_s} * 1000) / kRateBucketMs * kRateBucketMs;
    int64_t committed = 0, aborted = 0;
    for (const auto& [bucket, counts] : rates) {
      if (bucket < start || counts.size() < 2) continue;
      committed += counts[0];
      aborted += counts[1];
    }
    const double seconds = static_cast<double>(std::max<int64_t>(1, now_unix_ms - start)) / 1000.0;
    v1::Throughput* t = response.add_throughput();
    t->set_window_s(window_s);
    t->set_committed_per_s(static_cast<double>(committed) / seconds);
    t->set_aborted_per_s(static_cast<double>(aborted) / seconds);
  }
  response.set_now_unix_ms(now_unix_ms);
  return response;
}

}  // namespace internal
}  // namespace treaty::readmodel
