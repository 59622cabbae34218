#include <asio.hpp>
#include <future>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "net/rpc.h"

namespace treaty::net {

struct RpcClient::Impl {
  explicit Impl(RpcOptions opts) : options(opts) {}

  std::shared_ptr<RpcChannel> Channel(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<RpcChannel>& channel = channels[address];
    if (!channel) channel = RpcChannel::Create(io.io(), address, options);
    return channel;
  }

  const RpcOptions options;
  IoThread io;
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<RpcChannel>> channels;  // guarded by mu
};

RpcClient::RpcClient(RpcOptions options) : impl_(std::make_unique<Impl>(options)) {}

RpcClient::~RpcClient() {
  // Fail calls still in flight (UNAVAILABLE) before the io thread stops, so every callback runs.
  // The closes and the marker are posted from this thread in this order, so the marker runs
  // after them.
  std::unordered_map<std::string, std::shared_ptr<RpcChannel>> channels;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    channels.swap(impl_->channels);
  }
  for (auto& [address, channel] : channels) channel->Close();
  channels.clear();
  std::promise<void> drained;
  std::future<void> done = drained.get_future();
  asio::post(impl_->io.io(), [&drained] { drained.set_value(); });
  done.wait();
  impl_->io.Stop();
}

Result<std::string> RpcClient::Call(const std::string& address, std::string_view method,
                                    std::string payload, int64_t deadline_ms) {
  if (impl_->io.io().get_executor().running_in_this_thread()) {
    return Status::FailedPrecondition(
        "RpcClient::Call would block its own io thread; use CallAsync from callbacks");
  }
  auto result = std::make_shared<std::promise<Result<std::string>>>();
  std::future<Result<std::string>> future = result->get_future();
  CallAsync(address, method, std::move(payload), deadline_ms,
            [result](Result<std::string> r) { result->set_value(std::move(r)); });
  return future.get();
}

void RpcClient::CallAsync(const std::string& address, std::string_view method, std::string payload,
                          int64_t deadline_ms, Callback done) {
  impl_->Channel(address)->Call(method, std::move(payload), deadline_ms, std::move(done));
}

}  // namespace treaty::net
