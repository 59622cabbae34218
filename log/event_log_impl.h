// Private to log/: EventLog's implementation object, shared by the single-node writer
// (event_log.cpp) and cluster mode (event_log_cluster.cpp).
#pragma once

#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "log/log.h"
#include "log/store.h"

namespace treaty::log {
namespace internal {

// Cluster mode: an ExpireXids as the leader decided it (the xids it picked and the cutoff).
struct XidExpiry {
  std::vector<std::string> xids;
  int64_t finished_before_unix_ms = 0;
};

// One caller's request waiting in the queue: an Append, or (barrier) nothing but a completion
// point; in cluster mode also a replicated PutMeta, Purge or ExpireXids.
struct Pending {
  std::vector<v1::LogEvent> events;
  AppendDone done;
  size_t bytes = 0;      // encoded size of events
  bool barrier = false;  // no events: completes when everything queued before it is written
  std::optional<std::pair<std::string, std::string>> meta;  // cluster mode: a PutMeta
  std::vector<PurgeRequest> purges;                         // cluster mode: a Purge
  std::shared_ptr<PurgeResult> purge_result;                // ... and where its result goes
  std::optional<XidExpiry> xid_expiry;                      // cluster mode: an ExpireXids
  std::shared_ptr<XidExpiryResult> xid_expiry_result;       // ... and where its result goes
};

// A transaction record as the batch under construction sees it.
struct Staged {
  v1::TxnRecord rec;
  bool in_txns = false;  // the txns column family holds a version of it (delete it on finishing)
};
using StagedMap = std::unordered_map<std::string, Staged>;

class Replica;  // cluster mode (event_log_cluster.cpp)

// Meta key of the last Raft index applied to this database (cluster mode), 8 bytes big-endian.
inline constexpr std::string_view kAppliedIndexKey = "raft/applied_index";

}  // namespace internal

struct EventLog::Impl {
  Impl(LogOptions opts, std::unique_ptr<internal::Store> db, uint64_t recovered_lsn);
  ~Impl();

  void Enqueue(internal::Pending pending);
  // Stops accepting appends, completes everything queued, joins the writer.
  void Shutdown();

  // Writer thread (single node).
  void WriterLoop();
  void ProcessBatch(std::vector<internal::Pending>& batch);

  // Shared by both modes: folds one Append's events over batch_state and adds them to wb; on
  // error adds nothing.
  Status StageAppend(const std::vector<v1::LogEvent>& events, uint64_t first_lsn,
                     internal::StagedMap* batch_state, rocksdb::WriteBatch* wb);
  // Adds the txns/outcomes records of batch_state to wb.
  Status StageRecords(const internal::StagedMap& batch_state, rocksdb::WriteBatch* wb);
  Result<internal::Staged> Current(const std::string& xid,
                                   const internal::StagedMap& batch_state) const;
  // Writes wb (synced if options_.sync); a failure stops the log for good (fail-stop).
  Status Write(rocksdb::WriteBatch* wb);
  // Completes each pending with its result (exceptions from callbacks are logged).
  static void Complete(std::vector<internal::Pending>& batch, std::vector<Status>& results,
                       const std::vector<uint64_t>& last);

  Result<std::optional<v1::TxnRecord>> Get(rocksdb::ColumnFamilyHandle* family,
                                           std::string_view xid) const;

  const LogOptions options_;
  const std::unique_ptr<internal::Store> store_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<internal::Pending> queue_;  // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
  std::thread writer_;
  // Single node: serializes Purge and ExpireXids (log/xids.h). Cluster mode: the apply thread does.
  std::mutex retention_mu_;

  // Owned by the writer thread (the raft thread in cluster mode).
  Status failed_;                                   // set for good after a failed database write
  std::atomic<bool> stopped_after_failure_{false};  // mirrors !failed_.ok() for other threads
  uint64_t write_attempts_ = 0;

  std::atomic<uint64_t> last_lsn_;
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> sync_micros_{0};

  // Cluster mode only.
  std::unique_ptr<internal::Replica> replica_;
};

namespace internal {
// Cluster mode: starts Raft behind impl (event_log_cluster.cpp); sets impl->replica_.
Status StartReplica(EventLog::Impl* impl);
void ReplicaEnqueue(Replica& replica, Pending pending);
// Stops accepting, fails what is queued, lets proposals drain (bounded), stops Raft.
void ReplicaShutdown(Replica& replica);
// The state of a cluster-mode log; Replica's.
ClusterState ReplicaState(const Replica& replica);
ClusterState ReplicaWait(const Replica& replica, uint64_t seen_epoch, int64_t timeout_ms);
// Cluster mode: enqueues pending (a PutMeta, Purge or ExpireXids) and waits until this node
// applied it; UNAVAILABLE when not serving or not committed within 10 s.
Status ReplicateAndWait(EventLog::Impl& impl, Pending pending);
}  // namespace internal

}  // namespace treaty::log
