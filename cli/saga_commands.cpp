#include "cli/saga_commands.h"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/tx_file.h"
#include "common/random.h"
#include "net/cluster_client.h"
#include "net/proto_codec.h"
#include "saga/definition.h"
#include "treaty/v1/methods.h"

namespace treaty::cli {
namespace {

const char* SagaWord(v1::SagaState s) {
  switch (s) {
    case v1::SAGA_RUNNING:
      return "submitted";
    case v1::SAGA_COMPENSATING:
      return "compensating";
    case v1::SAGA_COMPLETED:
      return "completed";
    case v1::SAGA_COMPENSATED:
      return "compensated";
    case v1::SAGA_STUCK:
      return "stuck: resolve with treaty tx resolve";
    default:
      return "unknown";
  }
}

std::string StepStateName(v1::StepState s) {
  std::string name = v1::StepState_Name(s);
  return name.rfind("STEP_", 0) == 0 ? name.substr(5) : name;
}

}  // namespace

Result<v1::SubmitSagaRequest> LoadSagaFile(const std::string& path) {
  auto text = ReadTxFile(path);
  if (!text.ok()) return text.status();
  auto parsed = saga::ParseSagaJson(*text);
  if (!parsed.ok()) return parsed.status().WithPrefix(path);
  v1::SubmitSagaRequest req;
  req.set_xid(parsed->xid);
  *req.mutable_saga() = std::move(parsed->definition);
  return req;
}

int SubmitSaga(const GlobalOptions& global, const SubmitOptions& submit, std::ostream& out,
               std::ostream& err) {
  auto req = LoadSagaFile(submit.file);
  if (!req.ok()) {
    err << "error: " << req.status().message() << "\n";
    return kExitError;
  }
  PrepareSubmission(submit, "saga", &*req);
  auto resp = net::Decode<v1::SubmitSagaResponse>(CallCoordinator(
      global, v1::methods::kSubmitSaga, req->SerializeAsString(), /*idempotent=*/true));
  if (!resp.ok()) {
    PrintError(err, resp.status(), req->xid());
    return ExitCodeFor(resp.status());
  }
  const v1::SagaState state = resp->state();
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
  } else {
    out << "xid     " << resp->xid() << "\n"
        << "state   " << v1::SagaState_Name(state) << " (" << SagaWord(state) << ")\n";
    if (!resp->reason().empty()) out << "reason  " << resp->reason() << "\n";
  }
  if (state == v1::SAGA_STUCK) return kExitStuck;
  if (state == v1::SAGA_COMPENSATING || state == v1::SAGA_COMPENSATED) return kExitAborted;
  if (submit.wait && state != v1::SAGA_COMPLETED) return kExitUnknown;
  return kExitOk;
}

int ResolveTransaction(const GlobalOptions& global, const ResolveOptions& resolve,
                       std::ostream& out, std::ostream& err) {
  const int actions = (resolve.retry ? 1 : 0) + (resolve.mark_compensated.empty() ? 0 : 1) +
                      (resolve.abort ? 1 : 0);
  if (actions != 1) {
    err << "error: give exactly one of --retry, --mark-compensated STEP, --abort\n";
    return kExitUsage;
  }
  v1::ResolveRequest req;
  req.set_xid(resolve.xid);
  if (resolve.retry) {
    req.set_action("retry");
  } else if (resolve.abort) {
    req.set_action("abort");
  } else {
    req.set_action("mark-compensated");
    req.set_step_id(resolve.mark_compensated);
  }
  req.set_who(CurrentUser());
  req.set_why(resolve.reason);
  auto resp = net::Decode<v1::ResolveResponse>(CallCoordinator(
      global, v1::methods::kResolve, req.SerializeAsString(), /*idempotent=*/false));
  if (!resp.ok()) {
    PrintError(err, resp.status(), "");
    return ExitCodeFor(resp.status());
  }
  if (global.output == "json") {
    out << ToJson(*resp) << "\n";
  } else {
    // A 2PC transaction answers with tx_state, a saga with state.
    out << "xid     " << resolve.xid << "\n"
        << "state   "
        << (resp->tx_state() != v1::TX_STATE_UNSPECIFIED ? v1::TxState_Name(resp->tx_state())
                                                         : v1::SagaState_Name(resp->state()))
        << "\n";
    if (!resp->message().empty()) out << "message " << resp->message() << "\n";
  }
  return kExitOk;
}

void PrintSagaTable(const v1::Transaction& tx, std::ostream& out) {
  out << "xid       " << tx.xid() << "\n"
      << "mode      saga\n"
      << "state     " << v1::SagaState_Name(tx.saga_state()) << "\n";
  if (!tx.reason().empty()) out << "reason    " << tx.reason() << "\n";
  out << "created   " << FormatUnixMs(tx.created_unix_ms()) << "\n"
      << "updated   " << FormatUnixMs(tx.updated_unix_ms()) << "\n\n";
  out << std::left << std::setw(6) << "STEP" << std::setw(16) << "ID" << std::setw(16) << "SERVICE"
      << std::setw(14) << "ACTION" << std::setw(14) << "COMPENSATION" << std::setw(14) << "STATE"
      << std::setw(10) << "ATTEMPTS"
      << "LAST ERROR\n";
  for (int i = 0; i < tx.steps_size(); ++i) {
    const v1::StepStatus& s = tx.steps(i);
    out << std::left << std::setw(6) << i << std::setw(16) << s.id() << std::setw(16) << s.service()
        << std::setw(14) << s.action() << std::setw(14) << s.compensation() << std::setw(14)
        << StepStateName(s.state()) << std::setw(10) << s.attempts()
        << (s.last_error().empty() ? "-" : s.last_error()) << "\n";
  }
}

}  // namespace treaty::cli
