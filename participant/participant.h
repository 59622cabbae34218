// libtreaty-participant: the library a service embeds to take part in Treaty transactions
// (two-phase commits and sagas).
//
// A service registers, per operation name, a prepare handler and optional commit / abort handlers
// (2PC), and per saga step an action and its compensation (sagas), then calls Start(). The
// library then:
//   - serves the coordinator's calls (participant.Prepare / Commit / Abort / Action / Compensate /
//     Inspect) over Treaty RPC, plus any read-only query methods the service registers;
//   - keeps the service's data and a per-branch / per-step barrier in its own local RocksDB
//     (data_dir), and writes the barrier record in the same atomic batch as the handler's writes,
//     so a prepared branch or a done step survives a crash together with its effects;
//   - makes Prepare, Commit and Abort idempotent and safe in any order (see "Barrier" below), and
//     Action and Compensate too (see "Saga barrier");
//   - registers the service's address with the coordinator, and re-registers periodically so a
//     restarted coordinator learns it again;
//   - resolves in-doubt branches: a branch that stays prepared without a decision (or that is
//     found prepared after a restart) is resolved by asking the coordinator for the outcome
//     (coordinator.QueryOutcome; an xid the coordinator does not know means ABORT).
//
// Barrier. For each branch (xid, branch_id) the library records one state:
//   Prepare:  ABORTED -> NO, whatever the branch once voted, without running the handler:
//             aborted before any vote -> "aborted before prepare" (an abort that overtook its
//             prepare must not leave a hanging reservation); voted NO -> the recorded reason;
//             voted YES, then aborted -> "branch already aborted" (a coordinator that resumes
//             the prepare after a failover must not commit a transaction that aborted here);
//             PREPARED or COMMITTED -> YES; READ_ONLY -> READ_ONLY; the handler is not run again;
//             otherwise the handler runs: YES -> its writes + PREPARED are written together;
//             NO -> its writes are discarded, ABORTED recorded; READ_ONLY -> writes discarded,
//             READ_ONLY recorded.
//   Commit:   PREPARED -> commit handler runs, its writes + COMMITTED are written together;
//             COMMITTED or READ_ONLY -> OK without running anything;
//             ABORTED or unknown -> FAILED_PRECONDITION (a protocol violation; logged as an error).
//   Abort:    PREPARED -> abort handler runs, its writes + ABORTED are written together;
//             ABORTED or READ_ONLY -> OK; unknown -> ABORTED recorded ("null abort") and OK;
//             COMMITTED -> FAILED_PRECONDITION (logged as an error).
//   An op with no registered handler gets NOT_FOUND.
// Handlers never write barrier records themselves.
//
// Saga barrier. For each saga step (xid, step) the library records the action's outcome and the
// compensation, each in the same atomic batch as the handler's writes:
//   Action:     compensation recorded -> REFUSED "compensated before the action arrived" without
//               running the handler (anti-hanging: an action delayed past its compensation must not
//               take effect); action recorded -> the recorded answer, handler not run again;
//               otherwise the action handler runs: DONE -> its writes + DONE are written together;
//               REFUSED -> its writes are discarded, REFUSED (with the reason) recorded; an error
//               -> nothing recorded, the error is returned (the coordinator retries).
//   Compensate: compensation recorded -> DONE without running anything (idempotent);
//               action DONE -> the compensation handler runs, its writes + COMPENSATED are written
//               together; action REFUSED -> COMPENSATED recorded without running the handler
//               (nothing to undo); no action recorded -> COMPENSATED recorded without running the
//               handler ("null compensation"), which refuses the action if it arrives later;
//               an error from the handler -> nothing recorded, the error is returned (retried).
//   Compensate answers DONE or an error, never REFUSED: a compensation cannot be declined, only
//   retried. An unknown action or compensation name gets NOT_FOUND. A compensation whose step's
//   recorded action is not its own action gets FAILED_PRECONDITION (a coordinator bug).
//
// Execution model. Every handler (prepare, commit, abort, action, compensation, query,
// initializer) runs on ONE worker thread, one at a time, so handlers need no locking and each
// sees the effects of the ones before it. The worker takes every queued request as one round,
// executes them in arrival order (each writes its batch without fsync), then syncs the
// write-ahead log once and only then sends the round's responses: no response leaves before the
// effects it reports are durable. A handler must not block for long; it delays every request
// behind it. A handler that throws is reported to the caller as INTERNAL and its writes are
// discarded. Control handlers (RegisterControl) are the exception: they run on the network thread
// and never touch the data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace treaty::participant {

