// The saga effect driver: runs saga::SagaCore and executes its effects (atomic log appends,
// participant.Action / participant.Compensate calls through the Caller, timers, client replies)
// through the ports (driver/ports.h). treatyd's coordinator and the simulation run this same code.
//
// Like the 2PC driver, it looks a submission for an xid the core does not hold up in the log first
// (a finished saga is answered from its record, never run twice).
//
// Thread-safety: none; one thread (the ports' completions run on it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "driver/twopc_driver.h"  // Ports
#include "saga/saga_core.h"

namespace treaty::driver {

class SagaDriver {
 public:
  struct Hooks {
    // Answers a Submit or a Resolve (by the client id it carried); required.
    std::function<void(saga::Reply)> reply;
    // A saga finished durably (COMPLETED / COMPENSATED), or became STUCK durably (state STUCK,
    // duration 0); may be empty.
    std::function<void(const saga::Finished&)> finished;
    // The driver stopped itself after a fatal append (Appended::fatal); required.
    std::function<void(const Status&)> fatal;
    // After every batch of effects; may be empty.
    std::function<void()> changed;
  };
  // Admits a new saga and fixes its steps' instances, or refuses it. Runs only for an xid neither
  // held nor logged.
  using Admit = std::function<Status(saga::Submit&)>;

  SagaDriver(saga::SagaCoreOptions options, Ports ports, Hooks hooks);
  SagaDriver(const SagaDriver&) = delete;
  SagaDriver& operator=(const SagaDriver&) = delete;

  // Attached to the saga if held; answered from the log if logged; else admitted and begun.
  void Submit(saga::Submit in, const Admit& admit);
  // An operator's resolution of a saga the core holds (NOT_FOUND otherwise).
  void Resolve(saga::Resolve in);
  // Resumes the unfinished sagas among records.
  void Recover(const std::vector<v1::TxnRecord>& records);

  void Stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  std::optional<v1::Transaction> Get(const std::string& xid) const { return core_.Get(xid); }
  bool Holds(const std::string& xid) const { return core_.Get(xid).has_value(); }
  size_t active() const { return core_.active(); }
  const saga::SagaCore& core() const { return core_; }

 private:
  template <typename Input>
  void Feed(const Input& in) {
    if (!stopped_) Execute(core_.Handle(in));
  }
  void Execute(saga::Effects fx);
  void Append(saga::AppendLog a);
  void Call(saga::CallStep c);
  void Fatal(const Status& s);

  Ports ports_;
  Hooks hooks_;
  saga::SagaCore core_;
  bool stopped_ = false;
};

}  // namespace treaty::driver
