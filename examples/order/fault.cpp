#include "examples/order/fault.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace treaty::order {
namespace {

using Json = nlohmann::json;

constexpr FaultMode kModes[] = {FaultMode::kNone, FaultMode::kRefuse, FaultMode::kFail};

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

const char* FaultModeName(FaultMode mode) {
  switch (mode) {
    case FaultMode::kNone:
      return "none";
    case FaultMode::kRefuse:
      return "refuse";
    case FaultMode::kFail:
      return "fail";
  }
  return "unknown";
}

Result<FaultMode> ParseFaultMode(std::string_view name) {
  for (FaultMode mode : kModes) {
    if (name == FaultModeName(mode)) return mode;
  }
  return Status::InvalidArgument("unknown fault mode '" + std::string(name) +
                                 "': expected none, refuse or fail");
}

std::string FaultRequestJson(std::string_view op, FaultMode mode) {
  return Json{{"action", op}, {"mode", FaultModeName(mode)}}.dump();
}

OrderFaults::OrderFaults(std::vector<std::string> actions, std::vector<std::string> compensations)
    : actions_(std::move(actions)), compensations_(std::move(compensations)) {}

Status OrderFaults::Set(std::string_view op, FaultMode mode) {
  const bool action = Contains(actions_, op);
  if (!action && !Contains(compensations_, op)) {
    std::string known;
    for (const auto* names : {&actions_, &compensations_}) {
      for (const std::string& name : *names) known += (known.empty() ? "" : ", ") + name;
    }
    return Status::InvalidArgument("'" + std::string(op) +
                                   "' is no operation of this service; expected one of " + known);
  }
  if (!action && mode == FaultMode::kRefuse) {
    return Status::InvalidArgument("compensation '" + std::string(op) +
                                   "' cannot refuse; use mode fail to make it retry");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (mode == FaultMode::kNone) {
      if (auto it = modes_.find(op); it != modes_.end()) modes_.erase(it);
    } else {
      modes_[std::string(op)] = mode;
    }
  }
  spdlog::info("order: fault injection op={} mode={}", op, FaultModeName(mode));
  return Status::Ok();
}

FaultMode OrderFaults::Get(std::string_view op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = modes_.find(op);
  return it == modes_.end() ? FaultMode::kNone : it->second;
}

std::map<std::string, FaultMode> OrderFaults::Active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {modes_.begin(), modes_.end()};
}

std::string OrderFaults::ActiveJson() const {
  Json j = Json::object();
  for (const auto& [op, mode] : Active()) j[op] = FaultModeName(mode);
  return j.dump();
}

Result<std::string> OrderFaults::HandleControl(const std::string& payload) {
  Json j;
  try {
    j = Json::parse(payload);
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(std::string("fault request is not JSON: ") + e.what());
  }
  if (!j.is_object()) return Status::InvalidArgument("fault request is not a JSON object");
  auto op = j.find("action");
  auto mode = j.find("mode");
  if (op == j.end() || !op->is_string() || mode == j.end() || !mode->is_string()) {
    return Status::InvalidArgument(
        R"(fault request needs "action": "<operation>" and "mode": "none", "refuse" or "fail")");
  }
  Result<FaultMode> parsed = ParseFaultMode(mode->get_ref<const std::string&>());
  if (!parsed.ok()) return parsed.status();
  TREATY_RETURN_IF_ERROR(Set(op->get_ref<const std::string&>(), *parsed));
  return ActiveJson();
}

Result<std::optional<std::string>> OrderFaults::Before(std::string_view op, std::string_view xid,
                                                       uint32_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = modes_.find(op);
  if (it == modes_.end()) return std::optional<std::string>();
  ++injected_;
  spdlog::debug("order: injected {} of {} xid={} step={}", FaultModeName(it->second), op, xid,
                step);
  if (it->second == FaultMode::kFail) {
    return Status::Unavailable("injected fault in " + std::string(op));
  }
  return std::optional<std::string>("injected refusal of " + std::string(op));
}

uint64_t OrderFaults::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

}  // namespace treaty::order
