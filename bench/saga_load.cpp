#include "bench/saga_load.h"

#include "net/proto_codec.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/methods.h"

namespace treaty::bench {
namespace {

void AddStep(v1::SagaDefinition* saga, const char* id, const char* service, const char* action,
             const char* compensation, std::string payload, const char* after) {
  v1::SagaStep* step = saga->add_steps();
  step->set_id(id);
  step->set_service(service);
  step->set_action(action);
  step->set_compensation(compensation);
  step->set_payload(std::move(payload));
  if (after != nullptr) step->add_after(after);
}

}  // namespace

Result<TwoPcLoadResult> RunSagaLoad(LoadSpec spec, const std::function<void()>& at_window_start,
                                    const std::function<void()>& at_window_end) {
  spec.method = v1::methods::kSubmitSaga;
  spec.request = [](const std::string& xid, std::mt19937_64&) {
    v1::SubmitSagaRequest req;
    req.set_xid(xid);
    req.set_wait(true);
    req.set_client_id("treaty-bench");
    v1::SagaDefinition* saga = req.mutable_saga();
    AddStep(saga, "reserve", "inventory", "reserve", "release", R"({"item":"widget","qty":1})",
            nullptr);
    AddStep(saga, "charge", "payment", "charge", "refund",
            R"({"order":")" + xid + R"(","amount":1})", "reserve");
    AddStep(saga, "schedule", "shipping", "schedule", "cancel", R"({"order":")" + xid + R"("})",
            "charge");
    return req.SerializeAsString();
  };
  spec.succeeded = [](const Result<std::string>& payload) -> Result<bool> {
    auto resp = net::Decode<v1::SubmitSagaResponse>(payload);
    if (!resp.ok()) return resp.status();
    return resp->state() == v1::SAGA_COMPLETED;
  };
  return RunLoad(spec, at_window_start, at_window_end);
}

}  // namespace treaty::bench
