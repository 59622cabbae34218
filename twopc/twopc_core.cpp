#include "twopc/twopc_core.h"

#include <algorithm>
#include <utility>

#include "twopc/twopc_rules.h"

namespace treaty::twopc {

using internal::MayHavePrepared;

// Most clients that may wait on one transaction at a time. Bounds the memory a client retrying
// its submission in a loop can pin; further attaches get RESOURCE_EXHAUSTED.
constexpr size_t kMaxWaiters = 64;

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPrepare:
      return "prepare";
    case Phase::kCommit:
      return "commit";
    case Phase::kAbort:
      return "abort";
  }
  return "unknown";
}

bool Effects::empty() const {
  return appends.empty() && calls.empty() && timers.empty() && replies.empty() &&
         resolve_replies.empty() && finished.empty();
}

TwoPcCore::TwoPcCore(CoreOptions options, const Clock& clock, Random& random)
    : options_(options), clock_(clock), random_(random) {}

size_t TwoPcCore::active() const { return txs_.size(); }

TwoPcCore::Tx* TwoPcCore::Find(const std::string& xid) {
  auto it = txs_.find(xid);
  return it == txs_.end() ? nullptr : &it->second;
}

void TwoPcCore::Forget(const std::string& xid) { txs_.erase(xid); }

void TwoPcCore::Touch(Tx& tx) { tx.updated_unix_ms = clock_.UnixMs(); }

bool TwoPcCore::Deliverable(const Tx& tx) const {
  return tx.decision_durable ||
         (tx.decision == v1::ABORT && options_.recovery == Recovery::kPresumeAbort);
}

Phase TwoPcCore::CallPhase(const Tx& tx) const {
  if (!Deliverable(tx)) return Phase::kPrepare;
  return tx.decision == v1::COMMIT ? Phase::kCommit : Phase::kAbort;
}

// ---- Submit ----

Effects TwoPcCore::Handle(const Submit& in) {
  Effects out;
  if (Status s = internal::ValidateSubmit(in); !s.ok()) {
    out.replies.push_back({in.client, in.xid, std::move(s), v1::TX_STATE_UNSPECIFIED, ""});
    return out;
  }
  if (Tx* existing = Find(in.xid)) {
    Attach(*existing, in, out);
    return out;
  }
  Tx& tx = txs_[in.xid];
  tx.xid = in.xid;
  tx.branches = in.branches;
  tx.branch_states.resize(in.branches.size());
  tx.prepare_timeout_ms =
      in.prepare_timeout_ms != 0 ? in.prepare_timeout_ms : options_.default_prepare_timeout_ms;
  tx.start_ms = clock_.NowMs();
  tx.created_unix_ms = tx.updated_unix_ms = clock_.UnixMs();
  tx.waiters.push_back({in.client, in.wait});

  v1::LogEvent event;
  event.set_xid(tx.xid);
  event.set_unix_ms(tx.created_unix_ms);
  v1::TxBegun* begun = event.mutable_begun();
  for (const v1::Branch& b : tx.branches) *begun->add_branches() = b;
  begun->set_prepare_timeout_ms(tx.prepare_timeout_ms);
  tx.appending = LogStep::kBegin;
  out.appends.push_back({LogStep::kBegin, std::move(event)});
  return out;
}

void TwoPcCore::Attach(Tx& tx, const Submit& in, Effects& out) {
  if (!internal::SameBranches(tx.branches, in.branches)) {
    out.replies.push_back(
        {in.client, in.xid,
         Status::AlreadyExists("xid=" + in.xid +
                               " is already in progress with different branches; use a new xid"),
         v1::TX_STATE_UNSPECIFIED, ""});
    return;
  }
  if (tx.waiters.size() >= kMaxWaiters) {
    out.replies.push_back(
        {in.client, in.xid,
         Status::ResourceExhausted("xid=" + in.xid + " already has " + std::to_string(kMaxWaiters) +
                                   " waiting clients; retry later"),
         v1::TX_STATE_UNSPECIFIED, ""});
    return;
  }
  tx.waiters.push_back({in.client, in.wait});
  ReplyWaiters(tx, out);
}

