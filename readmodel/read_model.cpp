// ReadModel: the projector thread, watches and rebuild requests around the views.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "readmodel/readmodel.h"
#include "readmodel/views.h"

namespace treaty::readmodel {

using internal::Views;

namespace {

// Batches one projector iteration folds before it answers watches and checks for requests, so a
// long catch-up does not delay them.
constexpr int kBatchesPerIteration = 16;

struct Watcher {
  v1::TxFilter filter;
  uint64_t position = 0;    // changes above this lsn are reported
  int64_t deadline_ms = 0;  // Clock::NowMs() time at which it is answered empty
  WatchDone done;
};

}  // namespace

struct ReadModel::Impl {
  Impl(ReadModelOptions opts, log::EventLog& event_log, const Clock& c, std::unique_ptr<Views> v)
      : options(std::move(opts)), log(event_log), clock(c), views(std::move(v)) {}

  // REQUIRES: project_mu held.
  Result<uint64_t> ProjectAvailable(int max_batches, const ProgressFn* progress,
                                    uint64_t* events_done);
  Result<uint64_t> CatchUpLocked();
  Result<v1::RebuildReadModelResponse> RebuildLocked(const ProgressFn& progress);
  Result<RetentionResult> RetentionLocked();
  // Answers the watches that have changes or timed out. Not under project_mu.
  void ServeWatchers();
  void Loop();

  const ReadModelOptions options;
  log::EventLog& log;
  const Clock& clock;
  const std::unique_ptr<Views> views;

  std::mutex project_mu;  // serializes every change of the views

  std::mutex mu;  // guards the fields below
  std::condition_variable cv;
  bool wake = false;
  bool stopping = false;
  bool stopped = false;
  std::vector<Watcher> watchers;
  std::optional<RebuildDone> rebuild_request;
  std::thread thread;

  std::atomic<uint64_t> projected_events_total{0};
  std::atomic<uint64_t> rebuilds_total{0};
  std::atomic<bool> rebuilding{false};
  std::atomic<uint64_t> rebuild_done{0};
  std::atomic<uint64_t> rebuild_target{0};
  std::atomic<uint64_t> events_purged_total{0};
  std::atomic<uint64_t> summaries_expired_total{0};
  int64_t next_retention_ms = 0;  // projector thread
};

Result<uint64_t> ReadModel::Impl::ProjectAvailable(int max_batches, const ProgressFn* progress,
                                                   uint64_t* events_done) {
  uint64_t total = 0;
  for (int i = 0; i < max_batches; ++i) {
    if (log.last_lsn() <= views->projected_lsn()) break;  // the cheap poll: nothing new
    Result<std::vector<v1::LogRecord>> records =
        log.Read(views->projected_lsn() + 1, options.batch_events);
    if (!records.ok()) return records.status();
    if (records->empty()) break;
    TREATY_RETURN_IF_ERROR(views->Project(*records, clock.UnixMs()));
    total += records->size();
    projected_events_total.fetch_add(records->size());
    if (events_done != nullptr) {
      *events_done += records->size();
      rebuild_done.store(*events_done);
      if (progress != nullptr && *progress) {
        (*progress)(RebuildProgress{*events_done, rebuild_target.load()});
      }
    }
  }
  return total;
}

Result<uint64_t> ReadModel::Impl::CatchUpLocked() {
  const uint64_t target = log.last_lsn();
  uint64_t total = 0;
  while (views->projected_lsn() < target) {
    Result<uint64_t> n = ProjectAvailable(1, nullptr, nullptr);
    if (!n.ok()) return n.status();
    if (*n == 0) break;  // the rest of the range was purged (or is not visible yet)
    total += *n;
  }
  return total;
}

Result<v1::RebuildReadModelResponse> ReadModel::Impl::RebuildLocked(const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  rebuild_target.store(log.last_lsn());
  rebuild_done.store(0);
  rebuilding.store(true);
  spdlog::info("read model: rebuild started (log last lsn={})", rebuild_target.load());
  Result<uint64_t> kept = views->Wipe(/*full=*/false);
  uint64_t events = 0;
  Status status = kept.status();
  while (status.ok()) {
    Result<uint64_t> n = ProjectAvailable(1, &progress, &events);
    status = n.status();
    if (!n.ok() || *n == 0) break;
  }
  rebuilding.store(false);
  if (!status.ok()) {
    spdlog::error("read model: rebuild failed: {}", status.ToString());
    return status;
  }
  rebuilds_total.fetch_add(1);
  v1::RebuildReadModelResponse response;
  response.set_events(events);
  response.set_kept_summaries(*kept);
  response.set_projected_lsn(views->projected_lsn());
  response.set_duration_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count());
  spdlog::info("read model: rebuild done: {} events, {} summaries kept, lsn={}, {} ms", events,
               *kept, response.projected_lsn(), response.duration_ms());
  return response;
}

Result<RetentionResult> ReadModel::Impl::RetentionLocked() {
  Result<RetentionResult> r = views->Retention(log, options, clock.UnixMs());
  if (r.ok()) {
    events_purged_total.fetch_add(r->events_purged);
    summaries_expired_total.fetch_add(r->summaries_expired);
  }
  return r;
}

