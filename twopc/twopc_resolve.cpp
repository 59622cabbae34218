// TwoPcCore: an operator's resolution of a 2PC transaction (`treaty tx resolve`), the part of the
// core that is not the protocol's normal run. See "Operator resolution" in twopc_core.h.
#include <algorithm>
#include <utility>

#include "twopc/twopc_core.h"  // declares these members
#include "twopc/twopc_rules.h"

namespace treaty::twopc {

Effects TwoPcCore::Handle(const Resolve& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr) {
    out.resolve_replies.push_back(
        {in.client, in.xid, Status::NotFound("xid=" + in.xid + " is not an active transaction"),
         v1::TX_STATE_UNSPECIFIED, ""});
    return out;
  }
  if (Status s = CheckResolve(*tx, in); !s.ok()) {
    out.resolve_replies.push_back({in.client, in.xid, std::move(s), tx->state, ""});
    return out;
  }
  tx->resolve_clients.push_back(in.client);
  if (in.action == ResolveAction::kAbort) {
    // Presumed abort: deciding ABORT while preparing is always safe; the reason carries who and
    // why into the decision event (the log's record of this resolution).
    Decide(*tx, v1::ABORT, "aborted by " + in.who + ": " + in.why, out);
    return out;
  }
  // Retry: log who and why first, then redeliver (OnResolveLogged). Redelivery needs nothing
  // from the log, but an operator's action that left no trace would be worse than a short wait.
  v1::LogEvent event;
  event.set_xid(tx->xid);
  event.set_unix_ms(clock_.UnixMs());
  v1::Resolved* resolved = event.mutable_resolved();
  resolved->set_action("retry");
  resolved->set_who(in.who);
  resolved->set_why(in.why);
  tx->appending = LogStep::kResolve;
  out.appends.push_back({LogStep::kResolve, std::move(event)});
  Touch(*tx);
  return out;
}

Status TwoPcCore::CheckResolve(const Tx& tx, const Resolve& in) const {
  const std::string xid = "xid=" + tx.xid;
  if (in.action == ResolveAction::kMarkCompensated) {
    return internal::MarkCompensatedRefusal(tx.xid);
  }
  // One append at a time per transaction (the LogDone that follows names only its step); these
  // windows last one log write, so the operator simply asks again.
  const bool log_retry_pending = std::any_of(tx.timers.begin(), tx.timers.end(), [](const auto& t) {
    return t.second.kind == TimerKind::kRetryLog;
  });
  const bool busy = tx.appending.has_value() || log_retry_pending;
  if (in.action == ResolveAction::kAbort) {
    if (tx.decision != v1::DECISION_UNSPECIFIED) {
      return Status::FailedPrecondition(xid + " is already decided " +
                                        v1::Decision_Name(tx.decision) + "; use --retry");
    }
    if (!tx.begin_durable || busy) {
      return Status::FailedPrecondition(xid + " is still being logged; try again in a moment");
    }
    return Status::Ok();
  }
  if (tx.decision == v1::DECISION_UNSPECIFIED) {
    return Status::FailedPrecondition(
        xid +
        " is PREPARING: there is no decision to redeliver (it aborts at its prepare "
        "deadline; --abort aborts it now)");
  }
  if (tx.ending) {
    return Status::FailedPrecondition(xid + " is " + v1::TxState_Name(tx.state) +
                                      ": every branch acknowledged the decision; it is ending");
  }
  if (!tx.decision_durable || busy) {
    return Status::FailedPrecondition(xid + " is logging its " + v1::Decision_Name(tx.decision) +
                                      " decision or a resolution; try again in a moment");
  }
  return Status::Ok();
}

void TwoPcCore::OnResolveLogged(Tx& tx, const Status& status, Effects& out) {
  if (!status.ok()) {
    // Nothing was redelivered: the operator sees the failure and may ask again. Scheduled
    // retries continue meanwhile.
    ReplyResolvers(tx, status.WithPrefix("xid=" + tx.xid + ": logging the resolution failed"), "",
                   out);
    MaybeEnd(tx, out);
    return;
  }
  uint32_t redelivered = 0;
  for (uint32_t b = 0; b < tx.branches.size(); ++b) {
    BranchState& bs = tx.branch_states[b];
    if (!bs.needs_decision || bs.acked) continue;
    // Attempt 1 again: the next failure waits at most retry.initial_backoff_ms. A call still in
    // flight is not waited for; its late answer is handled like this one's (acks are idempotent,
    // and a failure schedules at most one retry per branch).
    CancelTimer(tx, bs.retry_timer);
    bs.retry_timer = 0;
    SendDecision(tx, b, 1, out);
    ++redelivered;
  }
  Touch(tx);
  const std::string decision = tx.decision == v1::COMMIT ? "COMMIT" : "ABORT";
  ReplyResolvers(tx, Status::Ok(),
                 redelivered == 0
                     ? "every branch had acknowledged " + decision
                     : decision + " redelivered now to " + std::to_string(redelivered) +
                           " unacknowledged branch" + (redelivered == 1 ? "" : "es"),
                 out);
  // Acknowledgements that arrived while the resolution was being logged could not end it.
  MaybeEnd(tx, out);
}

void TwoPcCore::ReplyResolvers(Tx& tx, const Status& status, const std::string& message,
                               Effects& out) {
  for (uint64_t client : tx.resolve_clients) {
    out.resolve_replies.push_back({client, tx.xid, status, tx.state, message});
  }
  tx.resolve_clients.clear();
}

}  // namespace treaty::twopc
