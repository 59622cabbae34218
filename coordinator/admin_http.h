// The admin HTTP endpoint of treatyd: GET /healthz ("ok") and GET /metrics (Prometheus text).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace treaty::coordinator {

class AdminServer {
 public:
  // Binds "host:port" (port 0 = any free port) and serves on a background thread. metrics is
  // called from server threads and must be thread-safe. UNAVAILABLE if the address can't be bound.
  static Result<std::unique_ptr<AdminServer>> Start(const std::string& address,
                                                    std::function<std::string()> metrics);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const;
  void Stop();

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::coordinator
