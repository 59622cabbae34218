// Calling service handlers safely. Private to participant/.
#pragma once

#include <exception>
#include <string>

#include "common/status.h"

namespace treaty::participant {

// Runs user code fn (returning Status or Result<T>), turning an escaping exception into INTERNAL
// "<what> handler threw: ...".
template <typename Fn>
auto Guarded(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + " handler threw: " + e.what());
  } catch (...) {
    return Status::Internal(std::string(what) + " handler threw a non-standard exception");
  }
}

}  // namespace treaty::participant
