#include "participant/worker.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "participant/barrier_rules.h"
#include "participant/guarded.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant {
namespace {

std::string PrepareReply(v1::Vote vote, const std::string& reason) {
  v1::PrepareResponse response;
  response.set_vote(vote);
  response.set_reason(reason);
  return response.SerializeAsString();
}

std::string DecisionReply() { return v1::DecisionResponse().SerializeAsString(); }

}  // namespace

Worker::Worker(Store& store, const std::map<std::string, OpHandlers>& ops,
               const std::map<std::string, SagaStepHandlers>& steps, WorkerOptions options)
    : store_(store), ops_(ops), steps_(steps), options_(std::move(options)) {
  for (const auto& [action, step] : steps_) compensations_[step.compensation] = &step;
}

Worker::~Worker() { Stop(); }

void Worker::LoadPrepared(const std::vector<PreparedBranch>& branches) {
  std::lock_guard<std::mutex> lock(prepared_mu_);
  for (const PreparedBranch& b : branches) {
    prepared_[{b.xid, b.branch_id}] = std::numeric_limits<int64_t>::min();
  }
}

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Worker::Submit(Request r) {
  Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      refused = Status::Unavailable("participant " + options_.service + " is stopping");
    } else if (queue_.size() >= options_.max_queued_requests) {
      refused = Status::ResourceExhausted("participant " + options_.service + " has " +
                                          std::to_string(queue_.size()) +
                                          " requests queued; retry later");
    } else {
      queue_.push_back(std::move(r));
    }
  }
  if (!refused.ok()) {
    r.done(std::move(refused));
    return;
  }
  cv_.notify_one();
}

void Worker::Run() {
  std::vector<Request> round;
  std::vector<Result<std::string>> results;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has been executed
      while (!queue_.empty() && round.size() < options_.max_round_requests) {
        round.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    results.clear();
    for (const Request& r : round) results.push_back(Execute(r));
    requests_.fetch_add(round.size());
    rounds_.fetch_add(1);

    // Every response of the round waits for this sync, including those that only read: a read may
    // have observed an earlier unsynced write (a repeated prepare returning a vote in flight).
    Status synced;
    if (unsynced_ && options_.sync) {
      synced = store_.SyncWal();
      syncs_.fetch_add(1);
      if (!synced.ok()) {
        spdlog::error("participant service={} WAL sync failed, failing {} responses: {}",
                      options_.service, round.size(), synced.ToString());
      }
    }
    if (synced.ok()) unsynced_ = false;
    for (size_t i = 0; i < round.size(); ++i) {
      if (synced.ok() || !results[i].ok()) {
        round[i].done(std::move(results[i]));
      } else {
        round[i].done(
            Status::Unavailable("participant " + options_.service +
                                " could not make the result durable: " + synced.ToString()));
      }
    }
    round.clear();
  }
}

Result<std::string> Worker::Execute(const Request& r) {
  switch (r.kind) {
    case Request::Kind::kPrepare:
      return Prepare(r);
    case Request::Kind::kCommit:
      return Decision(r, /*commit=*/true);
    case Request::Kind::kAbort:
      return Decision(r, /*commit=*/false);
    case Request::Kind::kAction:
      return Action(r);
    case Request::Kind::kCompensate:
      return Compensate(r);
    case Request::Kind::kInspect:
      return Inspect(r);
    case Request::Kind::kQuery:
      return Query(r);
  }
  return Status::Internal("unknown request kind");
}

Status Worker::Write(StoreTxn& txn) {
  Status s = store_.Write(txn);
  if (s.ok()) unsynced_ = true;
  return s;
}

