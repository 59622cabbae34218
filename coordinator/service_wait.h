// Submissions that wait for their services to register with a new leader.
//
// A participant registers (its instance is written durably to the log) with whichever node leads
// when it starts; one that started just before a failover may not have been registered durably,
// and the next leader has not heard from it. During a leader's first lease period
// (RegistryOptions::lease_ms from the moment it started serving) every live participant
// re-registers, so a submission naming a service this leader does not know yet waits for that
// service's registration, at most its own budget and never past that first period, instead of
// being refused as "unknown service". Afterwards an unknown service is refused at once.
//
// Thread-safety: none; the coordinator's I/O thread.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <vector>

namespace treaty::coordinator {

// Most submissions waiting at once; beyond it a submission is not held (it is admitted or
// refused at once). Bounds the memory a burst for a misspelt service can pin.
inline constexpr size_t kMaxWaitingForServices = 10'000;

class ServiceWait {
 public:
  // serving_since_ms: when this leader started serving (monotonic); first_period_ms: its lease.
  ServiceWait(int64_t serving_since_ms, int64_t first_period_ms)
      : until_ms_(serving_since_ms + first_period_ms) {}

  // How long a submission naming unknown services may wait now, at most budget_ms: 0 when it
  // must not wait (no unknown service, the first period is over, too many waiting).
  int64_t WaitMs(const std::vector<std::string>& unknown, int64_t budget_ms, int64_t now_ms) const;

  // Holds resume until every service in `unknown` has registered (Registered) or the caller's
  // timer expires it (Expire). Returns an id for Expire.
  uint64_t Hold(std::vector<std::string> unknown, std::function<void()> resume);

  // A service registered: takes the held submissions that wait for nothing else any more.
  std::vector<std::function<void()>> Registered(const std::string& service);
  // The submission with this id, if still held (its deadline passed).
  std::function<void()> Expire(uint64_t id);

  // Every held submission (the coordinator stops).
  std::vector<std::function<void()>> TakeAll();

  size_t held() const { return held_.size(); }

 private:
  struct Held {
    uint64_t id = 0;
    std::vector<std::string> unknown;
    std::function<void()> resume;
  };
  int64_t until_ms_;
  uint64_t next_id_ = 1;
  std::list<Held> held_;
};

}  // namespace treaty::coordinator
