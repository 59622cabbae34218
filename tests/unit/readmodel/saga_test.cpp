// Sagas in the read model: views equal an independent replay of seeded random saga streams
// (mixed with 2PC transactions); re-projection is a no-op; a rebuild answers like incremental
// projection; List filters by mode, state and service; STUCK sagas need attention; finished
// sagas follow retention. Set TREATY_TEST_SEED to replay a run; the seed is printed.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "readmodel/readmodel.h"
#include "readmodel/views.h"
#include "readmodel_test_util.h"
#include "saga_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::ExpectedSaga;
using testing::Fixture;
using testing::ListAll;
using testing::SagaStream;

uint64_t SeedForTest() {
  const uint64_t seed = testing::TestSeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

ReadModelOptions SmallBatches() {
  ReadModelOptions options;
  options.batch_events = 7;  // many batch boundaries, some splitting a saga's events
  return options;
}

// A saga stream and a 2PC stream, interleaved, both appended to f's log.
struct Mixed {
  SagaStream sagas;
  testing::Stream twopc;
  std::vector<v1::LogEvent> events;
  std::vector<std::string> xids;
};

Mixed MixedStream(Random& random, int sagas, int twopc, int64_t base_unix_ms) {
  Mixed m;
  m.sagas = testing::RandomSagaStream(random, sagas, base_unix_ms);
  m.twopc = testing::RandomStream(random, twopc, base_unix_ms);
  size_t a = 0, b = 0;
  while (a < m.sagas.events.size() || b < m.twopc.events.size()) {
    const bool take_saga =
        b == m.twopc.events.size() || (a < m.sagas.events.size() && random.Chance(0.5));
    m.events.push_back(take_saga ? m.sagas.events[a++] : m.twopc.events[b++]);
  }
  for (const auto& [xid, s] : m.sagas.expected) m.xids.push_back(xid);
  for (const auto& [xid, t] : m.twopc.expected) m.xids.push_back(xid);
  return m;
}

void AppendAll(Fixture& f, const std::vector<v1::LogEvent>& events) {
  for (const v1::LogEvent& event : events) ASSERT_GT(f.Append(event), 0u) << event.DebugString();
}

// Everything the queries answer, including each transaction's client view.
std::string Answers(const ReadModel& model, const std::vector<std::string>& xids, int64_t now) {
  std::string out = testing::AllAnswers(model, xids, now);
  for (const std::string& xid : xids) {
    auto tx = model.GetTransaction(xid, nullptr);
    out += "tx " +
           (tx.ok() ? (tx->has_value() ? (*tx)->ShortDebugString() : "none")
                    : tx.status().ToString()) +
           "\n";
  }
  return out;
}

void ExpectSagaMatches(const ReadModel& model, const ExpectedSaga& want) {
  SCOPED_TRACE("xid=" + want.xid);
  auto got = model.Get(want.xid);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value()) << "no summary";
  const v1::TxSummary& s = **got;
  EXPECT_EQ(s.mode(), "saga");
  EXPECT_EQ(s.state(), want.tx_state())
      << v1::SagaState_Name(want.state) << " maps to " << v1::TxState_Name(want.tx_state())
      << "; got " << s.ShortDebugString();
  EXPECT_EQ(s.reason(), want.reason);
  EXPECT_EQ(s.created_unix_ms(), want.created);
  EXPECT_EQ(s.updated_unix_ms(), want.updated);
  EXPECT_EQ(s.decided_unix_ms(), want.decided);
  EXPECT_EQ(s.finished_unix_ms(), want.finished);
  ASSERT_EQ(s.branches_size(), static_cast<int>(want.steps.size())) << "one branch per step";

  auto tx = model.GetTransaction(want.xid, nullptr);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->has_value());
  EXPECT_EQ((*tx)->mode(), "saga");
  EXPECT_EQ((*tx)->state(), v1::TX_STATE_UNSPECIFIED) << "TxState is for 2PC only";
  EXPECT_EQ((*tx)->saga_state(), want.state) << (*tx)->ShortDebugString();
  EXPECT_EQ((*tx)->reason(), want.reason);
  EXPECT_EQ((*tx)->created_unix_ms(), want.created);
  EXPECT_EQ((*tx)->updated_unix_ms(), want.updated);
  ASSERT_EQ((*tx)->steps_size(), static_cast<int>(want.steps.size()));
  for (int i = 0; i < (*tx)->steps_size(); ++i) {
    const v1::StepStatus& step = (*tx)->steps(i);
    const testing::ExpectedStep& w = want.steps[static_cast<size_t>(i)];
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_EQ(step.id(), "s" + std::to_string(i));
    EXPECT_EQ(step.service(), w.service);
    EXPECT_EQ(step.action(), "do-" + w.service);
    EXPECT_EQ(step.compensation(), "undo-" + w.service);
    EXPECT_EQ(step.state(), w.state) << v1::StepState_Name(step.state());
    EXPECT_EQ(step.attempts(), w.attempts);
    EXPECT_EQ(step.last_error(), w.error);
    EXPECT_EQ(s.branches(i).service(), w.service);
    EXPECT_EQ(s.branches(i).attempts(), w.attempts);
    EXPECT_EQ(s.branches(i).last_error(), w.error);
  }
}

