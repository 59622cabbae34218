// EventLog: the append queue, the group-commit writer thread, and the read paths.

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "log/event_log_impl.h"
#include "log/log.h"
#include "log/store.h"

namespace treaty::log {
namespace {

using internal::LsnKey;
using internal::Pending;
using internal::Staged;
using internal::StagedMap;
using internal::Store;

constexpr char kFaultEnv[] = "TREATY_FAULT_LOG_FAIL_EVERY";

// Upper bound on the encoded events of one batch (an Append larger than this still goes whole, in
// a batch of its own). Keeps one write's memory and sync time bounded, and far below the 4 GiB
// RocksDB accepts in one WriteBatch, even at max_batch_events with payload-heavy BEGINs.
constexpr size_t kMaxBatchBytes = size_t{64} << 20;
// Hard cap on one WriteBatch; an Append whose events alone exceed it is refused.
constexpr size_t kMaxWriteBytes = size_t{1} << 30;

// Finished records move from txns to outcomes: a 2PC transaction after END, a saga once
// COMPLETED or COMPENSATED (a STUCK saga stays active).
bool ParseRecord(const rocksdb::Slice& value, google::protobuf::MessageLite* message) {
  return value.size() <= static_cast<size_t>(INT_MAX) &&
         message->ParseFromArray(value.data(), static_cast<int>(value.size()));
}

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Applies TREATY_FAULT_LOG_FAIL_EVERY to options, if set.
Status ReadFaultEnv(LogOptions* options) {
  const char* env = std::getenv(kFaultEnv);
  if (env == nullptr) return Status::Ok();
  const std::string_view text(env);
  uint32_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n == 0) {
    return Status::InvalidArgument(fmt::format(
        "{}=\"{}\" is not a positive integer; unset it or set it to N > 0", kFaultEnv, text));
  }
  spdlog::warn("log: fault injection on: batch writes {}, {}, ... fail ({})", n, 2 * uint64_t{n},
               kFaultEnv);
  options->fail_every_n_batches = n;
  return Status::Ok();
}

}  // namespace

void EventLog::Impl::Enqueue(Pending pending) {
  for (const v1::LogEvent& event : pending.events) pending.bytes += event.ByteSizeLong();
  if (replica_) {
    internal::ReplicaEnqueue(*replica_, std::move(pending));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(pending));
      cv_.notify_one();
      return;
    }
  }
  if (pending.done) {
    pending.done(Status::Unavailable(
                     fmt::format("the log in {} is shutting down; append refused", store_->dir())),
                 0);
  }
}

void EventLog::Impl::Shutdown() {
  if (replica_) {
    internal::ReplicaShutdown(*replica_);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable()) writer_.join();
}

void EventLog::Impl::WriterLoop() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      size_t batch_events = 0;
      size_t batch_bytes = 0;
      do {
        batch_events += queue_.front().events.size();
        batch_bytes += queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } while (options_.group_commit && !queue_.empty() &&
               batch_events + queue_.front().events.size() <= options_.max_batch_events &&
               batch_bytes + queue_.front().bytes <= kMaxBatchBytes);
    }
    ProcessBatch(batch);
    batch.clear();
  }
}

void EventLog::Impl::ProcessBatch(std::vector<Pending>& batch) {
  std::vector<Status> results(batch.size());
  std::vector<uint64_t> last(batch.size(), 0);
  if (!failed_.ok()) {
    std::fill(results.begin(), results.end(), failed_);
  } else {
    rocksdb::WriteBatch wb(/*reserved_bytes=*/0, kMaxWriteBytes);
    StagedMap batch_state;
    const uint64_t first = last_lsn_.load() + 1;
    uint64_t next = first;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].barrier) continue;  // OK once the batch (everything before it) is written
      results[i] = StageAppend(batch[i].events, next, &batch_state, &wb);
      if (results[i].ok()) {
        next += batch[i].events.size();
        last[i] = next - 1;
      } else {
        spdlog::warn("log: append refused: {}", results[i].ToString());
      }
    }
    if (next > first) {
      Status written = StageRecords(batch_state, &wb);
      if (written.ok()) written = Write(&wb);
      if (written.ok()) {
        last_lsn_.store(next - 1);
        events_.fetch_add(next - first);
      } else {
        // Every Append that had not failed on its own fails with the batch.
        for (size_t i = 0; i < batch.size(); ++i) {
          if (results[i].ok()) {
            results[i] = written;
            last[i] = 0;
          }
        }
      }
    }
  }
  appends_.fetch_add(batch.size());
  Complete(batch, results, last);
}

