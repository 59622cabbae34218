#include "driver/saga_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "driver/submission.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::driver {
SagaDriver::SagaDriver(saga::SagaCoreOptions options, Ports ports, Hooks hooks)
    : ports_(ports), hooks_(std::move(hooks)), core_(options, *ports.clock, *ports.random) {}

void SagaDriver::Submit(saga::Submit in, const Admit& admit) {
  if (stopped_) return;
  if (auto answer = internal::BeforeCore<saga::Reply>(*ports_.log, core_.Holds(in.xid), in,
                                                      saga::ReplyForLogged, admit)) {
    hooks_.reply(std::move(*answer));
    return;
  }
  Feed(in);
}

void SagaDriver::Resolve(saga::Resolve in) { Feed(in); }

void SagaDriver::Recover(const std::vector<v1::TxnRecord>& records) {
  if (!stopped_ && !records.empty()) Execute(core_.Recover(records));
}

void SagaDriver::Execute(saga::Effects fx) {
  for (auto& a : fx.appends) Append(std::move(a));
  for (auto& c : fx.calls) Call(std::move(c));
  for (const auto& t : fx.timers) {
    ports_.timers->After(t.delay_ms, [this, xid = t.xid, id = t.timer_id] {
      Feed(saga::TimerFired{xid, id});
    });
  }
  for (auto& r : fx.replies) hooks_.reply(std::move(r));
  for (const auto& f : fx.finished) {
    if (hooks_.finished) hooks_.finished(f);
  }
  if (hooks_.changed) hooks_.changed();
}

void SagaDriver::Append(saga::AppendLog a) {
  if (a.events.empty()) return;
  std::string xid = a.events.front().xid();
  const uint64_t token = a.token;
  // The core reports only final states; becoming STUCK is reported here, once it is durable.
  const bool stuck = std::any_of(a.events.begin(), a.events.end(), [](const v1::LogEvent& e) {
    return e.has_saga_changed() && e.saga_changed().state() == v1::SAGA_STUCK;
  });
  ports_.log->Append(std::move(a.events), [this, xid, token, stuck](Appended r) {
    if (stopped_) return;
    if (!r.status.ok()) {
      spdlog::error("xid={} saga log append failed: {}", xid, r.status.ToString());
    }
    if (r.fatal) return Fatal(r.status);
    if (r.status.ok() && stuck && hooks_.finished) hooks_.finished({xid, v1::SAGA_STUCK, 0});
    Feed(saga::LogDone{xid, token, r.status});
  });
}

void SagaDriver::Call(saga::CallStep c) {
  auto fail = [this, xid = c.xid, step = c.step, phase = c.phase, attempt = c.attempt](
                  Status s, bool breaker_open) {
    Feed(saga::CallFailed{xid, step, phase, attempt, std::move(s), breaker_open});
  };
  if (c.instance.empty()) {
    Result<std::string> picked =
        ports_.router->AnyInstance(c.service, c.routing_key.empty() ? c.xid : c.routing_key);
    if (!picked.ok()) {
      ports_.timers->After(0, [fail, s = picked.status()] { fail(s, false); });
      return;
    }
    c.instance = *picked;
  }
  v1::StepRequest req;
  req.set_xid(c.xid);
  req.set_step(c.step);
  req.set_op(c.op);
  req.set_payload(c.payload);
  CallSpec spec;
  spec.service = c.service;
  spec.instance = c.instance;
  spec.method = c.phase == saga::Phase::kAction ? v1::methods::kAction : v1::methods::kCompensate;
  spec.payload = req.SerializeAsString();
  spec.deadline_ms = c.deadline_ms;
  spec.phase = saga::PhaseName(c.phase);
  spec.attempt = c.attempt;
  ports_.caller->Call(
      std::move(spec), [this, fail, xid = c.xid, step = c.step, phase = c.phase](CallOutcome o) {
        if (stopped_) return;
        if (!o.response.ok()) {
          spdlog::debug("xid={} step={} {} failed: {}", xid, step, saga::PhaseName(phase),
                        o.response.status().ToString());
          return fail(o.response.status(), o.refusal == Refusal::kBreakerOpen);
        }
        v1::StepResponse resp;
        if (!resp.ParseFromString(*o.response)) {
          return fail(Status::Internal("unparsable StepResponse from the participant"), false);
        }
        Feed(saga::StepReplied{xid, step, phase, resp.outcome(), resp.reason()});
      });
}

void SagaDriver::Fatal(const Status& s) {
  stopped_ = true;
  hooks_.fatal(s);
}

}  // namespace treaty::driver
