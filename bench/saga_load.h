// The saga load generator of treaty-bench: closed-loop clients submitting 3-step order sagas
// (examples/order: reserve 1 widget -> charge 1 -> schedule, the order id being the xid) with
// wait=true. COMPLETED counts as committed, any other answer as aborted.
#pragma once

#include <functional>

#include "bench/twopc_load.h"
#include "common/status.h"

namespace treaty::bench {

// spec.method, request and succeeded are filled in here; the rest is taken as given. The
// inventory service needs enough "widget" stock for every saga of the run.
Result<TwoPcLoadResult> RunSagaLoad(LoadSpec spec, const std::function<void()>& at_window_start,
                                    const std::function<void()>& at_window_end);

}  // namespace treaty::bench
