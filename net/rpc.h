// Treaty's RPC transport: TCP + length-prefixed protobuf Envelope frames
// (proto/treaty/v1/envelope.proto).
//
// Frame: 4-byte big-endian length, then one serialized treaty.v1.Envelope. Frames longer than
// RpcOptions::max_frame_bytes, or that fail to parse, close the connection with a logged reason.
// Requests are pipelined and multiplexed by request_id on one connection; responses may come back
// in any order; queued outgoing frames are written with one gathered write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace asio {
class io_context;
}

namespace treaty::net {

// Largest frame accepted or sent by default. Bounds memory per connection; a 2PC request with
// kMaxBranches branches of reasonable payloads is far below it.
inline constexpr size_t kDefaultMaxFrameBytes = 4u << 20;

struct RpcOptions {
  // Frames above this size are refused (the connection is closed). Default 4 MiB.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Time allowed to establish a TCP connection, milliseconds. Default 1000.
  int64_t connect_timeout_ms = 1000;
};

// Splits "host:port" (host may be a name, IPv4 or [IPv6]). INVALID_ARGUMENT on bad input.
Status ParseAddress(std::string_view address, std::string* host, uint16_t* port);

// Completes one incoming request with a response payload or an error status. Thread-safe; call
// exactly once (later calls are ignored). Safe to call after the connection closed.
using Responder = std::function<void(Result<std::string> response)>;

// Handles one request. Runs on the server's io_context thread; must not block for long (hand off
// slow work and call the responder later). deadline_ms is the caller's remaining budget (0 = none).
using Handler = std::function<void(std::string payload, uint32_t deadline_ms, Responder respond)>;

// Accepts connections and dispatches requests to handlers by method name. Unknown methods get
// NOT_FOUND. Thread-safety: Register before Listen; Stop may be called from any thread.
class RpcServer {
 public:
  explicit RpcServer(asio::io_context& io, RpcOptions options = {});
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // REQUIRES: called before Listen.
  void Register(std::string method, Handler handler);

  // Binds and starts accepting on "host:port" (port 0 picks a free port). Returns UNAVAILABLE if
  // the address cannot be bound (e.g. in use), INVALID_ARGUMENT if it cannot be parsed.
  Status Listen(const std::string& address);

  // The bound port (after a successful Listen).
  uint16_t port() const;

  // Closes the acceptor and every connection. Pending responders become no-ops.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Called exactly once with the response payload or an error:
//   UNAVAILABLE        could not connect, or the connection broke before the response arrived
//                      (the request may or may not have been executed: outcome unknown);
//   DEADLINE_EXCEEDED  no response within the deadline (outcome unknown);
//   any code the server's handler returned.
using Callback = std::function<void(Result<std::string> response)>;

// A client connection to one server address. Connects lazily on the first call and reconnects
// on the next call after a failure. Thread-safe. Callbacks run on the io_context's thread.
class RpcChannel {
 public:
  static std::shared_ptr<RpcChannel> Create(asio::io_context& io, std::string address,
                                            RpcOptions options = {});
  ~RpcChannel();
  RpcChannel(const RpcChannel&) = delete;
  RpcChannel& operator=(const RpcChannel&) = delete;

  // Sends a request. deadline_ms: time budget in milliseconds, 0 for none (not recommended).
  void Call(std::string_view method, std::string payload, int64_t deadline_ms, Callback done);

  const std::string& address() const;

  // Fails every pending call with UNAVAILABLE and closes the connection.
  void Close();

 private:
  struct Impl;
  explicit RpcChannel(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Owns an io_context run by one background thread. Stop() (or the destructor) stops and joins it.
class IoThread {
 public:
  IoThread();
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
  asio::io_context& io();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A blocking client for tools and tests: one IoThread, one cached channel per address.
// Thread-safe; many threads may call concurrently (calls are pipelined on shared connections).
class RpcClient {
 public:
  explicit RpcClient(RpcOptions options = {});
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  Result<std::string> Call(const std::string& address, std::string_view method, std::string payload,
                           int64_t deadline_ms);
  void CallAsync(const std::string& address, std::string_view method, std::string payload,
                 int64_t deadline_ms, Callback done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::net
