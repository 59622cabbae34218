// Fold: `treaty tx resolve --retry` of a 2PC transaction, logged as a Resolved event.

#include <gtest/gtest.h>

#include <string>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;

constexpr char kXid[] = "tx-r";

v1::LogEvent Resolved(const std::string& action, int64_t unix_ms = 5000) {
  v1::LogEvent event;
  event.set_xid(kXid);
  event.set_unix_ms(unix_ms);
  v1::Resolved* resolved = event.mutable_resolved();
  resolved->set_action(action);
  resolved->set_who("ops");
  resolved->set_why("bank-b fixed");
  return event;
}

// A 2PC record folded from BEGIN and, if given, a decision.
v1::TxnRecord TwoPc(v1::Decision decision = v1::DECISION_UNSPECIFIED) {
  v1::TxnRecord rec;
  EXPECT_TRUE(Fold(Begun(kXid), 1, &rec).ok());
  if (decision != v1::DECISION_UNSPECIFIED) {
    EXPECT_TRUE(Fold(Decided(kXid, decision, "why it was decided"), 2, &rec).ok());
  }
  return rec;
}

void ExpectRefused(v1::TxnRecord rec, const v1::LogEvent& event, StatusCode code,
                   const std::string& what) {
  const std::string before = rec.SerializeAsString();
  Status s = Fold(event, 99, &rec);
  EXPECT_EQ(s.code(), code) << what << ": got " << s.ToString();
  EXPECT_EQ(rec.SerializeAsString(), before) << what << ": a refused event must not change rec";
}

TEST(FoldResolveTest, RetryOfADecidedTwoPcTransactionIsRecordedWithoutChangingItsState) {
  for (v1::Decision decision : {v1::COMMIT, v1::ABORT}) {
    v1::TxnRecord rec = TwoPc(decision);
    const v1::TxState state = rec.state();
    ASSERT_TRUE(Fold(Resolved("retry", 7000), 3, &rec).ok()) << v1::Decision_Name(decision);
    EXPECT_EQ(rec.state(), state) << "a redelivery changes no decision";
    EXPECT_EQ(rec.mode(), "2pc");
    EXPECT_EQ(rec.reason(), "why it was decided") << "the decision's reason stays";
    EXPECT_EQ(rec.last_lsn(), 3u);
    EXPECT_EQ(rec.updated_unix_ms(), 7000);
    // The transaction still ends normally afterwards.
    ASSERT_TRUE(Fold(Ended(kXid), 4, &rec).ok());
    EXPECT_EQ(rec.state(), decision == v1::COMMIT ? v1::COMMITTED : v1::ABORTED);
  }
}

TEST(FoldResolveTest, RetryIsRefusedWithoutADecisionBeingDelivered) {
  ExpectRefused(TwoPc(), Resolved("retry"), StatusCode::kFailedPrecondition,
                "retry of a PREPARING transaction (no decision to redeliver)");
  v1::TxnRecord ended = TwoPc(v1::COMMIT);
  ASSERT_TRUE(Fold(Ended(kXid), 3, &ended).ok());
  ExpectRefused(ended, Resolved("retry"), StatusCode::kFailedPrecondition,
                "retry of a COMMITTED transaction");
  ExpectRefused(v1::TxnRecord(), Resolved("retry"), StatusCode::kFailedPrecondition,
                "retry of an xid never begun");
}

TEST(FoldResolveTest, OnlyRetryIsLoggedAsAResolutionOfATwoPcTransaction) {
  // An operator's abort of a 2PC transaction is its ABORT decision; mark-compensated has no
  // meaning without compensations.
  ExpectRefused(TwoPc(), Resolved("abort"), StatusCode::kInvalidArgument, "abort as Resolved");
  ExpectRefused(TwoPc(v1::COMMIT), Resolved("mark-compensated"), StatusCode::kInvalidArgument,
                "mark-compensated of a 2PC transaction");
  ExpectRefused(TwoPc(v1::ABORT), Resolved("reboot"), StatusCode::kInvalidArgument,
                "unknown action");
}

}  // namespace
}  // namespace treaty::log
