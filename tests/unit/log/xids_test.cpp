// The xids family: finished xids the log remembers after retention dropped their outcomes record
// (Purge with drop_outcome, FindUsedXid), and their own retention (ExpireXids).

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::AppendAndWait;
using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Options;
using testing::TempDir;

// Far after every END of these tests: a purge with it qualifies every finished transaction.
constexpr int64_t kLater = 1'000'000;

v1::LogEvent SagaEvent(const std::string& xid, int64_t unix_ms) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  return event;
}

// A one-step saga run to COMPLETED, its last event at end_ms.
std::vector<v1::LogEvent> CompletedSaga(const std::string& xid, int64_t end_ms) {
  v1::LogEvent begun = SagaEvent(xid, 1000);
  v1::SagaStep* step = begun.mutable_saga_begun()->mutable_saga()->add_steps();
  step->set_id("a");
  step->set_service("svc");
  step->set_action("do");
  step->set_compensation("undo");
  std::vector<v1::LogEvent> events = {begun};
  for (v1::StepState state : {v1::STEP_RUNNING, v1::STEP_SUCCEEDED}) {
    v1::LogEvent changed = SagaEvent(xid, 2000);
    changed.mutable_step_changed()->set_state(state);
    changed.mutable_step_changed()->set_attempts(1);
    events.push_back(changed);
  }
  v1::LogEvent completed = SagaEvent(xid, end_ms);
  completed.mutable_saga_changed()->set_state(v1::SAGA_COMPLETED);
  events.push_back(completed);
  return events;
}

// committed (END at 3000), aborted (END at 5000), late (committed, END at 9000), and a newest
// event of an unfinished transaction.
class XidsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    for (auto events : std::vector<std::vector<v1::LogEvent>>{
             {Begun("committed"), Decided("committed", v1::COMMIT), Ended("committed", 3000)},
             {Begun("aborted"), Decided("aborted", v1::ABORT), Ended("aborted", 5000)},
             {Begun("late"), Decided("late", v1::COMMIT), Ended("late", 9000)},
             {Begun("newest")}}) {
      ASSERT_TRUE(AppendAndWait(*log_, events).status.ok());
    }
  }

  void Open() {
    auto log = EventLog::Open(Options(tmp_.Sub("log")));
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  // Drops xid's outcome (its events stay: none listed).
  PurgeResult Drop(const std::string& xid) {
    auto r = log_->Purge({{xid, {}, true, kLater}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : PurgeResult();
  }

  std::optional<UsedXid> Used(const std::string& xid) {
    auto used = log_->FindUsedXid(xid);
    EXPECT_TRUE(used.ok()) << used.status().ToString();
    return used.ok() ? *used : std::nullopt;
  }

  XidExpiryResult Expire(int64_t cutoff_ms, size_t max = 100) {
    auto r = log_->ExpireXids(cutoff_ms, max);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : XidExpiryResult();
  }

  TempDir tmp_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(XidsTest, DroppedOutcomeIsRememberedWithModeOutcomeAndEndTime) {
  Drop("committed");
  Drop("aborted");
  const std::optional<UsedXid> committed = Used("committed");
  ASSERT_TRUE(committed.has_value());
  EXPECT_EQ(committed->mode, UsedXid::Mode::kTwoPc);
  EXPECT_EQ(committed->outcome, UsedXid::Outcome::kCommitted);
  EXPECT_EQ(committed->finished_unix_ms, 3000);
  const std::optional<UsedXid> aborted = Used("aborted");
  ASSERT_TRUE(aborted.has_value());
  EXPECT_EQ(aborted->outcome, UsedXid::Outcome::kAborted);
  EXPECT_EQ(aborted->finished_unix_ms, 5000);
  EXPECT_FALSE(Used("late").has_value()) << "an outcome still in outcomes is Find's to answer";
  EXPECT_FALSE(Used("never").has_value());
}

TEST_F(XidsTest, SagasAreRememberedWithTheirFinalState) {
  ASSERT_TRUE(AppendAndWait(*log_, CompletedSaga("saga", 7000)).status.ok());
  Drop("saga");
  const std::optional<UsedXid> used = Used("saga");
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->mode, UsedXid::Mode::kSaga);
  EXPECT_EQ(used->outcome, UsedXid::Outcome::kCompleted);
  EXPECT_EQ(used->finished_unix_ms, 7000);
}

// The outcome's deletion and the xid's record are one write: a reader that asks Find, then
// FindUsedXid never finds a dropped xid unknown, however the purges interleave with it.
TEST_F(XidsTest, NoReaderSeesADroppedXidUnknownWhilePurgesRun) {
  constexpr int kXids = 150;
  for (int i = 0; i < kXids; ++i) {
    const std::string xid = "x" + std::to_string(i);
    ASSERT_TRUE(
        AppendAndWait(*log_, {Begun(xid), Decided(xid, v1::COMMIT), Ended(xid)}).status.ok());
  }
  std::atomic<bool> done{false};
  std::atomic<int> unknown{0};
  std::thread reader([&] {
    while (!done.load()) {
      for (int i = 0; i < kXids; ++i) {
        const std::string xid = "x" + std::to_string(i);
        auto found = log_->Find(xid);
        auto used = log_->FindUsedXid(xid);
        if (found.ok() && used.ok() && !found->has_value() && !used->has_value()) ++unknown;
      }
    }
  });
  for (int i = 0; i < kXids; ++i) Drop("x" + std::to_string(i));
  done.store(true);
  reader.join();
  EXPECT_EQ(unknown.load(), 0) << "a reader found a finished xid neither in outcomes nor in xids";
  for (int i = 0; i < kXids; ++i) EXPECT_TRUE(Used("x" + std::to_string(i)).has_value()) << i;
}

TEST_F(XidsTest, RepeatedPurgeLeavesTheRememberedXidAsItWas) {
  EXPECT_EQ(Drop("committed").outcomes_deleted, 1u);
  const PurgeResult again = Drop("committed");
  EXPECT_EQ(again.outcomes_deleted, 0u);
  EXPECT_EQ(again.skipped, 1u) << "the outcome is gone, so the request no longer qualifies";
  const std::optional<UsedXid> used = Used("committed");
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->finished_unix_ms, 3000);
  EXPECT_EQ(Expire(kLater).expired, 1u) << "one record, indexed once";
}

TEST_F(XidsTest, ExpiryDeletesOnlyXidsThatFinishedAtOrBeforeTheCutoff) {
  for (const char* xid : {"committed", "aborted", "late"}) Drop(xid);
  XidExpiryResult r = Expire(4999);
  EXPECT_EQ(r.expired, 1u);
  EXPECT_FALSE(Used("committed").has_value());
  EXPECT_TRUE(Used("aborted").has_value()) << "finished at 5000, after the cutoff";
  EXPECT_TRUE(Used("late").has_value());

  r = Expire(5000);
  EXPECT_EQ(r.expired, 1u) << "the cutoff is inclusive";
  EXPECT_FALSE(Used("aborted").has_value());
  EXPECT_EQ(Expire(5000).expired, 0u) << "a repeated expiry finds nothing";
  EXPECT_TRUE(Used("late").has_value());
  EXPECT_TRUE(log_->Find("newest")->has_value()) << "expiry never touches other families";
}

TEST_F(XidsTest, ExpiryTakesTheOldestFirstAndAtMostMax) {
  for (const char* xid : {"late", "aborted", "committed"}) Drop(xid);
  EXPECT_EQ(Expire(kLater, 2).expired, 2u);
  EXPECT_FALSE(Used("committed").has_value());
  EXPECT_FALSE(Used("aborted").has_value());
  EXPECT_TRUE(Used("late").has_value()) << "the newest stays for the next call";
  EXPECT_EQ(Expire(kLater, 2).expired, 1u);
}

TEST_F(XidsTest, RememberedXidsSurviveAReopen) {
  Drop("committed");
  log_.reset();
  Open();
  const std::optional<UsedXid> used = Used("committed");
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->outcome, UsedXid::Outcome::kCommitted);
  EXPECT_EQ(Expire(kLater).expired, 1u);
}