void ReadModel::Impl::ServeWatchers() {
  std::vector<Watcher> pending;
  {
    std::lock_guard<std::mutex> lock(mu);
    pending.swap(watchers);
  }
  if (pending.empty()) return;
  const uint64_t projected = views->projected_lsn();
  const int64_t now = clock.NowMs();
  std::vector<Watcher> keep;
  for (Watcher& w : pending) {
    if (projected > w.position) {
      Result<v1::WatchResponse> changes = views->Changes(w.filter, w.position);
      if (!changes.ok() || changes->changes_size() > 0) {
        w.done(std::move(changes));
        continue;
      }
      w.position = changes->lsn();
    }
    if (now >= w.deadline_ms) {
      v1::WatchResponse empty;
      empty.set_lsn(w.position);
      w.done(std::move(empty));
      continue;
    }
    keep.push_back(std::move(w));
  }
  std::lock_guard<std::mutex> lock(mu);
  for (Watcher& w : keep) watchers.push_back(std::move(w));
}

void ReadModel::Impl::Loop() {
  for (;;) {
    std::optional<RebuildDone> rebuild;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(options.poll_interval_ms),
                  [this] { return wake || stopping; });
      wake = false;
      if (stopping) return;
      rebuild.swap(rebuild_request);
    }
    Status status;
    uint64_t projected = 0;
    {
      std::lock_guard<std::mutex> lock(project_mu);
      if (rebuild) {
        (*rebuild)(RebuildLocked({}));
        rebuild.reset();
      }
      Result<uint64_t> n = ProjectAvailable(kBatchesPerIteration, nullptr, nullptr);
      status = n.status();
      projected = n.ok() ? *n : 0;
      const int64_t now = clock.NowMs();
      if (status.ok() && now >= next_retention_ms) {
        next_retention_ms = now + options.retention_interval_ms;
        status = RetentionLocked().status();
      }
    }
    if (!status.ok()) {
      // Transient (I/O) or a damaged record: keep serving queries, retry after a pause.
      spdlog::error("read model: projector: {}; retrying", status.ToString());
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::seconds(1), [this] { return stopping; });
    }
    ServeWatchers();
    if (projected > 0) {
      std::lock_guard<std::mutex> lock(mu);
      wake = true;  // more may be waiting; look again without sleeping
    }
  }
}

Result<std::unique_ptr<ReadModel>> ReadModel::Open(const ReadModelOptions& options,
                                                   log::EventLog& log, const Clock& clock) {
  if (options.batch_events == 0 || options.poll_interval_ms <= 0 ||
      options.retention_interval_ms <= 0 || options.event_retention_ms < 0 ||
      options.summary_retention_ms < 0 || options.xid_retention_ms < 0 ||
      options.stuck_after_ms < 0) {
    return Status::InvalidArgument(
        "read model options: batch_events, poll_interval_ms and retention_interval_ms must be "
        "positive, retentions and stuck_after_ms not negative");
  }
  if (options.xid_retention_ms > 0 && options.summary_retention_ms > 0 &&
      options.xid_retention_ms < options.summary_retention_ms) {
    return Status::InvalidArgument(fmt::format(
        "read model options: xid_retention_ms ({}) is shorter than summary_retention_ms ({}); "
        "an xid must stay known at least as long as its summary",
        options.xid_retention_ms, options.summary_retention_ms));
  }
  Result<std::unique_ptr<Views>> views = Views::Open(options.dir);
  if (!views.ok()) return views.status();
  if ((*views)->projected_lsn() > log.last_lsn()) {
    spdlog::warn(
        "read model: {} is at lsn={} but the log ends at lsn={} (another or a reset "
        "log); wiping it and projecting from scratch",
        options.dir, (*views)->projected_lsn(), log.last_lsn());
    Result<uint64_t> wiped = (*views)->Wipe(/*full=*/true);
    if (!wiped.ok()) return wiped.status();
  } else if ((*views)->wipe_pending()) {
    spdlog::warn("read model: {}: an interrupted rebuild is resumed", options.dir);
    Result<uint64_t> wiped = (*views)->Wipe(/*full=*/false);
    if (!wiped.ok()) return wiped.status();
  }
  spdlog::info("read model: opened {} at lsn={} (log last lsn={})", options.dir,
               (*views)->projected_lsn(), log.last_lsn());
  return std::unique_ptr<ReadModel>(
      new ReadModel(std::make_unique<Impl>(options, log, clock, std::move(*views))));
}

ReadModel::ReadModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ReadModel::~ReadModel() { Stop(); }

void ReadModel::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->Loop(); });
}

void ReadModel::Stop() {
  std::vector<Watcher> watchers;
  std::optional<RebuildDone> rebuild;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopping = true;
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    watchers.swap(impl_->watchers);
    rebuild.swap(impl_->rebuild_request);
  }
  const Status gone = Status::Unavailable("the read model is shutting down");
  for (Watcher& w : watchers) w.done(gone);
  if (rebuild) (*rebuild)(gone);
}

