// Time sources, injected so protocol code runs under a simulated clock in tests.
#pragma once

#include <atomic>
#include <cstdint>

namespace treaty {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time in milliseconds (arbitrary epoch); for deadlines and timers.
  virtual int64_t NowMs() const = 0;
  // Wall-clock time, Unix epoch milliseconds; for timestamps shown to people.
  virtual int64_t UnixMs() const = 0;
};

// The real clocks (steady_clock and system_clock). Thread-safe.
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  int64_t UnixMs() const override;
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t UnixMs() const override { return 1'700'000'000'000 + now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_.fetch_add(ms); }
  void SetMs(int64_t ms) { now_ms_.store(ms); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace treaty
