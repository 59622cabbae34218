#include "common/random.h"

#include <cstdio>

namespace treaty {

uint64_t EntropySeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

std::string NewXid(Random& random, const std::string& prefix) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(random.Uniform(UINT64_MAX)));
  return prefix + "-" + buf;
}

}  // namespace treaty
