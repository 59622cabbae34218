// Pure rules of the saga core that need no saga state. Private to saga/; the contract is in
// saga_core.h.
#pragma once

#include <algorithm>

#include "treaty/v1/saga.pb.h"

namespace treaty::saga::internal {

inline bool IsFinal(v1::SagaState state) {
  return state == v1::SAGA_COMPLETED || state == v1::SAGA_COMPENSATED;
}

// A step whose action was (or may have been) sent and that is not compensated yet. A FAILED step
// is included whatever the failure: compensating an action that had no effect is a null
// compensation at the participant's barrier.
inline bool NeedsCompensation(v1::StepState state) {
  return state == v1::STEP_RUNNING || state == v1::STEP_SUCCEEDED || state == v1::STEP_FAILED ||
         state == v1::STEP_COMPENSATING;
}

// Same steps (ids, services, operations, payloads, dependencies, timeouts, retry policies, keys)
// and compensation budget. The instance chosen by the coordinator is ignored.
inline bool SameDefinition(const v1::SagaDefinition& a, const v1::SagaDefinition& b) {
  auto same_step = [](const v1::SagaStep& x, const v1::SagaStep& y) {
    return x.id() == y.id() && x.service() == y.service() && x.action() == y.action() &&
           x.compensation() == y.compensation() && x.payload() == y.payload() &&
           std::equal(x.after().begin(), x.after().end(), y.after().begin(), y.after().end()) &&
           x.timeout_ms() == y.timeout_ms() && x.routing_key() == y.routing_key() &&
           x.retry().max_attempts() == y.retry().max_attempts() &&
           x.retry().initial_backoff_ms() == y.retry().initial_backoff_ms() &&
           x.retry().max_backoff_ms() == y.retry().max_backoff_ms();
  };
  return a.max_compensation_attempts() == b.max_compensation_attempts() &&
         std::equal(a.steps().begin(), a.steps().end(), b.steps().begin(), b.steps().end(),
                    same_step);
}

}  // namespace treaty::saga::internal
