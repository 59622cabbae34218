// Saga definitions: parsing the JSON a user submits (`treaty submit saga -f order.json`), the
// rules a definition must follow, and the step graph (the DAG of `after` dependencies).
//
// JSON form (unknown fields are errors: a typo must not silently change a saga):
//   {"xid": "optional-id", "max_compensation_attempts": 10,
//    "steps": [
//      {"id": "reserve", "service": "inventory", "action": "reserve", "compensation": "release",
//       "payload": {"sku": "A1", "qty": 2}},
//      {"id": "charge", "service": "payment", "action": "charge", "compensation": "refund",
//       "after": ["reserve"], "timeout_ms": 3000, "key": "customer-7",
//       "retry": {"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 1000}}]}
// "payload" may be any JSON value; the participant receives its compact JSON text. "key" is the
// routing key for services balanced by consistent hash.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "resilience/retry.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::saga {

// Most steps one saga may have. Bounds per-saga memory, fan-out and the size of its log events.
inline constexpr size_t kMaxSteps = 64;
// Longest step id, bytes (ids are [A-Za-z0-9_.-]).
inline constexpr size_t kMaxStepIdBytes = 64;
// Largest payload of one step, bytes. 64 steps of this size stay well under the RPC frame limit.
inline constexpr size_t kMaxPayloadBytes = 64 * 1024;
// Longest routing key, bytes.
inline constexpr size_t kMaxRoutingKeyBytes = 256;
// Largest per-call timeout, milliseconds (10 minutes): a longer call is a design error.
inline constexpr uint32_t kMaxTimeoutMs = 600'000;
// Most action calls per step; retries are for transient failures, not for waiting out outages.
inline constexpr uint32_t kMaxActionAttempts = 100;
// Largest backoff bound, milliseconds (10 minutes).
inline constexpr uint32_t kMaxBackoffMs = 600'000;
// Most compensation calls per step before the saga is STUCK.
inline constexpr uint32_t kMaxCompensationAttemptsLimit = 10'000;
// Largest JSON text ParseSagaJson accepts, bytes.
inline constexpr size_t kMaxSagaJsonBytes = 8u << 20;

// Defaults for fields left 0 (see saga.proto).
inline constexpr uint32_t kDefaultMaxAttempts = 3;
inline constexpr uint32_t kDefaultInitialBackoffMs = 20;
inline constexpr uint32_t kDefaultMaxBackoffMs = 2000;
inline constexpr uint32_t kDefaultTimeoutMs = 5000;
inline constexpr uint32_t kDefaultMaxCompensationAttempts = 10;

// What a saga file holds: an optional client-chosen xid and the definition.
struct ParsedSaga {
  std::string xid;  // empty: the coordinator picks one
  v1::SagaDefinition definition;
};

// Parses and validates the JSON text of a saga. INVALID_ARGUMENT with a message that names the
// step and field at fault, or the position of a JSON syntax error.
Result<ParsedSaga> ParseSagaJson(std::string_view json_text);

// OK, or INVALID_ARGUMENT naming the first problem: no steps, more than kMaxSteps, a bad or
// duplicate id, a missing service / action / compensation, a payload over kMaxPayloadBytes, a
// timeout or retry field out of range, an `after` naming an unknown step or the step itself, or a
// dependency cycle (named, e.g. "a -> b -> a"). The instance field is not checked (the
// coordinator fills it in).
Status Validate(const v1::SagaDefinition& definition);

// The dependency graph of a definition, by step index.
struct StepGraph {
  std::vector<std::vector<uint32_t>> deps;        // deps[i]: the steps i comes after
  std::vector<std::vector<uint32_t>> dependents;  // dependents[i]: the steps that come after i
  // Every step after all of its deps; ties in definition order.
  std::vector<uint32_t> order;
};

// The graph, or INVALID_ARGUMENT for an unknown or self `after` id or a cycle (named). Checks
// only the dependencies; use Validate for the rest.
Result<StepGraph> BuildGraph(const v1::SagaDefinition& definition);

// Compensation order: every step before the steps it comes after (the reverse of graph.order).
std::vector<uint32_t> CompensationOrder(const StepGraph& graph);

// Effective per-step settings, with the defaults applied to fields left 0.
uint32_t TimeoutMs(const v1::SagaStep& step);
uint32_t MaxActionAttempts(const v1::SagaStep& step);
uint32_t MaxCompensationAttempts(const v1::SagaDefinition& definition);
// The step's backoff bounds; max_attempts is left 0 (the caller counts attempts).
resilience::RetryPolicy BackoffPolicy(const v1::SagaStep& step);

}  // namespace treaty::saga
