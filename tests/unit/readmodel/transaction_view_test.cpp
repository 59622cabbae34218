// TransactionView: the client's view of a summary, with the coordinator's live view overlaid.

#include <gtest/gtest.h>

#include "readmodel/readmodel.h"

namespace treaty::readmodel {
namespace {

v1::TxSummary Summary(v1::TxState state) {
  v1::TxSummary s;
  s.set_xid("tx-1");
  s.set_mode("2pc");
  s.set_state(state);
  s.set_created_unix_ms(100);
  s.set_updated_unix_ms(200);
  for (const char* service : {"bank-a", "bank-b"}) {
    v1::BranchStatus* b = s.add_branches();
    b->set_branch_id(static_cast<uint32_t>(s.branches_size() - 1));
    b->set_service(service);
    b->set_op("op");
  }
  return s;
}

TEST(TransactionViewTest, WithoutLiveViewCopiesTheSummary) {
  const v1::Transaction tx = TransactionView(Summary(v1::COMMITTED), nullptr);
  EXPECT_EQ(tx.xid(), "tx-1");
  EXPECT_EQ(tx.state(), v1::COMMITTED);
  EXPECT_EQ(tx.created_unix_ms(), 100);
  ASSERT_EQ(tx.branches_size(), 2);
  EXPECT_EQ(tx.branches(1).service(), "bank-b");
}

TEST(TransactionViewTest, LiveViewAddsAttemptsErrorsAndNewerProgress) {
  v1::Transaction live;
  live.set_state(v1::ABORTING);
  live.set_reason("bank-b voted NO");
  live.set_updated_unix_ms(300);
  v1::BranchStatus* b = live.add_branches();
  b->set_branch_id(1);
  b->set_vote(v1::NO);
  b->set_attempts(3);
  b->set_last_error("UNAVAILABLE: connection refused");
  b->set_instance("127.0.0.1:9001");
  const v1::Transaction tx = TransactionView(Summary(v1::PREPARING), &live);
  EXPECT_EQ(tx.state(), v1::ABORTING) << "the projector lags: the live state is further along";
  EXPECT_EQ(tx.reason(), "bank-b voted NO");
  EXPECT_EQ(tx.updated_unix_ms(), 300);
  EXPECT_EQ(tx.branches(1).vote(), v1::NO);
  EXPECT_EQ(tx.branches(1).attempts(), 3u);
  EXPECT_EQ(tx.branches(1).last_error(), "UNAVAILABLE: connection refused");
  EXPECT_EQ(tx.branches(1).instance(), "127.0.0.1:9001");
  EXPECT_EQ(tx.branches(0).attempts(), 0u) << "branches the live view does not list stay as is";
}

TEST(TransactionViewTest, ALiveViewNeverMovesTheStateBackwards) {
  v1::Transaction live;
  live.set_state(v1::COMMITTING);
  live.set_updated_unix_ms(150);
  const v1::Transaction tx = TransactionView(Summary(v1::COMMITTED), &live);
  EXPECT_EQ(tx.state(), v1::COMMITTED);
  EXPECT_EQ(tx.updated_unix_ms(), 200);
}

}  // namespace
}  // namespace treaty::readmodel
