// Pure rules of the 2PC core that need no transaction state: what a valid submission is, which
// prepare failures are final, when two submissions are the same, and the retry backoff.
// Private to coordinator/; the contract is in twopc_core.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/random.h"
#include "common/status.h"
#include "coordinator/twopc_core.h"

namespace treaty::coordinator::internal {

// Prepare failures that say the participant refused the branch; retrying cannot change the answer.
// Every other code (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, CORRUPTION) is
// transient.
inline bool IsDefinitivePrepareFailure(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
    case StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

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
inline bool SameBranches(const std::vector<v1::Branch>& a, const std::vector<v1::Branch>& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(), [](const v1::Branch& x, const v1::Branch& y) {
        return x.service() == y.service() && x.op() == y.op() && x.payload() == y.payload();
      });
}

// A branch that voted NO or READ_ONLY has nothing prepared and never needs the decision.
inline bool MayHavePrepared(v1::Vote vote) { return vote != v1::NO && vote != v1::READ_ONLY; }

// Upper bound of the backoff before retrying a call whose attempt number `attempt` failed:
// min(retry_max_ms, retry_initial_ms * 2^(attempt-1)), at least 1 ms.
inline int64_t BackoffCapMs(uint32_t attempt, int64_t retry_initial_ms, int64_t retry_max_ms) {
  int64_t cap_ms = std::max<int64_t>(1, retry_initial_ms);
  for (uint32_t i = 1; i < attempt && cap_ms < retry_max_ms; ++i) cap_ms *= 2;
  return std::max<int64_t>(1, std::min(cap_ms, retry_max_ms));
}

// Full jitter: uniform in [0, BackoffCapMs], raised to at least 1 ms.
inline int64_t JitteredBackoffMs(uint32_t attempt, int64_t retry_initial_ms, int64_t retry_max_ms,
                                 Random& random) {
  const int64_t cap_ms = BackoffCapMs(attempt, retry_initial_ms, retry_max_ms);
  const auto jitter_ms = static_cast<int64_t>(random.Uniform(static_cast<uint64_t>(cap_ms) + 1));
  return std::max<int64_t>(1, jitter_ms);
}

}  // namespace treaty::coordinator::internal