void TwoPcCore::ReplyWaiters(Tx& tx, Effects& out) {
  const bool decided = tx.state == v1::COMMITTING || tx.state == v1::ABORTING;
  auto passed = [&](const Waiter& w) { return w.wait ? decided : tx.begin_durable; };
  for (const Waiter& w : tx.waiters) {
    if (passed(w)) out.replies.push_back({w.client, tx.xid, Status::Ok(), tx.state, tx.reason});
  }
  std::erase_if(tx.waiters, passed);
}

// ---- Log completions ----

Effects TwoPcCore::Handle(const LogDone& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr || tx->appending != in.step) return out;
  tx->appending.reset();
  switch (in.step) {
    case LogStep::kBegin:
      if (!in.status.ok()) {
        // Nothing was sent to any participant, so the transaction can simply be dropped. Should
        // the failed write be durable after all, recovery aborts it (presumed abort).
        Status why = in.status.WithPrefix("xid=" + in.xid + ": logging BEGIN failed");
        for (const Waiter& w : tx->waiters) {
          out.replies.push_back({w.client, tx->xid, why, v1::TX_STATE_UNSPECIFIED, ""});
        }
        Forget(in.xid);
        return out;
      }
      tx->begin_durable = true;
      StartPrepare(*tx, out);
      break;
    case LogStep::kDecision:
      if (!in.status.ok()) {
        ArmTimer(*tx, {TimerKind::kRetryLog, 0, Phase::kPrepare, LogStep::kDecision},
                 options_.log_retry_ms, out);
        break;
      }
      // An operator's abort is answered once its decision is durable.
      ReplyResolvers(*tx, Status::Ok(), "decided ABORT", out);
      OnDecisionDurable(*tx, out);
      break;
    case LogStep::kEnd:
      if (!in.status.ok()) {
        ArmTimer(*tx, {TimerKind::kRetryLog, 0, Phase::kPrepare, LogStep::kEnd},
                 options_.log_retry_ms, out);
        break;
      }
      out.finished.push_back({tx->xid, tx->decision == v1::COMMIT ? v1::COMMITTED : v1::ABORTED,
                              clock_.NowMs() - tx->start_ms});
      Forget(in.xid);
      break;
    case LogStep::kResolve:
      OnResolveLogged(*tx, in.status, out);
      break;
  }
  return out;
}

void TwoPcCore::StartPrepare(Tx& tx, Effects& out) {
  tx.state = v1::PREPARING;
  Touch(tx);
  tx.prepare_deadline_ms = clock_.NowMs() + tx.prepare_timeout_ms;
  ReplyWaiters(tx, out);
  for (uint32_t b = 0; b < tx.branches.size(); ++b) SendPrepare(tx, b, 1, out);
  ArmTimer(tx, {TimerKind::kPrepareDeadline, 0, Phase::kPrepare, LogStep::kBegin},
           tx.prepare_timeout_ms, out);
}

void TwoPcCore::SendPrepare(Tx& tx, uint32_t branch, uint32_t attempt, Effects& out) {
  tx.branch_states[branch].attempts = attempt;
  const v1::Branch& b = tx.branches[branch];
  const int64_t budget_ms = std::max<int64_t>(1, tx.prepare_deadline_ms - clock_.NowMs());
  out.calls.push_back({tx.xid, branch, Phase::kPrepare, b.service(), b.op(), b.payload(), attempt,
                       budget_ms, b.instance()});
}

void TwoPcCore::SendDecision(Tx& tx, uint32_t branch, uint32_t attempt, Effects& out) {
  tx.branch_states[branch].attempts = attempt;
  out.calls.push_back({tx.xid, branch, CallPhase(tx), tx.branches[branch].service(), "", "",
                       attempt, options_.decision_call_timeout_ms, tx.branches[branch].instance()});
}

// ---- Votes and decisions ----

