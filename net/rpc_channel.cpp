#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "net/frame.h"
#include "net/frame_stream.h"
#include "net/rpc.h"

namespace treaty::net {
namespace {

// Ids of calls that timed out but whose response may still arrive are remembered so the late
// response is dropped quietly instead of being taken for a protocol error. Bounded per
// connection; beyond it the oldest are forgotten (a response that late closes the connection).
constexpr size_t kMaxAbandonedIds = 1 << 16;

class ClientConnection;
class ChannelCore;

void InvokeCallback(Callback& done, Result<std::string> result) {
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    spdlog::error("net: RPC callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("net: RPC callback threw a non-standard exception");
  }
}

// The channel's state and logic. RpcChannel::Impl (private in rpc.h) is this type.
class ChannelCore : public std::enable_shared_from_this<ChannelCore> {
 public:
  ChannelCore(asio::io_context& io_context, std::string addr, RpcOptions opts)
      : io(io_context), address(std::move(addr)), options(opts) {}

  struct PendingCall {
    std::string method;
    int64_t deadline_ms;  // the call's budget, 0 for none
    Callback done;
    std::unique_ptr<asio::steady_timer> timer;  // null without a deadline
  };

  // One connection attempt: resolving, then connecting, bounded by connect_timeout_ms.
  struct Attempt {
    explicit Attempt(asio::io_context& io) : resolver(io), socket(io), timer(io) {}
    asio::ip::tcp::resolver resolver;
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    bool timed_out = false;
  };

  // All below run on the io thread.
  void StartCall(std::string method, std::string payload, int64_t deadline_ms, Callback done);
  void Connect();
  void OnConnected(const std::shared_ptr<Attempt>& attempt, const asio::error_code& ec);
  void OnDeadline(uint64_t id);
  void OnResponse(ClientConnection* conn, v1::Envelope envelope);
  void OnConnectionClosed(ClientConnection* conn, const std::string& reason);
  // Completes the call with result if it is still pending; returns false if it was not.
  bool Complete(uint64_t id, Result<std::string> result);
  void FailAll(const Status& status);
  void CloseOnIo(const std::string& reason);
  void CloseIfReleasedAndIdle();
  // Holds a reference to this channel while its handle is gone but calls are pending, so every
  // callback still runs; drops it once idle. Callers hold their own reference (this may go).
  void UpdateKeepAlive();

  asio::io_context& io;
  const std::string address;
  const RpcOptions options;

  uint64_t next_id = 1;
  std::map<uint64_t, PendingCall> pending;
  std::set<uint64_t> abandoned;             // timed out, response may still arrive
  std::shared_ptr<Attempt> attempt;         // set while connecting
  std::vector<std::string> connect_queue;   // frames waiting for the connection
  std::shared_ptr<ClientConnection> conn;   // set while connected
  bool released = false;                    // the RpcChannel handle is gone
  std::shared_ptr<ChannelCore> keep_alive;  // see UpdateKeepAlive
};

class ClientConnection final : public FrameStream {
 public:
  ClientConnection(asio::ip::tcp::socket socket, size_t max_frame_bytes,
                   std::weak_ptr<ChannelCore> channel)
      : FrameStream(std::move(socket), max_frame_bytes), channel_(std::move(channel)) {}

 protected:
  void OnFrame(v1::Envelope envelope) override {
    if (!envelope.is_response()) {
      Close("unexpected request frame (method '" + envelope.method() + "') on a client connection",
            /*protocol_error=*/true);
      return;
    }
    if (auto channel = channel_.lock()) {
      channel->OnResponse(this, std::move(envelope));
    } else {
      Close("channel gone");
    }
  }

  void OnClosed(const std::string& reason) override {
    if (auto channel = channel_.lock()) channel->OnConnectionClosed(this, reason);
  }

