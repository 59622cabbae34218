// Fault injection for the order example: makes one action or compensation of a running order
// service refuse (business failure) or fail (transient error) on command, so a saga can be made
// to turn around, or to retry, at any step.
//
// Modes, per operation (an action or compensation name of the service):
//   none    the handler runs normally.
//   refuse  the action answers REFUSED "injected refusal of <op>" without running: a business
//           failure, so the coordinator compensates the saga. Actions only: a compensation cannot
//           refuse.
//   fail    the handler answers UNAVAILABLE "injected fault in <op>" without running: transient,
//           so the coordinator retries (a compensation failing long enough makes the saga STUCK).
// An injected refusal is recorded by the saga barrier like a real one (a repeated action gets it
// again, even after the fault is cleared). An injected failure records nothing, so the retried
// call takes effect once the fault is cleared. Calls the participant answers from its saga
// barrier alone (a repeated action, a repeated or null compensation, a late action) run no
// handler and are not affected.
//
// Control: the method kSetFaultMethod takes {"action":"<op>","mode":"none"|"refuse"|"fail"} and
// answers every fault now in force as {"<op>":"<mode>",...} (operations in mode none omitted).
// It is a participant control method: it runs on the network thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treaty::order {

inline constexpr char kSetFaultMethod[] = "order.SetFault";

enum class FaultMode { kNone, kRefuse, kFail };

// "none", "refuse", "fail".
const char* FaultModeName(FaultMode mode);
// INVALID_ARGUMENT for an unknown name.
Result<FaultMode> ParseFaultMode(std::string_view name);

// The kSetFaultMethod request: {"action":"charge","mode":"refuse"}.
std::string FaultRequestJson(std::string_view op, FaultMode mode);

// The switches the order handlers consult. Thread-safe.
class OrderFaults {
 public:
  // actions and compensations: the operation names of the service (order.h, OpsOf).
  OrderFaults(std::vector<std::string> actions, std::vector<std::string> compensations);
  OrderFaults(const OrderFaults&) = delete;
  OrderFaults& operator=(const OrderFaults&) = delete;

  // INVALID_ARGUMENT if op is no operation of the service, or for refuse on a compensation.
  Status Set(std::string_view op, FaultMode mode);
  FaultMode Get(std::string_view op) const;
  // Every operation not in mode none.
  std::map<std::string, FaultMode> Active() const;
  // {"charge":"refuse"}: the kSetFaultMethod reply.
  std::string ActiveJson() const;
  // Applies a kSetFaultMethod request; answers ActiveJson(). INVALID_ARGUMENT on a bad request
  // (nothing changes).
  Result<std::string> HandleControl(const std::string& payload);

  // The fault of op for one handler call: the refusal reason (refuse), UNAVAILABLE (fail), or
  // nullopt (none: run the handler). Counts injected faults.
  Result<std::optional<std::string>> Before(std::string_view op, std::string_view xid,
                                            uint32_t step);
  uint64_t injected() const;

 private:
  const std::vector<std::string> actions_;
  const std::vector<std::string> compensations_;
  mutable std::mutex mu_;
  std::map<std::string, FaultMode, std::less<>> modes_;  // guarded by mu_; only non-none
  uint64_t injected_ = 0;                                // guarded by mu_
};

}  // namespace treaty::order
