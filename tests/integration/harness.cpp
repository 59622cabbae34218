#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/random.h"

#ifndef TREATY_BIN_DIR
#error "TREATY_BIN_DIR must be defined by the build (the directory of treatyd and friends)"
#endif

namespace treaty::integ {
namespace {

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool Connect(int fd, uint16_t port) {
  sockaddr_in addr = Loopback(port);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Argument vector for execv; built before fork so the child only calls async-signal-safe code.
std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

std::string Joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

}  // namespace

std::string BinDir() { return TREATY_BIN_DIR; }

Result<std::string> BinPath(const std::string& name) {
  std::string path = BinDir() + "/" + name;
  if (::access(path.c_str(), X_OK) != 0) {
    return Status::NotFound(path + " is missing: build the '" + name + "' target first");
  }
  return path;
}

uint16_t PickFreePort() {
  static std::mutex mu;
  static std::set<uint16_t> handed_out;
  static std::mt19937 rng(static_cast<unsigned>(::getpid()) ^
                          static_cast<unsigned>(NowMs() & 0xffffffff));
  constexpr uint16_t kLow = 20000;
  constexpr uint16_t kHigh = 32000;
  std::lock_guard<std::mutex> lock(mu);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto port = static_cast<uint16_t>(kLow + rng() % (kHigh - kLow));
    if (handed_out.count(port) != 0) continue;
    Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr = Loopback(port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) continue;
    handed_out.insert(port);
    return port;
  }
  return 0;
}

std::string LoopbackAddress(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

bool WaitForPort(uint16_t port, int64_t timeout_ms) {
  return WaitUntil(
      [port] {
        Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
        return Connect(fd.get(), port);
      },
      timeout_ms, 20);
}

bool WaitUntil(const std::function<bool()>& pred, int64_t timeout_ms, int64_t poll_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    if (pred()) return true;
    if (NowMs() >= deadline) return false;
    SleepMs(poll_ms);
  }
}

uint64_t SeedFromEnv(const char* env_var) {
  const char* env = std::getenv(env_var);
  if (env != nullptr && *env != '\0') return std::strtoull(env, nullptr, 10);
  return EntropySeed();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return Status::Internal("cannot write " + path);
  return Status::Ok();
}

std::string TailOfFile(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (lines.size() > max_lines) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

FileMatches LinesContaining(const std::string& path, const std::string& needle, size_t max_kept) {
  FileMatches out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) == std::string::npos) continue;
    ++out.count;
    if (out.first.size() < max_kept) out.first.push_back(std::move(line));
  }
  return out;
}

TempDir::TempDir(const std::string& name_hint) {
  std::string safe;
  for (char c : name_hint) safe += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/treaty-integ-" +
                     safe + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_ || path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Sub(const std::string& name) const { return path_ + "/" + name; }

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

Result<std::unique_ptr<Process>> Process::Spawn(const std::vector<std::string>& argv,
                                                const std::string& log_path) {
  if (argv.empty()) return Status::InvalidArgument("empty argv");
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::Internal("cannot open " + log_path + ": " + std::strerror(errno));
  std::string header = "==== spawn: " + Joined(argv) + "\n";
  if (::write(log_fd, header.data(), header.size()) < 0) {
    // The header is a convenience; the child's own output still goes to the file.
  }
  std::vector<char*> cargv = CArgv(argv);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Status::Internal(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until execv.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() { Kill9(); }

void Process::Reap(int status) {
  exited_ = true;
  exit_code_ = ExitCodeOf(status);
}

bool Process::Running() {
  if (exited_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) Reap(status);
  return !exited_;
}

void Process::Kill9() {
  if (exited_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) Reap(status);
  exited_ = true;
  frozen_ = false;
}

int Process::Terminate(int64_t timeout_ms) {
  if (exited_) return exit_code_;
  if (frozen_) Thaw();
  ::kill(pid_, SIGTERM);
  if (auto code = WaitExit(timeout_ms)) return *code;
  Kill9();
  return -1;
}

void Process::Freeze() {
  if (exited_) return;
  ::kill(pid_, SIGSTOP);
  frozen_ = true;
}

void Process::Thaw() {
  if (exited_) return;
  ::kill(pid_, SIGCONT);
  frozen_ = false;
}

std::optional<int> Process::WaitExit(int64_t timeout_ms) {
  WaitUntil([this] { return !Running(); }, timeout_ms, 10);
  if (exited_) return exit_code_;
  return std::nullopt;
}

std::string Process::LogTail(size_t max_lines) const { return TailOfFile(log_path_, max_lines); }

std::string CommandResult::Describe() const {
  return "exit=" + std::to_string(exit_code) + (timed_out ? " (timed out)" : "") +
         "\nstdout: " + out + "\nstderr: " + err;
}

CommandResult RunCommand(const std::vector<std::string>& argv, int64_t timeout_ms) {
  CommandResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (argv.empty() || ::pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  std::vector<char*> cargv = CArgv(argv);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return result;
  }
  const int64_t deadline = NowMs() + timeout_ms;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = result.timed_out ? -1 : ExitCodeOf(status);
  return result;
}

Result<HttpResponse> HttpGet(uint16_t port, const std::string& path, int64_t timeout_ms) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (!Connect(fd.get(), port)) {
    return Status::Unavailable("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return Status::Unavailable("cannot send the request to 127.0.0.1:" + std::to_string(port));
  }
  std::string raw;
  const int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      return Status::Unavailable("GET " + path + ": no complete answer within " +
                                 std::to_string(timeout_ms) + " ms");
    }
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[16384];
    const ssize_t got = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the server closed: the answer is complete
    raw.append(buf, static_cast<size_t>(got));
  }
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
    return Status::Internal("GET " + path + ": not an HTTP answer: " + raw.substr(0, 200));
  }
  HttpResponse response;
  const size_t space = raw.find(' ');
  response.status = std::atoi(raw.c_str() + space + 1);
  response.body = raw.substr(head_end + 4);
  return response;
}

int64_t ResidentKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

bool SendRawAndExpectClose(uint16_t port, const std::string& bytes, int64_t wait_close_ms) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (!Connect(fd.get(), port)) return false;
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return true;  // the server already closed the connection
    sent += static_cast<size_t>(n);
  }
  const int64_t deadline = NowMs() + wait_close_ms;
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return false;
    pollfd p{fd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n <= 0) continue;
    char buf[256];
    ssize_t got = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (got <= 0) return true;  // EOF or reset
    // Bytes from the server (e.g. an error frame) are fine; keep waiting for the close.
  }
}

}  // namespace treaty::integ
