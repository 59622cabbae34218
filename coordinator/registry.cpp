#include "coordinator/registry.h"

#include <spdlog/spdlog.h>

#include "net/rpc.h"

namespace treaty::coordinator {
namespace {
constexpr char kPrefix[] = "instance/";

std::string MetaKey(const std::string& service, const std::string& address) {
  return kPrefix + service + "/" + address;
}
}  // namespace

Registry::Registry(log::EventLog& log, RegistryOptions options)
    : log_(log), options_(std::move(options)) {}

Registry::Service& Registry::ServiceFor(const std::string& name) {
  Service& s = services_[name];
  if (!s.balancer) {
    auto it = options_.policies.find(name);
    s.balancer = std::make_unique<Balancer>(it != options_.policies.end() ? it->second
                                                                          : options_.default_policy);
  }
  return s;
}

Status Registry::Load(int64_t now_ms) {
  auto entries = log_.ScanMeta(kPrefix);
  if (!entries.ok()) return entries.status();
  for (const auto& [key, value] : *entries) {
    v1::ServiceRecord rec;
    if (!rec.ParseFromString(value)) {
      return Status::Corruption("unreadable service registration under meta key '" + key + "'");
    }
    Instance& inst = ServiceFor(rec.service()).instances[rec.address()];
    inst.weight = rec.weight() == 0 ? 1 : rec.weight();
    inst.heartbeat_ms = now_ms;
  }
  return Status::Ok();
}

Status Registry::Register(const std::string& service, const std::string& address,
                          uint32_t weight, int64_t now_ms, int64_t unix_ms) {
  if (service.empty() || service.size() > kMaxServiceNameBytes) {
    return Status::InvalidArgument("service name must be 1.." +
                                   std::to_string(kMaxServiceNameBytes) + " bytes");
  }
  std::string host;
  uint16_t port = 0;
  TREATY_RETURN_IF_ERROR(net::ParseAddress(address, &host, &port));
  if (weight == 0) weight = 1;
  Service& s = ServiceFor(service);
  auto it = s.instances.find(address);
  if (it == s.instances.end() && s.instances.size() >= kMaxInstancesPerService) {
    return Status::ResourceExhausted("service " + service + " already has " +
                                     std::to_string(kMaxInstancesPerService) + " instances");
  }
  bool changed = it == s.instances.end() || it->second.weight != weight;
  if (changed) {
    v1::ServiceRecord rec;
    rec.set_service(service);
    rec.set_address(address);
    rec.set_weight(weight);
    rec.set_registered_unix_ms(unix_ms);
    TREATY_RETURN_IF_ERROR(log_.PutMeta(MetaKey(service, address), rec.SerializeAsString()));
    spdlog::info("registry: service={} instance={} weight={} registered", service, address,
                 weight);
  } else if (now_ms - it->second.heartbeat_ms > options_.lease_ms) {
    spdlog::info("registry: service={} instance={} is back (lease renewed)", service, address);
  }
  Instance& inst = s.instances[address];
  inst.weight = weight;
  inst.heartbeat_ms = now_ms;
  return Status::Ok();
}

bool Registry::Known(const std::string& service) const { return services_.count(service) > 0; }

Result<std::string> Registry::Pick(const std::string& service, const std::string& key,
                                   int64_t now_ms,
                                   const std::function<bool(const std::string&)>& usable,
                                   const std::function<uint32_t(const std::string&)>& outstanding) {
  auto it = services_.find(service);
  if (it == services_.end()) {
    return Status::NotFound("unknown service '" + service + "' (registered: " + Names() + ")");
  }
  std::vector<Candidate> candidates;
  size_t live = 0;
  for (const auto& [address, inst] : it->second.instances) {
    if (now_ms - inst.heartbeat_ms > options_.lease_ms) continue;
    ++live;
    if (!usable(address)) continue;
    candidates.push_back({address, inst.weight, outstanding(address)});
  }
  if (candidates.empty()) {
    return Status::Unavailable(
        live == 0 ? "service " + service + " has no live instance (every lease expired)"
                  : "service " + service + " has no usable instance (circuit breakers open)");
  }
  return candidates[it->second.balancer->Pick(candidates, key)].address;
}

std::vector<Registry::ServiceView> Registry::List(int64_t now_ms) const {
  std::vector<ServiceView> out;
  for (const auto& [name, s] : services_) {
    ServiceView v;
    v.name = name;
    v.policy = s.balancer->policy();
    for (const auto& [address, inst] : s.instances) {
      int64_t age = now_ms - inst.heartbeat_ms;
      v.instances.push_back({address, inst.weight, age, age <= options_.lease_ms});
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::string Registry::Names() const {
  std::string out;
  for (const auto& [name, s] : services_) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace treaty::coordinator