void EventLog::Impl::Complete(std::vector<Pending>& batch, std::vector<Status>& results,
                              const std::vector<uint64_t>& last) {
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    try {
      batch[i].done(std::move(results[i]), last[i]);
    } catch (const std::exception& e) {
      spdlog::error("log: an append callback threw: {}", e.what());
    } catch (...) {
      spdlog::error("log: an append callback threw a non-standard exception");
    }
  }
}

Result<Staged> EventLog::Impl::Current(const std::string& xid, const StagedMap& batch_state) const {
  if (auto it = batch_state.find(xid); it != batch_state.end()) return it->second;
  Result<std::optional<v1::TxnRecord>> active = Get(store_->txns(), xid);
  if (!active.ok()) return active.status();
  if (active->has_value()) return Staged{std::move(**active), true};
  Result<std::optional<v1::TxnRecord>> finished = Get(store_->outcomes(), xid);
  if (!finished.ok()) return finished.status();
  if (finished->has_value()) return Staged{std::move(**finished), false};
  return Staged{};
}

Status EventLog::Impl::StageRecords(const StagedMap& batch_state, rocksdb::WriteBatch* wb) {
  for (const auto& [xid, staged] : batch_state) {
    std::string value;
    if (!staged.rec.SerializeToString(&value)) {
      return Status::Internal(fmt::format("xid={}: its record cannot be serialized", xid));
    }
    rocksdb::Status s;
    if (IsFinished(staged.rec)) {
      if (staged.in_txns) s = wb->Delete(store_->txns(), ToSlice(xid));
      if (s.ok()) s = wb->Put(store_->outcomes(), ToSlice(xid), value);
    } else {
      s = wb->Put(store_->txns(), ToSlice(xid), value);
    }
    if (!s.ok()) return internal::FromRocks(s, fmt::format("xid={}: cannot stage its record", xid));
  }
  return Status::Ok();
}

Status EventLog::Impl::StageAppend(const std::vector<v1::LogEvent>& events, uint64_t first_lsn,
                                   StagedMap* batch_state, rocksdb::WriteBatch* wb) {
  if (events.empty()) return Status::InvalidArgument("an Append needs at least one event");
  // This Append's view of its transactions; merged into batch_state only if every event folds.
  StagedMap mine;
  std::vector<std::pair<std::string, std::string>> puts;
  uint64_t lsn = first_lsn;
  for (const v1::LogEvent& event : events) {
    if (event.xid().empty()) return Status::InvalidArgument("log event has no xid");
    auto it = mine.find(event.xid());
    if (it == mine.end()) {
      Result<Staged> current = Current(event.xid(), *batch_state);
      if (!current.ok()) return current.status();
      it = mine.emplace(event.xid(), std::move(*current)).first;
    }
    TREATY_RETURN_IF_ERROR(Fold(event, lsn, &it->second.rec));
    v1::LogRecord record;
    record.set_lsn(lsn);
    *record.mutable_event() = event;
    std::string value;
    if (!record.SerializeToString(&value)) {
      return Status::InvalidArgument(
          fmt::format("xid={}: event cannot be serialized", event.xid()));
    }
    puts.emplace_back(LsnKey(lsn), std::move(value));
    ++lsn;
  }
  wb->SetSavePoint();
  for (const auto& [key, value] : puts) {
    const rocksdb::Status s = wb->Put(store_->events(), key, value);
    if (!s.ok()) {
      wb->RollbackToSavePoint().PermitUncheckedError();
      return Status::ResourceExhausted(fmt::format(
          "append of {} events does not fit in one write: {}", puts.size(), s.ToString()));
    }
  }
  wb->PopSavePoint().PermitUncheckedError();
  for (auto& [xid, staged] : mine) (*batch_state)[xid] = std::move(staged);
  return Status::Ok();
}

