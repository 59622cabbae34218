// Test fixture for SagaCore: a fake clock, seeded randomness, definition builders and helpers that
// feed inputs and complete appends.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "saga/saga_core.h"

namespace treaty::saga::testing_util {

// "id" or "id:dep1,dep2" per step; service "svc-<id>", action "do-<id>", compensation "undo-<id>".
inline v1::SagaDefinition Def(const std::vector<std::string>& steps,
                              uint32_t max_compensation_attempts = 0) {
  v1::SagaDefinition def;
  def.set_max_compensation_attempts(max_compensation_attempts);
  for (const std::string& spec : steps) {
    v1::SagaStep* step = def.add_steps();
    const size_t colon = spec.find(':');
    step->set_id(spec.substr(0, colon));
    step->set_service("svc-" + step->id());
    step->set_action("do-" + step->id());
    step->set_compensation("undo-" + step->id());
    step->set_payload("{\"n\":1}");
    if (colon == std::string::npos) continue;
    std::string deps = spec.substr(colon + 1);
    size_t start = 0;
    while (start <= deps.size()) {
      const size_t comma = deps.find(',', start);
      step->add_after(deps.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return def;
}

inline void Merge(Effects& into, Effects from) {
  for (auto& a : from.appends) into.appends.push_back(std::move(a));
  for (auto& c : from.calls) into.calls.push_back(std::move(c));
  for (auto& t : from.timers) into.timers.push_back(std::move(t));
  for (auto& r : from.replies) into.replies.push_back(std::move(r));
  for (auto& f : from.finished) into.finished.push_back(std::move(f));
}

// Steps called in `phase`, in effect order.
inline std::vector<uint32_t> Called(const Effects& e, Phase phase) {
  std::vector<uint32_t> steps;
  for (const CallStep& c : e.calls) {
    if (c.phase == phase) steps.push_back(c.step);
  }
  return steps;
}

// Every event of every append, flattened.
inline std::vector<v1::LogEvent> Events(const Effects& e) {
  std::vector<v1::LogEvent> events;
  for (const AppendLog& a : e.appends)
    events.insert(events.end(), a.events.begin(), a.events.end());
  return events;
}

// "SagaBegun", "a:RUNNING" style (step ids from def), "saga:COMPENSATING", "resolved:retry".
inline std::vector<std::string> Describe(const std::vector<v1::LogEvent>& events,
                                         const v1::SagaDefinition& def) {
  std::vector<std::string> out;
  for (const v1::LogEvent& e : events) {
    if (e.has_saga_begun()) {
      out.push_back("SagaBegun");
    } else if (e.has_step_changed()) {
      out.push_back(def.steps(static_cast<int>(e.step_changed().step())).id() + ":" +
                    v1::StepState_Name(e.step_changed().state()));
    } else if (e.has_saga_changed()) {
      out.push_back("saga:" + v1::SagaState_Name(e.saga_changed().state()));
    } else if (e.has_resolved()) {
      out.push_back("resolved:" + e.resolved().action());
    } else {
      out.push_back("?");
    }
  }
  return out;
}

using Strings = std::vector<std::string>;

class SagaCoreTest : public ::testing::Test {
 protected:
  // Submits and completes the first append: the saga is durably begun, root actions are out.
  Effects Started(const std::string& xid, const v1::SagaDefinition& def, bool wait = false,
                  uint64_t client = 1) {
    Effects submitted = core_.Handle(Submit{xid, def, wait, client});
    EXPECT_EQ(submitted.appends.size(), 1u) << "Submit must append SagaBegun";
    return Durable(xid, submitted);
  }
  // Completes every append in e with OK, and the appends those completions make, until none is
  // left. Returns all effects after e.
  Effects Durable(const std::string& xid, const Effects& e) {
    Effects all;
    std::vector<AppendLog> pending = e.appends;
    while (!pending.empty()) {
      const uint64_t token = pending.front().token;
      pending.erase(pending.begin());
      Effects next = core_.Handle(LogDone{xid, token, Status::Ok()});
      pending.insert(pending.end(), next.appends.begin(), next.appends.end());
      Merge(all, std::move(next));
    }
    return all;
  }
  Effects Reply(const std::string& xid, uint32_t step, Phase phase,
                v1::StepOutcome outcome = v1::STEP_DONE, const std::string& reason = "") {
    return core_.Handle(StepReplied{xid, step, phase, outcome, reason});
  }
  // Replies and makes the resulting appends durable; returns the reply's and the completions'
  // effects together.
  Effects ReplyDurably(const std::string& xid, uint32_t step, Phase phase,
                       v1::StepOutcome outcome = v1::STEP_DONE, const std::string& reason = "") {
    Effects e = Reply(xid, step, phase, outcome, reason);
    Effects after = Durable(xid, e);
    Merge(e, std::move(after));
    return e;
  }
  Effects Fail(const std::string& xid, uint32_t step, Phase phase, Status status,
               uint32_t attempt = 0) {
    return core_.Handle(CallFailed{xid, step, phase, attempt, std::move(status)});
  }
  Effects Fire(const std::string& xid, uint64_t timer_id) {
    return core_.Handle(TimerFired{xid, timer_id});
  }

  FakeClock clock_;
  SeededRandom random_{42};
  SagaCore core_{SagaCoreOptions{}, clock_, random_};
};

}  // namespace treaty::saga::testing_util
