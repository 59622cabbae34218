// A small service used by the participant tests: ops whose handlers count their calls and write
// recognizable keys, and a query that reads one key.
#pragma once

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "participant/participant.h"
#include "tests/unit/participant/participant_test_util.h"

namespace treaty::participant::testing {

inline constexpr char kGetMethod[] = "test.Get";

struct HandlerCalls {
  std::atomic<int> prepare{0};
  std::atomic<int> commit{0};
  std::atomic<int> abort{0};
};

// Ops (payload is the key they write, "k" by default):
//   put    prepare: key=prepared -> YES; commit: committed/<key>=<xid>; abort: aborted/<key>=<xid>
//   no     prepare: writes junk/<key> then votes NO "not today"
//   ro     prepare: writes junk/<key> then votes READ_ONLY
//   throw  prepare: writes junk/<key> then throws
//   fail   prepare: returns UNAVAILABLE "try again"
//   incr   prepare: counter += 1 (read-modify-write) -> YES
// Query test.Get: the value at the key in the request payload, or "<none>".
inline void InstallTestService(Participant& p, HandlerCalls& calls) {
  auto key_of = [](const BranchContext& ctx) { return ctx.payload.empty() ? "k" : ctx.payload; };
  p.RegisterOp("put",
               {[&calls, key_of](const BranchContext& ctx, LocalTxn& txn) -> Result<PrepareResult> {
                  ++calls.prepare;
                  txn.Put(key_of(ctx), "prepared");
                  return PrepareResult::Yes();
                },
                [&calls, key_of](const BranchContext& ctx, LocalTxn& txn) {
                  ++calls.commit;
                  txn.Put("committed/" + key_of(ctx), ctx.xid);
                  return Status::Ok();
                },
                [&calls, key_of](const BranchContext& ctx, LocalTxn& txn) {
                  ++calls.abort;
                  txn.Put("aborted/" + key_of(ctx), ctx.xid);
                  return Status::Ok();
                }});
  p.RegisterOp("no",
               {[&calls, key_of](const BranchContext& ctx, LocalTxn& txn) -> Result<PrepareResult> {
                  ++calls.prepare;
                  txn.Put("junk/" + key_of(ctx), "x");
                  return PrepareResult::No("not today");
                },
                nullptr, nullptr});
  p.RegisterOp("ro",
               {[&calls, key_of](const BranchContext& ctx, LocalTxn& txn) -> Result<PrepareResult> {
                  ++calls.prepare;
                  txn.Put("junk/" + key_of(ctx), "x");
                  return PrepareResult::ReadOnly();
                },
                nullptr, nullptr});
  p.RegisterOp("throw",
               {[&calls, key_of](const BranchContext& ctx, LocalTxn& txn) -> Result<PrepareResult> {
                  ++calls.prepare;
                  txn.Put("junk/" + key_of(ctx), "x");
                  throw std::runtime_error("handler bug");
                },
                nullptr, nullptr});
  p.RegisterOp("fail", {[&calls](const BranchContext&, LocalTxn&) -> Result<PrepareResult> {
                          ++calls.prepare;
                          return Status::Unavailable("try again");
                        },
                        nullptr, nullptr});
  p.RegisterOp("incr", {[&calls](const BranchContext&, LocalTxn& txn) -> Result<PrepareResult> {
                          ++calls.prepare;
                          Result<std::optional<std::string>> v = txn.Get("counter");
                          if (!v.ok()) return v.status();
                          const int n = v->has_value() ? std::stoi(**v) : 0;
                          txn.Put("counter", std::to_string(n + 1));
                          return PrepareResult::Yes();
                        },
                        nullptr, nullptr});
  p.RegisterQuery(kGetMethod, [](const std::string& key, LocalReader& db) -> Result<std::string> {
    Result<std::optional<std::string>> v = db.Get(key);
    if (!v.ok()) return v.status();
    return v->value_or("<none>");
  });
}

// A started participant running the test service on a data dir, plus a client for it.
class TestParticipant {
 public:
  explicit TestParticipant(ParticipantOptions options) : participant_(options) {
    InstallTestService(participant_, calls_);
    start_status_ = participant_.Start();
    if (start_status_.ok()) client_ = std::make_unique<ParticipantClient>(participant_.address());
  }

  const Status& start_status() const { return start_status_; }
  Participant& participant() { return participant_; }
  ParticipantClient& client() { return *client_; }
  HandlerCalls& calls() { return calls_; }
  // The value of a service key, "<none>" if absent.
  std::string Get(const std::string& key) {
    Result<std::string> v = client_->Call(kGetMethod, key);
    return v.ok() ? *v : "error: " + v.status().ToString();
  }

 private:
  HandlerCalls calls_;
  Participant participant_;
  Status start_status_;
  std::unique_ptr<ParticipantClient> client_;
};

inline ParticipantOptions TestOptions(const std::string& dir) {
  ParticipantOptions options;
  options.service = "svc";
  options.data_dir = dir;
  return options;
}

}  // namespace treaty::participant::testing
