// Fold: how one log event changes a transaction record (presumed-abort 2PC).

#include <fmt/format.h>

#include "log/log.h"

namespace treaty::log {
namespace {

bool IsEmpty(const v1::TxnRecord& rec) { return rec.state() == v1::TX_STATE_UNSPECIFIED; }

bool IsKnownState(v1::TxState state) { return state >= v1::PREPARING && state <= v1::ABORTED; }

// The decision a state implies, or DECISION_UNSPECIFIED while preparing.
v1::Decision DecisionOf(v1::TxState state) {
  switch (state) {
    case v1::COMMITTING:
    case v1::COMMITTED:
      return v1::COMMIT;
    case v1::ABORTING:
    case v1::ABORTED:
      return v1::ABORT;
    default:
      return v1::DECISION_UNSPECIFIED;
  }
}

Status FoldBegun(const v1::LogEvent& event, v1::TxnRecord* rec) {
  if (!IsEmpty(*rec)) {
    return Status::FailedPrecondition(
        fmt::format("xid={} already has state {}; refusing a second BEGIN", event.xid(),
                    v1::TxState_Name(rec->state())));
  }
  rec->set_xid(event.xid());
  rec->set_state(v1::PREPARING);
  *rec->mutable_branches() = event.begun().branches();
  rec->set_prepare_timeout_ms(event.begun().prepare_timeout_ms());
  rec->set_created_unix_ms(event.unix_ms());
  return Status::Ok();
}

Status FoldDecided(const v1::LogEvent& event, v1::TxnRecord* rec) {
  const v1::TxDecided& decided = event.decided();
  const v1::Decision decision = decided.decision();
  if (decision != v1::COMMIT && decision != v1::ABORT) {
    return Status::InvalidArgument(fmt::format("xid={}: decision event carries no decision ({})",
                                               event.xid(), static_cast<int>(decision)));
  }
  if (IsEmpty(*rec)) {
    if (decision == v1::COMMIT) {
      return Status::FailedPrecondition(
          fmt::format("xid={} was never begun; refusing COMMIT", event.xid()));
    }
    // Presumed abort: aborting an unknown transaction is always allowed.
    rec->set_xid(event.xid());
    rec->set_state(v1::ABORTING);
    rec->set_reason(decided.reason());
    rec->set_created_unix_ms(event.unix_ms());
    return Status::Ok();
  }
  const v1::Decision prior = DecisionOf(rec->state());
  if (prior == decision) return Status::Ok();  // a repeated decision changes nothing
  if (prior != v1::DECISION_UNSPECIFIED) {
    return Status::FailedPrecondition(fmt::format("xid={} already decided {}; refusing {}",
                                                  event.xid(), v1::Decision_Name(prior),
                                                  v1::Decision_Name(decision)));
  }
  if (decision == v1::COMMIT) {
    rec->set_state(v1::COMMITTING);
    *rec->mutable_votes() = decided.votes();
  } else {
    rec->set_state(v1::ABORTING);
  }
  rec->set_reason(decided.reason());
  return Status::Ok();
}

Status FoldEnded(const v1::LogEvent& event, v1::TxnRecord* rec) {
  switch (rec->state()) {
    case v1::COMMITTING:
      rec->set_state(v1::COMMITTED);
      return Status::Ok();
    case v1::ABORTING:
      rec->set_state(v1::ABORTED);
      return Status::Ok();
    case v1::COMMITTED:
    case v1::ABORTED:
      return Status::Ok();  // a repeated END changes nothing
    case v1::PREPARING:
      return Status::FailedPrecondition(
          fmt::format("xid={} has no decision yet (state PREPARING); refusing END", event.xid()));
    default:
      return Status::FailedPrecondition(
          fmt::format("xid={} was never begun; refusing END", event.xid()));
  }
}

}  // namespace

Status Fold(const v1::LogEvent& event, uint64_t lsn, v1::TxnRecord* rec) {
  if (event.xid().empty()) return Status::InvalidArgument("log event has no xid");
  if (!IsEmpty(*rec)) {
    if (rec->xid() != event.xid()) {
      return Status::InvalidArgument(
          fmt::format("event of xid={} folded into the record of xid={}", event.xid(), rec->xid()));
    }
    if (!IsKnownState(rec->state())) {
      return Status::FailedPrecondition(fmt::format("xid={} has an unknown state {}", event.xid(),
                                                    static_cast<int>(rec->state())));
    }
  }
  // Each FoldX changes rec only when it returns OK.
  Status status;
  switch (event.event_case()) {
    case v1::LogEvent::kBegun:
      status = FoldBegun(event, rec);
      break;
    case v1::LogEvent::kDecided:
      status = FoldDecided(event, rec);
      break;
    case v1::LogEvent::kEnded:
      status = FoldEnded(event, rec);
      break;
    case v1::LogEvent::EVENT_NOT_SET:
      status = Status::InvalidArgument(
          fmt::format("xid={}: log event sets none of begun/decided/ended", event.xid()));
      break;
  }
  if (!status.ok()) return status;
  rec->set_updated_unix_ms(event.unix_ms());
  rec->set_last_lsn(lsn);
  return Status::Ok();
}

}  // namespace treaty::log
