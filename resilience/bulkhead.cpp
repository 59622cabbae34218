#include "resilience/bulkhead.h"

#include <cassert>

namespace treaty::resilience {

Bulkhead::Permit& Bulkhead::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    bulkhead_ = other.bulkhead_;
    other.bulkhead_ = nullptr;
  }
  return *this;
}

void Bulkhead::Permit::Release() {
  if (bulkhead_ == nullptr) return;
  bulkhead_->Release();
  bulkhead_ = nullptr;
}

Bulkhead::Bulkhead(uint32_t max_in_flight) : max_in_flight_(max_in_flight) {}

bool Bulkhead::TryAcquire() {
  if (in_flight_ >= max_in_flight_) {
    ++rejected_;
    return false;
  }
  ++in_flight_;
  return true;
}

void Bulkhead::Release() {
  assert(in_flight_ > 0 && "Bulkhead::Release without a matching TryAcquire");
  if (in_flight_ > 0) --in_flight_;
}

Bulkhead::Permit Bulkhead::TryAcquirePermit() { return TryAcquire() ? Permit(this) : Permit(); }

}  // namespace treaty::resilience
