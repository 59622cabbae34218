#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <unordered_map>
#include <utility>

#include "net/frame.h"
#include "net/frame_stream.h"
#include "net/rpc.h"

namespace treaty::net {
namespace {

using HandlerMap = std::unordered_map<std::string, Handler>;

// Pause before accepting again after an accept error that is not about one connection (e.g. out
// of file descriptors), so the loop does not spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

class ServerSession;

// Shared by every copy of one request's Responder: the first call wins.
struct ResponseSlot {
  std::weak_ptr<ServerSession> session;
  asio::io_context* io;
  uint64_t request_id;
  std::atomic<bool> used{false};
};

// The server's state and logic. RpcServer::Impl (private in rpc.h) is this type.
class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(asio::io_context& io_context, RpcOptions opts)
      : io(io_context), options(opts), acceptor(io_context), retry_timer(io_context) {}

  void StartAccept();
  void OnAccepted(const asio::error_code& ec, asio::ip::tcp::socket socket);
  void StopOnIo();
  void RemoveSession(ServerSession* session);

  asio::io_context& io;
  const RpcOptions options;
  // Filled by Register before Listen; read-only afterwards (the io thread reads it).
  std::shared_ptr<HandlerMap> handlers = std::make_shared<HandlerMap>();
  std::atomic<uint16_t> port{0};
  bool listening = false;  // caller's thread, before the io thread is involved
  std::atomic<bool> stopped{false};

  // io thread only.
  asio::ip::tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::unordered_map<ServerSession*, std::shared_ptr<ServerSession>> sessions;
};

class ServerSession final : public FrameStream {
 public:
  ServerSession(asio::ip::tcp::socket socket, size_t max_frame_bytes,
                std::shared_ptr<const HandlerMap> handlers, std::weak_ptr<ServerCore> server,
                asio::io_context& io)
      : FrameStream(std::move(socket), max_frame_bytes),
        max_frame_bytes_(max_frame_bytes),
        handlers_(std::move(handlers)),
        server_(std::move(server)),
        io_(io) {}

  // Encodes and queues the response to request_id. A response too large for a frame is replaced
  // by an INTERNAL error so the caller is not left waiting.
  void SendResponse(uint64_t request_id, Result<std::string> result) {
    if (closed()) return;
    v1::Envelope envelope;
    envelope.set_request_id(request_id);
    envelope.set_is_response(true);
    if (result.ok()) {
      envelope.set_payload(std::move(result).value());
    } else {
      envelope.set_code(ToWireCode(result.status().code()));
      envelope.set_message(result.status().message());
    }
    std::string frame;
    Status s = EncodeFrame(envelope, max_frame_bytes_, &frame);
    if (!s.ok()) {
      spdlog::warn("net: response to request_id={} for {} refused: {}", request_id, peer(),
                   s.message());
      envelope.clear_payload();
      envelope.set_code(v1::CODE_INTERNAL);
      envelope.set_message("response too large: " + s.message());
      s = EncodeFrame(envelope, max_frame_bytes_, &frame);
      if (!s.ok()) {
        Close("cannot encode an error response: " + s.message(), /*protocol_error=*/true);
        return;
      }
    }
    Send(std::move(frame));
  }

 protected:
  void OnFrame(v1::Envelope envelope) override {
    if (envelope.is_response()) {
      Close("unexpected response frame (request_id=" + std::to_string(envelope.request_id()) +
                ") on a server connection",
            /*protocol_error=*/true);
      return;
    }
    const uint64_t id = envelope.request_id();
    auto it = handlers_->find(envelope.method());
    if (it == handlers_->end()) {
      SendResponse(id, Status::NotFound("unknown method '" + envelope.method() + "'"));
      return;
    }
    auto slot = std::make_shared<ResponseSlot>();
    slot->session = std::static_pointer_cast<ServerSession>(shared_from_this());
    slot->io = &io_;
    slot->request_id = id;
    Responder respond = [slot](Result<std::string> response) {
      if (slot->used.exchange(true)) return;
      if (slot->io->get_executor().running_in_this_thread()) {
        if (auto session = slot->session.lock()) {
          session->SendResponse(slot->request_id, std::move(response));
        }
        return;
      }
      asio::post(*slot->io, [slot, response = std::move(response)]() mutable {
        if (auto session = slot->session.lock()) {
          session->SendResponse(slot->request_id, std::move(response));
        }
      });
    };
    try {
      it->second(std::move(*envelope.mutable_payload()), envelope.deadline_ms(), respond);
    } catch (const std::exception& e) {
      spdlog::error("net: handler for {} threw: {}", envelope.method(), e.what());
      respond(Status::Internal("handler for " + envelope.method() + " failed: " + e.what()));
    } catch (...) {
      spdlog::error("net: handler for {} threw a non-standard exception", envelope.method());
      respond(Status::Internal("handler for " + envelope.method() + " failed"));
    }
  }

