#include "tests/sim/sim_log.h"

#include <algorithm>
#include <utility>

#include "log/log.h"

namespace treaty::sim {
namespace {

Status LeadershipLostStatus() {
  return Status::Unavailable(
      "leadership was lost; the outcome is unknown (retry with the same xid)");
}

}  // namespace

SimLog::SimLog(SimLoop& loop, Random& random, SimLogOptions options, SimLogObserver& observer)
    : loop_(loop), random_(random), options_(options), observer_(observer) {}

int64_t SimLog::NextCommitTime() {
  // Entries become durable in append order (one group-committed log, or Raft's order).
  commit_ready_ms_ =
      std::max(commit_ready_ms_, loop_.Now() + 1 +
                                     static_cast<int64_t>(random_.Uniform(
                                         static_cast<uint64_t>(options_.max_commit_delay_ms))));
  return commit_ready_ms_;
}

void SimLog::Append(uint64_t inc, std::vector<v1::LogEvent> events,
                    std::function<void(driver::Appended)> done) {
  if (inc != leader_) {
    // A deposed incarnation that does not know it yet: nothing it appends can commit.
    waiting_[inc].push_back({std::move(done), nullptr});
    return;
  }
  if (broken_.count(inc) != 0) {
    observer_.AtIncarnation(inc, NextCommitTime(), [done = std::move(done)] {
      done({Status::Unavailable("the log stopped after a failed write; reopen it"), true});
    });
    return;
  }
  const uint64_t seq = next_seq_++;
  pending_.push_back({seq, inc, std::move(events), std::move(done)});
  loop_.At(NextCommitTime(), [this, seq] { CommitDue(seq); });
}

void SimLog::CommitDue(uint64_t seq) {
  if (pending_.empty() || pending_.front().seq != seq) return;  // cut with its leader
  if (pending_.front().inc != leader_) return;
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  if (!options_.cluster && options_.failure > 0 && random_.Chance(options_.failure)) {
    ++failures_;
    if (!random_.Chance(options_.ambiguous_failure)) {
      observer_.AtIncarnation(p.inc, loop_.Now(), [done = std::move(p.done)] {
        done({Status::Unavailable("injected log write failure"), false});
      });
      return;
    }
    // The write's fate is unknown to the writer; the log refuses everything after it.
    broken_.insert(p.inc);
    if (random_.Chance(0.5)) (void)Commit(std::move(p.events));
    observer_.AtIncarnation(p.inc, loop_.Now(), [done = std::move(p.done)] {
      done({Status::Unavailable("injected ambiguous log write failure"), true});
    });
    return;
  }
  const std::string xid = p.events.empty() ? "-" : p.events.front().xid();
  Status s = Commit(std::move(p.events));
  if (!s.ok()) observer_.Refused(xid, s);
  // Applied on the leader a moment after the commit; the completion may be lost to a crash.
  const int64_t applied_at = loop_.Now() + static_cast<int64_t>(random_.Uniform(3));
  observer_.AtIncarnation(p.inc, applied_at, [done = std::move(p.done), s] { done({s, false}); });
}

Status SimLog::Commit(std::vector<v1::LogEvent> events) {
  // All or nothing, as one WriteBatch: fold into copies first.
  std::map<std::string, v1::TxnRecord> staged;
  const uint64_t first_lsn = 1;
  for (const v1::LogEvent& e : events) {
    auto it = staged.find(e.xid());
    if (it == staged.end()) {
      auto durable = records_.find(e.xid());
      it = staged.emplace(e.xid(), durable == records_.end() ? v1::TxnRecord() : durable->second)
               .first;
    }
    TREATY_RETURN_IF_ERROR(log::Fold(e, first_lsn, &it->second));
  }
  for (auto& [xid, rec] : staged) records_[xid] = std::move(rec);
  for (const v1::LogEvent& e : events) observer_.Durable(e);
  entries_.push_back({std::move(events), loop_.Now()});
  return Status::Ok();
}

size_t SimLog::CutLeader(size_t survivors) {
  const size_t in_flight = pending_.size();
  const uint64_t old = leader_;
  if (old != 0) applied_[old] = entries_.size();
  survivors = std::min(survivors, in_flight);
  for (size_t i = 0; i < in_flight; ++i) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (i < survivors) {
      Status s = Commit(std::move(p.events));
      if (!s.ok()) observer_.Refused("-", s);
    }
    waiting_[p.inc].push_back({std::move(p.done), nullptr});
  }
  leader_ = 0;
  commit_ready_ms_ = loop_.Now();
  return in_flight;
}

void SimLog::LeadershipLost(uint64_t inc) {
  auto it = waiting_.find(inc);
  if (it != waiting_.end()) {
    std::vector<Waiting> owed = std::move(it->second);
    waiting_.erase(it);
    for (Waiting& w : owed) {
      observer_.AtIncarnation(inc, loop_.Now(), [w = std::move(w)] {
        if (w.append) w.append({LeadershipLostStatus(), true});
        if (w.barrier) w.barrier(LeadershipLostStatus());
      });
    }
  }
  if (leader_ == inc) leader_ = 0;
  broken_.erase(inc);
}

void SimLog::LoseDurableSince(int64_t since_ms) {
  std::erase_if(entries_, [&](const Entry& e) { return e.durable_at_ms > since_ms; });
  Refold();
}

void SimLog::Refold() {
  records_.clear();
  for (const Entry& entry : entries_) {
    for (const v1::LogEvent& e : entry.events) (void)log::Fold(e, 1, &records_[e.xid()]);
  }
}

void SimLog::Barrier(uint64_t inc, std::function<void(Status)> done) {
  if (!options_.cluster) {
    observer_.AtIncarnation(inc, loop_.Now(), [done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  if (inc != leader_) {
    waiting_[inc].push_back({nullptr, std::move(done)});
    return;
  }
  // An empty entry: it commits after everything appended before it, if inc still leads then.
  loop_.At(NextCommitTime(), [this, inc, done = std::move(done)]() mutable {
    if (leader_ != inc) {
      waiting_[inc].push_back({nullptr, std::move(done)});
      return;
    }
    observer_.AtIncarnation(inc, loop_.Now(), [done = std::move(done)] { done(Status::Ok()); });
  });
}

Result<std::optional<v1::TxnRecord>> SimLog::Find(uint64_t inc, std::string_view xid) const {
  auto applied = applied_.find(inc);
  if (applied == applied_.end() || applied->second == entries_.size()) {
    auto it = records_.find(std::string(xid));
    if (it == records_.end()) return std::optional<v1::TxnRecord>();
    return std::optional<v1::TxnRecord>(it->second);
  }
  // A deposed incarnation sees what it had applied when it lost the leadership.
  v1::TxnRecord rec;
  bool found = false;
  for (size_t i = 0; i < applied->second; ++i) {
    for (const v1::LogEvent& e : entries_[i].events) {
      if (e.xid() != xid) continue;
      (void)log::Fold(e, 1, &rec);
      found = true;
    }
  }
  if (!found) return std::optional<v1::TxnRecord>();
  return std::optional<v1::TxnRecord>(std::move(rec));
}

std::vector<v1::TxnRecord> SimLog::LoadActive() const {
  std::vector<v1::TxnRecord> active;
  for (const auto& [xid, rec] : records_) {
    if (!log::IsFinished(rec)) active.push_back(rec);
  }
  return active;
}

const v1::TxnRecord* SimLog::Record(const std::string& xid) const {
  auto it = records_.find(xid);
  return it == records_.end() ? nullptr : &it->second;
}

}  // namespace treaty::sim
