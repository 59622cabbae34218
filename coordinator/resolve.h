// `treaty tx resolve` for 2PC transactions on the shell's side: the ResolveRequest translated for
// the 2PC core, the core's answer encoded, and the answer for transactions only in the log.
// Sagas are resolved by the saga shell (coordinator/saga_shell.h).
#pragma once

#include <string>

#include "common/status.h"
#include "saga/saga_core.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"
#include "twopc/twopc_core.h"

namespace treaty::coordinator {

// The core's input for req (client left 0), or INVALID_ARGUMENT for an unknown action.
Result<twopc::Resolve> TwoPcResolveOf(const v1::ResolveRequest& req);

// The saga core's input for req on the saga held (its live view, to find the step by id; client
// left 0), or INVALID_ARGUMENT for an unknown action or step.
Result<saga::Resolve> SagaResolveOf(const v1::ResolveRequest& req, const v1::Transaction& held);

// The ResolveResponse for a reply of the 2PC core to a Resolve input (its error if not OK).
Result<std::string> ResolveResponseOf(const twopc::Reply& reply);

// The refusal of req for a transaction that is in the log but not held by either core (a
// finished one): INVALID_ARGUMENT for mark-compensated of a 2PC transaction, FAILED_PRECONDITION
// naming the final state otherwise.
Status ResolveRefusalForLogged(const v1::ResolveRequest& req, const v1::TxnRecord& rec);

}  // namespace treaty::coordinator
