// SagaCore: submission, the log pipeline (one atomic append in flight per saga), durable
// progress, waiters, recovery and queries. Calls and their outcomes: saga_core_compensate.cpp.
#include "saga/saga_core.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "saga/saga_rules.h"

namespace treaty::saga {

using internal::IsFinal;
using internal::NeedsCompensation;

// Most clients that may wait on one saga at a time. Bounds the memory a client retrying its
// submission in a loop can pin; further attaches get RESOURCE_EXHAUSTED.
constexpr size_t kMaxWaiters = 64;

const char* PhaseName(Phase phase) { return phase == Phase::kAction ? "action" : "compensation"; }

const char* ResolveActionName(ResolveAction action) {
  switch (action) {
    case ResolveAction::kRetry:
      return "retry";
    case ResolveAction::kMarkCompensated:
      return "mark-compensated";
    case ResolveAction::kAbort:
      return "abort";
  }
  return "unknown";
}

bool Effects::empty() const {
  return appends.empty() && calls.empty() && timers.empty() && replies.empty() && finished.empty();
}

SagaCore::SagaCore(SagaCoreOptions options, const Clock& clock, Random& random)
    : options_(options), clock_(clock), random_(random) {}

size_t SagaCore::active() const { return sagas_.size(); }

SagaCore::Saga* SagaCore::Find(const std::string& xid) {
  auto it = sagas_.find(xid);
  return it == sagas_.end() ? nullptr : &it->second;
}

void SagaCore::Touch(Saga& saga) { saga.updated_unix_ms = clock_.UnixMs(); }

// ---- Submit ----

Effects SagaCore::Handle(const Submit& in) {
  Effects out;
  auto refuse = [&](Status status) {
    out.replies.push_back({in.client, in.xid, std::move(status), v1::SAGA_STATE_UNSPECIFIED, ""});
  };
  if (in.xid.empty()) {
    refuse(Status::InvalidArgument("xid is empty"));
    return out;
  }
  if (Status s = Validate(in.definition); !s.ok()) {
    refuse(s.WithPrefix("xid=" + in.xid));
    return out;
  }
  if (Saga* existing = Find(in.xid)) {
    Attach(*existing, in, out);
    return out;
  }
  Result<StepGraph> graph = BuildGraph(in.definition);  // cannot fail after Validate
  if (!graph.ok()) {
    refuse(graph.status());
    return out;
  }
  Saga& saga = sagas_[in.xid];
  saga.xid = in.xid;
  saga.definition = in.definition;
  saga.graph = std::move(*graph);
  saga.steps.resize(static_cast<size_t>(in.definition.steps_size()));
  saga.start_ms = clock_.NowMs();
  saga.created_unix_ms = saga.updated_unix_ms = clock_.UnixMs();
  saga.waiters.push_back({in.client, in.wait});

  v1::LogEvent begun = NewEvent(saga);
  *begun.mutable_saga_begun()->mutable_saga() = saga.definition;
  Queue(saga, std::move(begun));
  Advance(saga, out);
  return out;
}

void SagaCore::Attach(Saga& saga, const Submit& in, Effects& out) {
  if (!internal::SameDefinition(saga.definition, in.definition)) {
    out.replies.push_back(
        {in.client, in.xid,
         Status::AlreadyExists("xid=" + in.xid +
                               " is already in progress with a different saga; use a new xid"),
         v1::SAGA_STATE_UNSPECIFIED, ""});
    return;
  }
  if (saga.waiters.size() >= kMaxWaiters) {
    out.replies.push_back(
        {in.client, in.xid,
         Status::ResourceExhausted("xid=" + in.xid + " already has " + std::to_string(kMaxWaiters) +
                                   " waiting clients; retry later"),
         v1::SAGA_STATE_UNSPECIFIED, ""});
    return;
  }
  saga.waiters.push_back({in.client, in.wait});
  ReplyWaiters(saga, out);
}

void SagaCore::ReplyWaiters(Saga& saga, Effects& out) {
  const bool settled = IsFinal(saga.durable) || saga.durable == v1::SAGA_STUCK;
  auto passed = [&](const Waiter& w) {
    return w.wait ? settled : saga.durable != v1::SAGA_STATE_UNSPECIFIED;
  };
  for (const Waiter& w : saga.waiters) {
    if (passed(w))
      out.replies.push_back({w.client, saga.xid, Status::Ok(), saga.durable, saga.reason});
  }
  std::erase_if(saga.waiters, passed);
}

// ---- The log pipeline ----

v1::LogEvent SagaCore::NewEvent(const Saga& saga) const {
  v1::LogEvent event;
  event.set_xid(saga.xid);
  event.set_unix_ms(clock_.UnixMs());
  return event;
}

void SagaCore::Queue(Saga& saga, v1::LogEvent event) {
  saga.queued.events.push_back(std::move(event));
}

void SagaCore::QueueStep(Saga& saga, uint32_t step, v1::StepState state) {
  const Step& s = saga.steps[step];
  v1::LogEvent event = NewEvent(saga);
  v1::StepChanged* changed = event.mutable_step_changed();
  changed->set_step(step);
  changed->set_state(state);
  changed->set_attempts(s.attempts - s.budget_base);
  changed->set_error(s.last_error);
  Queue(saga, std::move(event));
}

void SagaCore::QueueSaga(Saga& saga, v1::SagaState state) {
  v1::LogEvent event = NewEvent(saga);
  event.mutable_saga_changed()->set_state(state);
  event.mutable_saga_changed()->set_reason(saga.reason);
  Queue(saga, std::move(event));
}

void SagaCore::Flush(Saga& saga, Effects& out) {
  if (saga.appending.token != 0 || saga.log_retry_pending || saga.queued.events.empty()) return;
  saga.appending = std::move(saga.queued);
  saga.queued = Batch{};
  saga.appending.token = next_token_++;
  out.appends.push_back({saga.appending.token, saga.appending.events});
}

Effects SagaCore::Handle(const LogDone& in) {
  Effects out;
  Saga* found = Find(in.xid);
  if (found == nullptr || in.token == 0 || found->appending.token != in.token) return out;
  Saga& saga = *found;
  if (!in.status.ok()) {
    if (saga.durable == v1::SAGA_STATE_UNSPECIFIED) {
      // SagaBegun failed: nothing was sent to any participant, so the saga can simply be dropped.
      // Should the failed write be durable after all, recovery resumes it from the log.
      const Status why = in.status.WithPrefix("xid=" + in.xid + ": logging the saga failed");
      for (const Waiter& w : saga.waiters) {
        out.replies.push_back({w.client, saga.xid, why, v1::SAGA_STATE_UNSPECIFIED, ""});
      }
      sagas_.erase(in.xid);
      return out;
    }
    saga.appending.token = 0;
    saga.log_retry_pending = true;
    ArmTimer(saga, {TimerKind::kRetryLog, 0}, options_.log_retry_ms, out);
    return out;
  }
  Batch done = std::move(saga.appending);
  saga.appending = Batch{};
  for (const v1::LogEvent& event : done.events) ApplyDurable(saga, event);
  Touch(saga);
  for (uint64_t client : done.resolve_clients) {
    out.replies.push_back({client, saga.xid, Status::Ok(), saga.state, saga.reason});
  }
  ReplyWaiters(saga, out);
  if (IsFinal(saga.durable)) {
    out.finished.push_back({saga.xid, saga.durable, clock_.NowMs() - saga.start_ms});
    sagas_.erase(in.xid);
    return out;
  }
  Advance(saga, out);
  return out;
}

// Mirrors treaty::log::Fold for the parts the core acts on.
void SagaCore::ApplyDurable(Saga& saga, const v1::LogEvent& event) {
  switch (event.event_case()) {
    case v1::LogEvent::kSagaBegun:
      saga.durable = v1::SAGA_RUNNING;
      break;
    case v1::LogEvent::kStepChanged: {
      const v1::StepChanged& changed = event.step_changed();
      if (changed.step() < saga.steps.size()) saga.steps[changed.step()].durable = changed.state();
      break;
    }
    case v1::LogEvent::kSagaChanged:
      saga.durable = event.saga_changed().state();
      break;
    case v1::LogEvent::kResolved: {
      const v1::Resolved& resolved = event.resolved();
      if (resolved.action() == ResolveActionName(ResolveAction::kAbort)) {
        if (saga.durable == v1::SAGA_RUNNING) saga.durable = v1::SAGA_COMPENSATING;
      } else {
        if (resolved.action() == ResolveActionName(ResolveAction::kMarkCompensated) &&
            resolved.step() < saga.steps.size()) {
          saga.steps[resolved.step()].durable = v1::STEP_COMPENSATED;
        }
        saga.durable = v1::SAGA_COMPENSATING;
      }
      break;
    }
    default:
      break;
  }
}

// ---- Progress ----

void SagaCore::Advance(Saga& saga, Effects& out) {
  if (saga.state == v1::SAGA_RUNNING) {
    QueueForward(saga);
  } else if (saga.state == v1::SAGA_COMPENSATING || saga.state == v1::SAGA_STUCK) {
    const bool done = std::none_of(saga.steps.begin(), saga.steps.end(),
                                   [](const Step& s) { return NeedsCompensation(s.state); });
    if (done) {
      saga.state = v1::SAGA_COMPENSATED;
      CancelAllRetries(saga);
      QueueSaga(saga, v1::SAGA_COMPENSATED);
    }
  }
  SendCalls(saga, out);
  Flush(saga, out);
}

void SagaCore::QueueForward(Saga& saga) {
  for (uint32_t i : saga.graph.order) {
    Step& s = saga.steps[i];
    if (s.state != v1::STEP_PENDING) continue;
    const bool ready =
        std::all_of(saga.graph.deps[i].begin(), saga.graph.deps[i].end(),
                    [&](uint32_t d) { return saga.steps[d].state == v1::STEP_SUCCEEDED; });
    if (!ready) continue;
    s.state = v1::STEP_RUNNING;
    s.attempts = s.budget_base = 0;
    QueueStep(saga, i, v1::STEP_RUNNING);
  }
  const bool all_succeeded = std::all_of(saga.steps.begin(), saga.steps.end(), [](const Step& s) {
    return s.state == v1::STEP_SUCCEEDED;
  });
  if (all_succeeded) {
    saga.state = v1::SAGA_COMPLETED;
    saga.reason.clear();
    QueueSaga(saga, v1::SAGA_COMPLETED);
  }
}

// ---- Recovery ----

Effects SagaCore::Recover(const std::vector<v1::TxnRecord>& active) {
  Effects out;
  for (const v1::TxnRecord& rec : active) {
    const bool resumable = rec.saga_state() == v1::SAGA_RUNNING ||
                           rec.saga_state() == v1::SAGA_COMPENSATING ||
                           rec.saga_state() == v1::SAGA_STUCK;
    if (rec.mode() != kSagaMode || !resumable || rec.xid().empty() ||
        sagas_.count(rec.xid()) != 0) {
      continue;
    }
    Result<StepGraph> graph = BuildGraph(rec.saga());
    if (!graph.ok() || rec.steps_size() != rec.saga().steps_size() || rec.steps_size() == 0) {
      spdlog::error("saga: xid={} cannot be recovered: its record is inconsistent ({})", rec.xid(),
                    graph.ok() ? "step count" : graph.status().ToString());
      continue;
    }
    Saga& saga = sagas_[rec.xid()];
    saga.xid = rec.xid();
    saga.definition = rec.saga();
    saga.graph = std::move(*graph);
    saga.steps.resize(static_cast<size_t>(rec.steps_size()));
    for (size_t i = 0; i < saga.steps.size(); ++i) {
      const v1::StepRecord& r = rec.steps(static_cast<int>(i));
      saga.steps[i].state = saga.steps[i].durable = r.state();
      saga.steps[i].attempts = r.attempts();
      saga.steps[i].last_error = r.error();
    }
    saga.state = saga.durable = rec.saga_state();
    saga.reason = rec.reason();
    saga.start_ms = clock_.NowMs();
    saga.created_unix_ms = rec.created_unix_ms();
    saga.updated_unix_ms = clock_.UnixMs();
    if (saga.state == v1::SAGA_RUNNING) {
      // A FAILED step is logged together with the turn-around; a record without it is repaired.
      for (size_t i = 0; i < saga.steps.size(); ++i) {
        if (saga.steps[i].state == v1::STEP_FAILED) {
          TurnAround(saga,
                     "step " + saga.definition.steps(static_cast<int>(i)).id() +
                         " failed: " + saga.steps[i].last_error,
                     /*by_resolve=*/false);
          break;
        }
      }
    }
    Advance(saga, out);
  }
  return out;
}

// ---- Queries ----

namespace {

void AddStep(const v1::SagaStep& def, v1::StepState state, uint32_t attempts,
             const std::string& last_error, v1::Transaction* view) {
  v1::StepStatus* status = view->add_steps();
  status->set_id(def.id());
  status->set_service(def.service());
  status->set_action(def.action());
  status->set_compensation(def.compensation());
  status->set_state(state);
  status->set_attempts(attempts);
  status->set_last_error(last_error);
}

}  // namespace

Reply ReplyForLogged(const Submit& in, const v1::TxnRecord& rec) {
  auto refuse = [&](const std::string& why) {
    return Reply{in.client, in.xid, Status::AlreadyExists("xid " + in.xid + why),
                 v1::SAGA_STATE_UNSPECIFIED, ""};
  };
  if (rec.mode() != kSagaMode) return refuse(" is used by a 2PC transaction");
  v1::SagaDefinition logged = rec.saga();
  v1::SagaDefinition asked = in.definition;
  for (auto& step : *logged.mutable_steps()) step.clear_instance();
  for (auto& step : *asked.mutable_steps()) step.clear_instance();
  if (!google::protobuf::util::MessageDifferencer::Equals(logged, asked)) {
    return refuse(" was already used for a different saga; use a new xid");
  }
  return Reply{in.client, in.xid, Status::Ok(), rec.saga_state(), rec.reason()};
}

v1::Transaction TransactionFromSagaRecord(const v1::TxnRecord& rec) {
  v1::Transaction view;
  view.set_xid(rec.xid());
  view.set_mode(kSagaMode);
  view.set_saga_state(rec.saga_state());
  view.set_reason(rec.reason());
  view.set_created_unix_ms(rec.created_unix_ms());
  view.set_updated_unix_ms(rec.updated_unix_ms());
  for (int i = 0; i < rec.saga().steps_size(); ++i) {
    const v1::StepRecord step = i < rec.steps_size() ? rec.steps(i) : v1::StepRecord();
    AddStep(rec.saga().steps(i), step.state(), step.attempts(), step.error(), &view);
  }
  return view;
}

Status SagaCore::CheckInvariants() const {
  for (const auto& [xid, saga] : sagas_) {
    auto broken = [&](const std::string& what) {
      return Status::Internal("xid=" + xid + " (" + v1::SagaState_Name(saga.state) + "): " + what);
    };
    for (size_t i = 0; i < saga.steps.size(); ++i) {
      const Step& s = saga.steps[i];
      const std::string step = "step " + std::to_string(i);
      if (s.in_flight && s.retry_timer != 0)
        return broken(step + " is in flight and waiting to retry");
      if (saga.state == v1::SAGA_RUNNING &&
          (s.state == v1::STEP_COMPENSATING || s.state == v1::STEP_COMPENSATED)) {
        return broken(step + " is " + v1::StepState_Name(s.state) + " while the saga runs forward");
      }
      if (saga.state == v1::SAGA_COMPLETED && s.state != v1::STEP_SUCCEEDED) {
        return broken(step + " is " + v1::StepState_Name(s.state) + " in a COMPLETED saga");
      }
      if (saga.state == v1::SAGA_COMPENSATED && NeedsCompensation(s.state)) {
        return broken(step + " is " + v1::StepState_Name(s.state) + " in a COMPENSATED saga");
      }
      if (s.state == v1::STEP_COMPENSATED && s.in_flight) {
        return broken(step + " is COMPENSATED with a call in flight");
      }
    }
  }
  return Status::Ok();
}

std::optional<v1::Transaction> SagaCore::Get(const std::string& xid) const {
  auto it = sagas_.find(xid);
  if (it == sagas_.end()) return std::nullopt;
  const Saga& saga = it->second;
  v1::Transaction view;
  view.set_xid(saga.xid);
  view.set_mode(kSagaMode);
  view.set_saga_state(saga.state);
  view.set_reason(saga.reason);
  view.set_created_unix_ms(saga.created_unix_ms);
  view.set_updated_unix_ms(saga.updated_unix_ms);
  for (size_t i = 0; i < saga.steps.size(); ++i) {
    const Step& s = saga.steps[i];
    AddStep(saga.definition.steps(static_cast<int>(i)), s.state, s.attempts - s.budget_base,
            s.last_error, &view);
  }
  return view;
}

}  // namespace treaty::saga
