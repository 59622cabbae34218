// Sagas in queries: List filters by mode, mapped state and every step's service; Attention lists
// STUCK sagas at once and drops them once resolved; finished sagas follow retention (summary and
// steps survive the event purge, then expire together); the client view overlays a live saga.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <set>
#include <string>
#include <vector>

#include "readmodel/keys.h"
#include "readmodel/readmodel.h"
#include "readmodel_test_util.h"
#include "saga_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Fixture;
using testing::ListAll;
using testing::Resolved;
using testing::SagaBegun;
using testing::SagaChanged;
using testing::StepChanged;

constexpr int64_t kMinute = 60'000;

std::set<std::string> Xids(const std::vector<v1::TxSummary>& summaries) {
  std::set<std::string> out;
  for (const auto& s : summaries) out.insert(s.xid());
  return out;
}

// Appends a completed saga (steps on services) finishing at t + 3 * steps.
void AppendCompleted(Fixture& f, const std::string& xid, int64_t t,
                     const std::vector<std::string>& services) {
  f.Append(SagaBegun(xid, t, services));
  for (uint32_t i = 0; i < services.size(); ++i) {
    f.Append(StepChanged(xid, ++t, i, v1::STEP_RUNNING));
    f.Append(StepChanged(xid, ++t, i, v1::STEP_SUCCEEDED));
  }
  f.Append(SagaChanged(xid, ++t, v1::SAGA_COMPLETED));
}

// Appends a one-step saga on service whose action failed and whose compensation is stuck.
void AppendStuck(Fixture& f, const std::string& xid, int64_t t, const std::string& service) {
  f.Append(SagaBegun(xid, t, {service}));
  f.Append(StepChanged(xid, t + 1, 0, v1::STEP_RUNNING));
  f.Append(StepChanged(xid, t + 2, 0, v1::STEP_FAILED, 3, "unavailable"));
  f.Append(SagaChanged(xid, t + 3, v1::SAGA_COMPENSATING, "s0 failed"));
  f.Append(StepChanged(xid, t + 4, 0, v1::STEP_COMPENSATING, 10, "unavailable"));
  f.Append(SagaChanged(xid, t + 5, v1::SAGA_STUCK, "compensation of s0 failed 10 times"));
}

// A completed saga on svc-a + svc-b, a stuck saga on svc-c, a running saga on svc-b and a
// committed 2PC transaction on svc-a.
class SagaQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    now_ = f_.clock.UnixMs();
    AppendCompleted(f_, "done", now_ - 10 * kMinute, {"svc-a", "svc-b"});
    AppendStuck(f_, "stuck", now_ - 1000, "svc-c");
    f_.Append(SagaBegun("running", now_ - 500, {"svc-b"}));
    f_.Append(Begun("tx", now_ - 10 * kMinute, {"svc-a"}));
    f_.Append(Decided("tx", now_ - 10 * kMinute, v1::COMMIT, {v1::YES}));
    f_.Append(Ended("tx", now_ - 10 * kMinute));
    ASSERT_TRUE(f_.model->CatchUp().ok());
  }

  std::set<std::string> List(v1::TxState state, const std::string& service,
                             const std::string& mode) {
    v1::ListTransactionsRequest req;
    req.mutable_filter()->set_state(state);
    req.mutable_filter()->set_service(service);
    req.mutable_filter()->set_mode(mode);
    return Xids(ListAll(*f_.model, req));
  }

  Fixture f_;
  int64_t now_ = 0;
};

