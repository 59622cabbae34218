#include "coordinator/balancer.h"

#include <cmath>
#include <limits>

namespace treaty::coordinator {
namespace {

uint32_t WeightOf(const Candidate& c) { return c.weight == 0 ? 1 : c.weight; }

}  // namespace

const char* LbPolicyName(LbPolicy policy) {
  switch (policy) {
    case LbPolicy::kRoundRobin: return "round-robin";
    case LbPolicy::kWeighted: return "weighted";
    case LbPolicy::kLeastOutstanding: return "least-outstanding";
    case LbPolicy::kConsistentHash: return "consistent-hash";
  }
  return "unknown";
}

Result<LbPolicy> ParseLbPolicy(std::string_view name) {
  for (LbPolicy p : {LbPolicy::kRoundRobin, LbPolicy::kWeighted, LbPolicy::kLeastOutstanding,
                     LbPolicy::kConsistentHash}) {
    if (name == LbPolicyName(p)) return p;
  }
  return Status::InvalidArgument(
      "unknown load-balancing policy '" + std::string(name) +
      "' (use round-robin, weighted, least-outstanding or consistent-hash)");
}

uint64_t StableHash(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  h ^= 0xff;  // separator, so ("ab","c") and ("a","bc") differ
  h *= 1099511628211ULL;
  mix(b);
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

size_t Balancer::Pick(const std::vector<Candidate>& candidates, std::string_view key) {
  const size_t n = candidates.size();
  switch (policy_) {
    case LbPolicy::kRoundRobin:
      return cursor_++ % n;
    case LbPolicy::kWeighted:
      return PickWeighted(candidates);
    case LbPolicy::kLeastOutstanding: {
      size_t start = cursor_++ % n;
      size_t best = start;
      for (size_t i = 1; i < n; ++i) {
        size_t j = (start + i) % n;
        if (candidates[j].outstanding < candidates[best].outstanding) best = j;
      }
      return best;
    }
    case LbPolicy::kConsistentHash: {
      // Weighted rendezvous hashing: score = -weight / ln(u), u uniform in (0, 1).
      size_t best = 0;
      double best_score = -std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < n; ++i) {
        uint64_t h = StableHash(key, candidates[i].address);
        double u = (static_cast<double>(h >> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
        double score = -static_cast<double>(WeightOf(candidates[i])) / std::log(u);
        if (score > best_score) {
          best_score = score;
          best = i;
        }
      }
      return best;
    }
  }
  return 0;
}

size_t Balancer::PickWeighted(const std::vector<Candidate>& candidates) {
  // Smooth weighted round robin: every candidate gains its weight, the largest is chosen and
  // pays back the total.
  int64_t total = 0;
  size_t best = 0;
  int64_t best_weight = std::numeric_limits<int64_t>::min();
  std::map<std::string, int64_t> next;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    int64_t w = WeightOf(c);
    total += w;
    int64_t cw = current_weight_[c.address] + w;
    next[c.address] = cw;
    if (cw > best_weight) {
      best_weight = cw;
      best = i;
    }
  }
  next[candidates[best].address] -= total;
  current_weight_ = std::move(next);  // forgets instances that left
  return best;
}

}  // namespace treaty::coordinator
