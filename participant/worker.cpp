#include "participant/worker.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "participant/guarded.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant {
namespace {

v1::Vote ToWire(Vote vote) {
  switch (vote) {
    case Vote::kYes:
      return v1::YES;
    case Vote::kNo:
      return v1::NO;
    case Vote::kReadOnly:
      return v1::READ_ONLY;
  }
  return v1::VOTE_UNSPECIFIED;
}

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
      return Commit(r);
    case Request::Kind::kAbort:
      return Abort(r);
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
  if (existing->has_value()) {
    const BarrierRecord& rec = **existing;
    if (rec.vote != v1::VOTE_UNSPECIFIED) {
      spdlog::debug("participant service={} xid={} branch={} repeated prepare, vote {}",
                    options_.service, r.xid, r.branch_id, v1::Vote_Name(rec.vote));
      return PrepareReply(rec.vote, rec.reason);
    }
    spdlog::info("participant service={} xid={} branch={} prepare after abort refused",
                 options_.service, r.xid, r.branch_id);
    return PrepareReply(v1::NO, "aborted before prepare");
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
  BarrierRecord rec;
  rec.vote = ToWire(result->vote);
  if (result->vote == Vote::kYes) {
    rec.state = v1::BRANCH_PREPARED;
    rec.prepared_unix_ms = options_.clock->UnixMs();
    rec.op = r.op;
    rec.payload = r.payload;
  } else {
    txn = store_.BeginTxn();  // a NO or READ_ONLY voter leaves no effects behind
    rec.state = result->vote == Vote::kNo ? v1::BRANCH_ABORTED : v1::BRANCH_READ_ONLY;
    rec.reason = result->reason;
  }
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

Result<std::string> Worker::Commit(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  Result<std::optional<BarrierRecord>> existing = store_.ReadBarrier(r.xid, r.branch_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    spdlog::error(
        "participant service={} xid={} branch={} protocol violation: commit of a branch "
        "that was never prepared here",
        options_.service, r.xid, r.branch_id);
    return Status::FailedPrecondition("xid=" + r.xid + " branch=" + std::to_string(r.branch_id) +
                                      " was never prepared at " + options_.service);
  }
  const BarrierRecord& rec = **existing;
  switch (rec.state) {
    case v1::BRANCH_PREPARED:
      return Decide(r, rec, /*commit=*/true);
    case v1::BRANCH_COMMITTED:
    case v1::BRANCH_READ_ONLY:
      return DecisionReply();
    default:
      spdlog::error(
          "participant service={} xid={} branch={} protocol violation: commit of an "
          "aborted branch",
          options_.service, r.xid, r.branch_id);
      return Status::FailedPrecondition("xid=" + r.xid + " branch=" + std::to_string(r.branch_id) +
                                        " is aborted at " + options_.service + "; commit refused");
  }
}

Result<std::string> Worker::Abort(const Request& r) {
  TREATY_RETURN_IF_ERROR(ValidateXid(r.xid));
  Result<std::optional<BarrierRecord>> existing = store_.ReadBarrier(r.xid, r.branch_id);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    // Null abort: record it so a prepare arriving later is refused instead of hanging.
    BarrierRecord rec;
    rec.state = v1::BRANCH_ABORTED;
    std::unique_ptr<StoreTxn> txn = store_.BeginTxn();
    txn->PutBarrier(r.xid, r.branch_id, rec);
    TREATY_RETURN_IF_ERROR(Write(*txn));
    spdlog::info("participant service={} xid={} branch={} abort before prepare recorded",
                 options_.service, r.xid, r.branch_id);
    return DecisionReply();
  }
  const BarrierRecord& rec = **existing;
  switch (rec.state) {
    case v1::BRANCH_PREPARED:
      return Decide(r, rec, /*commit=*/false);
    case v1::BRANCH_ABORTED:
    case v1::BRANCH_READ_ONLY:
      return DecisionReply();
    default:
      spdlog::error(
          "participant service={} xid={} branch={} protocol violation: abort of a "
          "committed branch",
          options_.service, r.xid, r.branch_id);
      return Status::FailedPrecondition("xid=" + r.xid + " branch=" + std::to_string(r.branch_id) +
                                        " is committed at " + options_.service + "; abort refused");
  }
}

Result<std::string> Worker::Decide(const Request& r, const BarrierRecord& prepared, bool commit) {
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
  BarrierRecord rec = prepared;
  rec.state = commit ? v1::BRANCH_COMMITTED : v1::BRANCH_ABORTED;
  rec.payload.clear();  // only needed while the decision is pending
  txn->PutBarrier(r.xid, r.branch_id, rec);
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
