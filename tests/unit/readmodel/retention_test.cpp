// Retention: only finished transactions past their retention lose their events; summaries and
// counters survive; summaries and log outcomes expire later, the log then remembers the xids until
// their own retention; rebuilds keep what retention moved.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "readmodel/readmodel.h"
#include "readmodel_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Fixture;

constexpr int64_t kMinute = 60'000;

ReadModelOptions Retention(int64_t events_ms, int64_t summaries_ms) {
  ReadModelOptions options;
  options.event_retention_ms = events_ms;
  options.summary_retention_ms = summaries_ms;
  return options;
}

ReadModelOptions Retention(int64_t events_ms, int64_t summaries_ms, int64_t xids_ms) {
  ReadModelOptions options = Retention(events_ms, summaries_ms);
  options.xid_retention_ms = xids_ms;
  return options;
}

std::vector<uint64_t> LsnsInLog(log::EventLog& log) {
  std::vector<uint64_t> lsns;
  auto records = log.Read(1, 100'000);
  EXPECT_TRUE(records.ok());
  if (records.ok()) {
    for (const auto& r : *records) lsns.push_back(r.lsn());
  }
  return lsns;
}

// old-commit (lsns 1-3) and old-abort (4-6) finished 10 minutes ago; recent (7-9) finished a
// minute ago; old-active (10-11) decided long ago but not finished; young (12) is preparing.
class RetentionTest : public ::testing::Test {
 protected:
  explicit RetentionTest(ReadModelOptions options = Retention(5 * kMinute, 30 * kMinute))
      : f_(std::move(options)) {}

  void SetUp() override {
    const int64_t now = f_.clock.UnixMs();
    const int64_t old = now - 10 * kMinute;
    f_.Append(Begun("old-commit", old, {"svc-a"}));
    f_.Append(Decided("old-commit", old + 5, v1::COMMIT, {v1::YES}));
    f_.Append(Ended("old-commit", old + 9));
    f_.Append(Begun("old-abort", old, {"svc-b"}));
    f_.Append(Decided("old-abort", old + 5, v1::ABORT));
    f_.Append(Ended("old-abort", old + 9));
    f_.Append(Begun("recent", now - kMinute, {"svc-a"}));
    f_.Append(Decided("recent", now - kMinute, v1::COMMIT, {v1::YES}));
    f_.Append(Ended("recent", now - kMinute));
    f_.Append(Begun("old-active", old, {"svc-a"}));
    f_.Append(Decided("old-active", old + 5, v1::COMMIT, {v1::YES}));
    f_.Append(Begun("young", now, {"svc-a"}));
    ASSERT_TRUE(f_.model->CatchUp().ok());
  }

  std::string StatsText() {
    auto stats = f_.model->Stats();
    EXPECT_TRUE(stats.ok());
    stats->clear_projector();
    return stats->ShortDebugString();
  }

  Fixture f_;
};

TEST_F(RetentionTest, OnlyFinishedTransactionsPastRetentionLoseTheirEvents) {
  const std::string stats_before = StatsText();
  auto result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->transactions_purged, 2u);
  EXPECT_EQ(result->events_purged, 6u);
  EXPECT_EQ(result->summaries_expired, 0u);
  EXPECT_EQ(LsnsInLog(*f_.log), (std::vector<uint64_t>{7, 8, 9, 10, 11, 12}))
      << "recent, unfinished and young transactions keep their events";

  for (const char* xid : {"old-commit", "old-abort"}) {
    auto summary = f_.model->Get(xid);
    ASSERT_TRUE(summary.ok() && summary->has_value()) << xid << " lost its summary";
    EXPECT_TRUE((*summary)->state() == v1::COMMITTED || (*summary)->state() == v1::ABORTED);
    auto outcome = f_.log->Find(xid);
    ASSERT_TRUE(outcome.ok());
    EXPECT_TRUE(outcome->has_value())
        << xid << ": the log keeps the outcome for in-doubt participants and resubmissions";
  }
  EXPECT_EQ(StatsText(), stats_before) << "counters survive retention";

  auto again = f_.model->RunRetention();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->transactions_purged, 0u) << "a second pass finds nothing new";
}

TEST_F(RetentionTest, SummariesAndLogOutcomesExpireAfterTheSummaryRetention) {
  ASSERT_TRUE(f_.model->RunRetention().ok());
  const std::string stats_before = StatsText();
  f_.clock.AdvanceMs(25 * kMinute);  // old ones ended 35 minutes ago, recent 26 minutes ago
  auto result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->summaries_expired, 2u);
  EXPECT_EQ(result->transactions_purged, 1u) << "recent's events are now past 5 minutes";
  for (const char* xid : {"old-commit", "old-abort"}) {
    auto summary = f_.model->Get(xid);
    ASSERT_TRUE(summary.ok());
    EXPECT_FALSE(summary->has_value()) << xid << " should have expired";
    auto outcome = f_.log->Find(xid);
    ASSERT_TRUE(outcome.ok());
    EXPECT_FALSE(outcome->has_value()) << xid << ": its log outcome expires with the summary";
    auto used = f_.log->FindUsedXid(xid);
    ASSERT_TRUE(used.ok());
    EXPECT_TRUE(used->has_value()) << xid << ": the log remembers the xid after its outcome";
  }
  EXPECT_EQ(result->xids_expired, 0u) << "the default xid retention is 30 days";
  auto recent = f_.model->Get("recent");
  ASSERT_TRUE(recent.ok());
  EXPECT_TRUE(recent->has_value()) << "recent's summary is younger than 30 minutes";
  auto stats = f_.model->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->total().committed().count(), 2u) << "counters keep expired transactions";
  EXPECT_EQ(stats->total().aborted().count(), 1u);
}

