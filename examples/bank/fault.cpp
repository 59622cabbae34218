#include "examples/bank/fault.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

namespace treaty::bank {
namespace {

using Json = nlohmann::json;

constexpr FaultMode kModes[] = {FaultMode::kNone, FaultMode::kFail, FaultMode::kHang,
                                FaultMode::kSlow};

}  // namespace

const char* FaultModeName(FaultMode mode) {
  switch (mode) {
    case FaultMode::kNone:
      return "none";
    case FaultMode::kFail:
      return "fail";
    case FaultMode::kHang:
      return "hang";
    case FaultMode::kSlow:
      return "slow";
  }
  return "unknown";
}

Result<FaultSetting> MakeFaultSetting(std::string_view mode, std::optional<int64_t> delay_ms) {
  for (FaultMode m : kModes) {
    if (mode != FaultModeName(m)) continue;
    if (delay_ms && (*delay_ms < 0 || *delay_ms > kMaxFaultDelayMs)) {
      return Status::InvalidArgument("fault delay_ms must be from 0 to " +
                                     std::to_string(kMaxFaultDelayMs) + ", got " +
                                     std::to_string(*delay_ms));
    }
    FaultSetting setting{m, 0};
    if (m == FaultMode::kHang) setting.delay_ms = delay_ms.value_or(kDefaultHangMs);
    if (m == FaultMode::kSlow) setting.delay_ms = delay_ms.value_or(kDefaultSlowMs);
    return setting;
  }
  return Status::InvalidArgument("unknown fault mode '" + std::string(mode) +
                                 "': expected none, fail, hang or slow");
}

std::string FaultSettingJson(const FaultSetting& setting) {
  return Json{{"mode", FaultModeName(setting.mode)}, {"delay_ms", setting.delay_ms}}.dump();
}

Result<FaultSetting> ParseFaultSetting(std::string_view text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(std::string("fault setting is not JSON: ") + e.what());
  }
  if (!j.is_object()) return Status::InvalidArgument("fault setting is not a JSON object");
  auto mode = j.find("mode");
  if (mode == j.end() || !mode->is_string()) {
    return Status::InvalidArgument(
        R"(fault setting needs "mode": "none", "fail", "hang" or "slow")");
  }
  std::optional<int64_t> delay_ms;
  if (auto delay = j.find("delay_ms"); delay != j.end()) {
    if (!delay->is_number_integer() ||
        (delay->is_number_unsigned() && delay->get<uint64_t>() > uint64_t{kMaxFaultDelayMs})) {
      return Status::InvalidArgument("fault delay_ms must be an integer from 0 to " +
                                     std::to_string(kMaxFaultDelayMs));
    }
    delay_ms = delay->get<int64_t>();
  }
  return MakeFaultSetting(mode->get_ref<const std::string&>(), delay_ms);
}

FaultInjector::FaultInjector(FaultSetting initial) : setting_(initial) {}

void FaultInjector::Set(FaultSetting setting) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    setting_ = setting;
    ++generation_;
  }
  cv_.notify_all();
  spdlog::info("bank: fault injection mode={} delay_ms={}", FaultModeName(setting.mode),
               setting.delay_ms);
}

FaultSetting FaultInjector::setting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return setting_;
}

Status FaultInjector::BeforeHandler(std::string_view stage, std::string_view xid,
                                    uint32_t branch_id) {
  std::unique_lock<std::mutex> lock(mu_);
  bool counted = false;
  for (;;) {
    const FaultSetting setting = setting_;
    if (setting.mode == FaultMode::kNone) return Status::Ok();
    if (!counted) ++injected_;
    counted = true;
    if (setting.mode == FaultMode::kFail) {
      spdlog::debug("bank: injected failure of {} xid={} branch={}", stage, xid, branch_id);
      return Status::Unavailable("injected fault");
    }
    if (shutdown_) {
      if (setting.mode == FaultMode::kSlow) return Status::Ok();
      return Status::Unavailable("injected hang ended by shutdown");
    }
    spdlog::debug("bank: injected {} of {} xid={} branch={} for {} ms", FaultModeName(setting.mode),
                  stage, xid, branch_id, setting.delay_ms);
    const uint64_t generation = generation_;
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(setting.delay_ms);
    const bool interrupted =
        cv_.wait_until(lock, until, [&] { return shutdown_ || generation_ != generation; });
    if (!interrupted) return Status::Ok();  // waited the whole delay; run normally
    // The setting changed or the process is stopping: follow the new state.
  }
}

void FaultInjector::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

uint64_t FaultInjector::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

}  // namespace treaty::bank