Result<std::string> Worker::Prepare(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  Result<std::optional<BarrierRecord>> existing = store_.ReadBarrier(r.xid, r.branch_id);
  if (!existing.ok()) return existing.status();
  const PrepareRule rule = OnPrepare(*existing);
  switch (rule.kind) {
    case PrepareRule::Kind::kRepeat:
      spdlog::debug("participant service={} xid={} branch={} repeated prepare, vote {}",
                    options_.service, r.xid, r.branch_id, v1::Vote_Name(rule.vote));
      return PrepareReply(rule.vote, rule.reason);
    case PrepareRule::Kind::kRefuseAborted:
      spdlog::info("participant service={} xid={} branch={} prepare after abort refused",
                   options_.service, r.xid, r.branch_id);
      return PrepareReply(rule.vote, rule.reason);
    case PrepareRule::Kind::kRunHandler:
      break;
  }
  auto op = ops_.find(r.op);
  if (op == ops_.end()) {
    spdlog::warn("participant service={} xid={} branch={} unknown op '{}'", options_.service, r.xid,
                 r.branch_id, r.op);
    return Status::NotFound("service " + options_.service + " has no handler for op " + r.op);
  }
  const BranchContext ctx{r.xid, r.branch_id, r.op, r.payload};
  std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
  Result<PrepareResult> result =
      Guarded("prepare", [&]() -> Result<PrepareResult> { return op->second.prepare(ctx, *txn); });
  if (!result.ok()) {
    spdlog::warn("participant service={} xid={} branch={} prepare failed: {}", options_.service,
                 r.xid, r.branch_id, result.status().ToString());
    return result.status();
  }
  const BarrierRecord rec = RecordVote(*result, r.op, r.payload, options_.clock->UnixMs());
  if (rec.state != v1::BRANCH_PREPARED) txn = store_.BeginTxn();  // NO / READ_ONLY: no effects
  txn->PutBarrier(r.xid, r.branch_id, rec);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} branch={} prepare write failed: {}",
                  options_.service, r.xid, r.branch_id, written.ToString());
    return written;
  }
  if (rec.state == v1::BRANCH_PREPARED) AddPrepared(r.xid, r.branch_id, rec.prepared_unix_ms);
  spdlog::debug("participant service={} xid={} branch={} op={} voted {}", options_.service, r.xid,
                r.branch_id, r.op, v1::Vote_Name(rec.vote));
  return PrepareReply(rec.vote, rec.reason);
}

Result<std::string> Worker::Decision(const Request& r, bool commit) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  Result<std::optional<BarrierRecord>> existing = store_.ReadBarrier(r.xid, r.branch_id);
  if (!existing.ok()) return existing.status();
  const BarrierTarget target{options_.service, r.xid, r.branch_id};
  const DecisionRule rule = commit ? OnCommit(target, *existing) : OnAbort(target, *existing);
  switch (rule.kind) {
    case DecisionRule::Kind::kAcknowledge:
      return DecisionReply();
    case DecisionRule::Kind::kRunHandler:
      return Decide(r, **existing, rule.record, commit);
    case DecisionRule::Kind::kRecordNullAbort: {
      std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
      txn->PutBarrier(r.xid, r.branch_id, rule.record);
      TREATY_RETURN_IF_ERROR(Write(*txn));
      spdlog::info("participant service={} xid={} branch={} abort before prepare recorded",
                   options_.service, r.xid, r.branch_id);
      return DecisionReply();
    }
    case DecisionRule::Kind::kRefuse:
      spdlog::error("participant service={} xid={} branch={} protocol violation: {}",
                    options_.service, r.xid, r.branch_id, rule.violation);
      return rule.refusal;
  }
  return Status::Internal("unknown decision rule");
}

