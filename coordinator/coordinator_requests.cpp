// The coordinator's client API: submissions (2PC and sagas), resolutions, participants'
// registrations and outcome queries, and the RPC handlers that dispatch to them.
#include <spdlog/spdlog.h>

#include "coordinator/coordinator_impl.h"
#include "coordinator/resolve.h"
#include "coordinator/transactions.h"
#include "twopc/twopc_rules.h"
#include "saga/definition.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::coordinator {

Status Coordinator::Impl::CheckXid(const std::string& xid) {
  if (xid.size() <= kMaxXidBytes) return Status::Ok();
  metrics->SubmitRejected();
  return Status::InvalidArgument("xid is longer than " + std::to_string(kMaxXidBytes) + " bytes");
}

void Coordinator::Impl::HandleSubmit(v1::SubmitRequest req, net::Responder respond) {
  if (req.xid().empty()) req.set_xid(NewXid(random, "tx"));
  if (Status s = CheckXid(req.xid()); !s.ok()) return respond(s);
  if (sagas->Holds(req.xid())) {
    respond(Status::AlreadyExists("xid " + req.xid() + " is used by a saga"));
    return;
  }
  if (!core->Get(req.xid())) {
    // Not held in memory: it may be finished (or ending) in the log.
    auto found = log->Find(req.xid());
    if (!found.ok()) {
      respond(found.status());
      return;
    }
    if (found->has_value()) {
      respond(ReplyForLogged(req, **found));
      return;
    }
    Status used = RefuseUsedXid(*log, req.xid(), options.read_side.xid_retention_ms);
    if (!used.ok()) return respond(used);
    std::vector<std::string> services;
    for (const auto& b : req.branches()) services.push_back(b.service());
    if (Status s = AdmitNew(req, services); !s.ok()) return respond(s);
  }
  uint64_t client = next_client++;
  waiting.emplace(client, std::move(respond));
  twopc::Submit in;
  in.xid = req.xid();
  in.branches.assign(req.branches().begin(), req.branches().end());
  in.prepare_timeout_ms = req.prepare_timeout_ms();
  in.wait = req.wait();
  in.client = client;
  Execute(core->Handle(in));
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

Status Coordinator::Impl::ChooseInstances(v1::SubmitRequest& req) {
  for (auto& b : *req.mutable_branches()) {
    b.clear_instance();
    if (b.service().empty()) continue;  // refused by the core's validation
    auto picked = PickInstance(b.service(), b.routing_key().empty() ? req.xid() : b.routing_key());
    if (!picked.ok()) return picked.status();
    b.set_instance(*picked);
  }
  return Status::Ok();
}

Status Coordinator::Impl::ChooseInstances(v1::SubmitSagaRequest& req) {
  for (auto& step : *req.mutable_saga()->mutable_steps()) {
    step.clear_instance();
    if (step.service().empty()) continue;  // refused by the core's validation
    auto picked =
        PickInstance(step.service(), step.routing_key().empty() ? req.xid() : step.routing_key());
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

Result<std::string> Coordinator::Impl::ReplyForLogged(const v1::SubmitRequest& req,
                                                      const v1::TxnRecord& rec) {
  if (rec.mode() == saga::kSagaMode) {
    return Status::AlreadyExists("xid " + req.xid() + " is used by a saga");
  }
  if (!twopc::internal::SameBranches(req.branches(), rec.branches())) {
    return Status::AlreadyExists("xid " + req.xid() +
                                 " was already used for a different transaction");
  }
  v1::SubmitResponse resp;
  resp.set_xid(rec.xid());
  resp.set_state(rec.state());
  resp.set_reason(rec.reason());
  return resp.SerializeAsString();
}

void Coordinator::Impl::HandleSubmitSaga(v1::SubmitSagaRequest req, net::Responder respond) {
  if (req.xid().empty()) req.set_xid(NewXid(random, "saga"));
  if (Status s = CheckXid(req.xid()); !s.ok()) return respond(s);
  if (core->Get(req.xid())) {
    respond(Status::AlreadyExists("xid " + req.xid() + " is used by a 2PC transaction"));
    return;
  }
  if (!sagas->Holds(req.xid())) {
    auto found = log->Find(req.xid());
    if (!found.ok()) {
      respond(found.status());
      return;
    }
    if (found->has_value()) {
      respond(SagaShell::ReplyForLogged(req, **found));
      return;
    }
    Status used = RefuseUsedXid(*log, req.xid(), options.read_side.xid_retention_ms);
    if (!used.ok()) return respond(used);
    std::vector<std::string> services;
    for (const auto& step : req.saga().steps()) services.push_back(step.service());
    if (Status s = AdmitNew(req, services); !s.ok()) return respond(s);
  }
  sagas->Submit(std::move(req), std::move(respond));
}

void Coordinator::Impl::HandleResolve(const v1::ResolveRequest& req, net::Responder respond) {
  if (req.xid().empty()) return respond(Status::InvalidArgument("Resolve needs an xid"));
  if (sagas->Holds(req.xid())) return sagas->Resolve(req, std::move(respond));
  if (core->Get(req.xid())) {
    auto in = TwoPcResolveOf(req);
    if (!in.ok()) return respond(in.status());
    in->client = next_client++;
    waiting.emplace(in->client, std::move(respond));
    return Execute(core->Handle(*in));
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
  if (core->OutcomeOf(req.xid()) || !gate->clustered()) return respond(OutcomeOf(req.xid()));
  // Not held here. In a cluster, "unknown => ABORT" is only safe once no other leader can have
  // begun the xid: the barrier commits only while this node still leads, and once it is applied
  // every decision of earlier leaders is in the local state.
  log->Barrier(pending.Track([this, xid = req.xid(), respond](Status s, uint64_t) {
    asio::post(io(), [this, xid, respond, s] {
      if (!s.ok()) return respond(gate->NotLeader());
      if (stopped) return respond(Status::Unavailable("coordinator is shutting down"));
      respond(OutcomeOf(xid));
    });
  }));
}

Result<std::string> Coordinator::Impl::OutcomeOf(const std::string& xid) {
  v1::QueryOutcomeResponse resp;
  if (auto outcome = core->OutcomeOf(xid)) {
    resp.set_outcome(*outcome);
    return resp.SerializeAsString();
  }
  auto found = log->Find(xid);
  if (!found.ok()) return found.status();
  if (found->has_value()) {
    resp.set_outcome(OutcomeOfRecord(**found));
    return resp.SerializeAsString();
  }
  // Retention dropped the record, or the xid is unknown: presumed abort only for the latter.
  auto used = log->FindUsedXid(xid);
  if (!used.ok()) return used.status();
  resp.set_outcome(used->has_value() ? OutcomeOfUsedXid(**used) : v1::OUTCOME_ABORT);
  return resp.SerializeAsString();
}

Status Coordinator::Impl::Refusal() const {
  TREATY_RETURN_IF_ERROR(gate->CheckServing());
  if (stopped) return Status::Unavailable("coordinator is shutting down");
  return Status::Ok();
}

Result<std::string> Coordinator::Impl::HandleRegister(const v1::RegisterRequest& req) {
  TREATY_RETURN_IF_ERROR(registry->Register(req.service(), req.address(), req.weight(),
                                            clock.NowMs(), clock.UnixMs()));
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
