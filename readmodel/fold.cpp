#include "readmodel/fold.h"

#include <algorithm>
#include <set>

#include "readmodel/keys.h"

namespace treaty::readmodel::internal {
namespace {

v1::SummaryRecord NewRecord(const v1::LogEvent& event) {
  v1::SummaryRecord rec;
  v1::TxSummary* s = rec.mutable_summary();
  s->set_xid(event.xid());
  s->set_mode(kMode2pc);
  s->set_state(v1::PREPARING);
  s->set_created_unix_ms(event.unix_ms());
  return rec;
}

void FoldBegun(const v1::LogEvent& event, std::optional<v1::SummaryRecord>* rec) {
  *rec = NewRecord(event);
  v1::TxSummary* s = (*rec)->mutable_summary();
  s->set_prepare_timeout_ms(event.begun().prepare_timeout_ms());
  for (int i = 0; i < event.begun().branches_size(); ++i) {
    const v1::Branch& branch = event.begun().branches(i);
    v1::BranchStatus* b = s->add_branches();
    b->set_branch_id(static_cast<uint32_t>(i));
    b->set_service(branch.service());
    b->set_op(branch.op());
    b->set_instance(branch.instance());
  }
}

void FoldDecided(const v1::LogEvent& event, std::optional<v1::SummaryRecord>* rec) {
  if (!rec->has_value()) *rec = NewRecord(event);  // presumed abort of an xid never begun
  v1::TxSummary* s = (*rec)->mutable_summary();
  if (s->state() != v1::PREPARING) return;  // a repeated decision
  const v1::TxDecided& decided = event.decided();
  if (decided.decision() == v1::COMMIT) {
    s->set_state(v1::COMMITTING);
    for (int i = 0; i < s->branches_size() && i < decided.votes_size(); ++i) {
      s->mutable_branches(i)->set_vote(decided.votes(i));
    }
  } else {
    s->set_state(v1::ABORTING);
  }
  s->set_reason(decided.reason());
  s->set_decided_unix_ms(event.unix_ms());
}

// Returns true if the transaction finished with this event.
bool FoldEnded(const v1::LogEvent& event, v1::TxSummary* s) {
  bool commit = s->state() == v1::COMMITTING;
  if (!commit && s->state() != v1::ABORTING) return false;  // repeated END, or END before decision
  s->set_state(commit ? v1::COMMITTED : v1::ABORTED);
  s->set_finished_unix_ms(event.unix_ms());
  // Every branch that needed the decision acknowledged it: on commit the YES voters, on abort
  // every branch (votes of aborted transactions are not logged).
  for (v1::BranchStatus& b : *s->mutable_branches()) {
    b.set_acknowledged(!commit || b.vote() == v1::YES);
  }
  return true;
}

}  // namespace

bool IsFinished(v1::TxState state) { return state == v1::COMMITTED || state == v1::ABORTED; }

FoldResult FoldEvent(const v1::LogRecord& record, std::optional<v1::SummaryRecord>* rec,
                     std::optional<v1::Transaction>* saga) {
  const v1::LogEvent& event = record.event();
  FoldResult result;
  if (rec->has_value() && record.lsn() <= (*rec)->summary().last_lsn()) return result;
  std::vector<uint64_t> lsns;
  if (rec->has_value()) lsns.assign((*rec)->event_lsns().begin(), (*rec)->event_lsns().end());
  switch (event.event_case()) {
    case v1::LogEvent::kBegun:
      if (rec->has_value()) lsns.clear();  // a new incarnation; the old one's events are gone
      FoldBegun(event, rec);
      if (saga != nullptr) saga->reset();
      break;
    case v1::LogEvent::kSagaBegun:
    case v1::LogEvent::kStepChanged:
    case v1::LogEvent::kSagaChanged:
    case v1::LogEvent::kResolved: {
      if (event.event_case() == v1::LogEvent::kResolved && rec->has_value() &&
          (*rec)->summary().mode() != kModeSaga) {
        // `tx resolve --retry` of a 2PC transaction: changes no state, but its event belongs to
        // the transaction (retention purges it with the others).
        if (IsFinished((*rec)->summary().state())) return result;  // refused by the log
        break;
      }
      if (saga == nullptr) return result;  // REQUIRES violated; nothing to fold into
      if (event.event_case() == v1::LogEvent::kSagaBegun) {
        if (event.saga_begun().saga().steps().empty()) return result;  // refused by the log
        lsns.clear();
      } else if (!rec->has_value() || (*rec)->summary().mode() != kModeSaga || !saga->has_value()) {
        return result;  // the log refuses saga events for an xid that is no saga
      }
      result.finished = FoldSagaEvent(event, rec, saga);
      break;
    }
    case v1::LogEvent::kDecided:
      if (rec->has_value() && (*rec)->summary().mode() == kModeSaga) return result;  // refused
      FoldDecided(event, rec);
      break;
    case v1::LogEvent::kEnded:
      // The log refuses END for an unknown xid and for a saga.
      if (!rec->has_value() || (*rec)->summary().mode() == kModeSaga) return result;
      result.finished = FoldEnded(event, (*rec)->mutable_summary());
      break;
    default:
      return result;
  }
  v1::SummaryRecord& r = **rec;
  r.mutable_summary()->set_updated_unix_ms(event.unix_ms());
  r.mutable_summary()->set_last_lsn(record.lsn());
  lsns.push_back(record.lsn());
  r.mutable_event_lsns()->Assign(lsns.begin(), lsns.end());
  result.applied = true;
  return result;
}

std::vector<std::string> ServicesOf(const v1::TxSummary& summary) {
  std::set<std::string> services;
  for (const v1::BranchStatus& b : summary.branches()) services.insert(b.service());
  return {services.begin(), services.end()};
}

std::map<std::string, std::string> IndexEntries(const v1::SummaryRecord& rec, bool stuck) {
  const v1::TxSummary& s = rec.summary();
  std::map<std::string, std::string> out;
  const std::string value = StateModeValue(s.state(), s.mode());
  out.emplace(UpdatedKey(s.updated_unix_ms(), s.xid()), value);
  out.emplace(StateKey(s.state(), s.updated_unix_ms(), s.xid()), value);
  for (const std::string& service : ServicesOf(s)) {
    out.emplace(ServiceKey(service, s.updated_unix_ms(), s.xid()), value);
  }
  out.emplace(LsnIndexKey(s.last_lsn(), s.xid()), "");
  if (stuck) out.emplace(StuckKey(s.updated_unix_ms(), s.xid()), "");
  if (IsFinished(s.state())) {
    out.emplace(rec.events_purged() ? ExpiryQueueKey(s.finished_unix_ms(), s.xid())
                                    : PurgeQueueKey(s.finished_unix_ms(), s.xid()),
                "");
  }
  return out;
}

Contribution ContributionOf(const v1::TxSummary& s, int64_t now_unix_ms) {
  const int64_t latency = std::max<int64_t>(0, s.finished_unix_ms() - s.created_unix_ms());
  const int64_t decision = std::max<int64_t>(0, s.decided_unix_ms() - s.created_unix_ms());
  std::vector<int64_t> counters(kCountersSize, 0);
  counters[kCount] = 1;
  counters[kLatencySumMs] = latency;
  counters[kDecisionSumMs] = decision;
  counters[kLatencyBuckets + BucketOf(latency)] = 1;
  counters[kDecisionBuckets + BucketOf(decision)] = 1;

  Contribution out;
  const std::string_view none;
  // Keys without the L/A prefix: CountersKey/RateKey with an empty prefix.
  out[CountersKey(none, s.state(), "")] = counters;
  for (const std::string& service : ServicesOf(s)) {
    out[CountersKey(none, s.state(), service)] = counters;
  }
  if (s.finished_unix_ms() >= now_unix_ms - kRateHorizonMs) {
    const int64_t bucket = s.finished_unix_ms() / kRateBucketMs * kRateBucketMs;
    const bool committed = s.state() == v1::COMMITTED;
    out[RateKey(none, bucket)] = {committed ? 1 : 0, committed ? 0 : 1};
  }
  return out;
}

void Accumulate(const std::string& key, const std::vector<int64_t>& delta, Contribution* into) {
  std::vector<int64_t>& sum = (*into)[key];
  if (sum.size() < delta.size()) sum.resize(delta.size(), 0);
  for (size_t i = 0; i < delta.size(); ++i) sum[i] += delta[i];
}

void AddCounts(const std::vector<int64_t>& delta, int64_t sign, v1::AggregateRecord* counts) {
  while (static_cast<size_t>(counts->counts_size()) < delta.size()) counts->add_counts(0);
  for (size_t i = 0; i < delta.size(); ++i) {
    const int index = static_cast<int>(i);
    counts->set_counts(index, counts->counts(index) + sign * delta[i]);
  }
}

}  // namespace treaty::readmodel::internal
