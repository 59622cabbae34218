// Helpers for the participant tests: temporary directories, a loopback client for the
// participant.* methods, and a fake coordinator serving coordinator.Register / QueryOutcome.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/proto_codec.h"
#include "net/rpc.h"
#include "participant/participant.h"
#include "tests/testing/temp_dir.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant::testing {

// Deadline of every test RPC, milliseconds.
inline constexpr int64_t kCallMs = 5000;

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir : public ::treaty::testing::TempDir {
 public:
  TempDir() : ::treaty::testing::TempDir("participant_test") {}
};

// Polls pred every 5 ms until it holds or timeout_ms passes. Returns pred's last value.
inline bool WaitFor(const std::function<bool()>& pred, int64_t timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Calls one participant over real loopback RPC, as the coordinator would.
class ParticipantClient {
 public:
  explicit ParticipantClient(std::string address) : address_(std::move(address)) {}

  Result<v1::PrepareResponse> Prepare(const std::string& xid, uint32_t branch_id,
                                      const std::string& op, const std::string& payload = "") {
    v1::PrepareRequest req;
    req.set_xid(xid);
    req.set_branch_id(branch_id);
    req.set_op(op);
    req.set_payload(payload);
    return net::Decode<v1::PrepareResponse>(
        rpc_.Call(address_, v1::methods::kPrepare, req.SerializeAsString(), kCallMs));
  }
  Status Commit(const std::string& xid, uint32_t branch_id) {
    return Decide(v1::methods::kCommit, xid, branch_id);
  }
  Status Abort(const std::string& xid, uint32_t branch_id) {
    return Decide(v1::methods::kAbort, xid, branch_id);
  }
  // branch_id -> state recorded for xid.
  std::map<uint32_t, v1::BranchState> Inspect(const std::string& xid) {
    v1::InspectRequest req;
    req.set_xid(xid);
    std::map<uint32_t, v1::BranchState> out;
    Result<v1::InspectResponse> reply = net::Decode<v1::InspectResponse>(
        rpc_.Call(address_, v1::methods::kInspect, req.SerializeAsString(), kCallMs));
    if (!reply.ok()) return out;
    for (const v1::InspectedBranch& b : reply->branches()) out[b.branch_id()] = b.state();
    return out;
  }
  // The state of one branch, BRANCH_STATE_UNKNOWN if none is recorded.
  v1::BranchState State(const std::string& xid, uint32_t branch_id) {
    auto states = Inspect(xid);
    auto it = states.find(branch_id);
    return it == states.end() ? v1::BRANCH_STATE_UNKNOWN : it->second;
  }
  Result<std::string> Call(std::string_view method, std::string payload) {
    return rpc_.Call(address_, method, std::move(payload), kCallMs);
  }
  net::RpcClient& rpc() { return rpc_; }
  const std::string& address() const { return address_; }

 private:
  Status Decide(const char* method, const std::string& xid, uint32_t branch_id) {
    v1::DecisionRequest req;
    req.set_xid(xid);
    req.set_branch_id(branch_id);
    return rpc_.Call(address_, method, req.SerializeAsString(), kCallMs).status();
  }

  std::string address_;
  net::RpcClient rpc_;
};

// A coordinator stand-in: records registrations and answers QueryOutcome from a table
// (unknown xid -> ABORT, as presumed abort requires).
class FakeCoordinator {
 public:
  FakeCoordinator() : server_(io_.io()) {
    server_.Register(v1::methods::kRegister,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       v1::RegisterRequest req;
                       req.ParseFromString(payload);
                       {
                         std::lock_guard<std::mutex> lock(mu_);
                         registrations_.push_back(req);
                       }
                       respond(v1::RegisterResponse().SerializeAsString());
                     });
    server_.Register(v1::methods::kQueryOutcome,
                     [this](std::string payload, uint32_t, net::Responder respond) {
                       v1::QueryOutcomeRequest req;
                       req.ParseFromString(payload);
                       v1::QueryOutcomeResponse resp;
                       {
                         std::lock_guard<std::mutex> lock(mu_);
                         ++queries_[req.xid()];
                         auto it = outcomes_.find(req.xid());
                         resp.set_outcome(it == outcomes_.end() ? v1::OUTCOME_ABORT : it->second);
                       }
                       respond(resp.SerializeAsString());
                     });
    listen_status_ = server_.Listen("127.0.0.1:0");
  }
  ~FakeCoordinator() {
    server_.Stop();
    io_.Stop();
  }

  const Status& listen_status() const { return listen_status_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  void SetOutcome(const std::string& xid, v1::Outcome outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    outcomes_[xid] = outcome;
  }
  int Queries(const std::string& xid) {
    std::lock_guard<std::mutex> lock(mu_);
    return queries_[xid];
  }
  std::vector<v1::RegisterRequest> Registrations() {
    std::lock_guard<std::mutex> lock(mu_);
    return registrations_;
  }

 private:
  net::IoThread io_;
  net::RpcServer server_;
  Status listen_status_;
  std::mutex mu_;
  std::map<std::string, v1::Outcome> outcomes_;
  std::map<std::string, int> queries_;
  std::vector<v1::RegisterRequest> registrations_;
};

}  // namespace treaty::participant::testing
