// Cluster mode of the EventLog: appends travel through Raft before they touch RocksDB.
//
// Write path (leader): Append -> queue -> the raft thread coalesces everything queued into ONE
// Raft entry (treaty.v1.RaftEntry: many appends, meta writes, purges) -> raft_apply. Every node
// applies the committed entry with the same fold and WriteBatch as the single-node log, plus the
// entry's Raft index under meta "raft/applied_index" in the same batch. On the proposing leader
// the apply also completes the callers (matched by proposer id and sequence number, which the
// entry carries). Applying is deterministic: the fold refuses the same appends on every node.
//
// Restart: RocksDB is written without fsync (the Raft log is the durable copy); libraft replays
// every entry after its last snapshot and entries at or below the stored applied index are
// skipped, so each entry takes effect exactly once. A snapshot is the whole applied state (every
// column family, log/snapshot.cpp); restoring one replaces the state when it is newer than ours.

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <deque>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "log/event_log_impl.h"
#include "log/purge.h"
#include "log/raft_node.h"
#include "log/snapshot.h"
#include "log/store.h"
#include "log/xids.h"

namespace treaty::log::internal {
namespace {

// Most bytes of appends coalesced into one entry (an Append larger than this goes alone).
constexpr size_t kMaxEntryBytes = size_t{4} << 20;
// How long a shutdown waits for proposals in flight to be applied or fail.
constexpr auto kDrainTimeout = std::chrono::seconds(3);

// The applied index is stored in the same 8-byte big-endian form as an lsn key (store.h).
std::string EncodeIndex(uint64_t index) { return LsnKey(index); }

template <typename Message>
bool ParseView(std::string_view bytes, Message* message) {
  return bytes.size() <= static_cast<size_t>(INT_MAX) &&
         message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

class Replica final : public RaftHost {
 public:
  explicit Replica(EventLog::Impl* impl) : impl_(impl) {
    // Sequence numbers start at a random point so that an entry proposed by an earlier run of
    // this node (committed only now) never matches a caller of this run.
    std::random_device rd;
    next_seq_ = (uint64_t{rd()} << 32 | rd()) >> 1;
  }

  Status Start() {
    Result<std::optional<std::string>> applied = ReadMeta(kAppliedIndexKey);
    if (!applied.ok()) return applied.status();
    if (applied->has_value()) {
      const std::optional<uint64_t> index = ParseLsnKey(**applied);
      if (!index) {
        return Status::Corruption(
            fmt::format("{}: the stored Raft applied index has {} bytes, not 8",
                        impl_->store_->dir(), (*applied)->size()));
      }
      applied_index_ = *index;
    }
    Result<std::unique_ptr<RaftNode>> node = RaftNode::Start(*impl_->options_.cluster, this);
    if (!node.ok()) return node.status();
    node_ = std::move(*node);
    return Status::Ok();
  }

  void Enqueue(Pending pending) {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && node_->state().serving) {
        queue_.push_back(std::move(pending));
        queued = true;
      }
    }
    if (queued) {
      node_->Wake();
    } else if (pending.done) {
      pending.done(NotServing(), 0);
    }
  }

  void Shutdown() {
    std::vector<Pending> refused;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      refused.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    Fail(refused, Status::Unavailable("the log is shutting down"));
    const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
    while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    node_->Stop();
  }

  ClusterState State() const {
    ClusterState state = node_->state();
    return state;
  }
  ClusterState Wait(uint64_t seen_epoch, int64_t timeout_ms) const {
    return node_->WaitChange(seen_epoch, timeout_ms);
  }
  std::vector<ClusterPeer> Configuration() const { return node_->configuration(); }
  void ChangeMembership(MembershipChange change, std::function<void(Status)> done) {
    node_->ChangeMembership(std::move(change), std::move(done));
  }

  // ---- RaftHost (raft thread) ----