  void OnClosed(const std::string&) override {
    if (auto server = server_.lock()) server->RemoveSession(this);
  }

 private:
  const size_t max_frame_bytes_;
  const std::shared_ptr<const HandlerMap> handlers_;
  const std::weak_ptr<ServerCore> server_;
  asio::io_context& io_;
};

}  // namespace

struct RpcServer::Impl final : ServerCore {
  using ServerCore::ServerCore;
};

void ServerCore::StartAccept() {
  if (stopped.load() || !acceptor.is_open()) return;
  acceptor.async_accept(
      [self = shared_from_this()](const asio::error_code& ec, asio::ip::tcp::socket socket) {
        self->OnAccepted(ec, std::move(socket));
      });
}

void ServerCore::OnAccepted(const asio::error_code& ec, asio::ip::tcp::socket socket) {
  if (stopped.load() || ec == asio::error::operation_aborted) return;
  if (ec) {
    spdlog::warn("net: accept on port {} failed: {}", port.load(), ec.message());
    if (ec == asio::error::connection_aborted) {
      StartAccept();
      return;
    }
    retry_timer.expires_after(kAcceptRetryDelay);
    retry_timer.async_wait([self = shared_from_this()](const asio::error_code& wait_ec) {
      if (!wait_ec) self->StartAccept();
    });
    return;
  }
  auto session = std::make_shared<ServerSession>(std::move(socket), options.max_frame_bytes,
                                                 handlers, weak_from_this(), io);
  spdlog::debug("net: port {} accepted a connection from {}", port.load(), session->peer());
  sessions.emplace(session.get(), session);
  session->Start();
  StartAccept();
}

void ServerCore::RemoveSession(ServerSession* session) { sessions.erase(session); }

void ServerCore::StopOnIo() {
  stopped.store(true);
  asio::error_code ignored;
  acceptor.close(ignored);
  retry_timer.cancel();
  auto open = std::move(sessions);
  sessions.clear();
  for (auto& [raw, session] : open) session->Close("server stopping");
}

RpcServer::RpcServer(asio::io_context& io, RpcOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(std::string method, Handler handler) {
  if (impl_->listening) {
    // The io thread reads the handler map without a lock once listening.
    spdlog::error("net: Register({}) after Listen is ignored", method);
    return;
  }
  (*impl_->handlers)[std::move(method)] = std::move(handler);
}

Status RpcServer::Listen(const std::string& address) {
  if (impl_->stopped.load()) return Status::FailedPrecondition("server was stopped");
  if (impl_->listening) return Status::FailedPrecondition("server is already listening");
  std::string host;
  uint16_t port = 0;
  TREATY_RETURN_IF_ERROR(ParseAddress(address, &host, &port));

  asio::error_code ec;
  asio::ip::tcp::endpoint endpoint;
  const asio::ip::address ip = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = asio::ip::tcp::endpoint(ip, port);
  } else {
    asio::ip::tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return Status::Unavailable("listen on " + address + ": cannot resolve '" + host +
                                 "': " + (ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }

  auto& acceptor = impl_->acceptor;
  auto fail = [&](const char* step) {
    asio::error_code ignored;
    acceptor.close(ignored);
    return Status::Unavailable("listen on " + address + ": " + step + ": " + ec.message());
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR");
  acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const auto local = acceptor.local_endpoint(ec);
  if (ec) return fail("local_endpoint");
  impl_->port.store(local.port());
  impl_->listening = true;
  spdlog::info("net: listening on {} (port {})", address, local.port());
  asio::post(impl_->io, [impl = impl_] { impl->StartAccept(); });
  return Status::Ok();
}

uint16_t RpcServer::port() const { return impl_->port.load(); }

void RpcServer::Stop() {
  asio::io_context& io = impl_->io;
  // Without a successful Listen the io thread never touched this server.
  if (!impl_->listening || io.get_executor().running_in_this_thread() || io.stopped()) {
    impl_->StopOnIo();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  asio::post(io, [impl = impl_, done] {
    impl->StopOnIo();
    done->set_value();
  });
  // If the io_context stops before running the posted stop, nothing runs it concurrently any
  // more, so the stop can be done from here.
  while (finished.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    if (io.stopped()) {
      impl_->StopOnIo();
      return;
    }
  }
}

}  // namespace treaty::net
