// Randomness, injected so simulations are reproducible from a seed.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace treaty {

class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, n); returns 0 when n == 0.
  virtual uint64_t Uniform(uint64_t n) = 0;
  // True with probability p (0..1).
  bool Chance(double p) { return static_cast<double>(Uniform(1'000'000)) < p * 1'000'000.0; }
};

// Seeded pseudo-random generator. Not thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override {
    if (n == 0) return 0;
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
  }

 private:
  std::mt19937_64 rng_;
};

// A seed from the OS entropy source, for production use.
uint64_t EntropySeed();

// A transaction id: "<prefix>-" followed by 16 random hex digits.
std::string NewXid(Random& random, const std::string& prefix = "tx");

}  // namespace treaty