struct ParticipantOptions {
  // Service name this instance serves, e.g. "bank-a". Required. Recorded in the data dir on first
  // start; a data dir recorded for another service is refused.
  std::string service;
  // host:port the participant server listens on; port 0 picks a free port. Default
  // "127.0.0.1:0".
  std::string listen = "127.0.0.1:0";
  // host:port announced to the coordinator. Empty (default): the host of `listen` with the bound
  // port. Set it when listening on 0.0.0.0 or behind NAT.
  std::string advertise;
  // Relative share of new branches this instance gets when its service is balanced by weight.
  // Default 1.
  uint32_t weight = 1;
  // The coordinator: "host:port", or a cluster's client addresses comma-separated
  // ("a:7700,b:7700,c:7700"). Registrations, heartbeats and outcome queries go to the cluster's
  // leader, found as net/cluster_client.h describes (hints, rotation, backoff). Empty: no
  // registration and no in-doubt resolution (branches stay prepared until a decision is
  // delivered); useful only in tests. Start refuses a malformed list (INVALID_ARGUMENT).
  std::string coordinator;
  // Directory of the participant's RocksDB database; created if missing. Required.
  std::string data_dir;
  // Period of coordinator.Register calls, milliseconds, both while registration keeps failing and
  // after it succeeded (a restarted coordinator learns the address again). A Register call
  // succeeds only once the coordinator's log holds the registration durably (in a cluster:
  // committed by the Raft majority), so a participant counts itself registered only then; a new
  // leader that has not heard from it yet holds submissions naming its service during its first
  // lease period. Default 2000.
  int64_t register_interval_ms = 2000;
  // A branch prepared longer than this without a decision is in doubt and its outcome is asked
  // from the coordinator, milliseconds. Branches found prepared at Start are in doubt at once.
  // Default 2000.
  int64_t in_doubt_after_ms = 2000;
  // Period of the in-doubt scan, milliseconds. Default 500.
  int64_t recovery_interval_ms = 500;
  // Budget of each call to the coordinator, including finding the leader, milliseconds; a call
  // that fails is made again at the next registration or in-doubt scan. Default 1000.
  int64_t coordinator_call_timeout_ms = 1000;
  // Requests waiting for the worker beyond this are refused with RESOURCE_EXHAUSTED. Bounds
  // memory under overload. Default 65536.
  size_t max_queued_requests = 65536;
  // Most requests executed in one group-commit round (one WAL sync). Bounds the latency a round
  // adds to its first request. Default 1024.
  size_t max_round_requests = 1024;
  // Sync the write-ahead log before responding. Only tests that do not care about crash
  // durability turn this off. Default true.
  bool sync = true;
  // Time source for the in-doubt age of prepared branches (UnixMs). nullptr: the system clock.
  // Not owned; must outlive the Participant.
  const Clock* clock = nullptr;
};

// The branch a handler is called for. For commit and abort, op and payload are the ones recorded
// when the branch was prepared.
struct BranchContext {
  std::string xid;
  uint32_t branch_id = 0;
  std::string op;
  std::string payload;
};

// Read access to the service's key space (its own column family in the participant's RocksDB).
// Valid only during the handler call it was passed to. Not thread-safe.
class LocalReader {
 public:
  virtual ~LocalReader() = default;
  // The value of key, or nullopt if absent. Errors: INTERNAL / CORRUPTION from storage.
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  // Up to `limit` (key, value) pairs whose key starts with prefix, in key order.
  virtual Result<std::vector<std::pair<std::string, std::string>>> Scan(std::string_view prefix,
                                                                        size_t limit) = 0;
};

// A handler's local transaction: reads see the handler's own earlier writes (read-your-writes).
// Writes are applied atomically with the branch's barrier record when the handler succeeds, and
// discarded when it fails, throws, or (for prepare) votes NO / READ_ONLY.
class LocalTxn : public LocalReader {
 public:
  virtual void Put(std::string_view key, std::string_view value) = 0;
  virtual void Delete(std::string_view key) = 0;
};

enum class Vote { kYes, kNo, kReadOnly };

// A prepare handler's vote. reason is shown to the user for NO.
struct PrepareResult {
  Vote vote = Vote::kYes;
  std::string reason;

  static PrepareResult Yes() { return {Vote::kYes, {}}; }
  static PrepareResult No(std::string reason) { return {Vote::kNo, std::move(reason)}; }
  static PrepareResult ReadOnly() { return {Vote::kReadOnly, {}}; }
};

// Makes the branch's work durable and locked (e.g. reserves funds) and votes. A non-OK result is
// returned to the coordinator as the call's error and nothing is recorded (the prepare may be
// retried).
using PrepareHandler = std::function<Result<PrepareResult>(const BranchContext&, LocalTxn&)>;
// Applies (commit) or undoes (abort) a prepared branch. A non-OK status is returned to the
// coordinator, nothing is recorded and the branch stays PREPARED (the decision is redelivered).
using DecisionHandler = std::function<Status(const BranchContext&, LocalTxn&)>;
// Handlers of one operation. prepare is required; a missing commit or abort handler is a no-op.
struct OpHandlers {
  PrepareHandler prepare;
  DecisionHandler commit;
  DecisionHandler abort;
};

// The saga step a handler is called for.
struct StepContext {
  std::string xid;
  // Index of the step in the saga definition.
  uint32_t step = 0;
  // The action name (action handler) or compensation name (compensation handler).
  std::string op;
  // The request's payload; the coordinator sends the step's payload to both the action and the
  // compensation.
  std::string payload;
};