 private:
  // Weak: the channel owns its connection, not the other way round.
  const std::weak_ptr<ChannelCore> channel_;
};

}  // namespace

void ChannelCore::StartCall(std::string method, std::string payload, int64_t deadline_ms,
                            Callback done) {
  if (deadline_ms < 0) {
    InvokeCallback(
        done, Status::DeadlineExceeded(method + " to " + address + ": deadline already passed"));
    return;
  }
  const uint64_t id = next_id++;
  v1::Envelope envelope;
  envelope.set_request_id(id);
  envelope.set_method(method);
  envelope.set_deadline_ms(
      static_cast<uint32_t>(std::min<int64_t>(deadline_ms, std::numeric_limits<uint32_t>::max())));
  envelope.set_payload(std::move(payload));
  std::string frame;
  if (Status s = EncodeFrame(envelope, options.max_frame_bytes, &frame); !s.ok()) {
    InvokeCallback(done, Status::InvalidArgument(method + " request to " + address +
                                                 " refused: " + s.message()));
    return;
  }

  PendingCall call{std::move(method), deadline_ms, std::move(done), nullptr};
  if (deadline_ms > 0) {
    call.timer = std::make_unique<asio::steady_timer>(io);
    call.timer->expires_after(std::chrono::milliseconds(deadline_ms));
    call.timer->async_wait([self = shared_from_this(), id](const asio::error_code& ec) {
      if (!ec) self->OnDeadline(id);
    });
  }
  pending.emplace_hint(pending.end(), id, std::move(call));
  UpdateKeepAlive();

  if (conn) {
    conn->Send(std::move(frame));
    return;
  }
  connect_queue.push_back(std::move(frame));
  if (!attempt) Connect();
}

void ChannelCore::Connect() {
  auto a = std::make_shared<Attempt>(io);
  attempt = a;
  a->timer.expires_after(
      std::chrono::milliseconds(std::max<int64_t>(options.connect_timeout_ms, 1)));
  a->timer.async_wait([a](const asio::error_code& ec) {
    if (ec) return;
    a->timed_out = true;
    a->resolver.cancel();
    asio::error_code ignored;
    a->socket.close(ignored);
  });

  auto self = shared_from_this();
  auto connect = [self, a](std::vector<asio::ip::tcp::endpoint> endpoints) {
    asio::async_connect(a->socket, std::move(endpoints),
                        [self, a](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
                          self->OnConnected(a, ec);
                        });
  };

  std::string host;
  uint16_t port = 0;
  if (Status s = ParseAddress(address, &host, &port); !s.ok()) {
    // A caller error, not a transient one: INVALID_ARGUMENT, for every queued call.
    attempt.reset();
    a->timer.cancel();
    connect_queue.clear();
    FailAll(s);
    return;
  }
  asio::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(host, ec);
  if (!ec) {
    connect({asio::ip::tcp::endpoint(ip, port)});
    return;
  }
  a->resolver.async_resolve(
      host, std::to_string(port),
      [self, a, connect](const asio::error_code& resolve_ec,
                         const asio::ip::tcp::resolver::results_type& results) {
        if (resolve_ec) {
          self->OnConnected(a, resolve_ec);
          return;
        }
        std::vector<asio::ip::tcp::endpoint> endpoints;
        for (const auto& entry : results) endpoints.push_back(entry.endpoint());
        connect(std::move(endpoints));
      });
}

void ChannelCore::OnConnected(const std::shared_ptr<Attempt>& a, const asio::error_code& ec) {
  a->timer.cancel();
  if (a != attempt) return;  // abandoned by Close; its calls were already failed
  attempt.reset();
  if (ec || a->timed_out) {
    const std::string why =
        a->timed_out ? "timed out after " + std::to_string(options.connect_timeout_ms) + " ms"
                     : ec.message();
    spdlog::debug("net: connect to {} failed: {}", address, why);
    connect_queue.clear();
    FailAll(Status::Unavailable("connect to " + address + ": " + why));
    CloseIfReleasedAndIdle();
    return;
  }
  conn = std::make_shared<ClientConnection>(std::move(a->socket), options.max_frame_bytes,
                                            weak_from_this());
  spdlog::debug("net: connected to {}", address);
  conn->Start();
  std::vector<std::string> queued = std::move(connect_queue);
  connect_queue.clear();
  for (std::string& frame : queued) conn->Send(std::move(frame));
}

bool ChannelCore::Complete(uint64_t id, Result<std::string> result) {
  auto it = pending.find(id);
  if (it == pending.end()) return false;
  PendingCall call = std::move(it->second);
  pending.erase(it);
  if (call.timer) call.timer->cancel();
  InvokeCallback(call.done, std::move(result));
  UpdateKeepAlive();
  return true;
}

void ChannelCore::OnDeadline(uint64_t id) {
  auto it = pending.find(id);
  if (it == pending.end()) return;
  const std::string method = it->second.method;
  const int64_t deadline_ms = it->second.deadline_ms;
  if (conn || attempt) {
    abandoned.insert(id);
    if (abandoned.size() > kMaxAbandonedIds) abandoned.erase(abandoned.begin());
  }
  Complete(id, Status::DeadlineExceeded(method + " to " + address + ": no response within " +
                                        std::to_string(deadline_ms) + " ms"));
  CloseIfReleasedAndIdle();
}

void ChannelCore::OnResponse(ClientConnection* from, v1::Envelope envelope) {
  if (from != conn.get()) return;
  const uint64_t id = envelope.request_id();
  Status status = StatusFromEnvelope(envelope);
  bool known = status.ok() ? Complete(id, std::move(*envelope.mutable_payload()))
                           : Complete(id, std::move(status));
  if (!known) {
    if (abandoned.erase(id) > 0) {
      spdlog::debug("net: dropped late response from {} for request_id={}", address, id);
      return;
    }
    conn->Close("response for unknown request_id=" + std::to_string(id), /*protocol_error=*/true);
    return;
  }
  CloseIfReleasedAndIdle();
}

void ChannelCore::OnConnectionClosed(ClientConnection* closed, const std::string& reason) {
  if (closed != conn.get()) return;
  conn.reset();
  abandoned.clear();
  FailAll(Status::Unavailable("connection to " + address + " lost: " + reason));
}

void ChannelCore::FailAll(const Status& status) {
  std::map<uint64_t, PendingCall> failed = std::move(pending);
  pending.clear();
  for (auto& [id, call] : failed) {
    if (call.timer) call.timer->cancel();
    InvokeCallback(call.done, status);
  }
  UpdateKeepAlive();
}

void ChannelCore::CloseOnIo(const std::string& reason) {
  if (attempt) {
    auto a = std::move(attempt);
    a->timer.cancel();
    a->resolver.cancel();
    asio::error_code ignored;
    a->socket.close(ignored);
  }
  connect_queue.clear();
  abandoned.clear();
  if (conn) {
    auto c = conn;
    conn.reset();
    c->Close(reason);
  }
  FailAll(Status::Unavailable("channel to " + address + " closed: " + reason));
}

void ChannelCore::CloseIfReleasedAndIdle() {
  if (released && pending.empty() && (conn || attempt)) CloseOnIo("channel released");
}

void ChannelCore::UpdateKeepAlive() {
  if (released && !pending.empty()) {
    if (!keep_alive) keep_alive = shared_from_this();
  } else {
    keep_alive.reset();
  }
}

struct RpcChannel::Impl final : ChannelCore {
  using ChannelCore::ChannelCore;
};

std::shared_ptr<RpcChannel> RpcChannel::Create(asio::io_context& io, std::string address,
                                               RpcOptions options) {
  auto impl = std::make_shared<Impl>(io, std::move(address), options);
  return std::shared_ptr<RpcChannel>(new RpcChannel(std::move(impl)));
}

RpcChannel::RpcChannel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RpcChannel::~RpcChannel() {
  // Calls in flight still complete; the connection closes once none is left.
  asio::post(impl_->io, [impl = impl_] {
    impl->released = true;
    if (impl->pending.empty()) impl->CloseOnIo("channel released");
    impl->UpdateKeepAlive();
  });
}

void RpcChannel::Call(std::string_view method, std::string payload, int64_t deadline_ms,
                      Callback done) {
  asio::post(impl_->io, [impl = impl_, method = std::string(method), payload = std::move(payload),
                         deadline_ms, done = std::move(done)]() mutable {
    impl->StartCall(std::move(method), std::move(payload), deadline_ms, std::move(done));
  });
}

const std::string& RpcChannel::address() const { return impl_->address; }

void RpcChannel::Close() {
  asio::post(impl_->io, [impl = impl_] { impl->CloseOnIo("closed by the caller"); });
}

}  // namespace treaty::net
