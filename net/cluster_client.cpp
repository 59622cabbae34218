#include "net/cluster_client.h"

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "net/leader.h"

namespace treaty::net {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One logical call: its request, budget and progress through the current round.
struct PendingCall {
  std::string method;
  std::string payload;
  bool idempotent = false;
  Callback done;
  SteadyClock::time_point deadline;
  SteadyClock::time_point last_answer;  // when a node last answered (at first: the start)
  std::vector<std::string> tried;       // addresses attempted in this round
  int64_t backoff_ms = 0;               // the next pause between rounds
  Status last = Status::Unavailable("no coordinator address given");

  bool Tried(const std::string& address) const {
    return std::find(tried.begin(), tried.end(), address) != tried.end();
  }
  int64_t RemainingMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now())
        .count();
  }
};

// Whether a node answered (a follower refusing the call) rather than the transport failing. A
// follower's answer is net::NotLeader's status: with a hint, or in its wording without one.
bool FromNode(const Status& s) {
  return LeaderHint(s).has_value() || s.message().find("is not the leader") != std::string::npos;
}

bool Retryable(const Status& s, bool idempotent) {
  return s.code() == StatusCode::kUnavailable ||
         (idempotent && s.code() == StatusCode::kDeadlineExceeded);
}

}  // namespace

struct ClusterClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, std::vector<std::string> list, ClusterClientOptions opts)
      : io(io_context), addresses(std::move(list)), options(opts) {
    if (!addresses.empty()) start = addresses.front();
  }

  void Attempt(const std::shared_ptr<PendingCall>& call, const std::string& address);
  void OnResult(const std::shared_ptr<PendingCall>& call, const std::string& address,
                Result<std::string> result);
  void NextRound(const std::shared_ptr<PendingCall>& call);
  // The next address of the list after `after` (cyclically) not tried in this round, or "".
  std::string NextUntried(const PendingCall& call, const std::string& after) const;
  // The address of the list after `after` (cyclically; the first one if `after` is not listed).
  std::string NextInList(const std::string& after) const;
  // REQUIRES: mu held.
  std::shared_ptr<RpcChannel> ChannelLocked(const std::string& address);

  asio::io_context& io;
  const std::vector<std::string> addresses;
  const ClusterClientOptions options;

  mutable std::mutex mu;
  std::string start;    // guarded by mu: where a call or round begins (the leader, if known)
  bool closed = false;  // guarded by mu
  // guarded by mu
  std::unordered_map<std::string, std::vector<std::shared_ptr<RpcChannel>>> channels;
  size_t next_connection = 0;                            // guarded by mu
  std::set<std::shared_ptr<asio::steady_timer>> timers;  // guarded by mu: pauses between rounds
};

std::shared_ptr<RpcChannel> ClusterClient::Impl::ChannelLocked(const std::string& address) {
  std::vector<std::shared_ptr<RpcChannel>>& pool = channels[address];
  const auto n = static_cast<size_t>(std::max(1, options.connections_per_address));
  if (pool.size() < n) {
    pool.push_back(RpcChannel::Create(io, address, options.rpc));
    return pool.back();
  }
  return pool[next_connection++ % n];
}

void ClusterClient::Impl::Attempt(const std::shared_ptr<PendingCall>& call,
                                  const std::string& address) {
  const int64_t remaining = call->RemainingMs();
  std::unique_lock<std::mutex> lock(mu);
  if (closed) {
    lock.unlock();
    call->done(Status::Unavailable("cluster client closed; last error: " + call->last.ToString()));
    return;
  }
  if (remaining <= 0) {
    lock.unlock();
    call->done(call->last);
    return;
  }
  call->tried.push_back(address);
  int64_t attempt_ms = remaining;
  if (call->idempotent && options.attempt_timeout_ms > 0) {
    attempt_ms = std::min(attempt_ms, options.attempt_timeout_ms);
  }
  // Called under mu so that Close(), which closes the channels after setting `closed`, always
  // fails this call if it comes later (RpcChannel::Call only posts, it never calls back inline).
  ChannelLocked(address)->Call(
      call->method, call->payload, attempt_ms,
      [self = shared_from_this(), call, address](Result<std::string> result) {
        self->OnResult(call, address, std::move(result));
      });
}

void ClusterClient::Impl::OnResult(const std::shared_ptr<PendingCall>& call,
                                   const std::string& address, Result<std::string> result) {
  if (result.ok()) {
    std::lock_guard<std::mutex> lock(mu);
    start = address;
  }
  if (result.ok() || !Retryable(result.status(), call->idempotent)) {
    call->done(std::move(result));
    return;
  }
  call->last = result.status().WithPrefix("coordinator " + address);
  if (FromNode(result.status())) call->last_answer = SteadyClock::now();
  std::string next;
  if (std::optional<std::string> hint = LeaderHint(result.status())) {
    std::lock_guard<std::mutex> lock(mu);
    start = *hint;
    if (!call->Tried(*hint)) next = *hint;
  } else {
    std::lock_guard<std::mutex> lock(mu);
    // This address did not serve the call: later calls start at the next one.
    if (start == address) start = NextInList(address);
  }
  if (next.empty()) next = NextUntried(*call, address);
  if (next.empty()) {
    NextRound(call);
    return;
  }
  Attempt(call, next);
}

