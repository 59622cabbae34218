#include "cli/commands.h"

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "cli/saga_commands.h"
#include "cli/tx_file.h"
#include "common/random.h"
#include "common/text.h"
#include "net/cluster_client.h"
#include "net/proto_codec.h"
#include "treaty/v1/methods.h"

namespace treaty::cli {
namespace {

bool IsCommitted(v1::TxState s) { return s == v1::COMMITTING || s == v1::COMMITTED; }
bool IsAborted(v1::TxState s) { return s == v1::ABORTING || s == v1::ABORTED; }

}  // namespace

Result<std::string> CallCoordinator(const GlobalOptions& global, const char* method,
                                    const std::string& payload, bool idempotent) {
  net::ClusterClient client(global.coordinators, CoordinatorClientOptions());
  return CallCoordinator(client, global, method, payload, 0, idempotent);
}

std::string CurrentUser() {
  const char* user = std::getenv("USER");
  return user != nullptr && *user != '\0' ? user : "unknown";
}

net::ClusterClientOptions CoordinatorClientOptions() {
  net::ClusterClientOptions options;
  options.unreachable_timeout_ms = kUnreachableTimeoutMs;
  return options;
}

Result<std::string> CallCoordinator(net::ClusterClient& client, const GlobalOptions& global,
                                    const char* method, const std::string& payload,
                                    int64_t timeout_ms, bool idempotent) {
  return client.Call(method, payload, timeout_ms > 0 ? timeout_ms : global.timeout_ms, idempotent);
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

void PrintError(std::ostream& err, const Status& s, const std::string& xid) {
  switch (s.code()) {
    case StatusCode::kUnavailable:
      err << "error: cannot reach the coordinator (or its cluster has no leader): " << s.message()
          << "\n";
      break;
    case StatusCode::kDeadlineExceeded:
      err << "error: no answer within the timeout; the outcome is not known yet";
      if (!xid.empty()) err << ". Check with: treaty tx get " << xid;
      err << "\n";
      break;
    case StatusCode::kResourceExhausted:
      err << "error: the coordinator is too busy, retry later (" << s.message() << ")\n";
      break;
    default:
      err << "error: " << s.ToString() << "\n";
  }
}

std::string FormatUnixMs(int64_t ms) { return ms <= 0 ? "-" : FormatRfc3339Ms(ms); }

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kUnavailable:
      return kExitUnreachable;
    case StatusCode::kDeadlineExceeded:
      return kExitUnknown;
    case StatusCode::kResourceExhausted:
      return kExitBusy;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return kExitRejected;
    default:
      return kExitError;
  }
}

int SubmitTwoPc(const GlobalOptions& global, const SubmitOptions& submit, std::ostream& out,
                std::ostream& err) {
  auto req = LoadTwoPcFile(submit.file);
  if (!req.ok()) {
    err << "error: " << req.status().message() << "\n";
    return kExitError;
  }
  PrepareSubmission(submit, "tx", &*req);
  auto resp = net::Decode<v1::SubmitResponse>(
      CallCoordinator(global, v1::methods::kSubmit, req->SerializeAsString()));
  if (!resp.ok()) {
    PrintError(err, resp.status(), req->xid());
    return ExitCodeFor(resp.status());
  }
  v1::TxState state = resp->state();
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
  } else {
    std::string word = IsCommitted(state) ? "committed"
                       : IsAborted(state) ? "aborted"
                                          : "submitted";
    out << "xid     " << resp->xid() << "\n"
        << "state   " << v1::TxState_Name(state) << " (" << word << ")\n";
    if (!resp->reason().empty()) out << "reason  " << resp->reason() << "\n";
  }
  if (IsAborted(state)) return kExitAborted;
  if (submit.wait && !IsCommitted(state)) return kExitUnknown;
  return kExitOk;
}

int GetTransaction(const GlobalOptions& global, const std::string& xid, std::ostream& out,
                   std::ostream& err) {
  v1::GetTransactionRequest req;
  req.set_xid(xid);
  auto resp = net::Decode<v1::GetTransactionResponse>(
      CallCoordinator(global, v1::methods::kGetTransaction, req.SerializeAsString()));
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    return ExitCodeFor(resp.status());
  }
  const v1::Transaction& tx = resp->transaction();
  if (global.output == "json") {
    out << ToJson(tx) << "\n";
    return kExitOk;
  }
  if (tx.mode() == "saga") {
    PrintSagaTable(tx, out);
    return kExitOk;
  }
  out << "xid       " << tx.xid() << "\n"
      << "state     " << v1::TxState_Name(tx.state()) << "\n";
  if (!tx.reason().empty()) out << "reason    " << tx.reason() << "\n";
  out << "created   " << FormatUnixMs(tx.created_unix_ms()) << "\n"
      << "updated   " << FormatUnixMs(tx.updated_unix_ms()) << "\n\n";
  out << std::left << std::setw(8) << "BRANCH" << std::setw(20) << "SERVICE" << std::setw(12)
      << "OP" << std::setw(11) << "VOTE" << std::setw(7) << "ACKED" << std::setw(10) << "ATTEMPTS"
      << "LAST ERROR\n";
  for (const auto& b : tx.branches()) {
    std::string vote = v1::Vote_Name(b.vote());
    if (b.vote() == v1::VOTE_UNSPECIFIED) vote = "-";
    out << std::left << std::setw(8) << b.branch_id() << std::setw(20) << b.service()
        << std::setw(12) << b.op() << std::setw(11) << vote << std::setw(7)
        << (b.acknowledged() ? "yes" : "no") << std::setw(10) << b.attempts()
        << (b.last_error().empty() ? "-" : b.last_error()) << "\n";
  }
  return kExitOk;
}

int ListServices(const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  auto resp = net::Decode<v1::ListServicesResponse>(CallCoordinator(
      global, v1::methods::kListServices, v1::ListServicesRequest().SerializeAsString()));
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    return ExitCodeFor(resp.status());
  }
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
    return kExitOk;
  }
  if (resp->services().empty()) {
    out << "no services registered\n";
    return kExitOk;
  }
  out << std::left << std::setw(18) << "SERVICE" << std::setw(22) << "INSTANCE" << std::setw(7)
      << "WEIGHT" << std::setw(10) << "LEASE AGE" << std::setw(7) << "LIVE" << std::setw(11)
      << "BREAKER" << std::setw(10) << "IN FLIGHT"
      << "REFUSED\n";
  for (const auto& s : resp->services()) {
    out << std::left << std::setw(18) << s.name() << "policy " << s.policy() << ", in flight "
        << s.in_flight() << "/" << s.max_in_flight() << "\n";
    for (const auto& i : s.instances()) {
      out << std::left << std::setw(18) << "" << std::setw(22) << i.address() << std::setw(7)
          << i.weight() << std::setw(10) << (std::to_string(i.lease_age_ms() / 1000) + "s")
          << std::setw(7) << (i.live() ? "yes" : "no") << std::setw(11) << i.breaker()
          << std::setw(10) << i.in_flight() << i.rejected() << "\n";
    }
  }
  return kExitOk;
}

}  // namespace treaty::cli
