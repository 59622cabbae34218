// Bulkhead: a bound on the calls in flight to one service, so that one slow or hung service can
// hold at most max_in_flight of the coordinator's calls (and the memory behind them), and the
// other services keep their share.
//
// A call takes a permit before it is sent and gives it back when its result (or its deadline)
// arrives; when none is left the call is refused at once instead of queueing.
//
//   Bulkhead::Permit permit = bulkhead.TryAcquirePermit();
//   if (!permit) return Status::ResourceExhausted("service bank-a has 64 calls in flight");
//   ... keep the permit with the call; destroying it (or permit.Release()) frees the slot ...
//
// Not thread-safe: the coordinator uses each bulkhead from one I/O thread.
#pragma once

#include <cstdint>

namespace treaty::resilience {

// Default max_in_flight: enough to keep a participant's group commit busy (it executes queued
// requests in rounds), small enough that a hung service ties up little memory.
inline constexpr uint32_t kDefaultMaxInFlight = 64;

class Bulkhead {
 public:
  // One slot, released exactly once: by Release() or by the destructor, whichever comes first.
  // Movable (the moved-from permit holds nothing); the Bulkhead must outlive it.
  class Permit {
   public:
    Permit() = default;
    ~Permit() { Release(); }
    Permit(Permit&& other) noexcept : bulkhead_(other.bulkhead_) { other.bulkhead_ = nullptr; }
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;

    // Whether this permit holds a slot.
    explicit operator bool() const { return bulkhead_ != nullptr; }
    // Gives the slot back now. No-op if it holds none.
    void Release();

   private:
    friend class Bulkhead;
    explicit Permit(Bulkhead* bulkhead) : bulkhead_(bulkhead) {}
    Bulkhead* bulkhead_ = nullptr;
  };

  // max_in_flight: slots. 0 refuses every call.
  explicit Bulkhead(uint32_t max_in_flight = kDefaultMaxInFlight);
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;

  // Takes a slot if one is free; otherwise counts a rejection and returns false.
  bool TryAcquire();
  // Returns a slot taken by TryAcquire. REQUIRES: in_flight() > 0.
  void Release();
  // TryAcquire as an RAII permit: an empty permit (false) if no slot is free.
  Permit TryAcquirePermit();

  uint32_t in_flight() const { return in_flight_; }
  uint32_t max_in_flight() const { return max_in_flight_; }
  // Calls refused so far.
  uint64_t rejected() const { return rejected_; }

 private:
  const uint32_t max_in_flight_;
  uint32_t in_flight_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace treaty::resilience