  void OnProposable() override {
    while (node_->in_flight() < impl_->options_.cluster->max_entries_in_flight) {
      std::vector<Pending> batch = TakeBatch();
      if (batch.empty()) return;
      if (!node_->serving_on_loop()) {
        Fail(batch, NotServing());
        continue;
      }
      v1::RaftEntry entry;
      entry.set_proposer(impl_->options_.cluster->node_id);
      entry.set_seq(next_seq_++);
      for (const Pending& p : batch) {
        if (!p.events.empty()) {
          *entry.add_appends()->mutable_events() = {p.events.begin(), p.events.end()};
        }
        if (p.meta) {
          v1::MetaPut* put = entry.add_meta();
          put->set_key(p.meta->first);
          put->set_value(p.meta->second);
        }
        for (const PurgeRequest& r : p.purges) {
          v1::PurgeOp* op = entry.add_purges();
          op->set_xid(r.xid);
          *op->mutable_lsns() = {r.lsns.begin(), r.lsns.end()};
          op->set_drop_outcome(r.drop_outcome);
          op->set_ended_before_unix_ms(r.ended_before_unix_ms);
        }
        if (p.xid_expiry) {
          v1::XidExpiryOp* op = entry.add_xid_expiries();
          *op->mutable_xids() = {p.xid_expiry->xids.begin(), p.xid_expiry->xids.end()};
          op->set_finished_before_unix_ms(p.xid_expiry->finished_before_unix_ms);
        }
      }
      std::string bytes;
      if (!entry.SerializeToString(&bytes)) {
        Fail(batch, Status::Internal("a Raft entry cannot be serialized"));
        continue;
      }
      const uint64_t seq = entry.seq();
      in_flight_.fetch_add(1);
      proposals_.emplace(seq, std::move(batch));
      if (Status s = node_->Propose(bytes, seq); !s.ok()) OnProposalFailed(seq, s);
    }
  }

  void OnProposalFailed(uint64_t tag, const Status& status) override {
    auto it = proposals_.find(tag);
    if (it == proposals_.end()) return;
    std::vector<Pending> batch = std::move(it->second);
    proposals_.erase(it);
    in_flight_.fetch_sub(1);
    Fail(batch, status);
  }

  void OnLeadershipLost() override {
    std::vector<Pending> queued;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    Fail(queued, NotServing());
    // Entries in flight may still commit under the next leader: their outcome is unknown.
    std::vector<uint64_t> tags;
    for (const auto& [tag, batch] : proposals_) tags.push_back(tag);
    for (uint64_t tag : tags) {
      OnProposalFailed(
          tag, Status::Unavailable("leadership was lost; the outcome is unknown (retry with the "
                                   "same xid)"));
    }
  }

  Status Apply(uint64_t index, std::string_view bytes) override {
    if (!impl_->failed_.ok()) return impl_->failed_;
    Status s = ApplyEntry(index, bytes);
    if (!s.ok()) {
      // Whatever failed (disk, an unparsable entry), this node cannot go on applying in order:
      // stop for good (treatyd exits; a restart replays from the stored applied index).
      impl_->failed_ = Status::Unavailable(fmt::format(
          "the log stopped applying Raft entry {}: {}; restart to recover", index, s.ToString()));
      impl_->stopped_after_failure_.store(true);
    }
    return s;
  }

  Status ApplyEntry(uint64_t index, std::string_view bytes) {
    if (index <= applied_index_) return Status::Ok();  // applied before a restart
    v1::RaftEntry entry;
    if (!ParseView(bytes, &entry)) {
      return Status::Corruption(fmt::format("Raft entry {} is unparsable", index));
    }
    const bool mine =
        entry.proposer() == impl_->options_.cluster->node_id && proposals_.count(entry.seq()) > 0;

    // Retention first (its own writes; applying them again after a crash is harmless).
    std::vector<PurgeResult> purge_results;
    for (const v1::PurgeOp& op : entry.purges()) {
      PurgeRequest r;
      r.xid = op.xid();
      r.lsns.assign(op.lsns().begin(), op.lsns().end());
      r.drop_outcome = op.drop_outcome();
      r.ended_before_unix_ms = op.ended_before_unix_ms();
      Result<PurgeResult> done = internal::Purge(*impl_->store_, {r}, impl_->last_lsn_.load());
      if (!done.ok()) return done.status();
      purge_results.push_back(*done);
    }
    std::vector<XidExpiryResult> expiry_results;
    for (const v1::XidExpiryOp& op : entry.xid_expiries()) {
      Result<XidExpiryResult> done = ExpireXids(
          *impl_->store_, {op.xids().begin(), op.xids().end()}, op.finished_before_unix_ms());
      if (!done.ok()) return done.status();
      expiry_results.push_back(*done);
    }

    rocksdb::WriteBatch wb;
    StagedMap batch_state;
    const uint64_t first = impl_->last_lsn_.load() + 1;
    uint64_t next = first;
    std::vector<Status> append_results;
    std::vector<uint64_t> append_last;
    for (v1::RaftAppend& append : *entry.mutable_appends()) {
      // Moved, not copied: the entry is ours and is dropped after this apply.
      auto& raw = *append.mutable_events();
      const std::vector<v1::LogEvent> events(std::make_move_iterator(raw.begin()),
                                             std::make_move_iterator(raw.end()));
      Status s = impl_->StageAppend(events, next, &batch_state, &wb);
      if (s.ok()) {
        next += events.size();
        append_last.push_back(next - 1);
      } else {
        append_last.push_back(0);
        if (mine) spdlog::warn("log: append refused: {}", s.ToString());
      }
      append_results.push_back(std::move(s));
    }
    TREATY_RETURN_IF_ERROR(impl_->StageRecords(batch_state, &wb));
    for (const v1::MetaPut& put : entry.meta()) {
      const rocksdb::Status s = wb.Put(impl_->store_->meta(), put.key(), put.value());
      if (!s.ok()) return FromRocks(s, "cannot stage a meta write");
    }
    const rocksdb::Status s =
        wb.Put(impl_->store_->meta(), std::string(kAppliedIndexKey), EncodeIndex(index));
    if (!s.ok()) return FromRocks(s, "cannot stage the applied index");
    TREATY_RETURN_IF_ERROR(impl_->Write(&wb));
    applied_index_ = index;
    if (next > first) {
      impl_->last_lsn_.store(next - 1);
      impl_->events_.fetch_add(next - first);
    }
    if (mine) Finish(entry.seq(), append_results, append_last, purge_results, expiry_results);
    return Status::Ok();
  }