TEST_F(SagaQueryTest, ListFiltersSagasByModeMappedStateAndEveryStepService) {
  using S = std::set<std::string>;
  EXPECT_EQ(List(v1::TX_STATE_UNSPECIFIED, "", "saga"), (S{"done", "stuck", "running"}));
  EXPECT_EQ(List(v1::TX_STATE_UNSPECIFIED, "", "2pc"), (S{"tx"}));
  EXPECT_EQ(List(v1::COMMITTED, "", "saga"), (S{"done"})) << "COMPLETED maps to COMMITTED";
  EXPECT_EQ(List(v1::COMMITTED, "", ""), (S{"done", "tx"}));
  EXPECT_EQ(List(v1::ABORTING, "", "saga"), (S{"stuck"})) << "STUCK maps to ABORTING";
  EXPECT_EQ(List(v1::PREPARING, "", "saga"), (S{"running"})) << "RUNNING maps to PREPARING";
  EXPECT_EQ(List(v1::TX_STATE_UNSPECIFIED, "svc-b", ""), (S{"done", "running"}))
      << "a saga is listed under every step's service";
  EXPECT_EQ(List(v1::TX_STATE_UNSPECIFIED, "svc-a", "saga"), (S{"done"}));
  EXPECT_EQ(List(v1::COMMITTED, "svc-b", "saga"), (S{"done"}));
  EXPECT_EQ(List(v1::TX_STATE_UNSPECIFIED, "svc-c", "2pc"), S{});
}

TEST_F(SagaQueryTest, StuckSagaNeedsAttentionAtOnceAndLeavesItWhenResolved) {
  // The 2PC stuck threshold (30 s) has not passed for "stuck": it is listed anyway.
  auto attention = f_.model->Attention(now_, 100);
  ASSERT_TRUE(attention.ok()) << attention.status().ToString();
  ASSERT_EQ(attention->items_size(), 1) << attention->ShortDebugString();
  EXPECT_EQ(attention->items(0).summary().xid(), "stuck");
  EXPECT_EQ(attention->items(0).kind(), "saga-stuck");
  EXPECT_EQ(attention->items(0).overdue_ms(), 995) << "overdue since the STUCK event";

  auto running_late = f_.model->Attention(now_ + 10 * kMinute, 100);
  ASSERT_TRUE(running_late.ok());
  for (const auto& item : running_late->items()) {
    EXPECT_NE(item.summary().xid(), "running")
        << "a RUNNING saga has no prepare timeout: " << item.ShortDebugString();
  }

  f_.Append(Resolved("stuck", now_, "mark-compensated", 0));
  ASSERT_TRUE(f_.model->CatchUp().ok());
  attention = f_.model->Attention(now_, 100);
  ASSERT_TRUE(attention.ok());
  EXPECT_EQ(attention->items_size(), 0) << "resolved: " << attention->ShortDebugString();
  auto tx = f_.model->GetTransaction("stuck", nullptr);
  ASSERT_TRUE(tx.ok() && tx->has_value());
  EXPECT_EQ((*tx)->saga_state(), v1::SAGA_COMPENSATING);
  EXPECT_EQ((*tx)->steps(0).state(), v1::STEP_COMPENSATED);
  EXPECT_EQ((*tx)->steps(0).last_error(), "mark-compensated by ops: checked by hand");

  f_.Append(SagaChanged("stuck", now_ + 1, v1::SAGA_COMPENSATED));
  ASSERT_TRUE(f_.model->CatchUp().ok());
  auto stats = f_.model->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->total().aborted().count(), 1u) << "a COMPENSATED saga counts as aborted";
  EXPECT_EQ(stats->total().committed().count(), 2u) << "the completed saga and the 2PC commit";
}