TEST_F(RetentionTest, RebuildAfterRetentionKeepsPurgedSummariesAndCounters) {
  ASSERT_TRUE(f_.model->RunRetention().ok());
  const std::vector<std::string> xids = {"old-commit", "old-abort", "recent", "old-active",
                                         "young"};
  const std::string before = testing::AllAnswers(*f_.model, xids, f_.clock.UnixMs());
  auto rebuilt = f_.model->Rebuild({});
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(rebuilt->kept_summaries(), 2u);
  EXPECT_EQ(rebuilt->events(), 6u) << "only the events left in the log are re-projected";
  EXPECT_EQ(testing::AllAnswers(*f_.model, xids, f_.clock.UnixMs()), before);
}

TEST_F(RetentionTest, NewEventsAfterAFullPurgeContinueTheLsnSequence) {
  // Finish everything long ago, purge, reopen the log: lsns must not restart.
  f_.Append(Ended("old-active", f_.clock.UnixMs() - 9 * kMinute));
  f_.Append(Decided("young", f_.clock.UnixMs(), v1::ABORT));
  const uint64_t last = f_.Append(Ended("young", f_.clock.UnixMs()));
  ASSERT_TRUE(f_.model->CatchUp().ok());
  f_.clock.AdvanceMs(20 * kMinute);
  ASSERT_TRUE(f_.model->RunRetention().ok());
  EXPECT_EQ(LsnsInLog(*f_.log), (std::vector<uint64_t>{last}))
      << "the newest event stays so the log's position survives a reopen";
  f_.ReopenLog();
  ASSERT_TRUE(f_.log);
  EXPECT_EQ(f_.log->last_lsn(), last);
  f_.Reopen();
  ASSERT_TRUE(f_.model);
  const uint64_t next = f_.Append(Begun("after", f_.clock.UnixMs(), {"svc-a"}));
  EXPECT_EQ(next, last + 1);
  ASSERT_TRUE(f_.model->CatchUp().ok());
  auto after = f_.model->Get("after");
  ASSERT_TRUE(after.ok() && after->has_value()) << "the read model follows the new events";
}

class XidRetentionTest : public RetentionTest {
 protected:
  XidRetentionTest() : RetentionTest(Retention(5 * kMinute, 30 * kMinute, 60 * kMinute)) {}

  bool Remembered(const std::string& xid) {
    auto used = f_.log->FindUsedXid(xid);
    EXPECT_TRUE(used.ok()) << used.status().ToString();
    return used.ok() && used->has_value();
  }
};

TEST_F(XidRetentionTest, TheLogForgetsAnXidOnlyOnceTheXidRetentionPassed) {
  ASSERT_TRUE(f_.model->RunRetention().ok());
  f_.clock.AdvanceMs(25 * kMinute);  // old ones ended 35 minutes ago: summaries expire
  auto result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->summaries_expired, 2u);
  EXPECT_TRUE(Remembered("old-commit"));
  EXPECT_TRUE(Remembered("old-abort"));

  f_.clock.AdvanceMs(24 * kMinute);  // 59 minutes: not yet
  result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->xids_expired, 0u);
  EXPECT_TRUE(Remembered("old-commit"));

  f_.clock.AdvanceMs(2 * kMinute);  // 61 minutes: forgotten; recent ended 52 minutes ago
  result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->xids_expired, 2u);
  EXPECT_FALSE(Remembered("old-commit"));
  EXPECT_FALSE(Remembered("old-abort"));
  EXPECT_TRUE(Remembered("recent"));
  auto unknown = f_.log->Find("old-commit");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());
}

TEST(RetentionOptionsTest, AnXidRetentionShorterThanTheSummaryRetentionIsRefused) {
  Fixture f;
  ReadModelOptions options = Retention(kMinute, 30 * kMinute, 10 * kMinute);
  options.dir = f.tmp.Sub("other-readmodel");
  auto refused = ReadModel::Open(options, *f.log, f.clock);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("xid_retention_ms"), std::string::npos)
      << refused.status().ToString();
  options.xid_retention_ms = 0;  // remembered forever: fine
  EXPECT_TRUE(ReadModel::Open(options, *f.log, f.clock).ok());
}

class NoEventRetentionTest : public RetentionTest {
 protected:
  NoEventRetentionTest() : RetentionTest(Retention(0, kMinute)) {}
};

TEST_F(NoEventRetentionTest, KeepingEventsForeverKeepsSummariesToo) {
  f_.clock.AdvanceMs(60 * kMinute);
  auto result = f_.model->RunRetention();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->events_purged, 0u);
  EXPECT_EQ(result->summaries_expired, 0u)
      << "a summary whose events are still in the log is never dropped";
  EXPECT_EQ(LsnsInLog(*f_.log).size(), 12u);
}

}  // namespace
}  // namespace treaty::readmodel
