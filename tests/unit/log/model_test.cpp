// Seeded randomized test: the log against an in-memory model (Fold applied in Append order).
// Set TREATY_TEST_SEED to replay a run; the seed is printed.

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/random.h"
#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::AppendAsync;
using testing::Appended;
using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Options;
using testing::TempDir;

uint64_t TestSeed() {
  if (const char* env = std::getenv("TREATY_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return EntropySeed();
}

// What the log should hold: records folded in Append order, and the accepted events.
class Model {
 public:
  // Folds an Append; returns its expected status. Accepted events get the next lsns.
  StatusCode Apply(const std::vector<v1::LogEvent>& events) {
    std::map<std::string, v1::TxnRecord> staged;
    uint64_t lsn = last_lsn_;
    for (const v1::LogEvent& event : events) {
      auto it = staged.find(event.xid());
      if (it == staged.end()) it = staged.emplace(event.xid(), records_[event.xid()]).first;
      const Status s = Fold(event, ++lsn, &it->second);
      if (!s.ok()) return s.code();
    }
    for (auto& [xid, rec] : staged) records_[xid] = rec;
    for (const v1::LogEvent& event : events) accepted_.push_back(event);
    last_lsn_ = lsn;
    return StatusCode::kOk;
  }

  const std::map<std::string, v1::TxnRecord>& records() const { return records_; }
  const std::vector<v1::LogEvent>& accepted() const { return accepted_; }

 private:
  std::map<std::string, v1::TxnRecord> records_;  // empty record: never logged
  std::vector<v1::LogEvent> accepted_;
  uint64_t last_lsn_ = 0;
};

v1::LogEvent RandomEvent(Random& random, int64_t unix_ms) {
  const std::string xid = "tx-" + std::to_string(random.Uniform(12));
  switch (random.Uniform(5)) {
    case 0:
      return Begun(xid, unix_ms);
    case 1:
    case 2:
      return Decided(xid, random.Chance(0.5) ? v1::COMMIT : v1::ABORT, "r", unix_ms);
    default:
      return Ended(xid, unix_ms);
  }
}

TEST(ModelTest, LogAgreesWithSequentialFoldOfItsAppends) {
  const uint64_t seed = TestSeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  // Most random events are refused on purpose; keep their warnings out of the test output.
  const spdlog::level::level_enum saved_level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);
  struct RestoreLevel {
    spdlog::level::level_enum level;
    ~RestoreLevel() { spdlog::set_level(level); }
  } restore{saved_level};
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  Model model;
  {
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    int64_t unix_ms = 1000;
    for (int round = 0; round < 20; ++round) {
      // A burst of Appends in flight at once, so that batches mix them.
      std::vector<std::vector<v1::LogEvent>> appends;
      std::vector<std::future<Appended>> results;
      const uint64_t burst = 1 + random.Uniform(20);
      for (uint64_t i = 0; i < burst; ++i) {
        std::vector<v1::LogEvent> events;
        const uint64_t n = 1 + random.Uniform(3);
        for (uint64_t e = 0; e < n; ++e) events.push_back(RandomEvent(random, ++unix_ms));
        appends.push_back(events);
        results.push_back(AppendAsync(**log, std::move(events)));
      }
      for (size_t i = 0; i < appends.size(); ++i) {
        const StatusCode expected = model.Apply(appends[i]);
        const Appended got = results[i].get();
        ASSERT_EQ(got.status.code(), expected)
            << "round " << round << " append " << i << ": " << got.status.ToString();
      }
    }
    EXPECT_EQ((*log)->last_lsn(), model.accepted().size());
  }

  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Result<std::vector<v1::LogRecord>> events = (*log)->Read(1, 1'000'000);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_GT(model.accepted().size(), 20u) << "the random mix should accept a fair share";
  ASSERT_EQ(events->size(), model.accepted().size()) << "exactly the accepted events are logged";
  for (size_t i = 0; i < events->size(); ++i) {
    ASSERT_EQ((*events)[i].lsn(), i + 1) << "lsns must be dense from 1";
    ASSERT_EQ((*events)[i].event().SerializeAsString(), model.accepted()[i].SerializeAsString())
        << "event at lsn " << i + 1 << " differs from the accepted one";
  }
  std::set<std::string> unfinished;
  for (const auto& [xid, rec] : model.records()) {
    Result<std::optional<v1::TxnRecord>> found = (*log)->Find(xid);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    if (rec.state() == v1::TX_STATE_UNSPECIFIED) {
      EXPECT_FALSE(found->has_value()) << xid << " was never accepted, yet the log has it";
      continue;
    }
    ASSERT_TRUE(found->has_value()) << xid << " is missing from the log";
    EXPECT_EQ((*found)->SerializeAsString(), rec.SerializeAsString())
        << xid << ": log record " << (*found)->ShortDebugString() << " vs model "
        << rec.ShortDebugString();
    if (rec.state() != v1::COMMITTED && rec.state() != v1::ABORTED) unfinished.insert(xid);
  }
  Result<std::vector<v1::TxnRecord>> active = (*log)->LoadActive();
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  std::set<std::string> active_xids;
  for (const v1::TxnRecord& rec : *active) active_xids.insert(rec.xid());
  EXPECT_EQ(active_xids, unfinished) << "LoadActive must list exactly the unfinished";
}

}  // namespace
}  // namespace treaty::log