  Result<std::string> Snapshot() override { return EncodeSnapshot(*impl_->store_, applied_index_); }

  Status Restore(std::string_view bytes) override {
    v1::RaftSnapshot snap;
    if (!ParseView(bytes, &snap)) return Status::Corruption("a Raft snapshot is unparsable");
    if (snap.applied_index() <= applied_index_) {
      // Our own state already includes everything the snapshot has (the usual case at startup).
      return Status::Ok();
    }
    Result<uint64_t> last = RestoreSnapshot(*impl_->store_, snap);
    if (!last.ok()) return last.status();
    impl_->last_lsn_.store(*last);
    spdlog::info("raft: restored a snapshot at applied index {} (was {}), last lsn {}",
                 snap.applied_index(), applied_index_, *last);
    applied_index_ = snap.applied_index();
    return Status::Ok();
  }

 private:
  static Status NotServing() {
    return Status::Unavailable("this node is not the serving leader of the cluster");
  }

  Result<std::optional<std::string>> ReadMeta(std::string_view key) const {
    std::string value;
    const rocksdb::Status s =
        impl_->store_->db()->Get(rocksdb::ReadOptions(), impl_->store_->meta(),
                                 rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "cannot read the applied index");
    return std::optional<std::string>(std::move(value));
  }

  // Up to one entry's worth of queued requests.
  std::vector<Pending> TakeBatch() {
    std::vector<Pending> batch;
    std::lock_guard<std::mutex> lock(mu_);
    size_t events = 0;
    size_t bytes = 0;
    while (!queue_.empty()) {
      const Pending& front = queue_.front();
      if (!batch.empty() && (events + front.events.size() > impl_->options_.max_batch_events ||
                             bytes + front.bytes > kMaxEntryBytes)) {
        break;
      }
      events += front.events.size();
      bytes += front.bytes;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return batch;
  }

  // Completes the callers of an applied entry of ours.
  void Finish(uint64_t seq, std::vector<Status>& append_results,
              const std::vector<uint64_t>& append_last, const std::vector<PurgeResult>& purged,
              const std::vector<XidExpiryResult>& expired) {
    auto it = proposals_.find(seq);
    std::vector<Pending> batch = std::move(it->second);
    proposals_.erase(it);
    in_flight_.fetch_sub(1);
    std::vector<Status> results(batch.size());
    std::vector<uint64_t> last(batch.size(), 0);
    size_t next_append = 0;
    size_t next_purge = 0;
    size_t next_expiry = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].events.empty()) {
        results[i] = std::move(append_results[next_append]);
        last[i] = append_last[next_append];
        ++next_append;
      }
      if (batch[i].purge_result) {
        for (size_t k = 0; k < batch[i].purges.size(); ++k, ++next_purge) {
          const PurgeResult& r = purged[next_purge];
          batch[i].purge_result->events_deleted += r.events_deleted;
          batch[i].purge_result->outcomes_deleted += r.outcomes_deleted;
          batch[i].purge_result->skipped += r.skipped;
          batch[i].purge_result->foreign += r.foreign;
        }
      }
      if (batch[i].xid_expiry) *batch[i].xid_expiry_result = expired[next_expiry++];
    }
    impl_->appends_.fetch_add(batch.size());
    EventLog::Impl::Complete(batch, results, last);
  }

  static void Fail(std::vector<Pending>& batch, const Status& status) {
    std::vector<Status> results(batch.size(), status);
    EventLog::Impl::Complete(batch, results, std::vector<uint64_t>(batch.size(), 0));
  }

  EventLog::Impl* const impl_;
  std::unique_ptr<RaftNode> node_;

  std::mutex mu_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::atomic<size_t> in_flight_{0};

  // Raft thread.
  uint64_t next_seq_ = 0;
  uint64_t applied_index_ = 0;
  std::map<uint64_t, std::vector<Pending>> proposals_;  // seq -> callers
};

}  // namespace treaty::log::internal

