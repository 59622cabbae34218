// The admin HTTP endpoint of treatyd: GET /healthz ("ok"), GET /metrics (Prometheus text), and
// the GET routes other components add (e.g. the read model's JSON API under /v1/).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace treaty::coordinator {

// A GET request as a route handler sees it.
struct HttpRequest {
  std::string path;                           // URL-decoded, e.g. "/v1/transactions/tx-1"
  std::map<std::string, std::string> params;  // query parameters (last value wins)
};

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Handles one request. Runs on one of the HTTP server's threads; must be thread-safe.
using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

class AdminServer {
 public:
  // Binds "host:port" (port 0 = any free port) and serves on a background thread. metrics is
  // called from server threads and must be thread-safe. UNAVAILABLE if the address can't be bound.
  static Result<std::unique_ptr<AdminServer>> Start(const std::string& address,
                                                    std::function<std::string()> metrics);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Serves GET path: exactly that path, or, when path ends with '/', every path below it. The
  // longest matching route wins; /healthz and /metrics cannot be replaced. A path no route
  // matches gets 404; a handler that throws gets 500. Thread-safe; may be called while serving.
  void AddRoute(std::string path, HttpHandler handler);

  uint16_t port() const;
  void Stop();

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::coordinator
