// The deterministic event loop of the simulated world: a simulated clock and
// a queue of timed callbacks run in (time, insertion) order, with a hash of the order they ran in
// (two runs of one seed must produce the same hash).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace treaty::sim {

class SimLoop {
 public:
  explicit SimLoop(FakeClock& clock) : clock_(clock) {}

  int64_t Now() const { return clock_.NowMs(); }
  // Runs fn at at_ms (now, if that has passed).
  void At(int64_t at_ms, std::function<void()> fn) {
    queue_.push({std::max(at_ms, Now()), next_seq_++, std::move(fn)});
  }
  // Runs events, advancing the clock to each, until none is left or *events reached max_events,
  // calling after_each (if set) after every event. Counts them in *events. Returns true when the
  // queue ran empty (quiescence).
  bool Run(uint64_t max_events, uint64_t* events, const std::function<void()>& after_each = {}) {
    while (!queue_.empty() && *events < max_events) {
      Event ev = std::move(const_cast<Event&>(queue_.top()));
      queue_.pop();
      clock_.SetMs(ev.at_ms);
      ++*events;
      Mix(static_cast<uint64_t>(ev.at_ms));
      Mix(ev.seq);
      ev.fn();
      if (after_each) after_each();
    }
    return queue_.empty();
  }
  // Folds v into the trace hash (FNV-1a).
  void Mix(uint64_t v) { hash_ = (hash_ ^ v) * 1099511628211ULL; }
  uint64_t hash() const { return hash_; }

 private:
  struct Event {
    int64_t at_ms;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const {
      return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq;
    }
  };

  FakeClock& clock_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  uint64_t next_seq_ = 0;
  uint64_t hash_ = 1469598103934665603ULL;
};

// Records a violation as "t=<ms since start>ms xid=<xid>: <what>"; only the first 20 (they tell
// the story).
inline void AddViolation(std::vector<std::string>* violations, int64_t since_start_ms,
                         const std::string& xid, const std::string& what) {
  constexpr size_t kMaxReported = 20;
  if (violations->size() >= kMaxReported) return;
  violations->push_back("t=" + std::to_string(since_start_ms) + "ms xid=" + xid + ": " + what);
}

}  // namespace treaty::sim
