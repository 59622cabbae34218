// Fault injection for the bank example: makes a running bank participant fail, hang or slow down
// on command, so tests with real processes can watch the coordinator's retries, circuit breakers
// and bulkheads at work.
//
// Modes (they affect the prepare, commit and abort handlers; queries and the control method keep
// working):
//   none  handlers run normally.
//   fail  handlers return UNAVAILABLE "injected fault" without running: a transient error, so the
//         coordinator retries; nothing is written and a prepared branch stays prepared.
//   hang  handlers wait delay_ms (default kDefaultHangMs, 10 minutes), then run normally. All
//         handlers run on the participant's single worker thread, so one hanging handler stalls
//         the whole instance (balances queries included), as a hung service would.
//   slow  handlers wait delay_ms (default kDefaultSlowMs), then run normally; the worker thread
//         is held meanwhile, so the instance serves at most one handler per delay_ms.
// A wait ends early when the setting changes (the waiting handler then follows the new setting)
// or at Shutdown (a hang then fails with UNAVAILABLE, a slow handler proceeds).
// Calls that the participant answers from its barrier alone (a repeated prepare, a redelivered
// decision, an abort of a branch never prepared, Inspect) run no handler and are not affected.
//
// Control: the method kSetFaultMethod takes {"mode":"none"|"fail"|"hang"|"slow","delay_ms":N}
// (delay_ms optional) and answers the setting now in force in the same form. It runs on the
// participant's network thread (Participant::RegisterControl), so it gets through even while a
// hang holds the worker.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treaty::bank {

inline constexpr char kSetFaultMethod[] = "bank.SetFault";

// Default wait of a hang: long enough to outlast any call deadline, short enough that a
// forgotten fault does not hold a test machine forever.
inline constexpr int64_t kDefaultHangMs = 600'000;
// Default wait of a slow handler.
inline constexpr int64_t kDefaultSlowMs = 100;
// Longest delay_ms accepted (one hour).
inline constexpr int64_t kMaxFaultDelayMs = 3'600'000;

enum class FaultMode { kNone, kFail, kHang, kSlow };

// "none", "fail", "hang", "slow".
const char* FaultModeName(FaultMode mode);

struct FaultSetting {
  FaultMode mode = FaultMode::kNone;
  // How long hang and slow wait, milliseconds; 0 for none and fail.
  int64_t delay_ms = 0;
};

// The setting for mode name `mode` with the given delay (the mode's default if absent).
// INVALID_ARGUMENT for an unknown mode or a delay outside [0, kMaxFaultDelayMs].
Result<FaultSetting> MakeFaultSetting(std::string_view mode, std::optional<int64_t> delay_ms);

// The kSetFaultMethod payload format, both ways: {"mode":"slow","delay_ms":50}.
// ParseFaultSetting: INVALID_ARGUMENT if text is not such an object (see MakeFaultSetting).
std::string FaultSettingJson(const FaultSetting& setting);
Result<FaultSetting> ParseFaultSetting(std::string_view text);

// The switch the bank's handlers consult. Thread-safe.
class FaultInjector {
 public:
  explicit FaultInjector(FaultSetting initial = {});
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // Replaces the setting; handlers waiting in hang or slow wake up and follow the new one.
  void Set(FaultSetting setting);
  FaultSetting setting() const;

  // Applies the fault to one handler call (stage "prepare", "commit" or "abort" of branch
  // branch_id of xid; for logs): returns OK at once (none), after the wait (hang, slow), or
  // UNAVAILABLE (fail; hang ended by Shutdown). Blocks the calling thread while waiting.
  Status BeforeHandler(std::string_view stage, std::string_view xid, uint32_t branch_id);

  // Ends every wait now and makes later ones return at once. Call before Participant::Stop(),
  // which otherwise waits for a hanging handler to finish. Idempotent.
  void Shutdown();

  // Handler calls that met a fault (failed or delayed) so far.
  uint64_t injected() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  FaultSetting setting_;     // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_; bumped by Set
  bool shutdown_ = false;    // guarded by mu_
  uint64_t injected_ = 0;    // guarded by mu_
};

}  // namespace treaty::bank
