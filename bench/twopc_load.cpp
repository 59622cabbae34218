#include "bench/twopc_load.h"

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "net/cluster_client.h"
#include "net/leader.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/methods.h"

namespace treaty::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Pause before a client retries after an RPC error, so a down coordinator is not hammered.
constexpr auto kErrorBackoff = std::chrono::milliseconds(10);
// One attempt of a submission gets at most this share of its deadline, so that a hung node does
// not use up all of it (the retry carries the same xid, so it joins the same transaction).
constexpr int64_t kAttemptsPerDeadline = 4;

std::string OpPayload(int account, int64_t amount) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), R"({"account":"acct%d","amount":%lld})", account,
                static_cast<long long>(amount));
  return buf;
}

// The clients' state. Everything but the `done` handshake is touched only on the I/O thread.
class Load {
 public:
  Load(const LoadSpec& options, std::vector<std::string> coordinators, asio::io_context& io)
      : options_(options), io_(io), rng_(options.seed) {
    net::ClusterClientOptions cluster;
    cluster.connections_per_address = options.connections;
    cluster.attempt_timeout_ms =
        std::max<int64_t>(1, options.call_timeout_ms / kAttemptsPerDeadline);
    coordinator_ = std::make_unique<net::ClusterClient>(io, std::move(coordinators), cluster);
    char prefix[40];
    std::snprintf(prefix, sizeof(prefix), "bench-%08llx-",
                  static_cast<unsigned long long>(rng_() & 0xffffffffULL));
    xid_prefix_ = prefix;
    result_.latencies_us.reserve(1u << 20);
  }

  void Start(Clock::time_point window_start, Clock::time_point window_end) {
    window_start_ = window_start;
    window_end_ = window_end;
    for (int c = 0; c < options_.concurrency; ++c) {
      asio::post(io_, [this, c] { Issue(c); });
    }
  }

  // Blocks until every client stopped or timeout passes. True if all stopped.
  bool WaitStopped(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return stopped_ == options_.concurrency; });
  }

  void CloseChannels() { coordinator_->Close(); }

  // REQUIRES: the I/O thread has been joined.
  TwoPcLoadResult TakeResult() { return std::move(result_); }

 private:
  void Issue(int client) {
    std::string request = options_.request(xid_prefix_ + std::to_string(next_xid_++), rng_);
    const auto started = Clock::now();
    // Through a leader change the helper retries the same request (same xid) until the deadline,
    // so only a submission that failed for its whole deadline counts as an error.
    coordinator_->CallAsync(options_.method, std::move(request), options_.call_timeout_ms,
                            /*idempotent=*/true,
                            [this, client, started](Result<std::string> payload) {
                              Done(client, started, options_.succeeded(payload));
                            });
  }

  void Done(int client, Clock::time_point started, const Result<bool>& resp) {
    const auto now = Clock::now();
    if (now >= window_start_ && now < window_end_) {
      if (!resp.ok()) {
        if (result_.errors++ == 0) result_.first_error = resp.status().ToString();
      } else {
        if (*resp) {
          ++result_.committed;
        } else {
          ++result_.aborted;
        }
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - started).count();
        result_.latencies_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      }
    }
    if (now >= window_end_) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stopped_;
      cv_.notify_all();
      return;
    }
    if (resp.ok()) {
      Issue(client);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(io_, kErrorBackoff);
    timer->async_wait([this, client, timer](const asio::error_code&) { Issue(client); });
  }

  const LoadSpec options_;
  asio::io_context& io_;
  std::mt19937_64 rng_;
  std::unique_ptr<net::ClusterClient> coordinator_;
  std::string xid_prefix_;
  uint64_t next_xid_ = 0;
  Clock::time_point window_start_;
  Clock::time_point window_end_;
  TwoPcLoadResult result_;

  std::mutex mu_;
  std::condition_variable cv_;
  int stopped_ = 0;
};

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

double TwoPcLoadResult::LatencyMs(double q) const {
  if (latencies_us.empty()) return 0;
  const double n = static_cast<double>(latencies_us.size());
  auto idx = static_cast<size_t>(std::max(0.0, std::ceil(q * n) - 1));
  idx = std::min(idx, latencies_us.size() - 1);
  return latencies_us[idx] / 1000.0;
}

double TwoPcLoadResult::TxPerSecond() const {
  return measured_s > 0 ? static_cast<double>(committed + aborted) / measured_s : 0;
}

Result<TwoPcLoadResult> RunTwoPcLoad(const TwoPcLoadOptions& options,
                                     const std::function<void()>& at_window_start,
                                     const std::function<void()>& at_window_end) {
  if (options.accounts_per_bank < 1) {
    return Status::InvalidArgument("accounts must be at least 1");
  }
  LoadSpec spec;
  spec.coordinator = options.coordinator;
  spec.concurrency = options.concurrency;
  spec.connections = options.connections;
  spec.duration_s = options.duration_s;
  spec.warmup_s = options.warmup_s;
  spec.call_timeout_ms = options.call_timeout_ms;
  spec.seed = options.seed;
  spec.method = v1::methods::kSubmit;
  spec.request = [options](const std::string& xid, std::mt19937_64& rng) {
    v1::SubmitRequest req;
    req.set_xid(xid);
    req.set_wait(true);
    std::uniform_int_distribution<int> account(0, options.accounts_per_bank - 1);
    v1::Branch* debit = req.add_branches();
    debit->set_service(options.debit_service);
    debit->set_op("debit");
    debit->set_payload(OpPayload(account(rng), 1));
    v1::Branch* credit = req.add_branches();
    credit->set_service(options.credit_service);
    credit->set_op("credit");
    credit->set_payload(OpPayload(account(rng), 1));
    return req.SerializeAsString();
  };
  spec.succeeded = [](const Result<std::string>& payload) -> Result<bool> {
    auto resp = net::Decode<v1::SubmitResponse>(payload);
    if (!resp.ok()) return resp.status();
    return resp->state() == v1::COMMITTING || resp->state() == v1::COMMITTED;
  };
  return RunLoad(spec, at_window_start, at_window_end);
}

Result<TwoPcLoadResult> RunLoad(const LoadSpec& options,
                                const std::function<void()>& at_window_start,
                                const std::function<void()>& at_window_end) {
  auto coordinators = net::ParseAddressList(options.coordinator);
  if (!coordinators.ok()) return coordinators.status().WithPrefix("--coordinator");
  if (options.concurrency < 1 || options.connections < 1) {
    return Status::InvalidArgument("concurrency and connections must be at least 1");
  }
  if (options.duration_s <= 0 || options.warmup_s < 0) {
    return Status::InvalidArgument("duration must be positive and warm-up not negative");
  }
  net::IoThread io;
  Load load(options, std::move(*coordinators), io.io());
  const auto window_start = Clock::now() + Seconds(options.warmup_s);
  const auto window_end = window_start + Seconds(options.duration_s);
  load.Start(window_start, window_end);

  std::this_thread::sleep_until(window_start);
  if (at_window_start) at_window_start();
  std::this_thread::sleep_until(window_end);
  if (at_window_end) at_window_end();

  // Clients stop at their first answer after the window; one call deadline bounds the wait.
  const auto drain = std::chrono::milliseconds(options.call_timeout_ms + 1000);
  if (!load.WaitStopped(drain)) {
    load.CloseChannels();  // fails the stragglers; their clients then stop
    load.WaitStopped(std::chrono::milliseconds(1000));
  }
  io.Stop();
  TwoPcLoadResult result = load.TakeResult();
  result.measured_s = std::chrono::duration<double>(window_end - window_start).count();
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  return result;
}

}  // namespace treaty::bench