Effects TwoPcCore::Handle(const VoteReceived& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr || in.branch >= tx->branches.size()) return out;
  BranchState& bs = tx->branch_states[in.branch];
  if (bs.vote != v1::VOTE_UNSPECIFIED) return out;  // duplicate

  if (tx->decision == v1::ABORT) {
    // A vote that raced with the abort. YES: the branch is already in the abort set and keeps
    // receiving ABORT until it acknowledges. NO / READ_ONLY: nothing to undo there.
    if (in.vote == v1::VOTE_UNSPECIFIED) return out;
    bs.vote = in.vote;
    Touch(*tx);
    if (!MayHavePrepared(in.vote)) DropFromDecision(*tx, in.branch, out);
    return out;
  }
  if (tx->decision != v1::DECISION_UNSPECIFIED || !tx->begin_durable) return out;

  bs.vote = in.vote;
  CancelTimer(*tx, bs.retry_timer);
  bs.retry_timer = 0;
  Touch(*tx);
  const std::string& service = tx->branches[in.branch].service();
  if (in.vote == v1::NO) {
    Decide(*tx, v1::ABORT, service + " voted NO: " + in.reason, out);
  } else if (in.vote != v1::YES && in.vote != v1::READ_ONLY) {
    Decide(*tx, v1::ABORT, service + " answered PREPARE without a valid vote", out);
  } else if (std::all_of(tx->branch_states.begin(), tx->branch_states.end(),
                         [](const BranchState& s) { return s.vote != v1::VOTE_UNSPECIFIED; })) {
    Decide(*tx, v1::COMMIT, "", out);
  }
  return out;
}

void TwoPcCore::Decide(Tx& tx, v1::Decision decision, std::string reason, Effects& out) {
  tx.decision = decision;
  tx.reason = std::move(reason);
  // Every live timer belongs to the prepare phase, which is over.
  tx.timers.clear();
  for (BranchState& bs : tx.branch_states) bs.retry_timer = 0;

  v1::LogEvent& event = tx.decision_event;
  event.set_xid(tx.xid);
  event.set_unix_ms(clock_.UnixMs());
  v1::TxDecided* decided = event.mutable_decided();
  decided->set_decision(decision);
  decided->set_reason(tx.reason);
  // Votes let recovery skip READ_ONLY branches; an ABORT is sent to every branch after a restart.
  if (decision == v1::COMMIT) {
    for (const BranchState& bs : tx.branch_states) decided->add_votes(bs.vote);
  }
  tx.appending = LogStep::kDecision;
  out.appends.push_back({LogStep::kDecision, event});
  Touch(tx);
  // Delivered (and replied) once durable (OnDecisionDurable), or at once if deliverable now: an
  // ABORT under presumed abort (the rule at the top of twopc_core.h).
  if (Deliverable(tx)) StartDelivery(tx, out);
}

void TwoPcCore::StartDelivery(Tx& tx, Effects& out) {
  tx.state = tx.decision == v1::COMMIT ? v1::COMMITTING : v1::ABORTING;
  Touch(tx);
  DeliverDecision(tx, out);
  ReplyWaiters(tx, out);
}

void TwoPcCore::DeliverDecision(Tx& tx, Effects& out) {
  for (uint32_t b = 0; b < tx.branches.size(); ++b) {
    BranchState& bs = tx.branch_states[b];
    // A COMMITTING record whose votes are missing sends COMMIT to every non-READ_ONLY branch:
    // an extra COMMIT is harmless, a missing one leaves a branch prepared forever.
    bs.needs_decision = tx.decision == v1::COMMIT ? bs.vote != v1::READ_ONLY && bs.vote != v1::NO
                                                  : MayHavePrepared(bs.vote);
    bs.acked = false;
    bs.attempts = 0;
    bs.last_error.clear();
    if (bs.needs_decision) SendDecision(tx, b, 1, out);
  }
}

void TwoPcCore::OnDecisionDurable(Tx& tx, Effects& out) {
  tx.decision_durable = true;
  if (tx.state == v1::PREPARING) StartDelivery(tx, out);  // not delivered before it was durable
  MaybeEnd(tx, out);
}

void TwoPcCore::DropFromDecision(Tx& tx, uint32_t branch, Effects& out) {
  BranchState& bs = tx.branch_states[branch];
  if (!bs.needs_decision) return;
  bs.needs_decision = false;
  CancelTimer(tx, bs.retry_timer);
  bs.retry_timer = 0;
  MaybeEnd(tx, out);
}

