#include "bench/services.h"

#include <chrono>
#include <thread>

#include "net/cluster_client.h"
#include "net/leader.h"
#include "net/proto_codec.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/methods.h"

namespace treaty::bench {
namespace {

constexpr int64_t kPollMs = 100;
constexpr int64_t kCallTimeoutMs = 2000;

// The instances of `service` in a listing, one per line; *live counts the live ones.
std::string Describe(const v1::ListServicesResponse& list, const std::string& service, int* live) {
  std::string out;
  *live = 0;
  for (const auto& s : list.services()) {
    if (s.name() != service) continue;
    for (const auto& i : s.instances()) {
      *live += i.live() ? 1 : 0;
      out += i.address() + " live=" + (i.live() ? "1" : "0") +
             " lease_age_ms=" + std::to_string(i.lease_age_ms()) + " breaker=" + i.breaker() + "\n";
    }
  }
  return out;
}

}  // namespace

Result<std::string> WaitForLiveInstances(const WaitInstancesOptions& options) {
  if (options.coordinator.empty() || options.service.empty() || options.live < 0) {
    return Status::InvalidArgument("a coordinator, a service and live >= 0 are required");
  }
  auto coordinators = net::ParseAddressList(options.coordinator);
  if (!coordinators.ok()) return coordinators.status().WithPrefix("--coordinator");
  net::ClusterClient client(std::move(*coordinators));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.wait_ms);
  std::string last = "(no answer)";
  while (true) {
    auto list = net::Decode<v1::ListServicesResponse>(
        client.Call(v1::methods::kListServices, v1::ListServicesRequest().SerializeAsString(),
                    kCallTimeoutMs, /*idempotent=*/true));
    if (list.ok()) {
      int live = 0;
      last = Describe(*list, options.service, &live);
      if (live == options.live) return last;
    } else {
      last = list.status().ToString();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::DeadlineExceeded("service " + options.service + " did not have " +
                                      std::to_string(options.live) + " live instances within " +
                                      std::to_string(options.wait_ms) + " ms; last:\n" + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

}  // namespace treaty::bench
