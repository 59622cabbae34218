#include "coordinator/admin_http.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "net/rpc.h"

namespace treaty::coordinator {

struct AdminServer::Impl {
  httplib::Server server;
  std::thread thread;
  uint16_t port = 0;
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
  int bound = port == 0 ? impl->server.bind_to_any_port(host)
                        : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return Status::Unavailable("cannot bind admin HTTP address " + address +
                               " (in use or not a local address)");
  }
  impl->port = static_cast<uint16_t>(bound);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  spdlog::info("admin http listening on {}:{}", host, impl->port);
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { Stop(); }

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace treaty::coordinator
