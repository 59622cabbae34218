// The treaty CLI's commands, separated from flag parsing (main.cpp) so they can be tested.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/random.h"
#include "common/status.h"
#include "net/cluster_client.h"

namespace google::protobuf {
class Message;
}

namespace treaty::cli {

// Exit codes of `treaty` (documented in the README).
enum ExitCode : int {
  kExitOk = 0,           // success; with --wait: the transaction committed (a saga completed)
  kExitError = 1,        // local error: unreadable or invalid file, bad JSON
  kExitUsage = 2,        // wrong flags or arguments
  kExitAborted = 3,      // the transaction aborted (a saga: compensating or compensated)
  kExitUnknown = 4,      // outcome not known yet (deadline passed while waiting)
  kExitRejected = 5,     // the coordinator refused the request (invalid, unknown service, ...)
  kExitUnreachable = 6,  // no coordinator could be reached
  kExitBusy = 7,         // the coordinator is overloaded; retry later
  kExitStuck = 8,        // the saga is STUCK: a compensation kept failing (treaty tx resolve)
};

struct GlobalOptions {
  // Coordinator addresses (one node, or the nodes of a cluster); see CallCoordinator.
  std::vector<std::string> coordinators = {"127.0.0.1:7700"};
  // Budget of each request (for submit --wait: of the whole wait), milliseconds.
  int64_t timeout_ms = 30'000;
  // "table" for people, "json" for scripts.
  std::string output = "table";
};

struct SubmitOptions {
  std::string file;  // path or "-"
  std::string xid;   // overrides the file's xid; generated when both are empty
  bool wait = false;
};

// `treaty submit 2pc`. Returns an ExitCode.
int SubmitTwoPc(const GlobalOptions& global, const SubmitOptions& submit, std::ostream& out,
                std::ostream& err);

// `treaty tx get XID`. Returns an ExitCode.
int GetTransaction(const GlobalOptions& global, const std::string& xid, std::ostream& out,
                   std::ostream& err);

// `treaty services`: services, instances, lease age, breaker state, calls in flight.
int ListServices(const GlobalOptions& global, std::ostream& out, std::ostream& err);

// ---- Helpers shared by the commands ----

// How long a command keeps trying while no coordinator accepts a connection at all, milliseconds
// (within --timeout-ms): a leader change refuses connections for a second or two; longer means
// the coordinator is down, which is reported (exit 6) rather than waited out.
inline constexpr int64_t kUnreachableTimeoutMs = 5000;

// The leader-finding settings of the CLI's coordinator clients (kUnreachableTimeoutMs).
net::ClusterClientOptions CoordinatorClientOptions();

// Calls the coordinator cluster through client (built on global.coordinators: the leader first,
// hints followed, other addresses and backoff until the budget passes; net/cluster_client.h) with
// a budget of timeout_ms (0 = global.timeout_ms). idempotent: whether an attempt that timed out
// may be sent again (queries, and Submit with its client-chosen xid).
Result<std::string> CallCoordinator(net::ClusterClient& client, const GlobalOptions& global,
                                    const char* method, const std::string& payload,
                                    int64_t timeout_ms = 0, bool idempotent = true);

// The same through a client made for this one call.
Result<std::string> CallCoordinator(const GlobalOptions& global, const char* method,
                                    const std::string& payload, bool idempotent = true);

// $USER, or "unknown": names the CLI's client id for admission and the operator of a resolution.
std::string CurrentUser();

// What every submission (2PC or saga) needs before its first attempt: the xid (--xid, else the
// file's, else a new one chosen here, so that a retry on another coordinator address is the same
// transaction), --wait, and the client id for admission ("cli:$USER" unless the file set one).
template <typename Request>
void PrepareSubmission(const SubmitOptions& submit, const char* xid_prefix, Request* req) {
  if (!submit.xid.empty()) req->set_xid(submit.xid);
  if (req->xid().empty()) {
    SeededRandom random(EntropySeed());
    req->set_xid(NewXid(random, xid_prefix));
  }
  req->set_wait(submit.wait);
  if (req->client_id().empty()) req->set_client_id("cli:" + CurrentUser());
}

// Prints a failed call for people; xid (may be empty) is named in the hint of a timeout.
void PrintError(std::ostream& err, const Status& status, const std::string& xid);

// The JSON form of a message (lowerCamelCase, zero values included, one line).
std::string ToJson(const google::protobuf::Message& message);

// "2026-01-02T15:04:05.123Z", or "-" for 0.
std::string FormatUnixMs(int64_t unix_ms);

// Maps a failed call's status to an exit code.
int ExitCodeFor(const Status& status);

}  // namespace treaty::cli
