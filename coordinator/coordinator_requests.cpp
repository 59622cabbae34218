// The coordinator's client API: submissions (2PC and sagas), resolutions, participants'
// registrations and outcome queries, and the RPC handlers that dispatch to them.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "coordinator/coordinator_impl.h"
#include "coordinator/resolve.h"
#include "coordinator/transactions.h"
#include "saga/definition.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::coordinator {

Status Coordinator::Impl::CheckXid(const std::string& xid) {
  if (xid.size() <= kMaxXidBytes) return Status::Ok();
  metrics->SubmitRejected();
  return Status::InvalidArgument("xid is longer than " + std::to_string(kMaxXidBytes) + " bytes");
}

Status Coordinator::Impl::Counted(const std::string& xid, Status s) {
  if (!s.ok()) {
    metrics->SubmitRejected();
    spdlog::debug("xid={} submission refused: {}", xid, s.ToString());
    return s;
  }
  metrics->TxSubmitted();
  return Status::Ok();
}

bool Coordinator::Impl::HoldForServices(const std::vector<std::string>& services, int64_t budget_ms,
                                        std::function<void()> resume) {
  std::vector<std::string> unknown;
  for (const std::string& s : services) {
    if (!s.empty() && !registry->Known(s) &&
        std::find(unknown.begin(), unknown.end(), s) == unknown.end()) {
      unknown.push_back(s);
    }
  }
  const int64_t wait_ms = service_wait->WaitMs(unknown, budget_ms, clock.NowMs());
  if (wait_ms <= 0) return false;
  std::string names;
  for (const std::string& s : unknown) names += (names.empty() ? "" : ", ") + s;
  spdlog::info("a submission waits up to {} ms for {} to register with this leader", wait_ms,
               names);
  const uint64_t id = service_wait->Hold(std::move(unknown), std::move(resume));
  timers->After(wait_ms, [this, id] {
    if (auto expired = service_wait->Expire(id)) expired();
  });
  return true;
}

void Coordinator::Impl::HandleSubmit(v1::SubmitRequest req, net::Responder respond, bool waited) {
  if (stopped) return respond(Status::Unavailable("coordinator is shutting down"));
  if (req.xid().empty()) req.set_xid(NewXid(random, "tx"));
  if (Status s = CheckXid(req.xid()); !s.ok()) return respond(s);
  if (sagas->Holds(req.xid())) {
    respond(Status::AlreadyExists("xid " + req.xid() + " is used by a saga"));
    return;
  }
  if (!waited && !twopc->Holds(req.xid())) {
    std::vector<std::string> services;
    for (const auto& b : req.branches()) services.push_back(b.service());
    const int64_t budget_ms = req.prepare_timeout_ms() != 0
                                  ? req.prepare_timeout_ms()
                                  : options.core.default_prepare_timeout_ms;
    auto resume = [this, req, respond]() mutable {
      HandleSubmit(std::move(req), std::move(respond), /*waited=*/true);
    };
    if (HoldForServices(services, budget_ms, resume)) return;
  }
  twopc::Submit in;
  in.xid = req.xid();
  in.branches.assign(req.branches().begin(), req.branches().end());
  in.prepare_timeout_ms = req.prepare_timeout_ms();
  in.wait = req.wait();
  in.client = AddWaiter(Asked::kSubmit, std::move(respond));
  twopc->Submit(std::move(in), [this, &req](twopc::Submit& s) {
    std::vector<std::string> services;
    for (const auto& b : s.branches) services.push_back(b.service());
    Status admitted = RefuseUsedXid(*log, s.xid, options.read_side.xid_retention_ms);
    if (admitted.ok()) admitted = Admit(services, req.client_id());
    if (admitted.ok()) admitted = ChooseInstances(s.xid, s.branches);
    return Counted(s.xid, std::move(admitted));
  });
}