Result<std::string> Worker::Decide(const Request& r, const BarrierRecord& prepared,
                                   const BarrierRecord& decided, bool commit) {
  const char* what = commit ? "commit" : "abort";
  auto op = ops_.find(prepared.op);
  if (op == ops_.end()) {
    spdlog::error(
        "participant service={} xid={} branch={} cannot {}: op '{}' has no handler "
        "(branch stays prepared)",
        options_.service, r.xid, r.branch_id, what, prepared.op);
    return Status::NotFound("service " + options_.service + " has no handler for op " +
                            prepared.op);
  }
  const DecisionHandler& handler = commit ? op->second.commit : op->second.abort;
  const BranchContext ctx{r.xid, r.branch_id, prepared.op, prepared.payload};
  std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
  if (handler) {
    Status s = Guarded(what, [&]() -> Status { return handler(ctx, *txn); });
    if (!s.ok()) {
      spdlog::warn(
          "participant service={} xid={} branch={} {} handler failed (branch stays "
          "prepared): {}",
          options_.service, r.xid, r.branch_id, what, s.ToString());
      return s;
    }
  }
  txn->PutBarrier(r.xid, r.branch_id, decided);
  Status written = Write(*txn);
  if (!written.ok()) {
    spdlog::error("participant service={} xid={} branch={} {} write failed: {}", options_.service,
                  r.xid, r.branch_id, what, written.ToString());
    return written;
  }
  RemovePrepared(r.xid, r.branch_id);
  spdlog::debug("participant service={} xid={} branch={} {}", options_.service, r.xid, r.branch_id,
                commit ? "committed" : "aborted");
  return DecisionReply();
}

Result<std::string> Worker::Inspect(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  Result<std::vector<std::pair<uint32_t, BarrierRecord>>> branches = store_.BarriersOf(r.xid);
  if (!branches.ok()) return branches.status();
  Result<std::vector<StoredStep>> steps = store_.StepsOf(r.xid);
  if (!steps.ok()) return steps.status();
  v1::InspectResponse response;
  for (const auto& [branch_id, rec] : *branches) {
    v1::InspectedBranch* b = response.add_branches();
    b->set_branch_id(branch_id);
    b->set_state(rec.state);
  }
  for (const StoredStep& stored : *steps) {  // sorted by (step, kind)
    if (response.steps_size() == 0 ||
        response.steps(response.steps_size() - 1).step() != stored.step) {
      response.add_steps()->set_step(stored.step);
    }
    v1::InspectedStep* step = response.mutable_steps(response.steps_size() - 1);
    if (stored.kind == StepKind::kAction) {
      step->set_action(static_cast<v1::StepActionState>(stored.record.state));
      step->set_reason(stored.record.reason);
    } else {
      step->set_compensation(static_cast<v1::StepCompensationState>(stored.record.state));
    }
  }
  return response.SerializeAsString();
}

Result<std::string> Worker::Query(const Request& r) {
  std::unique_ptr<StoreTxn> reader = store_.BeginTxn();  // never written
  return Guarded("query", [&]() -> Result<std::string> { return (*r.query)(r.payload, *reader); });
}

void Worker::AddPrepared(const std::string& xid, uint32_t branch_id, int64_t prepared_unix_ms) {
  std::lock_guard<std::mutex> lock(prepared_mu_);
  prepared_[{xid, branch_id}] = prepared_unix_ms;
}

void Worker::RemovePrepared(const std::string& xid, uint32_t branch_id) {
  std::lock_guard<std::mutex> lock(prepared_mu_);
  prepared_.erase({xid, branch_id});
}

std::vector<PreparedBranch> Worker::InDoubt(int64_t now_unix_ms, int64_t older_than_ms,
                                            size_t max) const {
  const int64_t cutoff = now_unix_ms - older_than_ms;
  std::vector<PreparedBranch> out;
  std::lock_guard<std::mutex> lock(prepared_mu_);
  for (const auto& [key, prepared_unix_ms] : prepared_) {
    if (out.size() >= max) break;
    if (prepared_unix_ms <= cutoff) out.push_back({key.first, key.second, prepared_unix_ms});
  }
  return out;
}

size_t Worker::prepared() const {
  std::lock_guard<std::mutex> lock(prepared_mu_);
  return prepared_.size();
}

}  // namespace treaty::participant
