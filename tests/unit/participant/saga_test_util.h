// Helpers for the saga tests: a loopback client for participant.Action / Compensate and the saga
// part of participant.Inspect.
#pragma once

#include <future>
#include <map>
#include <memory>
#include <string>

#include "net/proto_codec.h"
#include "net/rpc.h"
#include "tests/unit/participant/participant_test_util.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/participant.pb.h"
#include "treaty/v1/saga.pb.h"

namespace treaty::participant::testing {

// Calls the saga methods of one participant over real loopback RPC, as the coordinator would.
class StepClient {
 public:
  explicit StepClient(std::string address) : address_(std::move(address)) {}

  Result<v1::StepResponse> Action(const std::string& xid, uint32_t step, const std::string& op,
                                  const std::string& payload = "") {
    return Call(v1::methods::kAction, xid, step, op, payload);
  }
  Result<v1::StepResponse> Compensate(const std::string& xid, uint32_t step, const std::string& op,
                                      const std::string& payload = "") {
    return Call(v1::methods::kCompensate, xid, step, op, payload);
  }
  // Sends the call without waiting; the future yields the decoded response.
  std::future<Result<v1::StepResponse>> Async(const char* method, const std::string& xid,
                                              uint32_t step, const std::string& op,
                                              const std::string& payload = "") {
    auto done = std::make_shared<std::promise<Result<v1::StepResponse>>>();
    rpc_.CallAsync(address_, method, Request(xid, step, op, payload), kCallMs,
                   [done](Result<std::string> r) {
                     done->set_value(net::Decode<v1::StepResponse>(std::move(r)));
                   });
    return done->get_future();
  }
  // step -> what the saga barrier recorded for xid; empty on error.
  std::map<uint32_t, v1::InspectedStep> Steps(const std::string& xid) {
    v1::InspectRequest req;
    req.set_xid(xid);
    std::map<uint32_t, v1::InspectedStep> out;
    Result<v1::InspectResponse> reply = net::Decode<v1::InspectResponse>(
        rpc_.Call(address_, v1::methods::kInspect, req.SerializeAsString(), kCallMs));
    if (!reply.ok()) return out;
    for (const v1::InspectedStep& s : reply->steps()) out[s.step()] = s;
    return out;
  }
  // What the barrier recorded for one step (both UNKNOWN if nothing).
  v1::InspectedStep Step(const std::string& xid, uint32_t step) {
    auto steps = Steps(xid);
    auto it = steps.find(step);
    return it == steps.end() ? v1::InspectedStep() : it->second;
  }

 private:
  static std::string Request(const std::string& xid, uint32_t step, const std::string& op,
                             const std::string& payload) {
    v1::StepRequest req;
    req.set_xid(xid);
    req.set_step(step);
    req.set_op(op);
    req.set_payload(payload);
    return req.SerializeAsString();
  }
  Result<v1::StepResponse> Call(const char* method, const std::string& xid, uint32_t step,
                                const std::string& op, const std::string& payload) {
    return net::Decode<v1::StepResponse>(
        rpc_.Call(address_, method, Request(xid, step, op, payload), kCallMs));
  }

  std::string address_;
  net::RpcClient rpc_;
};

}  // namespace treaty::participant::testing