Status EventLog::Impl::Write(rocksdb::WriteBatch* wb) {
  ++write_attempts_;
  if (options_.fail_every_n_batches > 0 && write_attempts_ % options_.fail_every_n_batches == 0) {
    spdlog::warn("log: injected fault: failing batch write {}", write_attempts_);
    return Status::Unavailable(
        fmt::format("injected fault: batch write {} failed on purpose ({}={})", write_attempts_,
                    kFaultEnv, options_.fail_every_n_batches));
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  const auto start = std::chrono::steady_clock::now();
  const rocksdb::Status s = store_->db()->Write(write_options, wb);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
  if (!s.ok()) {
    // Whether the batch reached the disk is unknown; carrying on could reuse its lsns for other
    // events. Refuse everything until the log is reopened and recovers from what is on disk.
    failed_ = Status::Unavailable(
        fmt::format("the log in {} stopped after a failed write ({}); restart to recover",
                    store_->dir(), s.ToString()));
    stopped_after_failure_.store(true);
    spdlog::error("log: batch write failed, refusing further appends: {}", s.ToString());
    return Status::Unavailable(fmt::format("log write failed: {}", s.ToString()));
  }
  batches_.fetch_add(1);
  if (options_.sync) {
    syncs_.fetch_add(1);
    sync_micros_.fetch_add(static_cast<uint64_t>(micros));
  }
  return Status::Ok();
}

Result<std::optional<v1::TxnRecord>> EventLog::Impl::Get(rocksdb::ColumnFamilyHandle* family,
                                                         std::string_view xid) const {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s = store_->db()->Get(rocksdb::ReadOptions(), family, ToSlice(xid), &value);
  if (s.IsNotFound()) return std::optional<v1::TxnRecord>();
  if (!s.ok()) return internal::FromRocks(s, fmt::format("xid={}: cannot read its record", xid));
  v1::TxnRecord rec;
  if (!ParseRecord(value, &rec)) {
    return Status::Corruption(fmt::format("the {} record of xid={} in {} is unparsable",
                                          family->GetName(), xid, store_->dir()));
  }
  return std::optional<v1::TxnRecord>(std::move(rec));
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const LogOptions& options) {
  LogOptions opts = options;
  if (opts.cluster) {
    // The Raft log is the durable copy: an applied batch need not be synced (after a crash the
    // entries after the stored applied index are applied again).
    opts.sync = false;
    opts.group_commit = true;
  }
  if (opts.max_batch_events == 0) {
    return Status::InvalidArgument("max_batch_events must be at least 1");
  }
  TREATY_RETURN_IF_ERROR(ReadFaultEnv(&opts));
  Result<std::unique_ptr<Store>> store = Store::Open(opts.dir);
  if (!store.ok()) return store.status();

  uint64_t recovered = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        (*store)->db()->NewIterator(rocksdb::ReadOptions(), (*store)->events()));
    it->SeekToLast();
    if (!it->status().ok()) {
      return internal::FromRocks(it->status(), fmt::format("cannot read the log in {}", opts.dir));
    }
    if (it->Valid()) {
      const std::optional<uint64_t> lsn = internal::ParseLsnKey(it->key().ToStringView());
      if (!lsn) {
        return Status::Corruption(
            fmt::format("{}: the last events key has {} bytes, not 8", opts.dir, it->key().size()));
      }
      recovered = *lsn;
    }
  }
  spdlog::info("log: opened {}, last lsn={}", opts.dir, recovered);
  auto impl = std::make_unique<Impl>(std::move(opts), std::move(*store), recovered);
  if (impl->options_.cluster) {
    TREATY_RETURN_IF_ERROR(internal::StartReplica(impl.get()));
  } else {
    impl->writer_ = std::thread([raw = impl.get()] { raw->WriterLoop(); });
  }
  return std::unique_ptr<EventLog>(new EventLog(std::move(impl)));
}

EventLog::EventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventLog::~EventLog() {
  if (impl_) impl_->Shutdown();
}

void EventLog::Append(std::vector<v1::LogEvent> events, AppendDone done) {
  Pending pending;
  pending.events = std::move(events);
  pending.done = std::move(done);
  impl_->Enqueue(std::move(pending));
}

