// The treaty CLI's commands, separated from flag parsing (main.cpp) so they can be tested.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/rpc.h"

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
  // Coordinator addresses; tried in order while one is unreachable.
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

// Calls the first reachable coordinator of global.coordinators with a budget of timeout_ms (0 =
// global.timeout_ms). Another address is tried only when the call could not be delivered
// (UNAVAILABLE).
Result<std::string> CallCoordinator(net::RpcClient& client, const GlobalOptions& global,
                                    const char* method, const std::string& payload,
                                    int64_t timeout_ms = 0);

// Prints a failed call for people; xid (may be empty) is named in the hint of a timeout.
void PrintError(std::ostream& err, const Status& status, const std::string& xid);

// The JSON form of a message (lowerCamelCase, zero values included, one line).
std::string ToJson(const google::protobuf::Message& message);

// "2026-01-02T15:04:05.123Z", or "-" for 0.
std::string FormatUnixMs(int64_t unix_ms);

// Maps a failed call's status to an exit code.
int ExitCodeFor(const Status& status);

// Splits "a:1,b:2" into addresses; INVALID_ARGUMENT for an empty list or an empty element.
Result<std::vector<std::string>> ParseAddressList(const std::string& list);

}  // namespace treaty::cli
