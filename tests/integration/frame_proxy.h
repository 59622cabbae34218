// A loopback TCP proxy that understands Treaty RPC frames (4-byte big-endian length + Envelope),
// for fault injection: it forwards every frame between its clients and one upstream server, and can
// rewrite request frames, swallow the requests of chosen methods (the caller then sees a timeout,
// as if the network lost them) or hold them back and deliver them later (a request delayed on the
// network past its caller's deadline). Responses are forwarded untouched.
//
// Thread-safety: all methods may be called from any thread. Each connection is served by two
// threads (fine for the handful of connections a test makes).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"

namespace treaty::integ {

class FrameProxy {
 public:
  // Applied to every request frame (client -> upstream) before it is forwarded: may replace the
  // request payload of the method. (Takes strings rather than an Envelope so that users need not
  // include envelope.pb.h, whose Code enum clashes with TxState's ABORTED in C++.)
  using Rewrite = std::function<void(const std::string& method, std::string& payload)>;

  // upstream_port: loopback port of the server behind the proxy.
  explicit FrameProxy(uint16_t upstream_port);
  // Stops (see Stop).
  ~FrameProxy();
  FrameProxy(const FrameProxy&) = delete;
  FrameProxy& operator=(const FrameProxy&) = delete;

  // Listens on a free loopback port. UNAVAILABLE if no port can be bound.
  Status Start();
  // Closes the listener and every proxied connection; joins all threads. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  std::string address() const;

  // REQUIRES: before Start.
  void SetRewrite(Rewrite rewrite) { rewrite_ = std::move(rewrite); }

  // Requests of this method are swallowed from now on (until PassAll).
  void DropRequests(const std::string& method);
  // Forwards every request again.
  void PassAll();
  // How many requests of this method were swallowed so far.
  int dropped(const std::string& method) const;

  // Requests of this method are held back from now on (not forwarded) until ReleaseHeld.
  void HoldRequests(const std::string& method);
  // Stops holding and forwards every held request now, in arrival order, on its connection (if
  // that is still open). Returns how many were forwarded.
  int ReleaseHeld();
  // How many requests are held right now.
  int held() const;

 private:
  struct Conn;
  void AcceptLoop();
  void PumpRequests(const std::shared_ptr<Conn>& conn);
  void PumpResponses(const std::shared_ptr<Conn>& conn);
  // true: forward a request of this method; false: swallow it.
  bool Admit(const std::string& method);

  const uint16_t upstream_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  Rewrite rewrite_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::set<std::string> drop_methods_;
  std::map<std::string, int> dropped_;
  std::set<std::string> hold_methods_;
  // Held request frames (length header included) and the connection each came on.
  std::vector<std::pair<std::weak_ptr<Conn>, std::string>> held_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<std::thread> pumps_;
};

}  // namespace treaty::integ
