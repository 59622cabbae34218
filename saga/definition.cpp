#include "saga/definition.h"

#include <algorithm>
#include <map>
#include <string>

namespace treaty::saga {
namespace {

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// "step 3 (\"charge\")", or "step 3" while the id is not known to be printable.
std::string StepWhere(size_t index, const std::string& id) {
  return "step " + std::to_string(index + 1) + (id.empty() ? "" : " (" + Quoted(id) + ")");
}

Status CheckId(size_t index, const std::string& id) {
  if (id.empty()) return Status::InvalidArgument(StepWhere(index, "") + " needs an \"id\"");
  if (id.size() > kMaxStepIdBytes) {
    return Status::InvalidArgument(StepWhere(index, "") + ": \"id\" is longer than " +
                                   std::to_string(kMaxStepIdBytes) + " bytes");
  }
  if (!std::all_of(id.begin(), id.end(), IsIdChar)) {
    return Status::InvalidArgument(StepWhere(index, "") + ": \"id\" " + Quoted(id) +
                                   " may only use letters, digits, '_', '.' and '-'");
  }
  return Status::Ok();
}

Status CheckRange(const std::string& where, const char* field, uint64_t value, uint64_t max) {
  if (value > max) {
    return Status::InvalidArgument(where + ": \"" + field + "\" is " + std::to_string(value) +
                                   ", at most " + std::to_string(max) + " allowed");
  }
  return Status::Ok();
}

Status CheckStep(size_t index, const v1::SagaStep& step) {
  TREATY_RETURN_IF_ERROR(CheckId(index, step.id()));
  const std::string where = StepWhere(index, step.id());
  if (step.service().empty()) return Status::InvalidArgument(where + " needs a \"service\"");
  if (step.action().empty()) return Status::InvalidArgument(where + " needs an \"action\"");
  if (step.compensation().empty()) {
    return Status::InvalidArgument(where + " needs a \"compensation\"");
  }
  if (step.payload().size() > kMaxPayloadBytes) {
    return Status::InvalidArgument(where + ": \"payload\" is " +
                                   std::to_string(step.payload().size()) + " bytes, at most " +
                                   std::to_string(kMaxPayloadBytes) + " allowed");
  }
  if (step.routing_key().size() > kMaxRoutingKeyBytes) {
    return Status::InvalidArgument(where + ": \"key\" is longer than " +
                                   std::to_string(kMaxRoutingKeyBytes) + " bytes");
  }
  TREATY_RETURN_IF_ERROR(CheckRange(where, "timeout_ms", step.timeout_ms(), kMaxTimeoutMs));
  const v1::StepRetry& retry = step.retry();
  TREATY_RETURN_IF_ERROR(
      CheckRange(where, "retry.max_attempts", retry.max_attempts(), kMaxActionAttempts));
  TREATY_RETURN_IF_ERROR(
      CheckRange(where, "retry.initial_backoff_ms", retry.initial_backoff_ms(), kMaxBackoffMs));
  TREATY_RETURN_IF_ERROR(
      CheckRange(where, "retry.max_backoff_ms", retry.max_backoff_ms(), kMaxBackoffMs));
  const resilience::RetryPolicy policy = BackoffPolicy(step);
  if (policy.max_backoff_ms < policy.initial_backoff_ms) {
    return Status::InvalidArgument(where + ": \"retry.max_backoff_ms\" (" +
                                   std::to_string(policy.max_backoff_ms) +
                                   ") is below \"retry.initial_backoff_ms\" (" +
                                   std::to_string(policy.initial_backoff_ms) + ")");
  }
  return Status::Ok();
}

// Names a cycle among the steps not placed by the topological sort (each has an unplaced dep).
std::string DescribeCycle(const v1::SagaDefinition& definition, const StepGraph& graph,
                          const std::vector<bool>& placed) {
  uint32_t at = 0;
  while (placed[at]) ++at;
  std::vector<int> seen_at(placed.size(), -1);
  std::vector<uint32_t> path;
  while (seen_at[at] < 0) {
    seen_at[at] = static_cast<int>(path.size());
    path.push_back(at);
    for (uint32_t dep : graph.deps[at]) {
      if (!placed[dep]) {
        at = dep;
        break;
      }
    }
  }
  std::string cycle;
  for (size_t i = static_cast<size_t>(seen_at[at]); i < path.size(); ++i) {
    cycle += definition.steps(static_cast<int>(path[i])).id() + " -> ";
  }
  return cycle + definition.steps(static_cast<int>(at)).id();
}

}  // namespace

Result<StepGraph> BuildGraph(const v1::SagaDefinition& definition) {
  const size_t n = static_cast<size_t>(definition.steps_size());
  std::map<std::string, uint32_t> index_of;
  for (uint32_t i = 0; i < n; ++i) index_of.emplace(definition.steps(static_cast<int>(i)).id(), i);
  StepGraph graph;
  graph.deps.resize(n);
  graph.dependents.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    const v1::SagaStep& step = definition.steps(static_cast<int>(i));
    for (const std::string& after : step.after()) {
      const std::string where = StepWhere(i, step.id());
      auto it = index_of.find(after);
      if (it == index_of.end()) {
        return Status::InvalidArgument(where + ": \"after\" names unknown step " + Quoted(after));
      }
      if (it->second == i) {
        return Status::InvalidArgument(where + ": \"after\" names the step itself");
      }
      if (std::find(graph.deps[i].begin(), graph.deps[i].end(), it->second) !=
          graph.deps[i].end()) {
        return Status::InvalidArgument(where + ": \"after\" names " + Quoted(after) + " twice");
      }
      graph.deps[i].push_back(it->second);
      graph.dependents[it->second].push_back(i);
    }
  }
  // Kahn's algorithm, always taking the lowest ready index (n <= kMaxSteps, so O(n^2) is fine).
  std::vector<size_t> waiting(n);
  for (size_t i = 0; i < n; ++i) waiting[i] = graph.deps[i].size();
  std::vector<bool> placed(n, false);
  while (graph.order.size() < n) {
    uint32_t next = 0;
    while (next < n && (placed[next] || waiting[next] != 0)) ++next;
    if (next == n) {
      return Status::InvalidArgument(
          "\"after\" forms a cycle: " + DescribeCycle(definition, graph, placed) +
          " (each step comes after the next)");
    }
    placed[next] = true;
    graph.order.push_back(next);
    for (uint32_t d : graph.dependents[next]) --waiting[d];
  }
  return graph;
}