Status Coordinator::Impl::Admit(const std::vector<std::string>& services,
                                const std::string& client_id) {
  for (const auto& service : services) {
    if (!service.empty() && !registry->Known(service)) {
      return Status::NotFound("unknown service '" + service +
                              "' (registered: " + registry->Names() + ")");
    }
  }
  if (active() >= options.max_active_transactions) {
    metrics->Throttled("in_flight");
    return Status::ResourceExhausted("coordinator is holding " + std::to_string(active()) +
                                     " transactions (its limit); retry after 100 ms");
  }
  const std::string& client = client_id.empty() ? "anonymous" : client_id;
  int64_t now_ms = clock.NowMs();
  if (!admission->TryTake(client, now_ms)) {
    metrics->Throttled("rate");
    int64_t after_ms = std::max<int64_t>(1, admission->RetryAfterMs(client, now_ms));
    return Status::ResourceExhausted("client '" + client +
                                     "' is over its submission rate; retry after " +
                                     std::to_string(after_ms) + " ms");
  }
  return Status::Ok();
}

Status Coordinator::Impl::ChooseInstances(const std::string& xid,
                                          std::vector<v1::Branch>& branches) {
  for (auto& b : branches) {
    b.clear_instance();
    if (b.service().empty()) continue;  // refused by the core's validation
    auto picked = PickInstance(b.service(), b.routing_key().empty() ? xid : b.routing_key());
    if (!picked.ok()) return picked.status();
    b.set_instance(*picked);
  }
  return Status::Ok();
}

Status Coordinator::Impl::ChooseInstances(const std::string& xid, v1::SagaDefinition& saga) {
  for (auto& step : *saga.mutable_steps()) {
    step.clear_instance();
    if (step.service().empty()) continue;  // refused by the core's validation
    auto picked =
        PickInstance(step.service(), step.routing_key().empty() ? xid : step.routing_key());
    if (!picked.ok()) return picked.status();
    step.set_instance(*picked);
  }
  return Status::Ok();
}

Result<std::string> Coordinator::Impl::PickInstance(const std::string& service,
                                                    const std::string& key) {
  auto picked = registry->Pick(
      service, key, clock.NowMs(), [this](const std::string& a) { return caller->Usable(a); },
      [this](const std::string& a) { return caller->Outstanding(a); });
  if (picked.ok() || picked.status().code() == StatusCode::kNotFound) return picked;
  // Temporary (leases come back, breakers half-open): "busy, retry later", not a rejection of
  // the transaction itself, and not UNAVAILABLE, which clients read as "this coordinator is
  // unreachable".
  return Status::ResourceExhausted(picked.status().message() + "; retry after " +
                                   std::to_string(options.caller.breaker.reset_timeout_ms) + " ms");
}

void Coordinator::Impl::HandleSubmitSaga(v1::SubmitSagaRequest req, net::Responder respond,
                                         bool waited) {
  if (stopped) return respond(Status::Unavailable("coordinator is shutting down"));
  if (req.xid().empty()) req.set_xid(NewXid(random, "saga"));
  if (Status s = CheckXid(req.xid()); !s.ok()) return respond(s);
  if (twopc->Holds(req.xid())) {
    respond(Status::AlreadyExists("xid " + req.xid() + " is used by a 2PC transaction"));
    return;
  }
  if (!waited && !sagas->Holds(req.xid())) {
    std::vector<std::string> services;
    for (const auto& step : req.saga().steps()) services.push_back(step.service());
    auto resume = [this, req, respond]() mutable {
      HandleSubmitSaga(std::move(req), std::move(respond), /*waited=*/true);
    };
    if (HoldForServices(services, options.core.default_prepare_timeout_ms, resume)) return;
  }
  saga::Submit in;
  in.xid = req.xid();
  in.definition = std::move(*req.mutable_saga());
  in.wait = req.wait();
  in.client = AddWaiter(Asked::kSubmitSaga, std::move(respond));
  sagas->Submit(std::move(in), [this, &req](saga::Submit& s) {
    std::vector<std::string> services;
    for (const auto& step : s.definition.steps()) services.push_back(step.service());
    Status admitted = RefuseUsedXid(*log, s.xid, options.read_side.xid_retention_ms);
    if (admitted.ok()) admitted = Admit(services, req.client_id());
    if (admitted.ok()) admitted = ChooseInstances(s.xid, s.definition);
    return Counted(s.xid, std::move(admitted));
  });
}

