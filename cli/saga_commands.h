// `treaty submit saga` and `treaty tx resolve`, and the saga part of `treaty tx get`.
#pragma once

#include <ostream>
#include <string>

#include "cli/commands.h"
#include "common/status.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::cli {

// Reads (path, or "-" for standard input) and parses a saga file (saga/definition.h's JSON form).
// INVALID_ARGUMENT naming the file and the step or field at fault.
Result<v1::SubmitSagaRequest> LoadSagaFile(const std::string& path);

// `treaty submit saga -f FILE [--xid] [--wait]`. Exit codes: kExitOk (submitted; with --wait:
// COMPLETED), kExitAborted (COMPENSATING or COMPENSATED), kExitStuck (STUCK), kExitUnknown
// (--wait answered without a final state), kExitError (bad file), or ExitCodeFor the error.
int SubmitSaga(const GlobalOptions& global, const SubmitOptions& submit, std::ostream& out,
               std::ostream& err);

struct ResolveOptions {
  std::string xid;
  bool retry = false;
  std::string mark_compensated;  // step id
  bool abort = false;
  std::string reason;
};

// `treaty tx resolve XID --retry | --mark-compensated STEP | --abort [--reason TEXT]`; who is
// $USER. kExitUsage unless exactly one action is given.
int ResolveTransaction(const GlobalOptions& global, const ResolveOptions& resolve,
                       std::ostream& out, std::ostream& err);

// The saga part of `treaty tx get`'s table: state, reason, times and one line per step.
void PrintSagaTable(const v1::Transaction& tx, std::ostream& out);

}  // namespace treaty::cli
