// Queries: filters, paging, stats arithmetic and the attention list.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "readmodel/fold.h"
#include "readmodel/keys.h"
#include "readmodel/readmodel.h"
#include "readmodel_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Fixture;
using testing::ListAll;

std::vector<std::string> Xids(const std::vector<v1::TxSummary>& summaries) {
  std::vector<std::string> out;
  for (const auto& s : summaries) out.push_back(s.xid());
  return out;
}

// Ten transactions, one per second from t0: even ones committed on svc-a + svc-b, odd ones
// aborted on svc-b, tx-9 still preparing on svc-c.
class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t0_ = f_.clock.UnixMs() - 60'000;
    for (int i = 0; i < 9; ++i) {
      const std::string xid = "tx-" + std::to_string(i);
      const int64_t t = t0_ + i * 1000;
      if (i % 2 == 0) {
        f_.Append(Begun(xid, t, {"svc-a", "svc-b"}));
        f_.Append(Decided(xid, t + 10, v1::COMMIT, {v1::YES, v1::YES}));
        f_.Append(Ended(xid, t + 30));
      } else {
        f_.Append(Begun(xid, t, {"svc-b"}));
        f_.Append(Decided(xid, t + 20, v1::ABORT, {}, "svc-b voted NO"));
        f_.Append(Ended(xid, t + 30));
      }
    }
    f_.Append(Begun("tx-9", t0_ + 9000, {"svc-c"}, /*prepare_timeout_ms=*/1000));
    ASSERT_TRUE(f_.model->CatchUp().ok());
  }

  std::vector<std::string> List(v1::TxFilter filter, uint32_t limit = 0) {
    v1::ListTransactionsRequest req;
    *req.mutable_filter() = filter;
    req.set_limit(limit);
    return Xids(ListAll(*f_.model, req));
  }

  Fixture f_;
  int64_t t0_ = 0;
};

TEST_F(QueryTest, ListWithoutFilterIsNewestFirst) {
  EXPECT_EQ(List({}), (std::vector<std::string>{"tx-9", "tx-8", "tx-7", "tx-6", "tx-5", "tx-4",
                                                "tx-3", "tx-2", "tx-1", "tx-0"}));
}

TEST_F(QueryTest, ListFiltersByStateServiceAndMode) {
  v1::TxFilter committed;
  committed.set_state(v1::COMMITTED);
  EXPECT_EQ(List(committed), (std::vector<std::string>{"tx-8", "tx-6", "tx-4", "tx-2", "tx-0"}));

  v1::TxFilter on_a;
  on_a.set_service("svc-a");
  EXPECT_EQ(List(on_a), (std::vector<std::string>{"tx-8", "tx-6", "tx-4", "tx-2", "tx-0"}));

  v1::TxFilter aborted_on_b;
  aborted_on_b.set_service("svc-b");
  aborted_on_b.set_state(v1::ABORTED);
  EXPECT_EQ(List(aborted_on_b), (std::vector<std::string>{"tx-7", "tx-5", "tx-3", "tx-1"}));

  v1::TxFilter saga;
  saga.set_mode("saga");
  EXPECT_TRUE(List(saga).empty()) << "every transaction so far is 2pc";
  v1::TxFilter twopc;
  twopc.set_mode("2pc");
  twopc.set_service("svc-c");
  EXPECT_EQ(List(twopc), (std::vector<std::string>{"tx-9"}));

  v1::TxFilter nobody;
  nobody.set_service("svc-unknown");
  EXPECT_TRUE(List(nobody).empty());
}

TEST_F(QueryTest, ListFiltersByUpdateTimeSinceInclusiveUntilExclusive) {
  v1::TxFilter window;
  window.set_since_unix_ms(t0_ + 2030);  // tx-2 finished exactly then
  window.set_until_unix_ms(t0_ + 5030);  // tx-5 finished exactly then: excluded
  EXPECT_EQ(List(window), (std::vector<std::string>{"tx-4", "tx-3", "tx-2"}));
  window.set_state(v1::ABORTED);
  EXPECT_EQ(List(window), (std::vector<std::string>{"tx-3"}));
}

TEST_F(QueryTest, PagesCoverEverythingOnceAndTokensResumeWhereThePageEnded) {
  v1::ListTransactionsRequest req;
  req.set_limit(3);
  auto first = f_.model->List(req);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Xids({first->transactions().begin(), first->transactions().end()}),
            (std::vector<std::string>{"tx-9", "tx-8", "tx-7"}));
  ASSERT_FALSE(first->next_page_token().empty()) << "more transactions remain";
  req.set_page_token(first->next_page_token());
  auto second = f_.model->List(req);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Xids({second->transactions().begin(), second->transactions().end()}),
            (std::vector<std::string>{"tx-6", "tx-5", "tx-4"}));
  EXPECT_EQ(second->projected_lsn(), f_.log->last_lsn());

  std::vector<std::string> all = List({}, 4);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 10u);
  EXPECT_EQ(all.size(), 10u) << "no transaction may appear on two pages";
}