std::string ClusterClient::Impl::NextUntried(const PendingCall& call,
                                             const std::string& after) const {
  auto it = std::find(addresses.begin(), addresses.end(), after);
  // A hinted address outside the list: continue from the start of the list.
  size_t first = it == addresses.end() ? 0 : static_cast<size_t>(it - addresses.begin()) + 1;
  for (size_t i = 0; i < addresses.size(); ++i) {
    const std::string& a = addresses[(first + i) % addresses.size()];
    if (!call.Tried(a) && a != after) return a;
  }
  return "";
}

std::string ClusterClient::Impl::NextInList(const std::string& after) const {
  auto it = std::find(addresses.begin(), addresses.end(), after);
  if (it == addresses.end() || ++it == addresses.end()) return addresses.front();
  return *it;
}

void ClusterClient::Impl::NextRound(const std::shared_ptr<PendingCall>& call) {
  const int64_t remaining = call->RemainingMs();
  const bool unreachable = options.unreachable_timeout_ms > 0 &&
                           SteadyClock::now() - call->last_answer >=
                               std::chrono::milliseconds(options.unreachable_timeout_ms);
  if (remaining <= 0 || unreachable) {
    call->done(call->last);
    return;
  }
  const int64_t pause_ms = std::min(call->backoff_ms, remaining);
  call->backoff_ms = std::min(call->backoff_ms * 2, options.max_backoff_ms);
  auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(pause_ms));
  // A timer cancelled by Close() fires at once; Attempt then sees `closed` and fails the call.
  timer->async_wait([self = shared_from_this(), call, timer](const asio::error_code&) {
    std::string first;
    {
      std::lock_guard<std::mutex> lock(self->mu);
      self->timers.erase(timer);
      first = self->start;
    }
    call->tried.clear();
    self->Attempt(call, first);
  });
  // Runs on the I/O thread (OnResult), so the cancel posted here or by Close() runs after it.
  std::lock_guard<std::mutex> lock(mu);
  if (closed) {
    asio::post(io, [timer] { timer->cancel(); });
  } else {
    timers.insert(timer);
  }
}

ClusterClient::ClusterClient(std::vector<std::string> addresses, ClusterClientOptions options)
    : own_io_(std::make_unique<IoThread>()),
      impl_(std::make_shared<Impl>(own_io_->io(), std::move(addresses), options)) {}

ClusterClient::ClusterClient(asio::io_context& io, std::vector<std::string> addresses,
                             ClusterClientOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(addresses), options)) {}

ClusterClient::~ClusterClient() {
  Close();
  if (own_io_) {
    // Every close and cancel was posted before this marker, so the failed calls' callbacks have
    // run when it does.
    std::promise<void> drained;
    std::future<void> done = drained.get_future();
    asio::post(own_io_->io(), [&drained] { drained.set_value(); });
    done.wait();
    own_io_->Stop();
  }
}

void ClusterClient::CallAsync(std::string_view method, std::string payload, int64_t deadline_ms,
                              bool idempotent, Callback done) {
  auto call = std::make_shared<PendingCall>();
  call->method = std::string(method);
  call->payload = std::move(payload);
  call->idempotent = idempotent;
  call->done = std::move(done);
  call->deadline =
      SteadyClock::now() + std::chrono::milliseconds(std::max<int64_t>(deadline_ms, 0));
  call->last_answer = SteadyClock::now();
  call->backoff_ms = std::max<int64_t>(impl_->options.initial_backoff_ms, 1);
  if (impl_->addresses.empty()) {
    call->done(call->last);
    return;
  }
  impl_->Attempt(call, leader());
}

Result<std::string> ClusterClient::Call(std::string_view method, std::string payload,
                                        int64_t deadline_ms, bool idempotent) {
  if (impl_->io.get_executor().running_in_this_thread()) {
    return Status::FailedPrecondition(
        "ClusterClient::Call would block its own io thread; use CallAsync from callbacks");
  }
  auto result = std::make_shared<std::promise<Result<std::string>>>();
  std::future<Result<std::string>> future = result->get_future();
  CallAsync(method, std::move(payload), deadline_ms, idempotent,
            [result](Result<std::string> r) { result->set_value(std::move(r)); });
  return future.get();
}

std::string ClusterClient::leader() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->start;
}

const std::vector<std::string>& ClusterClient::addresses() const { return impl_->addresses; }

void ClusterClient::Close() {
  std::vector<std::shared_ptr<RpcChannel>> to_close;
  std::set<std::shared_ptr<asio::steady_timer>> to_cancel;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed) return;
    impl_->closed = true;
    for (auto& [address, pool] : impl_->channels) {
      to_close.insert(to_close.end(), pool.begin(), pool.end());
    }
    to_cancel.swap(impl_->timers);
  }
  for (auto& channel : to_close) channel->Close();
  asio::post(impl_->io, [to_cancel] {
    for (const auto& timer : to_cancel) timer->cancel();
  });
}

}  // namespace treaty::net
