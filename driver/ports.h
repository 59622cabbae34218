// The ports through which the effect drivers (twopc_driver.h, saga_driver.h) reach the world: the
// durable log, the participants' transport, timers and the clock. treatyd implements them with
// RocksDB/Raft, Asio and the system clock (coordinator/); tests/sim/ implements them with a
// simulated replicated log, network and clock. The drivers, the cores and the participant calls'
// guards are the same code in both.
//
// Threading contract, for every port: the driver is single-threaded, and every completion a port
// delivers runs on the driver's thread, never inside the call that started it (a completion that
// is ready at once is deferred, as with asio::post).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/log.pb.h"

namespace treaty::driver {

// What an append's completion means for its driver.
struct Appended {
  // OK: the events are durable (in a cluster: committed by a Raft majority and applied here).
  // Otherwise nothing of them is durable, or (fatal) it cannot be known.
  Status status;
  // The log cannot be trusted by this coordinator any more: a local write failed ambiguously, or
  // this node lost the leadership while the append was in flight. The driver stops at once (no
  // more sends, replies or appends); its owner replaces it and the next coordinator recovers
  // whatever became durable.
  bool fatal = false;
};

class LogPort {
 public:
  virtual ~LogPort() = default;
  // Appends events atomically and in order (see log::EventLog::Append); done runs once.
  virtual void Append(std::vector<v1::LogEvent> events, std::function<void(Appended)> done) = 0;
  // Runs done(OK) once every decision any leader made before it is visible to Find on this node
  // and this node still leads; UNAVAILABLE (nothing proven) otherwise. A single node answers OK.
  virtual void Barrier(std::function<void(Status)> done) = 0;
  // The transaction's durable record as this node has applied it; nullopt if never logged.
  virtual Result<std::optional<v1::TxnRecord>> Find(std::string_view xid) const = 0;
  // For an xid Find no longer knows because retention dropped its record: the outcome it had
  // (COMMIT for a committed 2PC transaction, ABORT otherwise) while the log remembers the xid as
  // used; nullopt for an xid the log never knew.
  virtual Result<std::optional<v1::Outcome>> RememberedOutcome(std::string_view xid) const = 0;
};

// One request to a participant instance.
struct Request {
  std::string instance;          // host:port
  const char* method = nullptr;  // a participant.* method (treaty/v1/methods.h)
  std::string payload;           // the serialized request message
  int64_t deadline_ms = 1;       // the call's budget, > 0
};

class TransportPort {
 public:
  virtual ~TransportPort() = default;
  // Sends the request; done gets the serialized response, or a transport/deadline/remote error.
  // done runs exactly once.
  virtual void Send(Request request, std::function<void(Result<std::string>)> done) = 0;
};

class TimerPort {
 public:
  virtual ~TimerPort() = default;
  // Runs fn after delay_ms (0: as soon as the driver's thread is free).
  virtual void After(int64_t delay_ms, std::function<void()> fn) = 0;
};

// Chooses an instance for a call whose branch or step recorded none (only records logged before
// instances were recorded): any live instance of the service.
class RouterPort {
 public:
  virtual ~RouterPort() = default;
  virtual Result<std::string> AnyInstance(const std::string& service, const std::string& key) = 0;
};

}  // namespace treaty::driver
