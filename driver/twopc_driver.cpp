#include "driver/twopc_driver.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "driver/submission.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::driver {

using twopc::Phase;

TwoPcDriver::TwoPcDriver(twopc::CoreOptions options, Ports ports, Hooks hooks)
    : ports_(ports), hooks_(std::move(hooks)), core_(options, *ports.clock, *ports.random) {}

void TwoPcDriver::Submit(twopc::Submit in, const Admit& admit) {
  if (stopped_) return;
  if (auto answer = internal::BeforeCore<twopc::Reply>(*ports_.log, Holds(in.xid), in,
                                                       twopc::ReplyForLogged, admit)) {
    hooks_.reply(std::move(*answer));
    return;
  }
  Feed(in);
}

void TwoPcDriver::Resolve(twopc::Resolve in) { Feed(in); }

void TwoPcDriver::Recover(const std::vector<v1::TxnRecord>& records) {
  if (!stopped_) Execute(core_.Recover(records));
}

void TwoPcDriver::QueryOutcome(const std::string& xid,
                               std::function<void(Result<v1::Outcome>)> done) {
  if (auto outcome = core_.OutcomeOf(xid)) {
    ports_.timers->After(0, [done = std::move(done), o = *outcome] { done(o); });
    return;
  }
  // Not held here. "Unknown => ABORT" is only safe once no other leader can have begun the xid:
  // the barrier commits only while this node still leads, and once it is applied every decision
  // of earlier leaders is visible to Find.
  ports_.log->Barrier([this, xid, done = std::move(done)](Status s) {
    if (!s.ok()) return done(s);
    if (stopped_) return done(Status::Unavailable("coordinator is shutting down"));
    if (auto outcome = core_.OutcomeOf(xid)) return done(*outcome);
    Result<std::optional<v1::TxnRecord>> found = ports_.log->Find(xid);
    if (!found.ok()) return done(found.status());
    if (found->has_value()) return done(twopc::OutcomeOfRecord(**found));
    // Retention dropped the record, or the xid is unknown: presumed abort only for the latter.
    Result<std::optional<v1::Outcome>> remembered = ports_.log->RememberedOutcome(xid);
    if (!remembered.ok()) return done(remembered.status());
    done(remembered->value_or(v1::OUTCOME_ABORT));
  });
}

void TwoPcDriver::Execute(twopc::Effects fx) {
  for (auto& a : fx.appends) Append(std::move(a));
  for (auto& c : fx.calls) Call(std::move(c));
  for (const auto& t : fx.timers) {
    ports_.timers->After(t.delay_ms, [this, xid = t.xid, id = t.timer_id] {
      Feed(twopc::TimerFired{xid, id});
    });
  }
  for (auto& r : fx.replies) hooks_.reply(std::move(r));
  for (auto& r : fx.resolve_replies) hooks_.resolve_reply(std::move(r));
  for (const auto& f : fx.finished) {
    if (hooks_.finished) hooks_.finished(f);
  }
  if (hooks_.changed) hooks_.changed();
}

void TwoPcDriver::Append(twopc::AppendLog a) {
  std::string xid = a.event.xid();
  const twopc::LogStep step = a.step;
  std::vector<v1::LogEvent> events;
  events.push_back(std::move(a.event));
  ports_.log->Append(std::move(events), [this, xid, step](Appended r) {
    if (stopped_) return;
    if (!r.status.ok()) spdlog::error("xid={} log append failed: {}", xid, r.status.ToString());
    if (r.fatal) return Fatal(r.status);
    Feed(twopc::LogDone{xid, step, r.status});
  });
}

void TwoPcDriver::Call(twopc::CallParticipant c) {
  CallSpec spec;
  spec.service = c.service;
  spec.instance = c.instance;
  spec.phase = twopc::PhaseName(c.phase);
  spec.attempt = c.attempt;
  spec.deadline_ms = c.deadline_ms;
  if (c.phase == Phase::kPrepare) {
    v1::PrepareRequest req;
    req.set_xid(c.xid);
    req.set_branch_id(c.branch);
    req.set_op(c.op);
    req.set_payload(c.payload);
    spec.payload = req.SerializeAsString();
    spec.method = v1::methods::kPrepare;
  } else {
    v1::DecisionRequest req;
    req.set_xid(c.xid);
    req.set_branch_id(c.branch);
    spec.payload = req.SerializeAsString();
    spec.method = c.phase == Phase::kCommit ? v1::methods::kCommit : v1::methods::kAbort;
  }
  auto done = [this, xid = c.xid, branch = c.branch, phase = c.phase](CallOutcome o) {
    if (!stopped_) OnCallDone(xid, branch, phase, std::move(o));
  };
  if (spec.instance.empty()) {
    Result<std::string> picked = ports_.router->AnyInstance(c.service, c.xid);
    if (!picked.ok()) {
      ports_.timers->After(0, [done, s = picked.status()] {
        done(CallOutcome{s, Refusal::kNone});
      });
      return;
    }
    spec.instance = *picked;
  }
  ports_.caller->Call(std::move(spec), std::move(done));
}

void TwoPcDriver::OnCallDone(const std::string& xid, uint32_t branch, Phase phase, CallOutcome o) {
  if (!o.response.ok()) {
    spdlog::debug("xid={} branch={} {} failed: {}", xid, branch, twopc::PhaseName(phase),
                  o.response.status().ToString());
    Feed(twopc::CallFailed{xid, branch, phase, o.response.status(),
                           o.refusal == Refusal::kBreakerOpen});
    return;
  }
  if (phase != Phase::kPrepare) {
    Feed(twopc::Acked{xid, branch, phase});
    return;
  }
  v1::PrepareResponse vote;
  if (!vote.ParseFromString(*o.response)) {
    Feed(twopc::CallFailed{xid, branch, phase,
                           Status::Internal("unparsable PrepareResponse from the participant")});
    return;
  }
  Feed(twopc::VoteReceived{xid, branch, vote.vote(), vote.reason()});
}

void TwoPcDriver::Fatal(const Status& s) {
  stopped_ = true;
  hooks_.fatal(s);
}

}  // namespace treaty::driver
