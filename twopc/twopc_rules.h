// Pure rules of the 2PC core that need no transaction state: what a valid submission is, which
// submissions are the same, which resolutions never apply. Which failures are final and the retry
// backoff are resilience/retry.h. Private to coordinator/; the contract is in twopc_core.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/random.h"
#include "common/status.h"
#include "twopc/twopc_core.h"

namespace treaty::twopc::internal {

// OK, or INVALID_ARGUMENT naming the first problem.
inline Status ValidateSubmit(const Submit& in) {
  if (in.xid.empty()) return Status::InvalidArgument("xid is empty");
  if (in.branches.empty()) return Status::InvalidArgument("xid=" + in.xid + ": no branches");
  if (in.branches.size() > kMaxBranches) {
    return Status::InvalidArgument("xid=" + in.xid + ": " + std::to_string(in.branches.size()) +
                                   " branches, at most " + std::to_string(kMaxBranches) +
                                   " allowed");
  }
  for (size_t i = 0; i < in.branches.size(); ++i) {
    const v1::Branch& b = in.branches[i];
    if (b.service().empty() || b.op().empty()) {
      return Status::InvalidArgument("xid=" + in.xid + ": branch " + std::to_string(i) +
                                     " needs both a service and an op");
    }
  }
  return Status::Ok();
}

// Same services, ops and payloads in the same order.
// Works for any two ranges of v1::Branch (std::vector, RepeatedPtrField).
template <typename A, typename B>
bool SameBranches(const A& a, const B& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(), [](const v1::Branch& x, const v1::Branch& y) {
        return x.service() == y.service() && x.op() == y.op() && x.payload() == y.payload();
      });
}

// `treaty tx resolve --mark-compensated` names a saga step; a 2PC transaction has none.
inline Status MarkCompensatedRefusal(const std::string& xid) {
  return Status::InvalidArgument("xid=" + xid +
                                 " is a 2PC transaction: it has no compensations to mark; use "
                                 "--retry (redeliver its decision) or --abort (while preparing)");
}

// A branch that voted NO or READ_ONLY has nothing prepared and never needs the decision.
inline bool MayHavePrepared(v1::Vote vote) { return vote != v1::NO && vote != v1::READ_ONLY; }

}  // namespace treaty::twopc::internal
