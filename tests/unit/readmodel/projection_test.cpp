// Projection: views equal an independent replay of seeded random event streams; re-projection is
// a no-op; a crash mid-projection gives exact counts; a rebuild equals incremental projection.
// Set TREATY_TEST_SEED to replay a run; the seed is printed.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "readmodel/readmodel.h"
#include "readmodel/views.h"
#include "readmodel_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::ExpectedTx;
using testing::Fixture;
using testing::ListAll;
using testing::RandomStream;
using testing::Stream;

constexpr int kTransactions = 150;

uint64_t SeedForTest() {
  const uint64_t seed = testing::TestSeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

ReadModelOptions SmallBatches() {
  ReadModelOptions options;
  options.batch_events = 7;  // many batch boundaries, some splitting a transaction's events
  return options;
}

std::vector<std::string> XidsOf(const Stream& stream) {
  std::vector<std::string> xids;
  for (const auto& [xid, tx] : stream.expected) xids.push_back(xid);
  return xids;
}

// Checks every view against the stream's independent replay.
void ExpectViewsMatch(const ReadModel& model, const Stream& stream) {
  for (const auto& [xid, tx] : stream.expected) {
    auto got = model.Get(xid);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(got->has_value()) << "no summary for xid=" << xid;
    const v1::TxSummary& s = **got;
    EXPECT_EQ(s.state(), tx.state) << "xid=" << xid << " " << s.ShortDebugString();
    EXPECT_EQ(s.mode(), "2pc") << xid;
    EXPECT_EQ(s.reason(), tx.reason) << xid;
    EXPECT_EQ(s.created_unix_ms(), tx.created) << xid;
    EXPECT_EQ(s.updated_unix_ms(), tx.updated) << xid;
    EXPECT_EQ(s.decided_unix_ms(), tx.decided) << xid;
    EXPECT_EQ(s.finished_unix_ms(), tx.finished) << xid;
    ASSERT_EQ(s.branches_size(), static_cast<int>(tx.services.size())) << xid;
    for (int b = 0; b < s.branches_size(); ++b) {
      const size_t i = static_cast<size_t>(b);
      EXPECT_EQ(s.branches(b).service(), tx.services[i]) << xid << " branch " << b;
      const v1::Vote vote = i < tx.votes.size() ? tx.votes[i] : v1::VOTE_UNSPECIFIED;
      EXPECT_EQ(s.branches(b).vote(), vote) << xid << " branch " << b;
      const bool acked = tx.state == v1::ABORTED || (tx.state == v1::COMMITTED && vote == v1::YES);
      EXPECT_EQ(s.branches(b).acknowledged(), acked) << xid << " branch " << b;
    }
  }

  auto stats = model.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  testing::ExpectStatsMatch(*stats, stream.expected);

  // Every summary once, newest change first (ties: larger xid first).
  std::vector<const ExpectedTx*> order;
  for (const auto& [xid, tx] : stream.expected) order.push_back(&tx);
  std::sort(order.begin(), order.end(), [](const ExpectedTx* a, const ExpectedTx* b) {
    return a->updated != b->updated ? a->updated > b->updated : a->xid > b->xid;
  });
  v1::ListTransactionsRequest all;
  all.set_limit(13);
  std::vector<v1::TxSummary> listed = ListAll(model, all);
  ASSERT_EQ(listed.size(), order.size()) << "List over every page must return every summary once";
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(listed[i].xid(), order[i]->xid) << "position " << i;
  }
}

void AppendAll(Fixture& f, const Stream& stream) {
  for (const v1::LogEvent& event : stream.events) ASSERT_GT(f.Append(event), 0u);
}

TEST(ProjectionTest, ViewsMatchAnIndependentReplayOfRandomStreams) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  for (int round = 0; round < 3; ++round) {
    Fixture f(SmallBatches());
    ASSERT_TRUE(f.model);
    const Stream stream = RandomStream(random, kTransactions, f.clock.UnixMs());
    AppendAll(f, stream);
    auto n = f.model->CatchUp();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, stream.events.size()) << "CatchUp must fold every event once";
    EXPECT_EQ(f.model->ProjectorState().lag_events(), 0u);
    ExpectViewsMatch(*f.model, stream);
  }
}

TEST(ProjectionTest, ReprojectingEventsAtOrBelowThePositionChangesNothing) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Stream stream = RandomStream(random, 60, f.clock.UnixMs());
  AppendAll(f, stream);
  ASSERT_TRUE(f.model->CatchUp().ok());
  const std::string before = testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs());
  f.model.reset();

  // Feed the whole log again straight into the views, in overlapping pieces.
  auto views = internal::Views::Open(f.options().dir);
  ASSERT_TRUE(views.ok()) << views.status().ToString();
  auto records = f.log->Read(1, 100'000);
  ASSERT_TRUE(records.ok());
  for (size_t start = 0; start < records->size(); start += 5) {
    std::vector<v1::LogRecord> piece(
        records->begin() + static_cast<long>(start),
        records->begin() + static_cast<long>(std::min(start + 11, records->size())));
    ASSERT_TRUE((*views)->Project(piece, f.clock.UnixMs()).ok());
  }
  views->reset();
  f.Reopen();
  EXPECT_EQ(testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs()), before)
      << "re-projecting already projected lsns must be a no-op";
  ExpectViewsMatch(*f.model, stream);
}