namespace treaty::log {

std::vector<ClusterPeer> EventLog::cluster_peers() const {
  if (!impl_->replica_) return {};
  return impl_->replica_->Configuration();
}

void EventLog::ChangeMembership(MembershipChange change, std::function<void(Status)> done) {
  if (!impl_->replica_) {
    return done(Status::FailedPrecondition(
        "membership changes need cluster mode (treatyd --node-id/--raft/--peers)"));
  }
  if (change.id == 0) return done(Status::InvalidArgument("a node id must be >= 1"));
  if (change.action == MembershipChange::Action::kAdd && change.raft_address.empty()) {
    return done(Status::InvalidArgument("adding a node needs its Raft address"));
  }
  impl_->replica_->ChangeMembership(std::move(change), std::move(done));
}

namespace {

Status ChangeAndWait(EventLog& log, MembershipChange change, int64_t timeout_ms) {
  // Shared: the change may finish after this caller gave up.
  auto result = std::make_shared<std::promise<Status>>();
  std::future<Status> future = result->get_future();
  log.ChangeMembership(std::move(change), [result](Status s) { result->set_value(std::move(s)); });
  if (future.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return Status::DeadlineExceeded(fmt::format(
        "the membership change did not finish within {} ms; it may still complete (check the "
        "configuration before retrying)",
        timeout_ms));
  }
  return future.get();
}

}  // namespace

Status EventLog::AddNode(uint64_t id, std::string raft_address, int64_t timeout_ms) {
  return ChangeAndWait(*this, {MembershipChange::Action::kAdd, id, std::move(raft_address)},
                       timeout_ms);
}

Status EventLog::RemoveNode(uint64_t id, int64_t timeout_ms) {
  return ChangeAndWait(*this, {MembershipChange::Action::kRemove, id, ""}, timeout_ms);
}

std::string_view ClusterMemberRoleName(ClusterMemberRole role) {
  switch (role) {
    case ClusterMemberRole::kVoter:
      return "voter";
    case ClusterMemberRole::kStandby:
      return "standby";
    case ClusterMemberRole::kSpare:
      return "spare";
  }
  return "unknown";
}

// Here, where Replica is complete.
EventLog::Impl::Impl(LogOptions opts, std::unique_ptr<internal::Store> db, uint64_t recovered_lsn)
    : options_(std::move(opts)), store_(std::move(db)), last_lsn_(recovered_lsn) {}
EventLog::Impl::~Impl() = default;
}  // namespace treaty::log

namespace treaty::log::internal {

Status StartReplica(EventLog::Impl* impl) {
  auto replica = std::make_unique<Replica>(impl);
  TREATY_RETURN_IF_ERROR(replica->Start());
  impl->replica_ = std::move(replica);
  return Status::Ok();
}

void ReplicaEnqueue(Replica& replica, Pending pending) { replica.Enqueue(std::move(pending)); }
void ReplicaShutdown(Replica& replica) { replica.Shutdown(); }
ClusterState ReplicaState(const Replica& replica) { return replica.State(); }
ClusterState ReplicaWait(const Replica& replica, uint64_t seen_epoch, int64_t timeout_ms) {
  return replica.Wait(seen_epoch, timeout_ms);
}

}  // namespace treaty::log::internal