void Coordinator::Impl::HandleResolve(const v1::ResolveRequest& req, net::Responder respond) {
  if (req.xid().empty()) return respond(Status::InvalidArgument("Resolve needs an xid"));
  if (auto held = sagas->Get(req.xid())) {
    auto in = SagaResolveOf(req, *held);
    if (!in.ok()) return respond(in.status());
    in->client = AddWaiter(Asked::kResolve, std::move(respond));
    return sagas->Resolve(std::move(*in));
  }
  if (twopc->Holds(req.xid())) {
    auto in = TwoPcResolveOf(req);
    if (!in.ok()) return respond(in.status());
    in->client = AddWaiter(Asked::kResolve, std::move(respond));
    return twopc->Resolve(std::move(*in));
  }
  auto found = log->Find(req.xid());
  if (!found.ok()) return respond(found.status());
  if (!found->has_value()) {
    return respond(Status::NotFound("no transaction with xid " + req.xid()));
  }
  respond(ResolveRefusalForLogged(req, **found));
}

void Coordinator::Impl::HandleQueryOutcome(const v1::QueryOutcomeRequest& req,
                                           net::Responder respond) {
  twopc->QueryOutcome(req.xid(), [this, respond = std::move(respond)](Result<v1::Outcome> r) {
    // A failed barrier: this node may not lead any more; point at the leader.
    if (!r.ok() && r.status().code() == StatusCode::kUnavailable && gate->clustered()) {
      return respond(gate->NotLeader());
    }
    if (!r.ok()) return respond(r.status());
    v1::QueryOutcomeResponse resp;
    resp.set_outcome(*r);
    respond(resp.SerializeAsString());
  });
}

Status Coordinator::Impl::Refusal() const {
  TREATY_RETURN_IF_ERROR(gate->CheckServing());
  if (stopped) return Status::Unavailable("coordinator is shutting down");
  return Status::Ok();
}

Result<std::string> Coordinator::Impl::HandleRegister(const v1::RegisterRequest& req) {
  TREATY_RETURN_IF_ERROR(registry->Register(req.service(), req.address(), req.weight(),
                                            clock.NowMs(), clock.UnixMs()));
  // The registration is durable: submissions waiting for this service go on (after this reply).
  for (auto& resume : service_wait->Registered(req.service())) asio::post(io(), std::move(resume));
  v1::RegisterResponse resp;
  resp.set_lease_ms(static_cast<uint32_t>(registry->lease_ms()));
  return resp.SerializeAsString();
}

Result<std::string> Coordinator::Impl::HandleListServices() {
  v1::ListServicesResponse resp;
  for (const auto& s : registry->List(clock.NowMs())) {
    auto* info = resp.add_services();
    info->set_name(s.name);
    info->set_policy(LbPolicyName(s.policy));
    info->set_in_flight(caller->ServiceInFlight(s.name));
    info->set_max_in_flight(caller->max_in_flight_per_service());
    for (const auto& i : s.instances) {
      auto stats = caller->StatsOf(i.address);
      auto* out = info->add_instances();
      out->set_address(i.address);
      out->set_weight(i.weight);
      out->set_lease_age_ms(i.lease_age_ms);
      out->set_live(i.live);
      out->set_breaker(stats.breaker);
      out->set_in_flight(stats.in_flight);
      out->set_rejected(stats.rejected);
    }
  }
  return resp.SerializeAsString();
}

void Coordinator::Impl::RegisterHandlers() {
  ServeAsync<v1::SubmitRequest>(v1::methods::kSubmit, [this](auto req, net::Responder respond) {
    HandleSubmit(std::move(req), std::move(respond));
  });
  ServeAsync<v1::SubmitSagaRequest>(v1::methods::kSubmitSaga,
                                    [this](auto req, net::Responder respond) {
                                      HandleSubmitSaga(std::move(req), std::move(respond));
                                    });
  ServeAsync<v1::ResolveRequest>(v1::methods::kResolve, [this](auto req, net::Responder respond) {
    HandleResolve(req, std::move(respond));
  });
  ServeAsync<v1::QueryOutcomeRequest>(
      v1::methods::kQueryOutcome,
      [this](auto req, net::Responder respond) { HandleQueryOutcome(req, std::move(respond)); });
  Serve<v1::RegisterRequest>(v1::methods::kRegister,
                             [this](const auto& r) { return HandleRegister(r); });
  Serve<v1::ListServicesRequest>(v1::methods::kListServices,
                                 [this](const auto&) { return HandleListServices(); });
}

}  // namespace treaty::coordinator