Result<std::vector<v1::TxnRecord>> EventLog::LoadActive() const {
  std::vector<v1::TxnRecord> out;
  const Store& store = *impl_->store_;
  std::unique_ptr<rocksdb::Iterator> it(
      store.db()->NewIterator(rocksdb::ReadOptions(), store.txns()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    v1::TxnRecord rec;
    if (!ParseRecord(it->value(), &rec)) {
      return Status::Corruption(fmt::format("the txns record of xid={} in {} is unparsable",
                                            it->key().ToStringView(), store.dir()));
    }
    out.push_back(std::move(rec));
  }
  if (!it->status().ok()) {
    return internal::FromRocks(it->status(), fmt::format("cannot read txns in {}", store.dir()));
  }
  return out;
}

Result<std::optional<v1::TxnRecord>> EventLog::Find(std::string_view xid) const {
  Result<std::optional<v1::TxnRecord>> active = impl_->Get(impl_->store_->txns(), xid);
  if (!active.ok() || active->has_value()) return active;
  return impl_->Get(impl_->store_->outcomes(), xid);
}

Result<std::vector<v1::LogRecord>> EventLog::Read(uint64_t from_lsn, size_t max) const {
  std::vector<v1::LogRecord> out;
  if (max == 0) return out;
  const Store& store = *impl_->store_;
  std::unique_ptr<rocksdb::Iterator> it(
      store.db()->NewIterator(rocksdb::ReadOptions(), store.events()));
  for (it->Seek(LsnKey(from_lsn)); it->Valid() && out.size() < max; it->Next()) {
    const std::optional<uint64_t> lsn = internal::ParseLsnKey(it->key().ToStringView());
    if (!lsn) {
      return Status::Corruption(
          fmt::format("{}: an events key has {} bytes, not 8", store.dir(), it->key().size()));
    }
    v1::LogRecord record;
    if (!ParseRecord(it->value(), &record)) {
      return Status::Corruption(
          fmt::format("the event record at lsn={} in {} is unparsable", *lsn, store.dir()));
    }
    if (record.lsn() != *lsn) {
      return Status::Corruption(fmt::format("the event record at lsn={} in {} claims lsn={}", *lsn,
                                            store.dir(), record.lsn()));
    }
    out.push_back(std::move(record));
  }
  if (!it->status().ok()) {
    return internal::FromRocks(it->status(), fmt::format("cannot read events in {}", store.dir()));
  }
  return out;
}

namespace internal {
Status ReplicateAndWait(EventLog::Impl& impl, Pending pending) {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  pending.done = [done](Status status, uint64_t) { done->set_value(std::move(status)); };
  impl.Enqueue(std::move(pending));
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return Status::Unavailable("the cluster did not commit the write within 10 s");
  }
  return result.get();
}
}  // namespace internal

// Purge: purge.cpp. FindUsedXid, ExpireXids: xids.cpp.

Status EventLog::PutMeta(std::string_view key, std::string_view value) {
  if (impl_->replica_) {
    Pending pending;
    pending.meta.emplace(std::string(key), std::string(value));
    return internal::ReplicateAndWait(*impl_, std::move(pending));
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  const rocksdb::Status s =
      impl_->store_->db()->Put(write_options, impl_->store_->meta(), ToSlice(key), ToSlice(value));
  if (!s.ok()) return internal::FromRocks(s, fmt::format("cannot write meta key \"{}\"", key));
  return Status::Ok();
}

Result<std::optional<std::string>> EventLog::GetMeta(std::string_view key) const {
  std::string value;
  const rocksdb::Status s =
      impl_->store_->db()->Get(rocksdb::ReadOptions(), impl_->store_->meta(), ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return internal::FromRocks(s, fmt::format("cannot read meta key \"{}\"", key));
  return std::optional<std::string>(std::move(value));
}

Result<std::vector<std::pair<std::string, std::string>>> EventLog::ScanMeta(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  const Store& store = *impl_->store_;
  std::unique_ptr<rocksdb::Iterator> it(
      store.db()->NewIterator(rocksdb::ReadOptions(), store.meta()));
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) {
    return internal::FromRocks(it->status(), fmt::format("cannot scan meta in {}", store.dir()));
  }
  return out;
}

uint64_t EventLog::last_lsn() const { return impl_->last_lsn_.load(); }

bool EventLog::stopped_after_failure() const { return impl_->stopped_after_failure_.load(); }

LogStats EventLog::Stats() const {
  LogStats stats;
  stats.appends = impl_->appends_.load();
  stats.events = impl_->events_.load();
  stats.batches = impl_->batches_.load();
  stats.syncs = impl_->syncs_.load();
  stats.sync_micros = impl_->sync_micros_.load();
  return stats;
}

void EventLog::Barrier(AppendDone done) {
  // Single node: every completed Append is durable; a barrier only has to follow those queued.
  Pending pending;
  pending.barrier = true;
  pending.done = std::move(done);
  impl_->Enqueue(std::move(pending));
}

ClusterState EventLog::cluster_state() const {
  if (impl_->replica_) return internal::ReplicaState(*impl_->replica_);
  ClusterState state;
  state.role = ClusterRole::kSingle;
  state.serving = !impl_->stopped_after_failure_.load();
  return state;
}

ClusterState EventLog::WaitClusterChange(uint64_t seen_epoch, int64_t timeout_ms) const {
  if (impl_->replica_) return internal::ReplicaWait(*impl_->replica_, seen_epoch, timeout_ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return cluster_state();
}

// cluster_peers() and the membership changes: event_log_cluster.cpp.

std::string_view ClusterRoleName(ClusterRole role) {
  switch (role) {
    case ClusterRole::kSingle:
      return "single";
    case ClusterRole::kUnavailable:
      return "unavailable";
    case ClusterRole::kFollower:
      return "follower";
    case ClusterRole::kCandidate:
      return "candidate";
    case ClusterRole::kLeader:
      return "leader";
  }
  return "unknown";
}

}  // namespace treaty::log
