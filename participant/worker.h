// The participant's single worker thread: executes every handler, applies the barrier rules
// (barrier_rules.h) to the store and group-commits (one WAL sync per round, responses after the
// sync). Private to participant/.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "participant/participant.h"
#include "participant/store.h"

namespace treaty::participant {

// The handlers of one registered saga step.
struct SagaStepHandlers {
  std::string action;
  std::string compensation;
  ActionHandler run;
  CompensationHandler undo;
};

// One unit of work for the worker. Responses are serialized protobuf messages of the matching
// participant.* method (the raw handler output for kQuery).
struct Request {
  enum class Kind { kPrepare, kCommit, kAbort, kAction, kCompensate, kInspect, kQuery };
  Kind kind = Kind::kPrepare;
  std::string xid;
  uint32_t branch_id = 0;               // the branch (2PC) or the step index (kAction, kCompensate)
  std::string op;                       // kPrepare, kAction, kCompensate
  std::string payload;                  // kPrepare, kAction, kCompensate, kQuery
  const QueryHandler* query = nullptr;  // kQuery; owned by the Participant
  // Called exactly once, on the worker thread (or the submitting thread if refused).
  std::function<void(Result<std::string>)> done;
};

struct WorkerOptions {
  std::string service;
  bool sync = true;
  size_t max_queued_requests = 65536;
  size_t max_round_requests = 1024;
  const Clock* clock = nullptr;  // not owned; required
};

class Worker {
 public:
  // store, ops and steps (by action name) must outlive the Worker and not change while it runs.
  // REQUIRES: no compensation name is shared by two steps.
  Worker(Store& store, const std::map<std::string, OpHandlers>& ops,
         const std::map<std::string, SagaStepHandlers>& steps, WorkerOptions options);
  // Stops (see Stop).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Seeds the in-memory set of prepared branches. They are in doubt at once (their age counts
  // from the start of this process, not from their recorded time). REQUIRES: before Start.
  void LoadPrepared(const std::vector<PreparedBranch>& branches);

  void Start();
  // Executes what is already queued, then joins the thread. Later Submits are refused.
  void Stop();

  // Thread-safe. Queues r; refuses it (done called at once) with UNAVAILABLE when stopped and
  // RESOURCE_EXHAUSTED when max_queued_requests are waiting.
  void Submit(Request r);

  // Thread-safe. Up to max PREPARED branches prepared at least older_than_ms before now_unix_ms,
  // in (xid, branch_id) order.
  std::vector<PreparedBranch> InDoubt(int64_t now_unix_ms, int64_t older_than_ms, size_t max) const;

  size_t prepared() const;
  uint64_t requests() const { return requests_.load(); }
  uint64_t rounds() const { return rounds_.load(); }
  uint64_t syncs() const { return syncs_.load(); }
  uint64_t null_compensations() const { return null_compensations_.load(); }
  uint64_t late_actions_refused() const { return late_actions_refused_.load(); }

 private:
  void Run();
  Result<std::string> Execute(const Request& r);
  Result<std::string> Prepare(const Request& r);
  // participant.Commit (commit) or participant.Abort.
  Result<std::string> Decision(const Request& r, bool commit);
  // Runs the commit or abort handler of the PREPARED branch `prepared` and writes `decided`
  // (barrier_rules.h: RecordDecision) with its writes.
  Result<std::string> Decide(const Request& r, const BarrierRecord& prepared,
                             const BarrierRecord& decided, bool commit);
  // Saga steps (worker_saga.cpp).
  Result<std::string> Action(const Request& r);
  Result<std::string> Compensate(const Request& r);
  // Runs step's compensation handler into txn (the barrier rules have checked that the step's
  // action is DONE and is step's action).
  Status Undo(const Request& r, const SagaStepHandlers& step, StoreTxn& txn);
  Result<std::string> Inspect(const Request& r);
  Result<std::string> Query(const Request& r);
  // Writes txn (not synced) and marks the round as needing a sync.
  Status Write(StoreTxn& txn);

  void AddPrepared(const std::string& xid, uint32_t branch_id, int64_t prepared_unix_ms);
  void RemovePrepared(const std::string& xid, uint32_t branch_id);

  Store& store_;
  const std::map<std::string, OpHandlers>& ops_;
  const std::map<std::string, SagaStepHandlers>& steps_;
  // compensation name -> its step (in steps_).
  std::map<std::string, const SagaStepHandlers*> compensations_;
  const WorkerOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread thread_;

  // Worker thread only: writes since the last successful sync.
  bool unsynced_ = false;

  mutable std::mutex prepared_mu_;
  // (xid, branch_id) -> prepared_unix_ms of every PREPARED branch. Guarded by prepared_mu_.
  std::map<std::pair<std::string, uint32_t>, int64_t> prepared_;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> rounds_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> null_compensations_{0};
  std::atomic<uint64_t> late_actions_refused_{0};
};

}  // namespace treaty::participant