std::vector<uint32_t> CompensationOrder(const StepGraph& graph) {
  return {graph.order.rbegin(), graph.order.rend()};
}

Status Validate(const v1::SagaDefinition& definition) {
  if (definition.steps().empty()) return Status::InvalidArgument("the saga has no steps");
  if (static_cast<size_t>(definition.steps_size()) > kMaxSteps) {
    return Status::InvalidArgument("too many steps: " + std::to_string(definition.steps_size()) +
                                   " (the limit is " + std::to_string(kMaxSteps) + ")");
  }
  if (definition.max_compensation_attempts() > kMaxCompensationAttemptsLimit) {
    return Status::InvalidArgument("\"max_compensation_attempts\" is " +
                                   std::to_string(definition.max_compensation_attempts()) +
                                   ", at most " + std::to_string(kMaxCompensationAttemptsLimit) +
                                   " allowed");
  }
  std::map<std::string, size_t> first_index;
  for (size_t i = 0; i < static_cast<size_t>(definition.steps_size()); ++i) {
    const v1::SagaStep& step = definition.steps(static_cast<int>(i));
    TREATY_RETURN_IF_ERROR(CheckStep(i, step));
    auto [it, inserted] = first_index.emplace(step.id(), i);
    if (!inserted) {
      return Status::InvalidArgument(StepWhere(i, step.id()) + ": the id is already used by step " +
                                     std::to_string(it->second + 1));
    }
  }
  Result<StepGraph> graph = BuildGraph(definition);
  return graph.ok() ? Status::Ok() : graph.status();
}

uint32_t TimeoutMs(const v1::SagaStep& step) {
  return step.timeout_ms() != 0 ? step.timeout_ms() : kDefaultTimeoutMs;
}

uint32_t MaxActionAttempts(const v1::SagaStep& step) {
  return step.retry().max_attempts() != 0 ? step.retry().max_attempts() : kDefaultMaxAttempts;
}

uint32_t MaxCompensationAttempts(const v1::SagaDefinition& definition) {
  return definition.max_compensation_attempts() != 0 ? definition.max_compensation_attempts()
                                                     : kDefaultMaxCompensationAttempts;
}

resilience::RetryPolicy BackoffPolicy(const v1::SagaStep& step) {
  resilience::RetryPolicy policy;
  policy.initial_backoff_ms = step.retry().initial_backoff_ms() != 0
                                  ? step.retry().initial_backoff_ms()
                                  : kDefaultInitialBackoffMs;
  // An unset max never sits below an explicit initial bound.
  policy.max_backoff_ms = step.retry().max_backoff_ms() != 0
                              ? step.retry().max_backoff_ms()
                              : std::max<int64_t>(kDefaultMaxBackoffMs, policy.initial_backoff_ms);
  return policy;
}

}  // namespace treaty::saga