TEST_F(QueryTest, ListRejectsATokenOfAnotherFilterOrGarbage) {
  v1::ListTransactionsRequest req;
  req.set_limit(2);
  auto first = f_.model->List(req);
  ASSERT_TRUE(first.ok());
  req.mutable_filter()->set_service("svc-a");
  req.set_page_token(first->next_page_token());
  auto other = f_.model->List(req);
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument) << other.status().ToString();
  req.set_page_token("zz-not-hex");
  EXPECT_EQ(f_.model->List(req).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(QueryTest, ListLimitDefaultsTo50AndIsCappedAt1000) {
  for (int i = 0; i < 60; ++i) {
    f_.Append(Begun("bulk-" + std::to_string(i), t0_, {"svc-d"}));
  }
  ASSERT_TRUE(f_.model->CatchUp().ok());
  v1::ListTransactionsRequest req;
  auto page = f_.model->List(req);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->transactions_size(), 50);
  req.set_limit(5000);
  page = f_.model->List(req);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->transactions_size(), 70) << "a limit above 1000 is treated as 1000";
  EXPECT_TRUE(page->next_page_token().empty());
}

TEST_F(QueryTest, StatsCountRatesAndLatenciesPerServiceAndOutcome) {
  auto stats = f_.model->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->total().committed().count(), 5u);
  EXPECT_EQ(stats->total().aborted().count(), 4u);
  EXPECT_DOUBLE_EQ(stats->total().success_rate(), 5.0 / 9.0);
  EXPECT_DOUBLE_EQ(stats->total().abort_rate(), 4.0 / 9.0);
  EXPECT_DOUBLE_EQ(stats->total().committed().latency().mean_ms(), 30.0);
  EXPECT_DOUBLE_EQ(stats->total().committed().decision_latency().mean_ms(), 10.0);
  EXPECT_DOUBLE_EQ(stats->total().aborted().decision_latency().mean_ms(), 20.0);
  // 30 ms falls in the (20, 50] bucket: every percentile is interpolated inside it.
  EXPECT_GT(stats->total().committed().latency().p50_ms(), 20.0);
  EXPECT_LE(stats->total().committed().latency().p99_ms(), 50.0);

  ASSERT_EQ(stats->services_size(), 2)
      << "svc-c has nothing finished: " << stats->ShortDebugString();
  EXPECT_EQ(stats->services(0).service(), "svc-a");
  EXPECT_EQ(stats->services(0).committed().count(), 5u);
  EXPECT_EQ(stats->services(0).aborted().count(), 0u);
  EXPECT_DOUBLE_EQ(stats->services(0).success_rate(), 1.0);
  EXPECT_EQ(stats->services(1).service(), "svc-b");
  EXPECT_EQ(stats->services(1).committed().count(), 5u);
  EXPECT_EQ(stats->services(1).aborted().count(), 4u);

  ASSERT_EQ(stats->throughput_size(), 2);
  EXPECT_EQ(stats->throughput(0).window_s(), 60u);
  EXPECT_GT(stats->throughput(0).committed_per_s(), 0.0)
      << "every transaction finished within the last minute";
  EXPECT_EQ(stats->projector().projected_lsn(), f_.log->last_lsn());
  EXPECT_EQ(stats->projector().lag_events(), 0u);
}

TEST_F(QueryTest, AttentionListsOverduePreparesAndStuckDeliveries) {
  f_.Append(Begun("tx-stuck", t0_ + 100, {"svc-a"}));
  f_.Append(Decided("tx-stuck", t0_ + 200, v1::COMMIT, {v1::YES}));
  f_.Append(Begun("tx-young", f_.clock.UnixMs() - 10, {"svc-a"}));
  f_.Append(Decided("tx-young", f_.clock.UnixMs() - 5, v1::ABORT));
  ASSERT_TRUE(f_.model->CatchUp().ok());
  const int64_t now = f_.clock.UnixMs();
  auto attention = f_.model->Attention(now, 100);
  ASSERT_TRUE(attention.ok()) << attention.status().ToString();
  ASSERT_EQ(attention->items_size(), 2) << attention->ShortDebugString();
  EXPECT_EQ(attention->items(0).summary().xid(), "tx-stuck") << "oldest first";
  EXPECT_EQ(attention->items(0).kind(), "stuck-in-delivery");
  EXPECT_EQ(attention->items(0).overdue_ms(), now - (t0_ + 200));
  EXPECT_EQ(attention->items(1).summary().xid(), "tx-9");
  EXPECT_EQ(attention->items(1).kind(), "prepare-overdue");
  EXPECT_EQ(attention->items(1).overdue_ms(), now - (t0_ + 9000 + 1000));
  auto one = f_.model->Attention(now, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->items_size(), 1);
}

TEST(QuantileTest, InterpolatesWithinTheBucketAndHandlesEdges) {
  std::vector<int64_t> buckets(internal::kBuckets, 0);
  EXPECT_EQ(Quantile(buckets.data(), 0.5), 0.0) << "empty histogram";
  buckets[internal::BucketOf(15)] = 10;  // (10, 20]
  EXPECT_DOUBLE_EQ(Quantile(buckets.data(), 0.5), 15.0);
  EXPECT_DOUBLE_EQ(Quantile(buckets.data(), 1.0), 20.0);
  buckets[internal::kBuckets - 1] = 90;  // above the last bound
  EXPECT_DOUBLE_EQ(Quantile(buckets.data(), 0.99), 300000.0)
      << "the open bucket reports its lower bound";
  EXPECT_EQ(internal::BucketOf(1), 0u);
  EXPECT_EQ(internal::BucketOf(2), 1u);
  EXPECT_EQ(internal::BucketOf(1'000'000), internal::kBuckets - 1);
}

}  // namespace
}  // namespace treaty::readmodel