enum class StepOutcome { kDone, kRefused };

// An action handler's answer. reason is shown to the user for REFUSED.
struct StepResult {
  StepOutcome outcome = StepOutcome::kDone;
  std::string reason;

  static StepResult Done() { return {StepOutcome::kDone, {}}; }
  static StepResult Refused(std::string reason) {
    return {StepOutcome::kRefused, std::move(reason)};
  }
};

// Performs a saga step's local transaction. DONE: its writes take effect. REFUSED: a business
// failure (the coordinator compensates the saga and never retries it); its writes are discarded.
// A non-OK result is a transient failure: nothing is recorded and the coordinator retries.
using ActionHandler = std::function<Result<StepResult>(const StepContext&, LocalTxn&)>;
// Undoes a DONE action. Runs at most once per step, and only after the step's action was DONE
// here. A non-OK status is a transient failure: nothing is recorded and the coordinator retries.
using CompensationHandler = std::function<Status(const StepContext&, LocalTxn&)>;

// A service-specific read-only RPC method: request payload in, response payload out.
using QueryHandler = std::function<Result<std::string>(const std::string& payload, LocalReader&)>;
// An operational RPC method (e.g. a switch for fault injection): request payload in, response
// payload out. Runs on the participant's network thread, NOT on the worker, so it is answered
// even while a handler blocks the worker; in exchange it must return quickly, never block, and
// gets no access to the service's data. A handler that throws is reported as INTERNAL.
using ControlHandler = std::function<Result<std::string>(const std::string& payload)>;
// Runs once, when Start creates a new data dir; its writes are committed with the dir's schema
// marker (e.g. seed initial data). A failure fails Start.
using Initializer = std::function<Status(LocalTxn&)>;

struct ParticipantStats {
  uint64_t requests = 0;            // requests executed by the worker (RPC and in-doubt resolution)
  uint64_t rounds = 0;              // group-commit rounds
  uint64_t syncs = 0;               // WAL syncs (at most one per round)
  uint64_t in_doubt_queries = 0;    // coordinator.QueryOutcome calls made
  uint64_t resolved_in_doubt = 0;   // branches committed or aborted through QueryOutcome
  uint64_t registrations = 0;       // successful (durable) coordinator.Register calls
  uint64_t null_compensations = 0;  // compensations recorded before their action arrived
  uint64_t late_actions_refused = 0;  // actions refused because their compensation came first
  size_t prepared = 0;                // branches currently PREPARED
};

// One participant instance. Thread-safety: Register* and SetInitializer before Start; Start,
// Stop and the accessors may be called from any thread. Start at most once per object; to
// restart, create a new Participant on the same data_dir.
class Participant {
 public:
  explicit Participant(ParticipantOptions options);
  // Stops (see Stop) if running.
  ~Participant();
  Participant(const Participant&) = delete;
  Participant& operator=(const Participant&) = delete;

  // REQUIRES: before Start. Registering an op twice replaces its handlers.
  void RegisterOp(std::string op, OpHandlers handlers);
  // A saga step this service runs: participant.Action calls with op == action run `run`,
  // participant.Compensate calls with op == compensation run `undo` (see "Saga barrier").
  // REQUIRES: before Start. Registering an action twice replaces it. Start refuses empty names,
  // missing handlers and a compensation name shared by two actions (INVALID_ARGUMENT).
  void RegisterSagaStep(std::string action, std::string compensation, ActionHandler run,
                        CompensationHandler undo);
  // REQUIRES: before Start. method must not be one of the participant.* methods.
  void RegisterQuery(std::string method, QueryHandler handler);
  // REQUIRES: before Start. method must be neither a participant.* method nor a query method.
  void RegisterControl(std::string method, ControlHandler handler);
  // REQUIRES: before Start.
  void SetInitializer(Initializer initializer);

  // Opens the data dir, loads prepared branches, starts the worker, listens, and starts the
  // registration / in-doubt resolution loop. Errors:
  //   INVALID_ARGUMENT     missing service or data_dir, bad address or coordinator list, a
  //                        handler-less op or saga step;
  //   FAILED_PRECONDITION  data_dir holds a database that is not this service's participant
  //                        store, or Start was already called;
  //   CORRUPTION           the database or a barrier record is corrupt;
  //   UNAVAILABLE          the dir cannot be opened (e.g. locked by another process) or the
  //                        listen address cannot be bound.
  // Each message names the directory or address and what to do. On error nothing keeps running.
  Status Start();

  // Stops the loops and the server, finishes the requests already queued, and closes the
  // database. Idempotent. Blocks until every thread has exited.
  void Stop();

  // "host:port" the server is bound to (after a successful Start).
  std::string address() const;
  uint16_t port() const;

  // Counters since Start (after Stop: as they were at Stop). Thread-safe.
  ParticipantStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::participant
