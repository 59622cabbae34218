#include "coordinator/service_wait.h"

#include <algorithm>
#include <utility>

namespace treaty::coordinator {

int64_t ServiceWait::WaitMs(const std::vector<std::string>& unknown, int64_t budget_ms,
                            int64_t now_ms) const {
  if (unknown.empty() || held_.size() >= kMaxWaitingForServices) return 0;
  return std::max<int64_t>(0, std::min(budget_ms, until_ms_ - now_ms));
}

uint64_t ServiceWait::Hold(std::vector<std::string> unknown, std::function<void()> resume) {
  const uint64_t id = next_id_++;
  held_.push_back({id, std::move(unknown), std::move(resume)});
  return id;
}

std::vector<std::function<void()>> ServiceWait::Registered(const std::string& service) {
  std::vector<std::function<void()>> ready;
  for (auto it = held_.begin(); it != held_.end();) {
    std::erase(it->unknown, service);
    if (it->unknown.empty()) {
      ready.push_back(std::move(it->resume));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return ready;
}

std::function<void()> ServiceWait::Expire(uint64_t id) {
  auto it = std::find_if(held_.begin(), held_.end(), [id](const Held& h) { return h.id == id; });
  if (it == held_.end()) return nullptr;
  std::function<void()> resume = std::move(it->resume);
  held_.erase(it);
  return resume;
}

std::vector<std::function<void()>> ServiceWait::TakeAll() {
  std::vector<std::function<void()>> all;
  for (Held& h : held_) all.push_back(std::move(h.resume));
  held_.clear();
  return all;
}

}  // namespace treaty::coordinator
