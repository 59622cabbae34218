#include "coordinator/resolve.h"

#include <spdlog/spdlog.h>

#include "saga/saga_core.h"
#include "twopc/twopc_rules.h"

namespace treaty::coordinator {

Result<twopc::Resolve> TwoPcResolveOf(const v1::ResolveRequest& req) {
  twopc::Resolve in;
  in.xid = req.xid();
  in.who = req.who();
  in.why = req.why();
  if (req.action() == "retry") {
    in.action = twopc::ResolveAction::kRetry;
  } else if (req.action() == "abort") {
    in.action = twopc::ResolveAction::kAbort;
  } else if (req.action() == "mark-compensated") {
    in.action = twopc::ResolveAction::kMarkCompensated;  // refused by the core, with the reason
  } else {
    return Status::InvalidArgument("unknown resolve action '" + req.action() +
                                   "' (retry, mark-compensated or abort)");
  }
  spdlog::info("xid={} resolve 2pc action={} who={} why={}", req.xid(), req.action(), req.who(),
               req.why());
  return in;
}

Result<saga::Resolve> SagaResolveOf(const v1::ResolveRequest& req, const v1::Transaction& held) {
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
    for (int i = 0; i < held.steps_size() && !found; ++i) {
      if (held.steps(i).id() == req.step_id()) {
        in.step = static_cast<uint32_t>(i);
        found = true;
      }
    }
    if (!found) {
      return Status::InvalidArgument("xid=" + req.xid() + " has no step '" + req.step_id() + "'");
    }
  } else {
    return Status::InvalidArgument("unknown resolve action '" + req.action() +
                                   "' (retry, mark-compensated or abort)");
  }
  spdlog::info("xid={} resolve action={} step={} who={} why={}", req.xid(), req.action(),
               req.step_id(), req.who(), req.why());
  return in;
}

Result<std::string> ResolveResponseOf(const twopc::Reply& reply) {
  if (!reply.status.ok()) return reply.status;
  v1::ResolveResponse resp;
  resp.set_tx_state(reply.state);
  resp.set_message(reply.reason.empty() ? "resolution recorded" : reply.reason);
  return resp.SerializeAsString();
}

Status ResolveRefusalForLogged(const v1::ResolveRequest& req, const v1::TxnRecord& rec) {
  const std::string xid = "xid=" + req.xid();
  if (rec.mode() == saga::kSagaMode) {
    return Status::FailedPrecondition(xid + " is already " + v1::SagaState_Name(rec.saga_state()) +
                                      "; nothing to resolve");
  }
  if (req.action() == "mark-compensated") {
    return twopc::internal::MarkCompensatedRefusal(req.xid());
  }
  return Status::FailedPrecondition(xid + " is already " + v1::TxState_Name(rec.state()) +
                                    "; nothing to resolve");
}

}  // namespace treaty::coordinator
