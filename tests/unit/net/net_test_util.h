// Helpers shared by the net unit tests: callback recorders and blocking POSIX sockets for talking
// raw bytes to a server (or playing a server towards a channel).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "net/rpc.h"
#include "treaty/v1/envelope.pb.h"

namespace treaty::net::testing {

// Records every invocation of the callbacks it hands out; thread-safe. The recorder's state is
// shared with the callbacks, so they stay valid after the recorder is gone.
class Recorder {
 public:
  Recorder() : state_(std::make_shared<State>()) {}

  Callback callback() {
    return [state = state_](Result<std::string> r) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->results.push_back(std::move(r));
      state->cv.notify_all();
    };
  }

  // Waits until at least n results arrived; false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_for(lock, timeout, [&] { return state_->results.size() >= n; });
  }

  size_t count() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->results.size();
  }

  // REQUIRES: count() > i.
  Result<std::string> at(size_t i) const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->results.at(i);
  }

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::vector<Result<std::string>> results;
  };
  std::shared_ptr<State> state_;
};

// Keeps responders a handler did not answer yet, for the test to answer later. Thread-safe.
class HeldResponders {
 public:
  void Add(std::string payload, Responder r) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back({std::move(payload), std::move(r)});
    cv_.notify_all();
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return held_.size() >= n; });
  }
  std::vector<std::pair<std::string, Responder>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(held_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, Responder>> held_;
};

// One frame as the spec defines it, built by hand: 4-byte big-endian length, then the body.
inline std::string RawFrame(const std::string& body) {
  const auto n = static_cast<uint32_t>(body.size());
  std::string out;
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  return out + body;
}

inline std::string RequestFrame(uint64_t id, const std::string& method,
                                const std::string& payload) {
  v1::Envelope e;
  e.set_request_id(id);
  e.set_method(method);
  e.set_payload(payload);
  return RawFrame(e.SerializeAsString());
}

// A blocking TCP socket with a receive timeout, closed on destruction.
class RawSocket {
 public:
  explicit RawSocket(int fd = -1) : fd_(fd) {}
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Connects to 127.0.0.1:port; nullptr on failure. connect, send and recv give up after
  // recv_timeout_ms.
  static std::unique_ptr<RawSocket> Connect(uint16_t port, int recv_timeout_ms = 3000) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    auto s = std::make_unique<RawSocket>(fd);
    s->SetRecvTimeout(recv_timeout_ms);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return nullptr;
    return s;
  }

  // Bounds recv, and also send and connect (SO_SNDTIMEO), to ms milliseconds.
  void SetRecvTimeout(int ms) {
    timeval tv{};
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  bool SendAll(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads exactly n bytes; false on EOF, error or timeout.
  bool RecvExactly(size_t n, std::string* out) {
    out->assign(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, out->data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }

  // Reads one frame and parses its Envelope; false if the stream ended or the frame is bad.
  bool RecvEnvelope(v1::Envelope* envelope) {
    std::string header;
    if (!RecvExactly(4, &header)) return false;
    const auto* b = reinterpret_cast<const unsigned char*>(header.data());
    const size_t n = (size_t{b[0]} << 24) | (size_t{b[1]} << 16) | (size_t{b[2]} << 8) | b[3];
    std::string body;
    if (!RecvExactly(n, &body)) return false;
    return envelope->ParseFromString(body);
  }

  // True if the peer closes the connection (EOF or reset) before the receive timeout; any bytes
  // received meanwhile are discarded.
  bool WaitForPeerClose() {
    char buf[256];
    for (;;) {
      ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
      if (r == 0) return true;
      if (r < 0) return errno == ECONNRESET;
    }
  }

  // The local port (the server sees the connection as 127.0.0.1:<this>).
  uint16_t local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

  int fd() const { return fd_; }

 private:
  int fd_;
};

// A listening socket on 127.0.0.1 (ephemeral port) for tests that play the server side.
class RawListener {
 public:
  // backlog: the listen(2) backlog; with 0 and nobody accepting, the accept queue fills after
  // the first connection and the kernel ignores further SYNs, so later connects hang.
  explicit RawListener(int backlog = 8) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, backlog);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RawListener() { ::close(fd_); }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Blocks until a client connects.
  std::unique_ptr<RawSocket> Accept(int recv_timeout_ms = 3000) {
    int fd = ::accept(fd_, nullptr, nullptr);
    if (fd < 0) return nullptr;
    auto s = std::make_unique<RawSocket>(fd);
    s->SetRecvTimeout(recv_timeout_ms);
    return s;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace treaty::net::testing