void ReadModel::Notify() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->wake = true;
  }
  impl_->cv.notify_all();
}

Result<uint64_t> ReadModel::CatchUp() {
  Result<uint64_t> n = [&] {
    std::lock_guard<std::mutex> lock(impl_->project_mu);
    return impl_->CatchUpLocked();
  }();
  impl_->ServeWatchers();
  return n;
}

Result<RetentionResult> ReadModel::RunRetention() {
  std::lock_guard<std::mutex> lock(impl_->project_mu);
  return impl_->RetentionLocked();
}

Result<v1::RebuildReadModelResponse> ReadModel::Rebuild(const ProgressFn& progress) {
  std::lock_guard<std::mutex> lock(impl_->project_mu);
  return impl_->RebuildLocked(progress);
}

void ReadModel::RequestRebuild(RebuildDone done) {
  Status refused;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) {
      refused = Status::Unavailable("the read model is shutting down");
    } else if (!impl_->thread.joinable()) {
      refused = Status::FailedPrecondition("the read model's projector is not running");
    } else if (impl_->rebuild_request || impl_->rebuilding.load()) {
      refused = Status::FailedPrecondition(
          "a rebuild of the read model is already running; its progress is in `treaty stats`");
    } else {
      impl_->rebuild_request = std::move(done);
      impl_->wake = true;
    }
  }
  if (!refused.ok()) {
    done(refused);
    return;
  }
  impl_->cv.notify_all();
}

Result<std::optional<v1::TxSummary>> ReadModel::Get(std::string_view xid) const {
  return impl_->views->Get(xid);
}

Result<std::optional<v1::Transaction>> ReadModel::GetTransaction(
    std::string_view xid, const v1::Transaction* live) const {
  return impl_->views->GetTransaction(xid, live);
}

Result<v1::ListTransactionsResponse> ReadModel::List(
    const v1::ListTransactionsRequest& request) const {
  return impl_->views->List(request);
}

Result<v1::StatsResponse> ReadModel::Stats() const {
  Result<v1::StatsResponse> stats = impl_->views->Stats(impl_->clock.UnixMs());
  if (stats.ok()) *stats->mutable_projector() = ProjectorState();
  return stats;
}

Result<v1::AttentionResponse> ReadModel::Attention(int64_t now_unix_ms, size_t limit) const {
  return impl_->views->Attention(now_unix_ms, impl_->options.stuck_after_ms, limit);
}

void ReadModel::Watch(const v1::WatchRequest& request, WatchDone done) {
  Watcher w;
  w.filter = request.filter();
  int64_t timeout = request.timeout_ms() == 0 ? kDefaultWatchTimeoutMs : request.timeout_ms();
  timeout = std::min<int64_t>(timeout, kMaxWatchTimeoutMs);
  w.deadline_ms = impl_->clock.NowMs() + timeout;
  w.position = request.from_now() ? impl_->views->projected_lsn() : request.after_lsn();
  if (!request.from_now()) {
    Result<v1::WatchResponse> changes = impl_->views->Changes(w.filter, w.position);
    if (!changes.ok() || changes->changes_size() > 0) {
      done(std::move(changes));
      return;
    }
    w.position = changes->lsn();
  }
  w.done = std::move(done);
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    stopping = impl_->stopping;
    if (!stopping && impl_->watchers.size() < impl_->options.max_watchers) {
      impl_->watchers.push_back(std::move(w));
      return;
    }
  }
  if (stopping) {
    w.done(Status::Unavailable("the read model is shutting down"));
  } else {
    w.done(Status::ResourceExhausted(fmt::format(
        "{} watches are already waiting (the limit); retry later", impl_->options.max_watchers)));
  }
}

v1::ProjectorStatus ReadModel::ProjectorState() const {
  v1::ProjectorStatus status;
  const uint64_t projected = impl_->views->projected_lsn();
  const uint64_t last = impl_->log.last_lsn();
  status.set_projected_lsn(projected);
  status.set_log_last_lsn(last);
  status.set_lag_events(last > projected ? last - projected : 0);
  if (last > projected) {
    Result<std::vector<v1::LogRecord>> next = impl_->log.Read(projected + 1, 1);
    if (next.ok() && !next->empty()) {
      const int64_t age_ms = impl_->clock.UnixMs() - next->front().event().unix_ms();
      status.set_lag_seconds(static_cast<double>(std::max<int64_t>(0, age_ms)) / 1000.0);
    }
  }
  status.set_projected_events_total(impl_->projected_events_total.load());
  status.set_rebuilds_total(impl_->rebuilds_total.load());
  status.set_rebuilding(impl_->rebuilding.load());
  status.set_rebuild_events_done(impl_->rebuild_done.load());
  status.set_rebuild_target_lsn(impl_->rebuild_target.load());
  status.set_events_purged_total(impl_->events_purged_total.load());
  status.set_summaries_expired_total(impl_->summaries_expired_total.load());
  return status;
}

}  // namespace treaty::readmodel