TEST_F(SagaQueryTest, ClientViewOfASagaHasItsStepsAndALiveViewReplacesThem) {
  auto tx = f_.model->GetTransaction("done", nullptr);
  ASSERT_TRUE(tx.ok() && tx->has_value());
  EXPECT_EQ((*tx)->mode(), "saga");
  EXPECT_EQ((*tx)->saga_state(), v1::SAGA_COMPLETED);
  ASSERT_EQ((*tx)->steps_size(), 2);
  EXPECT_EQ((*tx)->steps(1).id(), "s1");
  EXPECT_EQ((*tx)->steps(1).compensation(), "undo-svc-b");
  EXPECT_EQ((*tx)->branches_size(), 0) << "branches are for 2PC";

  v1::Transaction live;
  live.set_mode("saga");
  live.set_saga_state(v1::SAGA_RUNNING);
  live.add_steps()->set_state(v1::STEP_RUNNING);
  live.mutable_steps(0)->set_attempts(2);
  live.set_updated_unix_ms(now_ + 7);
  auto overlaid = f_.model->GetTransaction("running", &live);
  ASSERT_TRUE(overlaid.ok() && overlaid->has_value());
  EXPECT_EQ((*overlaid)->steps(0).attempts(), 2u) << "the live view knows unlogged attempts";
  EXPECT_EQ((*overlaid)->updated_unix_ms(), now_ + 7);
  EXPECT_EQ((*overlaid)->created_unix_ms(), now_ - 500);

  auto twopc = f_.model->GetTransaction("tx", nullptr);
  ASSERT_TRUE(twopc.ok() && twopc->has_value());
  EXPECT_EQ((*twopc)->state(), v1::COMMITTED);
  EXPECT_EQ((*twopc)->mode(), "2pc");
  auto none = f_.model->GetTransaction("nope", nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// Whether the read model's database (closed) holds the saga view of xid.
bool HasSagaView(const std::string& dir, const std::string& xid) {
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return false;
  std::string value;
  s = db->Get(rocksdb::ReadOptions(), internal::SagaKey(xid), &value);
  delete db;
  return s.ok();
}

TEST(SagaRetentionTest, FinishedSagasKeepStepsAfterThePurgeAndExpireWhole) {
  ReadModelOptions options;
  options.event_retention_ms = 5 * kMinute;
  options.summary_retention_ms = 30 * kMinute;
  Fixture f(options);
  const int64_t now = f.clock.UnixMs();
  AppendCompleted(f, "old", now - 10 * kMinute, {"svc-a"});
  AppendStuck(f, "stuck", now - 10 * kMinute, "svc-b");
  ASSERT_TRUE(f.model->CatchUp().ok());

  auto first = f.model->RunRetention();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->transactions_purged, 1u) << "only the finished saga is retired";
  EXPECT_EQ(first->events_purged, 4u) << "the finished saga's events leave the log";
  auto tx = f.model->GetTransaction("old", nullptr);
  ASSERT_TRUE(tx.ok() && tx->has_value()) << "the summary outlives the events";
  EXPECT_EQ((*tx)->saga_state(), v1::SAGA_COMPLETED);
  ASSERT_EQ((*tx)->steps_size(), 1);
  EXPECT_EQ((*tx)->steps(0).state(), v1::STEP_SUCCEEDED);

  const std::vector<std::string> xids = {"old", "stuck"};
  const std::string before = testing::AllAnswers(*f.model, xids, now);
  auto rebuilt = f.model->Rebuild({});
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(rebuilt->kept_summaries(), 1u);
  EXPECT_EQ(testing::AllAnswers(*f.model, xids, now), before);
  auto kept = f.model->GetTransaction("old", nullptr);
  ASSERT_TRUE(kept.ok()) << "a rebuild keeps a purged saga's steps: " << kept.status().ToString();
  ASSERT_TRUE(kept->has_value());
  EXPECT_EQ((*kept)->steps_size(), 1);

  f.clock.AdvanceMs(30 * kMinute);
  auto second = f.model->RunRetention();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->summaries_expired, 1u);
  auto gone = f.model->GetTransaction("old", nullptr);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto stuck = f.model->GetTransaction("stuck", nullptr);
  ASSERT_TRUE(stuck.ok() && stuck->has_value()) << "a STUCK saga is never retired";
  f.model.reset();
  EXPECT_FALSE(HasSagaView(f.options().dir, "old")) << "the saga view expires with the summary";
  EXPECT_TRUE(HasSagaView(f.options().dir, "stuck"));
}

}  // namespace
}  // namespace treaty::readmodel