void TwoPcCore::MaybeEnd(Tx& tx, Effects& out) {
  // END may only follow a durable decision: the log refuses END before a decision.
  if (!tx.decision_durable || tx.ending || tx.appending.has_value()) return;
  const bool all_acked =
      std::all_of(tx.branch_states.begin(), tx.branch_states.end(),
                  [](const BranchState& bs) { return !bs.needs_decision || bs.acked; });
  if (!all_acked) return;
  tx.ending = true;
  AppendEnd(tx, out);
}

void TwoPcCore::AppendEnd(Tx& tx, Effects& out) {
  v1::LogEvent event;
  event.set_xid(tx.xid);
  event.set_unix_ms(clock_.UnixMs());
  event.mutable_ended();
  tx.appending = LogStep::kEnd;
  out.appends.push_back({LogStep::kEnd, std::move(event)});
}

// ---- Call outcomes ----

Effects TwoPcCore::Handle(const CallFailed& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr || in.branch >= tx->branches.size()) return out;
  BranchState& bs = tx->branch_states[in.branch];

  if (in.phase == Phase::kPrepare) {
    if (tx->decision != v1::DECISION_UNSPECIFIED || !tx->begin_durable ||
        bs.vote != v1::VOTE_UNSPECIFIED) {
      return out;
    }
    bs.last_error = in.status.ToString();
    Touch(*tx);
    if (in.breaker_open || !resilience::IsRetryable(in.status)) {
      Decide(*tx, v1::ABORT,
             tx->branches[in.branch].service() + " refused PREPARE: " + in.status.ToString(), out);
    } else {
      RetryCallLater(*tx, in.branch, Phase::kPrepare, out);
    }
    return out;
  }

  if (CallPhase(*tx) != in.phase || !bs.needs_decision || bs.acked) return out;
  bs.last_error = in.status.ToString();
  Touch(*tx);
  RetryCallLater(*tx, in.branch, in.phase, out);
  return out;
}

void TwoPcCore::RetryCallLater(Tx& tx, uint32_t branch, Phase phase, Effects& out) {
  BranchState& bs = tx.branch_states[branch];
  if (bs.retry_timer != 0) return;  // a retry is already scheduled
  const int64_t delay_ms = Backoff(bs.attempts);
  // A prepare retry that could not start before the deadline is pointless: the deadline timer
  // decides ABORT instead.
  if (phase == Phase::kPrepare && clock_.NowMs() + delay_ms >= tx.prepare_deadline_ms) return;
  bs.retry_timer =
      ArmTimer(tx, {TimerKind::kRetryCall, branch, phase, LogStep::kBegin}, delay_ms, out);
}

Effects TwoPcCore::Handle(const Acked& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr || in.branch >= tx->branches.size()) return out;
  if (in.phase == Phase::kPrepare || CallPhase(*tx) != in.phase) return out;
  BranchState& bs = tx->branch_states[in.branch];
  if (!bs.needs_decision || bs.acked) return out;
  bs.acked = true;
  CancelTimer(*tx, bs.retry_timer);
  bs.retry_timer = 0;
  Touch(*tx);
  MaybeEnd(*tx, out);
  return out;
}

// ---- Timers ----

uint64_t TwoPcCore::ArmTimer(Tx& tx, TimerPurpose purpose, int64_t delay_ms, Effects& out) {
  const uint64_t id = next_timer_id_++;
  tx.timers.emplace(id, purpose);
  out.timers.push_back({tx.xid, id, delay_ms});
  return id;
}

void TwoPcCore::CancelTimer(Tx& tx, uint64_t timer_id) {
  if (timer_id != 0) tx.timers.erase(timer_id);
}

int64_t TwoPcCore::Backoff(uint32_t attempt) {
  return resilience::BackoffMs(options_.retry, attempt, random_);
}

