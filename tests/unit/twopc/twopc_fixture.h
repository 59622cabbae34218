// Test fixture for TwoPcCore: a fake clock, a seeded random source and short helpers that feed one
// input each and return the core's effects.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "twopc/twopc_core.h"

namespace treaty::twopc::testing_util {

inline v1::Branch MakeBranch(const std::string& service, const std::string& op = "op",
                             const std::string& payload = "{}") {
  v1::Branch b;
  b.set_service(service);
  b.set_op(op);
  b.set_payload(payload);
  return b;
}

// Branch ids of the calls in `e` for `phase`, in emission order.
inline std::vector<uint32_t> CallBranches(const Effects& e, Phase phase) {
  std::vector<uint32_t> out;
  for (const CallParticipant& c : e.calls) {
    if (c.phase == phase) out.push_back(c.branch);
  }
  return out;
}

inline size_t CountCalls(const Effects& e, Phase phase) { return CallBranches(e, phase).size(); }

class TwoPcCoreTest : public ::testing::Test {
 protected:
  static CoreOptions Options() {
    CoreOptions o;
    o.default_prepare_timeout_ms = 5000;
    o.retry.initial_backoff_ms = 20;
    o.retry.max_backoff_ms = 2000;
    o.log_retry_ms = 100;
    return o;
  }

  static std::vector<v1::Branch> Branches(const std::vector<std::string>& services) {
    std::vector<v1::Branch> out;
    for (const std::string& s : services) out.push_back(MakeBranch(s));
    return out;
  }

  Effects DoSubmit(const std::string& xid, const std::vector<std::string>& services,
                   bool wait = false, uint64_t client = 1, uint32_t prepare_timeout_ms = 0) {
    Submit in;
    in.xid = xid;
    in.branches = Branches(services);
    in.wait = wait;
    in.client = client;
    in.prepare_timeout_ms = prepare_timeout_ms;
    return core_.Handle(in);
  }
  Effects Logged(const std::string& xid, LogStep step, Status status = Status::Ok()) {
    return core_.Handle(LogDone{xid, step, std::move(status)});
  }
  // Submit + BEGIN durable; returns the effects of the BEGIN completion.
  Effects Started(const std::string& xid, const std::vector<std::string>& services,
                  bool wait = false, uint64_t client = 1) {
    Effects submitted = DoSubmit(xid, services, wait, client);
    EXPECT_EQ(submitted.appends.size(), 1u) << "Submit of a new xid must append BEGIN";
    return Logged(xid, LogStep::kBegin);
  }
  Effects VoteOn(const std::string& xid, uint32_t branch, v1::Vote vote,
                 const std::string& reason = "") {
    return core_.Handle(VoteReceived{xid, branch, vote, reason});
  }
  Effects Ack(const std::string& xid, uint32_t branch, Phase phase) {
    return core_.Handle(Acked{xid, branch, phase});
  }
  Effects Fail(const std::string& xid, uint32_t branch, Phase phase, Status status) {
    return core_.Handle(CallFailed{xid, branch, phase, std::move(status)});
  }
  Effects Fire(const std::string& xid, uint64_t timer_id) {
    return core_.Handle(TimerFired{xid, timer_id});
  }
  // Runs xid to COMMITTING: started, every branch votes YES, COMMIT durable. Returns the effects
  // of the decision's completion (the COMMIT calls).
  Effects ToCommitting(const std::string& xid, const std::vector<std::string>& services) {
    Started(xid, services);
    for (uint32_t b = 0; b < services.size(); ++b) VoteOn(xid, b, v1::YES);
    return Logged(xid, LogStep::kDecision);
  }

  v1::TxState StateOf(const std::string& xid) {
    auto tx = core_.Get(xid);
    return tx ? tx->state() : v1::TX_STATE_UNSPECIFIED;
  }

  FakeClock clock_;
  SeededRandom random_{7};
  TwoPcCore core_{Options(), clock_, random_};
};

}  // namespace treaty::twopc::testing_util
