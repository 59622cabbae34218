// Load balancing across the live instances of one service (pure; no I/O, no clock).
//
// Policies:
//   round-robin        instances in turn
//   weighted           smooth weighted round robin (an instance of weight 3 gets 3 of every 4
//                      branches next to one of weight 1, interleaved rather than in bursts)
//   least-outstanding  the instance with the fewest calls in flight (ties: round robin)
//   consistent-hash    rendezvous hashing of the branch's routing key (or xid): a key keeps its
//                      instance while that instance is live; removing an instance moves only its keys
//
// Thread-safety: none; one Balancer per service, used from the coordinator's I/O thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treaty::coordinator {

enum class LbPolicy { kRoundRobin, kWeighted, kLeastOutstanding, kConsistentHash };

const char* LbPolicyName(LbPolicy policy);
// Accepts the names above. INVALID_ARGUMENT lists the valid names.
Result<LbPolicy> ParseLbPolicy(std::string_view name);

struct Candidate {
  std::string address;
  uint32_t weight = 1;       // 0 is treated as 1
  uint32_t outstanding = 0;  // calls in flight
};

class Balancer {
 public:
  explicit Balancer(LbPolicy policy) : policy_(policy) {}
  LbPolicy policy() const { return policy_; }

  // Index of the chosen candidate. REQUIRES: !candidates.empty(). candidates should come in a
  // stable order (e.g. sorted by address) for round robin to be fair.
  size_t Pick(const std::vector<Candidate>& candidates, std::string_view key);

 private:
  size_t PickWeighted(const std::vector<Candidate>& candidates);

  LbPolicy policy_;
  uint64_t cursor_ = 0;
  std::map<std::string, int64_t> current_weight_;  // smooth weighted round robin state
};

// 64-bit FNV-1a followed by a splitmix64 finalizer: stable across runs and platforms.
uint64_t StableHash(std::string_view a, std::string_view b);

}  // namespace treaty::coordinator
