// The 2PC effect driver: runs twopc::TwoPcCore and executes its effects through the ports
// (driver/ports.h) and the participant Caller. treatyd's coordinator and the simulation run this
// same code; only the ports differ.
//
// Beyond executing effects it owns what every shell must do the same way around the core: a
// submission for an xid the core does not hold is first looked up in the log (a finished xid is
// answered from its record, never run twice), the outcome query of an in-doubt participant, and
// the encoding of participant calls and decoding of their answers.
//
// Thread-safety: none; one thread (the ports' completions run on it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/status.h"
#include "driver/caller.h"
#include "driver/ports.h"
#include "twopc/twopc_core.h"

namespace treaty::driver {

// The ports a driver runs on; not owned, they outlive the driver.
struct Ports {
  LogPort* log = nullptr;
  Caller* caller = nullptr;
  TimerPort* timers = nullptr;
  RouterPort* router = nullptr;
  const Clock* clock = nullptr;
  Random* random = nullptr;  // the core's backoff jitter
};

class TwoPcDriver {
 public:
  struct Hooks {
    // Answers a Submit (its client id) or a Resolve; required.
    std::function<void(twopc::Reply)> reply;
    std::function<void(twopc::Reply)> resolve_reply;
    // A transaction finished durably; may be empty.
    std::function<void(const twopc::Finished&)> finished;
    // The driver stopped itself after a fatal append (Appended::fatal); required.
    std::function<void(const Status&)> fatal;
    // After every batch of effects; may be empty.
    std::function<void()> changed;
  };
  // Admits a new transaction (rate limits, known services) and fixes its branches' instances, or
  // refuses it. Runs only for an xid neither held nor logged.
  using Admit = std::function<Status(twopc::Submit&)>;

  TwoPcDriver(twopc::CoreOptions options, Ports ports, Hooks hooks);
  TwoPcDriver(const TwoPcDriver&) = delete;
  TwoPcDriver& operator=(const TwoPcDriver&) = delete;

  // A client's submission: attached to the transaction if the core holds in.xid; answered from
  // the log if the xid is logged (its state, or ALREADY_EXISTS for different branches or a saga);
  // otherwise admitted and begun. The answer goes to hooks.reply with in.client.
  void Submit(twopc::Submit in, const Admit& admit);
  // An operator's resolution of a transaction the core holds (hooks.resolve_reply answers it,
  // NOT_FOUND if the core does not hold it).
  void Resolve(twopc::Resolve in);
  // Resumes the unfinished 2PC transactions among records (twopc::TwoPcCore::Recover).
  void Recover(const std::vector<v1::TxnRecord>& records);
  // A participant in doubt asks for xid's outcome: the core's answer if it holds xid, else the
  // log's once a Barrier proved the log complete (the outcome of a remembered xid whose record
  // retention dropped; an xid never logged: ABORT, presumed abort).
  // UNAVAILABLE if the barrier fails (this node may not lead any more).
  void QueryOutcome(const std::string& xid, std::function<void(Result<v1::Outcome>)> done);

  // No more inputs reach the core; nothing more is sent, appended or replied.
  void Stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  std::optional<v1::Transaction> Get(const std::string& xid) const { return core_.Get(xid); }
  bool Holds(const std::string& xid) const { return core_.OutcomeOf(xid).has_value(); }
  size_t active() const { return core_.active(); }
  // The core, for invariant checks.
  const twopc::TwoPcCore& core() const { return core_; }

 private:
  template <typename Input>
  void Feed(const Input& in) {
    if (!stopped_) Execute(core_.Handle(in));
  }
  void Execute(twopc::Effects fx);
  void Append(twopc::AppendLog a);
  void Call(twopc::CallParticipant c);
  void OnCallDone(const std::string& xid, uint32_t branch, twopc::Phase phase, CallOutcome o);
  void Fatal(const Status& s);

  Ports ports_;
  Hooks hooks_;
  twopc::TwoPcCore core_;
  bool stopped_ = false;
};

}  // namespace treaty::driver
