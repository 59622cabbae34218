// The simulated durable log of the coordinator: a single node's RocksDB log with group commit, or
// a cluster's Raft-replicated log, as the coordinator incarnations see it.
//
// Entries (one Append each) become durable in order, some milliseconds after they were
// appended, if their incarnation is still the leader then. Durable entries are folded with the
// production log::Fold (an append it refuses fails with FAILED_PRECONDITION and writes nothing,
// as in log/event_log.cpp).
//
// Losing the leader (CutLeader): in a cluster, a Raft leader that is deposed (partitioned,
// paused, killed) may have entries that a majority already stored: those survive and the next
// leader commits them before it serves; the rest are gone. On a single node, a crash keeps the
// entries that were synced before it. Either way a prefix of the in-flight entries survives. The
// old incarnation never learns which: each of its in-flight appends completes only when it learns
// it lost the leadership (LeadershipLost), with a fatal "outcome unknown", as libraft reports it.
// Until then a deposed incarnation goes on appending; those appends never become durable.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/random.h"
#include "driver/ports.h"
#include "tests/sim/sim_loop.h"

namespace treaty::sim {

struct SimLogOptions {
  bool cluster = false;
  int64_t max_commit_delay_ms = 6;  // append to durable (a sync, or a Raft round trip)
  // Single node only: an append fails (the write did not happen), and the share of failures that
  // are ambiguous (the write may or may not be durable; the log then fails every later append of
  // this incarnation: fatal, the shell restarts the coordinator).
  double failure = 0;
  double ambiguous_failure = 0.5;
};

// What the world must know of the log's doings.
class SimLogObserver {
 public:
  virtual ~SimLogObserver() = default;
  // Runs fn for incarnation inc at at_ms, unless inc is gone by then (deferred while it is paused).
  virtual void AtIncarnation(uint64_t inc, int64_t at_ms, std::function<void()> fn) = 0;
  // An event became durable (after it was folded).
  virtual void Durable(const v1::LogEvent& event) = 0;
  // The log refused an append of the leader (a core asked for a contradiction: a bug).
  virtual void Refused(const std::string& xid, const Status& why) = 0;
};

class SimLog {
 public:
  SimLog(SimLoop& loop, Random& random, SimLogOptions options, SimLogObserver& observer);

  // inc becomes the leader (serving) incarnation; it may append. 0: none.
  void SetLeader(uint64_t inc) { leader_ = inc; }
  uint64_t leader() const { return leader_; }
  // The leader is lost: survivors (count, clamped) of its in-flight entries become durable now,
  // the rest are lost; its appends wait for LeadershipLost. Returns how many were in flight.
  size_t CutLeader(size_t survivors);
  // inc learns it lost the leadership (or died): its waiting appends and barriers complete,
  // fatal, and it is forgotten.
  void LeadershipLost(uint64_t inc);
  // Single node, checker self-test: forget the entries made durable after since_ms.
  void LoseDurableSince(int64_t since_ms);

  // The LogPort of incarnation inc.
  void Append(uint64_t inc, std::vector<v1::LogEvent> events,
              std::function<void(driver::Appended)> done);
  void Barrier(uint64_t inc, std::function<void(Status)> done);
  Result<std::optional<v1::TxnRecord>> Find(uint64_t inc, std::string_view xid) const;

  // The durable, unfinished transactions (what a new coordinator recovers).
  std::vector<v1::TxnRecord> LoadActive() const;
  // The durable record of xid, if any.
  const v1::TxnRecord* Record(const std::string& xid) const;
  const std::map<std::string, v1::TxnRecord>& records() const { return records_; }
  size_t durable_entries() const { return entries_.size(); }
  // Appends of the leader not durable yet.
  size_t in_flight() const { return pending_.size(); }
  uint64_t failures() const { return failures_; }

 private:
  struct Pending {
    uint64_t seq = 0;
    uint64_t inc = 0;
    std::vector<v1::LogEvent> events;
    std::function<void(driver::Appended)> done;
  };
  struct Waiting {  // a completion owed to an incarnation that has not learned it was deposed
    std::function<void(driver::Appended)> append;
    std::function<void(Status)> barrier;
  };
  struct Entry {
    std::vector<v1::LogEvent> events;
    int64_t durable_at_ms = 0;
  };

  void CommitDue(uint64_t seq);
  // Makes events durable if the fold accepts them all; returns the fold's refusal otherwise.
  Status Commit(std::vector<v1::LogEvent> events);
  void Refold();
  int64_t NextCommitTime();

  SimLoop& loop_;
  Random& random_;
  const SimLogOptions options_;
  SimLogObserver& observer_;
  uint64_t leader_ = 0;
  uint64_t next_seq_ = 1;
  int64_t commit_ready_ms_ = 0;
  std::deque<Pending> pending_;
  std::map<uint64_t, std::vector<Waiting>> waiting_;  // by incarnation
  std::set<uint64_t> broken_;  // incarnations whose log stopped after an ambiguous failure
  // Deposed incarnations' applied state: the number of durable entries when they lost it.
  std::map<uint64_t, size_t> applied_;
  std::vector<Entry> entries_;
  std::map<std::string, v1::TxnRecord> records_;  // fold of entries_
  uint64_t failures_ = 0;
};

}  // namespace treaty::sim
