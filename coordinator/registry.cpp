#include "coordinator/registry.h"

#include <spdlog/spdlog.h>

#include "net/rpc.h"

namespace treaty::coordinator {
namespace {
constexpr char kPrefix[] = "service/";
}

Status Registry::Load() {
  auto entries = log_.ScanMeta(kPrefix);
  if (!entries.ok()) return entries.status();
  for (const auto& [key, value] : *entries) {
    v1::ServiceRecord rec;
    if (!rec.ParseFromString(value)) {
      return Status::Corruption("unreadable service registration under meta key '" + key + "'");
    }
    services_[rec.service()] = rec;
  }
  return Status::Ok();
}

Status Registry::Register(const std::string& service, const std::string& address,
                          int64_t unix_ms) {
  if (service.empty() || service.size() > kMaxServiceNameBytes) {
    return Status::InvalidArgument("service name must be 1.." +
                                   std::to_string(kMaxServiceNameBytes) + " bytes");
  }
  std::string host;
  uint16_t port = 0;
  TREATY_RETURN_IF_ERROR(net::ParseAddress(address, &host, &port));
  auto it = services_.find(service);
  if (it != services_.end() && it->second.address() == address) return Status::Ok();
  v1::ServiceRecord rec;
  rec.set_service(service);
  rec.set_address(address);
  rec.set_registered_unix_ms(unix_ms);
  TREATY_RETURN_IF_ERROR(log_.PutMeta(kPrefix + service, rec.SerializeAsString()));
  spdlog::info("registry: service={} address={}", service, address);
  services_[service] = std::move(rec);
  return Status::Ok();
}

std::optional<std::string> Registry::AddressOf(const std::string& service) const {
  auto it = services_.find(service);
  if (it == services_.end()) return std::nullopt;
  return it->second.address();
}

std::string Registry::Names() const {
  std::string out;
  for (const auto& [name, rec] : services_) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

std::vector<v1::ServiceRecord> Registry::List() const {
  std::vector<v1::ServiceRecord> out;
  for (const auto& [name, rec] : services_) out.push_back(rec);
  return out;
}

}  // namespace treaty::coordinator