Effects TwoPcCore::Handle(const TimerFired& in) {
  Effects out;
  Tx* tx = Find(in.xid);
  if (tx == nullptr) return out;
  auto it = tx->timers.find(in.timer_id);
  if (it == tx->timers.end()) return out;  // stale
  const TimerPurpose purpose = it->second;
  tx->timers.erase(it);

  switch (purpose.kind) {
    case TimerKind::kPrepareDeadline: {
      if (tx->decision != v1::DECISION_UNSPECIFIED) break;
      std::string silent;
      for (uint32_t b = 0; b < tx->branches.size(); ++b) {
        if (tx->branch_states[b].vote != v1::VOTE_UNSPECIFIED) continue;
        if (!silent.empty()) silent += ", ";
        silent += tx->branches[b].service();
      }
      Decide(*tx, v1::ABORT,
             "prepare timed out after " + std::to_string(tx->prepare_timeout_ms) +
                 " ms; no vote from " + silent,
             out);
      break;
    }
    case TimerKind::kRetryCall: {
      BranchState& bs = tx->branch_states[purpose.branch];
      bs.retry_timer = 0;
      if (CallPhase(*tx) != purpose.phase) break;
      if (purpose.phase == Phase::kPrepare) {
        if (tx->decision == v1::DECISION_UNSPECIFIED && bs.vote == v1::VOTE_UNSPECIFIED) {
          SendPrepare(*tx, purpose.branch, bs.attempts + 1, out);
        }
      } else if (bs.needs_decision && !bs.acked) {
        SendDecision(*tx, purpose.branch, bs.attempts + 1, out);
      }
      break;
    }
    case TimerKind::kRetryLog:
      if (tx->appending.has_value()) break;
      if (purpose.step == LogStep::kDecision) {
        tx->appending = LogStep::kDecision;
        out.appends.push_back({LogStep::kDecision, tx->decision_event});
      } else if (purpose.step == LogStep::kEnd) {
        AppendEnd(*tx, out);
      }
      break;
  }
  return out;
}

// ---- Recovery ----

Effects TwoPcCore::Recover(const std::vector<v1::TxnRecord>& active) {
  Effects out;
  for (const v1::TxnRecord& rec : active) {
    const bool resumable = rec.state() == v1::PREPARING || rec.state() == v1::COMMITTING ||
                           rec.state() == v1::ABORTING;
    if (!resumable || rec.xid().empty() || rec.branches_size() == 0 || txs_.count(rec.xid()) != 0) {
      continue;
    }
    Tx& tx = txs_[rec.xid()];
    tx.xid = rec.xid();
    tx.branches.assign(rec.branches().begin(), rec.branches().end());
    tx.branch_states.resize(tx.branches.size());
    for (size_t b = 0; b < tx.branch_states.size() && b < static_cast<size_t>(rec.votes_size());
         ++b) {
      tx.branch_states[b].vote = rec.votes(static_cast<int>(b));
    }
    tx.prepare_timeout_ms = rec.prepare_timeout_ms() != 0 ? rec.prepare_timeout_ms()
                                                          : options_.default_prepare_timeout_ms;
    tx.reason = rec.reason();
    tx.begin_durable = true;
    tx.start_ms = clock_.NowMs();
    tx.created_unix_ms = rec.created_unix_ms();
    tx.updated_unix_ms = clock_.UnixMs();

    if (rec.state() == v1::PREPARING && options_.recovery == Recovery::kResumePrepare) {
      // A new leader takes over: ask every branch again (a prepared one repeats its vote, an
      // aborted one votes NO) with a full budget on this node's clock.
      StartPrepare(tx, out);
    } else if (rec.state() == v1::PREPARING) {
      // Presumed abort: no decision was durable, and this node is the only one that decides.
      Decide(tx, v1::ABORT, "coordinator restarted before a decision", out);
    } else {
      // The decision is durable; deliver it again (participants apply it idempotently).
      tx.decision = rec.state() == v1::COMMITTING ? v1::COMMIT : v1::ABORT;
      tx.state = rec.state();
      tx.decision_durable = true;
      DeliverDecision(tx, out);
      MaybeEnd(tx, out);
    }
  }
  return out;
}

// ---- Queries ----

