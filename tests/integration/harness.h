// Process harness for the integration tests: real binaries on loopback, each with its own log file
// in the test's temporary directory.
//
// Thread-safety: Process and TempDir are not thread-safe; the free functions are.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace treaty::integ {

// Directory holding treatyd, treaty and bank-participant (the build's bin/ directory).
std::string BinDir();

// Absolute path of a binary in BinDir(). NOT_FOUND (naming the build target) if it is missing.
Result<std::string> BinPath(const std::string& name);

// A loopback TCP port that is free right now. Ports come from [20000, 32000), below the usual
// ephemeral range, so outgoing connections do not take them between the pick and the bind. A port
// is never handed out twice by one test process.
uint16_t PickFreePort();

// "127.0.0.1:<port>".
std::string LoopbackAddress(uint16_t port);

// True once a TCP connect to 127.0.0.1:port succeeds, false after timeout_ms.
bool WaitForPort(uint16_t port, int64_t timeout_ms);

// Polls pred every poll_ms until it returns true (-> true) or timeout_ms passes (-> false).
bool WaitUntil(const std::function<bool()>& pred, int64_t timeout_ms, int64_t poll_ms = 50);

// The seed of a seeded test: the decimal value of the environment variable env_var when it is set
// (a replay), else a fresh one from the OS entropy source.
uint64_t SeedFromEnv(const char* env_var);

// Milliseconds on a monotonic clock (arbitrary epoch).
int64_t NowMs();

void SleepMs(int64_t ms);

// Reads a whole file; empty string if it cannot be read.
std::string ReadFile(const std::string& path);

// Writes a whole file, replacing it. INTERNAL if it cannot be written.
Status WriteFile(const std::string& path, const std::string& content);

// The last max_lines lines of a file (all of it if shorter).
std::string TailOfFile(const std::string& path, size_t max_lines);

// The lines of a file that contain needle: how many there are, and the first max_kept of them.
// A file that cannot be read has none.
struct FileMatches {
  size_t count = 0;
  std::vector<std::string> first;
};
FileMatches LinesContaining(const std::string& path, const std::string& needle, size_t max_kept);

// A fresh directory under $TMPDIR (or /tmp). Removed by the destructor unless Keep() was called.
class TempDir {
 public:
  // name_hint becomes part of the directory name (unsafe characters replaced).
  explicit TempDir(const std::string& name_hint);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Sub(const std::string& name) const;
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A child process started with fork/execv. stdout and stderr are appended to log_path. The
// destructor kills the process (SIGKILL) if it is still running.
//
// The child receives SIGKILL when the thread that spawned it exits (PR_SET_PDEATHSIG), so a
// crashing test leaves no orphans: spawn from the test's main thread, never from a short-lived one.
class Process {
 public:
  // argv[0] is the executable path. The log file gets a header line naming the command.
  static Result<std::unique_ptr<Process>> Spawn(const std::vector<std::string>& argv,
                                                const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // True while the child has not exited (reaps it if it has).
  bool Running();

  // SIGKILL and reap. No-op if the child already exited.
  void Kill9();

  // SIGTERM, then waits up to timeout_ms; escalates to SIGKILL after that. Returns the exit code
  // (see ExitCodeOf), or -1 if the child had to be killed.
  int Terminate(int64_t timeout_ms);

  // SIGSTOP / SIGCONT: freeze and thaw the child (its sockets stay open; peers see silence).
  void Freeze();
  void Thaw();

  // Waits up to timeout_ms for the child to exit by itself. Returns its exit code (see ExitCodeOf),
  // or nullopt if it is still running after the timeout.
  std::optional<int> WaitExit(int64_t timeout_ms);

  // Last lines of the log file.
  std::string LogTail(size_t max_lines = 40) const;

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  void Reap(int status);

  pid_t pid_;
  std::string log_path_;
  bool exited_ = false;
  bool frozen_ = false;
  int exit_code_ = 0;
};

// Exit code of a waitpid status: the exit status, or 128 + signal number if it was killed.
int ExitCodeOf(int wait_status);

struct CommandResult {
  int exit_code = -1;  // see ExitCodeOf; -1 if it could not be started or timed out
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
  // "exit=N stdout=... stderr=..." for failure messages.
  std::string Describe() const;
};

// Runs a command to completion, capturing stdout and stderr. Killed (SIGKILL) after timeout_ms.
CommandResult RunCommand(const std::vector<std::string>& argv, int64_t timeout_ms);

// An HTTP response as HttpGet reads it.
struct HttpResponse {
  int status = 0;    // e.g. 200
  std::string body;  // the whole body (Content-Length or up to the close)
};

// GET http://127.0.0.1:<port><path> over HTTP/1.0 (the server closes after answering).
// UNAVAILABLE if the connection fails or no complete answer arrives within timeout_ms, INTERNAL
// if the answer is not HTTP.
Result<HttpResponse> HttpGet(uint16_t port, const std::string& path, int64_t timeout_ms);

// Resident set size of a process (VmRSS in /proc/<pid>/status), KiB; -1 if it cannot be read.
int64_t ResidentKiB(pid_t pid);

// Sends raw bytes to 127.0.0.1:port and waits up to wait_close_ms for the server to close the
// connection. Returns true if the peer closed (EOF or reset), false if it stayed open or the
// connection could not be made.
bool SendRawAndExpectClose(uint16_t port, const std::string& bytes, int64_t wait_close_ms);

}  // namespace treaty::integ
