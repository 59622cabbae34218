// The read model's fold of `treaty tx resolve --retry` on a 2PC transaction (a Resolved event).
#include <gtest/gtest.h>

#include <optional>

#include "readmodel/fold.h"
#include "readmodel_test_util.h"

namespace treaty::readmodel {
namespace {

using internal::FoldEvent;
using internal::FoldResult;

v1::LogRecord At(uint64_t lsn, v1::LogEvent event) {
  v1::LogRecord record;
  record.set_lsn(lsn);
  *record.mutable_event() = std::move(event);
  return record;
}

v1::LogEvent RetryResolved(const std::string& xid, int64_t unix_ms) {
  v1::LogEvent event;
  event.set_xid(xid);
  event.set_unix_ms(unix_ms);
  event.mutable_resolved()->set_action("retry");
  event.mutable_resolved()->set_who("ops");
  return event;
}

TEST(ResolveFoldTest, TwoPcRetryKeepsTheStateAndJoinsTheTransactionsEvents) {
  std::optional<v1::SummaryRecord> rec;
  std::optional<v1::Transaction> saga;
  ASSERT_TRUE(FoldEvent(At(1, testing::Begun("t", 100, {"a", "b"})), &rec, &saga).applied);
  ASSERT_TRUE(
      FoldEvent(At(2, testing::Decided("t", 200, v1::COMMIT, {v1::YES, v1::YES})), &rec, &saga)
          .applied);
  FoldResult resolved = FoldEvent(At(3, RetryResolved("t", 300)), &rec, &saga);
  EXPECT_TRUE(resolved.applied) << "the resolution is an event of the transaction";
  EXPECT_FALSE(resolved.finished);
  EXPECT_FALSE(saga.has_value()) << "a 2PC transaction has no saga view";
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->summary().state(), v1::COMMITTING);
  EXPECT_EQ(rec->summary().mode(), "2pc");
  EXPECT_EQ(rec->summary().updated_unix_ms(), 300);
  EXPECT_EQ(rec->summary().last_lsn(), 3u);
  EXPECT_EQ(rec->event_lsns_size(), 3) << "retention must purge the Resolved event with the rest";
  FoldResult ended = FoldEvent(At(4, testing::Ended("t", 400)), &rec, &saga);
  EXPECT_TRUE(ended.finished);
  EXPECT_EQ(rec->summary().state(), v1::COMMITTED);
}

}  // namespace
}  // namespace treaty::readmodel
