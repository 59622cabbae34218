// EventLog::Purge: retention's deletions only ever touch finished transactions past their cutoff.

#include <gtest/gtest.h>

#include <memory>
#include <string>
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

std::vector<uint64_t> Lsns(EventLog& log) {
  std::vector<uint64_t> out;
  auto records = log.Read(1, 1000);
  EXPECT_TRUE(records.ok()) << records.status().ToString();
  if (records.ok()) {
    for (const auto& r : *records) out.push_back(r.lsn());
  }
  return out;
}

// done (lsns 1-3, END at 3000), active (4-5, decided only), late (6-8, END at 9000), and a
// newest event (9) of another transaction.
class PurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = EventLog::Open(Options(tmp_.Sub("log")));
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
    for (auto events : std::vector<std::vector<v1::LogEvent>>{
             {Begun("done"), Decided("done", v1::COMMIT), Ended("done", 3000)},
             {Begun("active"), Decided("active", v1::ABORT)},
             {Begun("late"), Decided("late", v1::ABORT), Ended("late", 9000)},
             {Begun("newest")}}) {
      ASSERT_TRUE(AppendAndWait(*log_, events).status.ok());
    }
  }

  TempDir tmp_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(PurgeTest, DeletesTheEventsOfAFinishedTransactionAndKeepsItsOutcome) {
  auto r = log_->Purge({{"done", {1, 2, 3}, false, 5000}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->events_deleted, 3u);
  EXPECT_EQ(r->outcomes_deleted, 0u);
  EXPECT_EQ(Lsns(*log_), (std::vector<uint64_t>{4, 5, 6, 7, 8, 9}));
  auto found = log_->Find("done");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value()) << "the outcome must stay for QueryOutcome and resubmission";
  EXPECT_EQ((*found)->state(), v1::COMMITTED);

  auto again = log_->Purge({{"done", {1, 2, 3}, false, 5000}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->events_deleted, 0u) << "a repeated purge finds nothing to delete";
}

TEST_F(PurgeTest, RefusesUnfinishedUnknownAndTooRecentTransactions) {
  auto r = log_->Purge({{"active", {4, 5}, true, 100'000},
                        {"late", {6, 7, 8}, true, 5000},
                        {"never", {1}, true, 100'000}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->skipped, 3u);
  EXPECT_EQ(r->events_deleted + r->outcomes_deleted, 0u);
  EXPECT_EQ(Lsns(*log_).size(), 9u);
  auto active = log_->LoadActive();
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(active->size(), 2u) << "active transactions are never purged";
}

TEST_F(PurgeTest, LeavesLsnsOfOtherTransactionsAlone) {
  auto r = log_->Purge({{"done", {3, 4}, false, 5000}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events_deleted, 1u);
  EXPECT_EQ(r->foreign, 1u) << "lsn 4 belongs to xid=active";
  EXPECT_EQ(Lsns(*log_), (std::vector<uint64_t>{1, 2, 4, 5, 6, 7, 8, 9}));
}

TEST_F(PurgeTest, DroppingTheOutcomeMovesTheXidFromFindToFindUsedXid) {
  auto r = log_->Purge({{"done", {1, 2, 3}, true, 5000}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcomes_deleted, 1u);
  auto found = log_->Find("done");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  auto used = log_->FindUsedXid("done");
  ASSERT_TRUE(used.ok()) << used.status().ToString();
  EXPECT_TRUE(used->has_value()) << "a dropped outcome leaves the xid remembered";
  // The log itself does not refuse to begin it again: that is the coordinator's decision.
  EXPECT_TRUE(AppendAndWait(*log_, {Begun("done")}).status.ok());
}

TEST_F(PurgeTest, NeverDeletesTheNewestEventSoLsnsContinueAfterReopen) {
  ASSERT_TRUE(AppendAndWait(*log_, {Ended("late", 9500)}).status.ok());  // a repeated END: lsn 10
  auto r = log_->Purge({{"late", {6, 7, 8, 10}, false, 10'000}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events_deleted, 3u) << "lsn 10 is the newest event and stays";
  log_.reset();
  auto reopened = EventLog::Open(Options(tmp_.Sub("log")));
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->last_lsn(), 10u);
  auto appended = AppendAndWait(**reopened, {Begun("next")});
  EXPECT_EQ(appended.last_lsn, 11u);
}

}  // namespace
}  // namespace treaty::log
