#include "coordinator/resolve.h"

#include <spdlog/spdlog.h>

#include "twopc/twopc_rules.h"
#include "saga/saga_core.h"

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
