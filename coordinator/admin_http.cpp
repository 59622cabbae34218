#include "coordinator/admin_http.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <thread>

#include "net/rpc.h"

namespace treaty::coordinator {

struct AdminServer::Impl {
  // The handler of the longest route matching path, or nullptr.
  HttpHandler Find(const std::string& path) const {
    std::lock_guard<std::mutex> lock(routes_mu);
    const HttpHandler* best = nullptr;
    size_t best_size = 0;
    for (const auto& [route, handler] : routes) {
      const bool match = !route.empty() && route.back() == '/'
                             ? path.compare(0, route.size(), route) == 0
                             : path == route;
      if (match && route.size() >= best_size) {
        best = &handler;
        best_size = route.size();
      }
    }
    return best != nullptr ? *best : HttpHandler();
  }

  void Dispatch(const httplib::Request& req, httplib::Response& res) const {
    const HttpHandler handler = Find(req.path);
    if (!handler) {
      res.status = 404;
      res.set_content("no such route: " + req.path + "\n", "text/plain");
      return;
    }
    HttpRequest request;
    request.path = req.path;
    for (const auto& [key, value] : req.params) request.params[key] = value;
    try {
      HttpReply reply = handler(request);
      res.status = reply.status;
      res.set_content(std::move(reply.body), reply.content_type.c_str());
    } catch (const std::exception& e) {
      spdlog::error("admin http: {} failed: {}", req.path, e.what());
      res.status = 500;
      res.set_content(std::string("internal error: ") + e.what() + "\n", "text/plain");
    }
  }

  httplib::Server server;
  std::thread thread;
  uint16_t port = 0;
  mutable std::mutex routes_mu;
  std::map<std::string, HttpHandler> routes;  // guarded by routes_mu
};

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const std::string& address,
                                                        std::function<std::string()> metrics) {
  std::string host;
  uint16_t port = 0;
  TREATY_RETURN_IF_ERROR(net::ParseAddress(address, &host, &port).WithPrefix("--admin"));
  auto impl = std::make_unique<Impl>();
  impl->server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  impl->server.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  Impl* raw = impl.get();
  impl->server.Get(".*", [raw](const httplib::Request& req, httplib::Response& res) {
    raw->Dispatch(req, res);
  });
  int bound = port == 0 ? impl->server.bind_to_any_port(host)
                        : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return Status::Unavailable("cannot bind admin HTTP address " + address +
                               " (in use or not a local address)");
  }
  impl->port = static_cast<uint16_t>(bound);
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  spdlog::info("admin http listening on {}:{}", host, impl->port);
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { Stop(); }

void AdminServer::AddRoute(std::string path, HttpHandler handler) {
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  impl_->routes[std::move(path)] = std::move(handler);
}

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace treaty::coordinator