void ExpectViewsMatch(const ReadModel& model, const Mixed& m) {
  for (const auto& [xid, saga] : m.sagas.expected) ExpectSagaMatches(model, saga);
  for (const auto& [xid, tx] : m.twopc.expected) {
    auto got = model.Get(xid);
    ASSERT_TRUE(got.ok() && got->has_value()) << xid;
    EXPECT_EQ((*got)->mode(), "2pc") << xid;
    EXPECT_EQ((*got)->state(), tx.state) << xid;
  }

  // Counters: a COMPLETED saga is a COMMITTED outcome, a COMPENSATED one ABORTED.
  std::map<std::string, testing::ExpectedTx> all = m.twopc.expected;
  for (const auto& [xid, saga] : m.sagas.expected) all[xid] = saga.AsTx();
  auto stats = model.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  testing::ExpectStatsMatch(*stats, all);  // sagas by their mapped state

  // Attention lists exactly the STUCK sagas among the sagas.
  auto attention = model.Attention(0, kMaxAttentionItems);
  ASSERT_TRUE(attention.ok());
  std::set<std::string> stuck, listed;
  for (const auto& [xid, saga] : m.sagas.expected) {
    if (saga.state == v1::SAGA_STUCK) stuck.insert(xid);
  }
  for (const auto& item : attention->items()) {
    if (item.summary().mode() != "saga") continue;
    EXPECT_EQ(item.kind(), "saga-stuck") << item.ShortDebugString();
    listed.insert(item.summary().xid());
  }
  EXPECT_EQ(listed, stuck) << "Attention must list every STUCK saga and no other saga";
}

TEST(SagaProjectionTest, ViewsMatchAnIndependentReplayOfRandomSagaStreams) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  for (int round = 0; round < 3; ++round) {
    Fixture f(SmallBatches());
    ASSERT_TRUE(f.model);
    const Mixed m = MixedStream(random, 80, 40, f.clock.UnixMs());
    AppendAll(f, m.events);
    auto n = f.model->CatchUp();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, m.events.size()) << "CatchUp must fold every event once";
    ExpectViewsMatch(*f.model, m);
  }
}

TEST(SagaProjectionTest, ReprojectingSagaEventsAtOrBelowThePositionChangesNothing) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Mixed m = MixedStream(random, 50, 20, f.clock.UnixMs());
  AppendAll(f, m.events);
  ASSERT_TRUE(f.model->CatchUp().ok());
  const std::string before = Answers(*f.model, m.xids, f.clock.UnixMs());
  f.model.reset();

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
  EXPECT_EQ(Answers(*f.model, m.xids, f.clock.UnixMs()), before)
      << "re-projecting already projected lsns must be a no-op";
  ExpectViewsMatch(*f.model, m);
}

TEST(SagaProjectionTest, CrashMidProjectionThenRestartGivesExactViews) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Mixed m = MixedStream(random, 50, 20, f.clock.UnixMs());
  AppendAll(f, m.events);
  f.model.reset();
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
  }
  std::printf("crashed after %zu of %zu events\n", cut, records->size());
  f.Reopen();
  ASSERT_TRUE(f.model);
  ASSERT_TRUE(f.model->CatchUp().ok());
  ExpectViewsMatch(*f.model, m);
}

TEST(SagaProjectionTest, RebuildGivesTheSameAnswersAsIncrementalProjection) {
  const uint64_t seed = SeedForTest();
  SCOPED_TRACE("TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom random(seed);
  Fixture f(SmallBatches());
  const Mixed m = MixedStream(random, 80, 30, f.clock.UnixMs());
  for (const v1::LogEvent& event : m.events) {
    ASSERT_GT(f.Append(event), 0u);
    if (random.Chance(0.1)) {
      ASSERT_TRUE(f.model->CatchUp().ok());
    }
  }
  ASSERT_TRUE(f.model->CatchUp().ok());
  const std::string incremental = Answers(*f.model, m.xids, f.clock.UnixMs());
  auto rebuilt = f.model->Rebuild({});
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(rebuilt->events(), m.events.size());
  EXPECT_EQ(Answers(*f.model, m.xids, f.clock.UnixMs()), incremental)
      << "a rebuild must answer exactly like incremental projection";
}

}  // namespace
}  // namespace treaty::readmodel
