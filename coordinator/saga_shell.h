// The saga half of treatyd's shell: executes saga::SagaCore's effects (atomic log appends,
// participant.Action / participant.Compensate calls through the ParticipantCaller, timers and
// client replies) with Asio, next to the 2PC shell in coordinator.cpp.
//
// Admission (rate, the bound on transactions held, unknown services, xids of 2PC transactions) is
// the coordinator's; this class takes submissions that passed it.
//
// Thread-safety: none; the coordinator's I/O thread only (also Get, which the read side calls
// from that thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/status.h"
#include "coordinator/metrics.h"
#include "coordinator/participant_caller.h"
#include "coordinator/registry.h"
#include "log/log.h"
#include "net/rpc.h"
#include "saga/saga_core.h"
#include "treaty/v1/coordinator.pb.h"

namespace treaty::coordinator {

class SagaShell {
 public:
  struct Env {
    asio::io_context* io = nullptr;
    const Clock* clock = nullptr;
    Random* random = nullptr;
    log::EventLog* log = nullptr;
    Registry* registry = nullptr;
    ParticipantCaller* caller = nullptr;
    // Saga outcomes (treaty_tx_total{mode="saga"}); may be null.
    Metrics* metrics = nullptr;
    // Fail-stop: called when the log stopped after a failed write, or when leadership_lost says
    // an append failed because this (cluster) node lost the leadership.
    std::function<void(const Status&)> fatal;
    // Optional: true when a failed append's status means the leadership was lost.
    std::function<bool(const Status&)> leadership_lost;
    // Optional: wraps every log completion (the owner counts them; see PendingCallbacks).
    std::function<log::AppendDone(log::AppendDone)> track;
    // True once the coordinator stopped: no more inputs reach the core.
    std::function<bool()> stopped;
    // Called after every batch of effects (e.g. to update the active-transactions gauge).
    std::function<void()> on_change;
  };

  SagaShell(Env env, saga::SagaCoreOptions options);
  SagaShell(const SagaShell&) = delete;
  SagaShell& operator=(const SagaShell&) = delete;

  // Hands an admitted submission (instances chosen) or one for a held xid to the core. respond
  // gets a SubmitSagaResponse, or the core's refusal (INVALID_ARGUMENT, ALREADY_EXISTS).
  void Submit(v1::SubmitSagaRequest req, net::Responder respond);

  // The answer to a submission whose xid is in the log but not held (a finished saga): its state
  // if the definitions match (instances aside), else ALREADY_EXISTS (also for a 2PC record).
  static Result<std::string> ReplyForLogged(const v1::SubmitSagaRequest& req,
                                            const v1::TxnRecord& rec);

  // Resolves a saga the core holds; respond gets a ResolveResponse once the resolution is
  // durable, or the core's refusal. NOT_FOUND if the core does not hold req.xid() (the caller
  // answers for logged and 2PC transactions).
  void Resolve(const v1::ResolveRequest& req, net::Responder respond);

  // Answers every client waiting for a submission or resolution with status (the coordinator
  // stopped driving the sagas, e.g. after losing the leadership).
  void FailWaiting(const Status& status);

  // Resumes the unfinished sagas among records (mode "saga").
  void Recover(const std::vector<v1::TxnRecord>& records);

  std::optional<v1::Transaction> Get(const std::string& xid) const;
  bool Holds(const std::string& xid) const { return core_.Get(xid).has_value(); }
  size_t active() const { return core_.active(); }

 private:
  enum class ReplyKind { kSubmit, kResolve };
  struct Waiter {
    ReplyKind kind = ReplyKind::kSubmit;
    net::Responder respond;
  };

  void Execute(saga::Effects fx);
  void Append(saga::AppendLog a);
  void Call(saga::CallStep c);
  void StartTimer(const saga::SetTimer& t);
  void SendReply(saga::Reply r);
  uint64_t AddWaiter(ReplyKind kind, net::Responder respond);

  Env env_;
  saga::SagaCore core_;
  std::unordered_map<uint64_t, Waiter> waiting_;  // by the core's client id
  uint64_t next_client_ = 1;
};

}  // namespace treaty::coordinator
