#include "tests/integration/frame_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/integration/harness.h"
#include "treaty/v1/envelope.pb.h"

namespace treaty::integ {
namespace {

// Frames larger than this end the connection; far above anything the tests send.
constexpr uint32_t kMaxProxiedFrameBytes = 64u << 20;

bool ReadExact(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const char* buf, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    ssize_t r = ::send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (r <= 0) return false;
    sent += static_cast<size_t>(r);
  }
  return true;
}

int ConnectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

// One proxied connection. The fds are closed when the last pump (and the proxy) let go of it.
struct FrameProxy::Conn {
  int down_fd = -1;  // the client's side
  int up_fd = -1;    // the upstream server's side
  // Serializes writes to up_fd (the request pump and ReleaseHeld).
  std::mutex up_write_mu;
  ~Conn() {
    if (down_fd >= 0) ::close(down_fd);
    if (up_fd >= 0) ::close(up_fd);
  }
  // Wakes both pumps; each sees EOF and exits.
  void Shutdown() const {
    ::shutdown(down_fd, SHUT_RDWR);
    ::shutdown(up_fd, SHUT_RDWR);
  }
};

FrameProxy::FrameProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {}

FrameProxy::~FrameProxy() { Stop(); }

std::string FrameProxy::address() const { return LoopbackAddress(port_); }

Status FrameProxy::Start() {
  for (int attempt = 0; attempt < 20 && listen_fd_ < 0; ++attempt) {
    uint16_t port = PickFreePort();
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(fd, 64) == 0) {
      listen_fd_ = fd;
      port_ = port;
    } else {
      ::close(fd);
    }
  }
  if (listen_fd_ < 0) return Status::Unavailable("frame proxy: no loopback port could be bound");
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void FrameProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : conns_) c->Shutdown();
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  conns_.clear();
}

void FrameProxy::DropRequests(const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  drop_methods_.insert(method);
}

void FrameProxy::PassAll() {
  std::lock_guard<std::mutex> lock(mu_);
  drop_methods_.clear();
}

int FrameProxy::dropped(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = dropped_.find(method);
  return it == dropped_.end() ? 0 : it->second;
}

void FrameProxy::HoldRequests(const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_methods_.insert(method);
}

int FrameProxy::ReleaseHeld() {
  std::vector<std::pair<std::weak_ptr<Conn>, std::string>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hold_methods_.clear();
    held.swap(held_);
  }
  int forwarded = 0;
  for (const auto& [weak, frame] : held) {
    std::shared_ptr<Conn> conn = weak.lock();
    if (!conn) continue;
    std::lock_guard<std::mutex> lock(conn->up_write_mu);
    if (WriteAll(conn->up_fd, frame.data(), frame.size())) ++forwarded;
  }
  return forwarded;
}

int FrameProxy::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(held_.size());
}

void FrameProxy::AcceptLoop() {
  while (!stopping_) {
    int down = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (down < 0) {
      if (stopping_) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    int one = 1;
    ::setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto conn = std::make_shared<Conn>();
    conn->down_fd = down;
    conn->up_fd = ConnectLoopback(upstream_port_);
    if (conn->up_fd < 0) continue;  // upstream down: the client sees its connection closed
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    conns_.push_back(conn);
    pumps_.emplace_back([this, conn] { PumpRequests(conn); });
    pumps_.emplace_back([this, conn] { PumpResponses(conn); });
  }
}

bool FrameProxy::Admit(const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  if (drop_methods_.count(method) != 0) {
    ++dropped_[method];
    return false;
  }
  return true;
}

void FrameProxy::PumpRequests(const std::shared_ptr<Conn>& conn) {
  std::string body;
  while (true) {
    char header[4];
    if (!ReadExact(conn->down_fd, header, sizeof(header))) break;
    uint32_t len = 0;
    std::memcpy(&len, header, sizeof(len));
    len = ntohl(len);
    if (len > kMaxProxiedFrameBytes) break;
    body.resize(len);
    if (!ReadExact(conn->down_fd, body.data(), len)) break;
    v1::Envelope env;
    if (env.ParseFromString(body) && !env.is_response()) {
      if (!Admit(env.method())) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (hold_methods_.count(env.method()) != 0) {
          held_.emplace_back(conn, std::string(header, sizeof(header)) + body);
          continue;
        }
      }
      if (rewrite_) {
        rewrite_(env.method(), *env.mutable_payload());
        body = env.SerializeAsString();
        uint32_t out_len = htonl(static_cast<uint32_t>(body.size()));
        std::memcpy(header, &out_len, sizeof(out_len));
      }
    }
    std::lock_guard<std::mutex> lock(conn->up_write_mu);
    if (!WriteAll(conn->up_fd, header, sizeof(header)) ||
        !WriteAll(conn->up_fd, body.data(), body.size())) {
      break;
    }
  }
  conn->Shutdown();
}

void FrameProxy::PumpResponses(const std::shared_ptr<Conn>& conn) {
  char buf[16384];
  while (true) {
    ssize_t n = ::recv(conn->up_fd, buf, sizeof(buf), 0);
    if (n <= 0 || !WriteAll(conn->down_fd, buf, static_cast<size_t>(n))) break;
  }
  conn->Shutdown();
}

}  // namespace treaty::integ
