#include "coordinator/saga_shell.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <memory>

#include "net/proto_codec.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::coordinator {
namespace {

// How long a compensation waits before it looks again at an instance whose breaker is open.
constexpr std::chrono::milliseconds kBreakerWait{200};

// Whether two definitions describe the same saga; the instances chosen by the coordinator are
// ignored.
bool SameSaga(v1::SagaDefinition a, v1::SagaDefinition b) {
  for (auto& step : *a.mutable_steps()) step.clear_instance();
  for (auto& step : *b.mutable_steps()) step.clear_instance();
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace

Result<std::string> SagaShell::ReplyForLogged(const v1::SubmitSagaRequest& req,
                                              const v1::TxnRecord& rec) {
  if (rec.mode() != saga::kSagaMode) {
    return Status::AlreadyExists("xid " + req.xid() + " is used by a 2PC transaction");
  }
  if (!SameSaga(rec.saga(), req.saga())) {
    return Status::AlreadyExists("xid " + req.xid() +
                                 " was already used for a different saga; use a new xid");
  }
  v1::SubmitSagaResponse resp;
  resp.set_xid(rec.xid());
  resp.set_state(rec.saga_state());
  resp.set_reason(rec.reason());
  return resp.SerializeAsString();
}

SagaShell::SagaShell(Env env, saga::SagaCoreOptions options)
    : env_(std::move(env)), core_(options, *env_.clock, *env_.random) {}

uint64_t SagaShell::AddWaiter(ReplyKind kind, net::Responder respond) {
  uint64_t client = next_client_++;
  waiting_.emplace(client, Waiter{kind, std::move(respond)});
  return client;
}

void SagaShell::Submit(v1::SubmitSagaRequest req, net::Responder respond) {
  saga::Submit in;
  in.xid = req.xid();
  in.definition = std::move(*req.mutable_saga());
  in.wait = req.wait();
  in.client = AddWaiter(ReplyKind::kSubmit, std::move(respond));
  Execute(core_.Handle(in));
}

void SagaShell::Resolve(const v1::ResolveRequest& req, net::Responder respond) {
  auto held = core_.Get(req.xid());
  if (!held) {
    respond(Status::NotFound("xid=" + req.xid() + " is not an active saga"));
    return;
  }
  saga::Resolve in;
  in.xid = req.xid();
  in.who = req.who();
  in.why = req.why();
  if (req.action() == "retry") {
    in.action = saga::ResolveAction::kRetry;
  } else if (req.action() == "abort") {
    in.action = saga::ResolveAction::kAbort;
  } else if (req.action() == "mark-compensated") {
    in.action = saga::ResolveAction::kMarkCompensated;
    bool found = false;
    for (int i = 0; i < held->steps_size() && !found; ++i) {
      if (held->steps(i).id() == req.step_id()) {
        in.step = static_cast<uint32_t>(i);
        found = true;
      }
    }
    if (!found) {
      respond(Status::InvalidArgument("xid=" + req.xid() + " has no step '" + req.step_id() + "'"));
      return;
    }
  } else {
    respond(Status::InvalidArgument("unknown resolve action '" + req.action() +
                                    "' (retry, mark-compensated or abort)"));
    return;
  }
  spdlog::info("xid={} resolve action={} step={} who={} why={}", req.xid(), req.action(),
               req.step_id(), req.who(), req.why());
  in.client = AddWaiter(ReplyKind::kResolve, std::move(respond));
  Execute(core_.Handle(in));
}

void SagaShell::FailWaiting(const Status& status) {
  for (auto& [client, waiter] : waiting_) waiter.respond(status);
  waiting_.clear();
}

void SagaShell::Recover(const std::vector<v1::TxnRecord>& records) {
  if (records.empty()) return;
  spdlog::info("recovering {} unfinished sagas", records.size());
  Execute(core_.Recover(records));
}

std::optional<v1::Transaction> SagaShell::Get(const std::string& xid) const {
  return core_.Get(xid);
}

void SagaShell::Execute(saga::Effects fx) {
  for (auto& a : fx.appends) Append(std::move(a));
  for (auto& c : fx.calls) Call(std::move(c));
  for (const auto& t : fx.timers) StartTimer(t);
  for (auto& r : fx.replies) SendReply(std::move(r));
  for (const auto& f : fx.finished) {
    if (env_.metrics != nullptr) env_.metrics->SagaFinished(f.state, f.duration_ms);
    spdlog::info("xid={} saga finished state={} duration_ms={}", f.xid, v1::SagaState_Name(f.state),
                 f.duration_ms);
  }
  if (env_.on_change) env_.on_change();
}

void SagaShell::Append(saga::AppendLog a) {
  if (a.events.empty()) return;
  std::string xid = a.events.front().xid();
  uint64_t token = a.token;
  // The core reports only final states; becoming STUCK is counted here, once it is durable.
  const bool stuck = std::any_of(a.events.begin(), a.events.end(), [](const v1::LogEvent& e) {
    return e.has_saga_changed() && e.saga_changed().state() == v1::SAGA_STUCK;
  });
  log::AppendDone done = [this, xid, token, stuck](Status s, uint64_t) {
    asio::post(*env_.io, [this, xid, token, stuck, s] {
      if (env_.stopped()) return;
      if (!s.ok()) {
        spdlog::error("xid={} saga log append failed: {}", xid, s.ToString());
        if (env_.log->stopped_after_failure() ||
            (env_.leadership_lost && env_.leadership_lost(s))) {
          return env_.fatal(s);
        }
      } else if (stuck && env_.metrics != nullptr) {
        env_.metrics->SagaFinished(v1::SAGA_STUCK, 0);
      }
      Execute(core_.Handle(saga::LogDone{xid, token, s}));
    });
  };
  env_.log->Append(std::move(a.events), env_.track ? env_.track(std::move(done)) : std::move(done));
}

void SagaShell::Call(saga::CallStep c) {
  auto fail = [this, xid = c.xid, step = c.step, phase = c.phase, attempt = c.attempt](Status s) {
    if (env_.stopped()) return;
    Execute(core_.Handle(saga::CallFailed{xid, step, phase, attempt, std::move(s)}));
  };
  std::string instance = c.instance;
  if (instance.empty()) {
    auto picked = env_.registry->Pick(
        c.service, c.routing_key.empty() ? c.xid : c.routing_key, env_.clock->NowMs(),
        [](const std::string&) { return true; }, [](const std::string&) { return 0u; });
    if (!picked.ok()) {
      asio::post(*env_.io, [fail, s = picked.status()] { fail(s); });
      return;
    }
    instance = *picked;
  }
  if (c.phase == saga::Phase::kCompensate && !env_.caller->Usable(instance)) {
    // The instance's breaker is open: a compensation sent now would be refused without reaching
    // the participant, yet count against the step's compensation budget (a saga could go STUCK
    // within one breaker reset). Hold it until the breaker lets calls through; the core keeps
    // waiting for this call as it would for a slow one.
    auto timer = std::make_shared<asio::steady_timer>(*env_.io, kBreakerWait);
    c.instance = instance;
    timer->async_wait([this, timer, c = std::move(c)](const asio::error_code& ec) mutable {
      if (!ec && !env_.stopped()) Call(std::move(c));
    });
    return;
  }
  v1::StepRequest req;
  req.set_xid(c.xid);
  req.set_step(c.step);
  req.set_op(c.op);
  req.set_payload(c.payload);
  CallSpec spec;
  spec.service = c.service;
  spec.method = c.phase == saga::Phase::kAction ? v1::methods::kAction : v1::methods::kCompensate;
  spec.payload = req.SerializeAsString();
  spec.deadline_ms = c.deadline_ms;
  spec.phase = saga::PhaseName(c.phase);
  spec.attempt = c.attempt;
  env_.caller->Send(
      std::move(spec), instance,
      [this, fail, xid = c.xid, step = c.step, phase = c.phase,
       service = c.service](Result<std::string> r) {
        if (env_.stopped()) return;
        auto resp = net::Decode<v1::StepResponse>(r);
        if (!resp.ok()) {
          spdlog::debug("xid={} step={} {} to {} failed: {}", xid, step, saga::PhaseName(phase),
                        service, resp.status().ToString());
          return fail(resp.status());
        }
        Execute(core_.Handle(saga::StepReplied{xid, step, phase, resp->outcome(), resp->reason()}));
      });
}

void SagaShell::StartTimer(const saga::SetTimer& t) {
  auto timer =
      std::make_shared<asio::steady_timer>(*env_.io, std::chrono::milliseconds(t.delay_ms));
  timer->async_wait([this, timer, xid = t.xid, id = t.timer_id](const asio::error_code& ec) {
    if (ec || env_.stopped()) return;
    Execute(core_.Handle(saga::TimerFired{xid, id}));
  });
}

void SagaShell::SendReply(saga::Reply r) {
  auto it = waiting_.find(r.client);
  if (it == waiting_.end()) return;
  Waiter waiter = std::move(it->second);
  waiting_.erase(it);
  if (!r.status.ok()) {
    waiter.respond(r.status);
    return;
  }
  if (waiter.kind == ReplyKind::kResolve) {
    v1::ResolveResponse resp;
    resp.set_state(r.state);
    resp.set_message(r.reason.empty() ? "resolution recorded" : r.reason);
    waiter.respond(resp.SerializeAsString());
    return;
  }
  v1::SubmitSagaResponse resp;
  resp.set_xid(r.xid);
  resp.set_state(r.state);
  resp.set_reason(r.reason);
  waiter.respond(resp.SerializeAsString());
}

}  // namespace treaty::coordinator