TEST(ProjectionTest, CrashMidProjectionThenRestartGivesExactCounts) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Stream stream = RandomStream(random, 80, f.clock.UnixMs());
  AppendAll(f, stream);
  f.model.reset();

  // Project a random prefix in uneven batches, then "crash": drop the views without finishing.
  auto records = f.log->Read(1, 100'000);
  ASSERT_TRUE(records.ok());
  const size_t cut = 1 + random.Uniform(records->size() - 1);
  {
    auto views = internal::Views::Open(f.options().dir);
    ASSERT_TRUE(views.ok()) << views.status().ToString();
    size_t at = 0;
    while (at < cut) {
      const size_t n = std::min<size_t>(1 + random.Uniform(9), cut - at);
      std::vector<v1::LogRecord> batch(records->begin() + static_cast<long>(at),
                                       records->begin() + static_cast<long>(at + n));
      ASSERT_TRUE((*views)->Project(batch, f.clock.UnixMs()).ok());
      at += n;
    }
    EXPECT_EQ((*views)->projected_lsn(), (*records)[cut - 1].lsn());
  }
  std::printf("crashed after %zu of %zu events\n", cut, records->size());
  f.Reopen();
  ASSERT_TRUE(f.model);
  EXPECT_EQ(f.model->ProjectorState().projected_lsn(), (*records)[cut - 1].lsn())
      << "the position must survive the crash with the views of the same batches";
  ASSERT_TRUE(f.model->CatchUp().ok());
  ExpectViewsMatch(*f.model, stream);
}

TEST(ProjectionTest, RebuildGivesTheSameAnswersAsIncrementalProjection) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Stream stream = RandomStream(random, kTransactions, f.clock.UnixMs());
  // Incremental: project while appending, at random moments.
  for (const v1::LogEvent& event : stream.events) {
    ASSERT_GT(f.Append(event), 0u);
    if (random.Chance(0.1)) {
      ASSERT_TRUE(f.model->CatchUp().ok());
    }
  }
  ASSERT_TRUE(f.model->CatchUp().ok());
  const std::string incremental = testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs());

  uint64_t calls = 0;
  RebuildProgress last;
  auto rebuilt = f.model->Rebuild([&](const RebuildProgress& p) {
    ++calls;
    EXPECT_GE(p.events_done, last.events_done) << "progress must not go backwards";
    last = p;
  });
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(rebuilt->events(), stream.events.size());
  EXPECT_EQ(rebuilt->projected_lsn(), f.log->last_lsn());
  EXPECT_GT(calls, 1u) << "a rebuild over many batches reports progress per batch";
  EXPECT_EQ(last.events_done, stream.events.size());
  EXPECT_EQ(last.target_lsn, f.log->last_lsn());
  EXPECT_EQ(testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs()), incremental)
      << "a rebuild must answer exactly like incremental projection";
  EXPECT_EQ(f.model->ProjectorState().rebuilds_total(), 1u);
}

TEST(ProjectionTest, InterruptedRebuildIsResumedOnOpen) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Stream stream = RandomStream(random, 40, f.clock.UnixMs());
  AppendAll(f, stream);
  ASSERT_TRUE(f.model->CatchUp().ok());
  const std::string before = testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs());
  f.model.reset();
  {
    // A wipe that stopped after its first step leaves the marker behind.
    auto views = internal::Views::Open(f.options().dir);
    ASSERT_TRUE(views.ok());
    EXPECT_FALSE((*views)->wipe_pending());
  }
  {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), f.options().dir, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "m/rebuild", "1").ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), "n/\x01").ok());  // a half-done wipe
    delete db;
  }
  f.Reopen();
  ASSERT_TRUE(f.model);
  EXPECT_EQ(f.model->ProjectorState().projected_lsn(), 0u)
      << "an interrupted rebuild restarts from the beginning of the log";
  ASSERT_TRUE(f.model->CatchUp().ok());
  EXPECT_EQ(testing::AllAnswers(*f.model, XidsOf(stream), f.clock.UnixMs()), before);
}

TEST(ProjectionTest, ViewsAheadOfTheLogAreWipedAndReprojected) {
  Fixture f;
  ASSERT_GT(f.Append(testing::Begun("tx-1", f.clock.UnixMs(), {"svc-a"})), 0u);
  ASSERT_TRUE(f.model->CatchUp().ok());
  // A fresh log under the same read model: the views describe another history.
  f.model.reset();
  f.log.reset();
  std::filesystem::remove_all(f.tmp.Sub("log"));
  f.ReopenLog();
  ASSERT_TRUE(f.log);
  f.Reopen();
  ASSERT_TRUE(f.model);
  auto got = f.model->Get("tx-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value()) << "views of another log must not survive";
  EXPECT_EQ(f.model->ProjectorState().projected_lsn(), 0u);
}

}  // namespace
}  // namespace treaty::readmodel