Status TwoPcCore::CheckInvariants() const {
  // Where a prepare can be resumed by another coordinator, an ABORT counts only once durable.
  const bool early_abort = options_.recovery == Recovery::kPresumeAbort;
  for (const auto& [xid, tx] : txs_) {
    auto broken = [&](const std::string& what) {
      return Status::Internal("xid=" + xid + " (" + v1::TxState_Name(tx.state) + "): " + what);
    };
    const bool decided = tx.decision != v1::DECISION_UNSPECIFIED;
    if (tx.decision_durable && !decided) return broken("a durable decision that is not set");
    if (tx.state == v1::COMMITTING && !(tx.decision == v1::COMMIT && tx.decision_durable)) {
      return broken("COMMITTING without a durable COMMIT");
    }
    if (tx.state == v1::ABORTING &&
        !(tx.decision == v1::ABORT && (tx.decision_durable || early_abort))) {
      return broken("ABORTING before its ABORT is durable");
    }
    if (tx.state == v1::PREPARING && tx.decision_durable) {
      return broken("PREPARING with a durable decision");
    }
    if (tx.ending && !tx.decision_durable) return broken("ending before the decision is durable");
    const bool deliverable = tx.decision_durable || (tx.decision == v1::ABORT && early_abort);
    for (size_t b = 0; b < tx.branch_states.size(); ++b) {
      const BranchState& bs = tx.branch_states[b];
      const std::string branch = "branch " + std::to_string(b);
      if (bs.needs_decision && !deliverable) {
        return broken(branch + " is being sent " + v1::Decision_Name(tx.decision) +
                      " before it may be");
      }
      if (bs.acked && !deliverable) return broken(branch + " acknowledged a decision not yet sent");
      if (tx.decision == v1::COMMIT && bs.vote == v1::NO)
        return broken(branch + " voted NO, yet COMMIT");
    }
    for (const Waiter& w : tx.waiters) {
      if (!w.wait && tx.begin_durable)
        return broken("a client not answered after BEGIN was durable");
    }
  }
  return Status::Ok();
}

Reply ReplyForLogged(const Submit& in, const v1::TxnRecord& rec) {
  if (rec.mode() == "saga") {
    return {in.client, in.xid, Status::AlreadyExists("xid " + in.xid + " is used by a saga"),
            v1::TX_STATE_UNSPECIFIED, ""};
  }
  if (!internal::SameBranches(in.branches, rec.branches())) {
    return {
        in.client, in.xid,
        Status::AlreadyExists("xid " + in.xid + " was already used for a different transaction"),
        v1::TX_STATE_UNSPECIFIED, ""};
  }
  return {in.client, in.xid, Status::Ok(), rec.state(), rec.reason()};
}

v1::Outcome OutcomeOfRecord(const v1::TxnRecord& rec) {
  switch (rec.state()) {
    case v1::COMMITTING:
    case v1::COMMITTED:
      return v1::OUTCOME_COMMIT;
    case v1::PREPARING:
      return v1::OUTCOME_PENDING;
    default:
      return v1::OUTCOME_ABORT;
  }
}

std::optional<v1::Transaction> TwoPcCore::Get(const std::string& xid) const {
  auto it = txs_.find(xid);
  if (it == txs_.end()) return std::nullopt;
  const Tx& tx = it->second;
  v1::Transaction view;
  view.set_xid(tx.xid);
  view.set_mode("2pc");
  view.set_state(tx.state);
  view.set_reason(tx.reason);
  view.set_created_unix_ms(tx.created_unix_ms);
  view.set_updated_unix_ms(tx.updated_unix_ms);
  for (uint32_t b = 0; b < tx.branches.size(); ++b) {
    const BranchState& bs = tx.branch_states[b];
    v1::BranchStatus* status = view.add_branches();
    status->set_branch_id(b);
    status->set_service(tx.branches[b].service());
    status->set_instance(tx.branches[b].instance());
    status->set_op(tx.branches[b].op());
    status->set_vote(bs.vote);
    status->set_acknowledged(bs.acked);
    status->set_attempts(bs.attempts);
    status->set_last_error(bs.last_error);
  }
  return view;
}

std::optional<v1::Outcome> TwoPcCore::OutcomeOf(const std::string& xid) const {
  auto it = txs_.find(xid);
  if (it == txs_.end()) return std::nullopt;
  const Tx& tx = it->second;
  if (!Deliverable(tx)) return v1::OUTCOME_PENDING;
  return tx.decision == v1::COMMIT ? v1::OUTCOME_COMMIT : v1::OUTCOME_ABORT;
}

}  // namespace treaty::twopc
