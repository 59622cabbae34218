// The 2PC load generator of treaty-bench: closed-loop clients submitting transfers (debit 1 at one
// service, credit 1 at another, wait=true) over pipelined RPC connections.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace treaty::bench {

struct TwoPcLoadOptions {
  // Coordinator client address host:port, or a cluster's addresses comma-separated (submissions
  // go to the leader and are retried with the same xid through a leader change). Required.
  std::string coordinator;
  // Clients, each with one submission outstanding at a time. All share `connections` pipelined
  // connections (per coordinator address) and one I/O thread, so hundreds cost no extra threads.
  // Default 64.
  int concurrency = 64;
  // TCP connections to each coordinator address; clients are spread over them. Default 1.
  int connections = 1;
  // Measured window, seconds (after the warm-up). Default 10.
  double duration_s = 10;
  // Unmeasured warm-up, seconds. Default 1.
  double warmup_s = 1;
  // Services of the debit and credit branches.
  std::string debit_service = "bank-a";
  std::string credit_service = "bank-b";
  // Accounts are "acct0".."acct<K-1>" at both services (bench/run.sh seeds them). Default 1000.
  int accounts_per_bank = 1000;
  // Deadline of one submission, including its retries through a leader change, milliseconds.
  // Default 10000.
  int64_t call_timeout_ms = 10000;
  // Seeds account choice and the xid prefix.
  uint64_t seed = 1;
};

struct TwoPcLoadResult {
  double measured_s = 0;               // length of the measured window, seconds
  uint64_t committed = 0;              // answered COMMITTING/COMMITTED within the window
  uint64_t aborted = 0;                // answered ABORTING/ABORTED within the window
  uint64_t errors = 0;                 // failed in the window (deadline passed, refused, ...)
  std::string first_error;             // the first of them, for the report
  std::vector<uint32_t> latencies_us;  // answered submissions in the window, sorted ascending

  // q in [0, 1]; milliseconds; 0 if there are no samples.
  double LatencyMs(double q) const;
  double TxPerSecond() const;
};

// A closed-loop workload (shared by the 2PC and saga loads).
struct LoadSpec {
  std::string coordinator;  // as TwoPcLoadOptions::coordinator
  int concurrency = 64;
  int connections = 1;
  double duration_s = 10;
  double warmup_s = 1;
  int64_t call_timeout_ms = 10000;
  uint64_t seed = 1;
  const char* method = nullptr;  // RPC method of every submission
  // The serialized request of a new submission with this xid; rng is the load's own generator.
  std::function<std::string(const std::string& xid, std::mt19937_64& rng)> request;
  // Whether an answered submission succeeded (counted as committed) or not (aborted); an error
  // (undecodable answer, error status) is counted as an error.
  std::function<Result<bool>(const Result<std::string>& response)> succeeded;
};

// Runs a workload; see RunTwoPcLoad for the callbacks.
Result<TwoPcLoadResult> RunLoad(const LoadSpec& spec, const std::function<void()>& at_window_start,
                                const std::function<void()>& at_window_end);

// Runs the load. at_window_start / at_window_end (may be empty) run on the calling thread when the
// measured window opens and closes (the benchmark scrapes coordinator metrics there). Errors:
// INVALID_ARGUMENT for bad options.
Result<TwoPcLoadResult> RunTwoPcLoad(const TwoPcLoadOptions& options,
                                     const std::function<void()>& at_window_start,
                                     const std::function<void()>& at_window_end);

}  // namespace treaty::bench