TEST_F(XidsTest, AnXidBegunAgainIsRememberedWithItsNewEndOnly) {
  Drop("committed");
  ASSERT_TRUE(AppendAndWait(*log_, {Begun("committed"), Decided("committed", v1::ABORT),
                                    Ended("committed", 20'000)})
                  .status.ok());
  Drop("committed");
  const std::optional<UsedXid> used = Used("committed");
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->outcome, UsedXid::Outcome::kAborted);
  EXPECT_EQ(used->finished_unix_ms, 20'000);
  EXPECT_EQ(Expire(19'999).expired, 0u) << "the first use's place in the expiry order is gone";
  EXPECT_EQ(Expire(20'000).expired, 1u);
}

TEST(XidsOpenTest, ALogFromBeforeTheXidsFamilyGetsItOnOpen) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  {
    testing::RawDb old(dir, {"events", "txns", "outcomes", "meta"});
    ASSERT_TRUE(old.status().ok()) << old.status().ToString();
    ASSERT_EQ(old.Put("meta", "schema", "treaty-log-v1"), "OK");
  }
  auto log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE(AppendAndWait(**log, {Begun("t"), Decided("t", v1::COMMIT), Ended("t")}).status.ok());
  ASSERT_TRUE(AppendAndWait(**log, {Begun("newest")}).status.ok());
  auto purged = (*log)->Purge({{"t", {}, true, kLater}});
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  auto used = (*log)->FindUsedXid("t");
  ASSERT_TRUE(used.ok() && used->has_value());
  log->reset();
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &families).ok());
  EXPECT_NE(std::find(families.begin(), families.end(), "xids"), families.end());
}

}  // namespace
}  // namespace treaty::log
