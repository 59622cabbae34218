// Fold: every (state, event) transition of the presumed-abort 2PC record.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;

constexpr char kXid[] = "tx-1";

// A record in `state` as the log would hold it; the empty record for TX_STATE_UNSPECIFIED.
v1::TxnRecord RecordIn(v1::TxState state) {
  v1::TxnRecord rec;
  if (state == v1::TX_STATE_UNSPECIFIED) return rec;
  rec.set_xid(kXid);
  rec.set_state(state);
  rec.set_reason("earlier");
  rec.set_created_unix_ms(10);
  rec.set_updated_unix_ms(20);
  rec.set_last_lsn(7);
  return rec;
}

v1::LogEvent NoEvent() {
  v1::LogEvent event;
  event.set_xid(kXid);
  return event;
}

struct Transition {
  const char* name;
  v1::TxState from;
  v1::LogEvent event;
  StatusCode code;
  v1::TxState to;  // expected state when code is OK
};

std::vector<Transition> AllTransitions() {
  using v1::ABORT;
  using v1::COMMIT;
  constexpr v1::TxState kEmpty = v1::TX_STATE_UNSPECIFIED;
  constexpr StatusCode kOk = StatusCode::kOk;
  constexpr StatusCode kRefused = StatusCode::kFailedPrecondition;
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument;
  v1::LogEvent no_decision = Decided(kXid, v1::DECISION_UNSPECIFIED);
  v1::LogEvent no_xid = Begun("");
  return {
      {"begin a new xid", kEmpty, Begun(kXid), kOk, v1::PREPARING},
      {"begin twice", v1::PREPARING, Begun(kXid), kRefused, {}},
      {"begin a finished xid", v1::COMMITTED, Begun(kXid), kRefused, {}},
      {"commit an unknown xid", kEmpty, Decided(kXid, COMMIT), kRefused, {}},
      {"abort an unknown xid (presumed abort)", kEmpty, Decided(kXid, ABORT), kOk, v1::ABORTING},
      {"commit while preparing", v1::PREPARING, Decided(kXid, COMMIT), kOk, v1::COMMITTING},
      {"abort while preparing", v1::PREPARING, Decided(kXid, ABORT), kOk, v1::ABORTING},
      {"commit again", v1::COMMITTING, Decided(kXid, COMMIT), kOk, v1::COMMITTING},
      {"abort again", v1::ABORTING, Decided(kXid, ABORT), kOk, v1::ABORTING},
      {"abort after commit", v1::COMMITTING, Decided(kXid, ABORT), kRefused, {}},
      {"commit after abort", v1::ABORTING, Decided(kXid, COMMIT), kRefused, {}},
      {"commit again after end", v1::COMMITTED, Decided(kXid, COMMIT), kOk, v1::COMMITTED},
      {"abort after committed", v1::COMMITTED, Decided(kXid, ABORT), kRefused, {}},
      {"abort again after end", v1::ABORTED, Decided(kXid, ABORT), kOk, v1::ABORTED},
      {"commit after aborted", v1::ABORTED, Decided(kXid, COMMIT), kRefused, {}},
      {"end an unknown xid", kEmpty, Ended(kXid), kRefused, {}},
      {"end before a decision", v1::PREPARING, Ended(kXid), kRefused, {}},
      {"end a commit", v1::COMMITTING, Ended(kXid), kOk, v1::COMMITTED},
      {"end an abort", v1::ABORTING, Ended(kXid), kOk, v1::ABORTED},
      {"end a committed xid again", v1::COMMITTED, Ended(kXid), kOk, v1::COMMITTED},
      {"end an aborted xid again", v1::ABORTED, Ended(kXid), kOk, v1::ABORTED},
      {"event with nothing set", v1::PREPARING, NoEvent(), kInvalid, {}},
      {"decision without a decision", v1::PREPARING, no_decision, kInvalid, {}},
      {"event without an xid", kEmpty, no_xid, kInvalid, {}},
  };
}

TEST(FoldTest, EveryTransitionHasTheExpectedOutcome) {
  for (const Transition& t : AllTransitions()) {
    SCOPED_TRACE(t.name);
    v1::TxnRecord rec = RecordIn(t.from);
    const std::string before = rec.SerializeAsString();
    const Status status = Fold(t.event, 42, &rec);
    ASSERT_EQ(status.code(), t.code)
        << "from " << v1::TxState_Name(t.from) << ": " << status.ToString();
    if (status.ok()) {
      EXPECT_EQ(rec.state(), t.to) << "wrong state after the event";
      EXPECT_EQ(rec.xid(), kXid);
      EXPECT_EQ(rec.last_lsn(), 42u) << "last_lsn must be the folded event's lsn";
      EXPECT_EQ(rec.updated_unix_ms(), t.event.unix_ms()) << "updated time must be the event's";
    } else {
      EXPECT_EQ(rec.SerializeAsString(), before) << "a refused event must leave the record as is";
    }
  }
}

TEST(FoldTest, BeginCopiesTheTransactionDefinition) {
  v1::TxnRecord rec;
  const v1::LogEvent begun = Begun(kXid, 1234);
  ASSERT_TRUE(Fold(begun, 1, &rec).ok());
  EXPECT_EQ(rec.branches_size(), 2);
  EXPECT_EQ(rec.branches(1).service(), "bank-b");
  EXPECT_EQ(rec.prepare_timeout_ms(), 500u);
  EXPECT_EQ(rec.created_unix_ms(), 1234);
  EXPECT_EQ(rec.updated_unix_ms(), 1234);
}

TEST(FoldTest, CommitRecordsVotesAndReasonAndKeepsCreationTime) {
  v1::TxnRecord rec = RecordIn(v1::PREPARING);
  ASSERT_TRUE(Fold(Decided(kXid, v1::COMMIT, "all voted yes", 5000), 8, &rec).ok());
  ASSERT_EQ(rec.votes_size(), 2);
  EXPECT_EQ(rec.votes(0), v1::YES);
  EXPECT_EQ(rec.votes(1), v1::READ_ONLY);
  EXPECT_EQ(rec.reason(), "all voted yes");
  EXPECT_EQ(rec.created_unix_ms(), 10) << "a decision must not move the creation time";
}

TEST(FoldTest, RepeatedDecisionDoesNotOverwriteTheFirstReason) {
  v1::TxnRecord rec = RecordIn(v1::PREPARING);
  ASSERT_TRUE(Fold(Decided(kXid, v1::ABORT, "bank-a voted NO"), 8, &rec).ok());
  ASSERT_TRUE(Fold(Decided(kXid, v1::ABORT, "prepare timeout"), 9, &rec).ok());
  EXPECT_EQ(rec.reason(), "bank-a voted NO");
  EXPECT_EQ(rec.last_lsn(), 9u);
}

TEST(FoldTest, PresumedAbortOfUnknownXidRecordsReasonAndCreationTime) {
  v1::TxnRecord rec;
  ASSERT_TRUE(Fold(Decided(kXid, v1::ABORT, "unknown after restart", 777), 3, &rec).ok());
  EXPECT_EQ(rec.reason(), "unknown after restart");
  EXPECT_EQ(rec.created_unix_ms(), 777);
  EXPECT_EQ(rec.branches_size(), 0);
}

TEST(FoldTest, ContradictingDecisionMessageNamesXidAndBothDecisions) {
  v1::TxnRecord rec = RecordIn(v1::COMMITTING);
  const Status status = Fold(Decided(kXid, v1::ABORT), 9, &rec);
  EXPECT_EQ(status.message(), "xid=tx-1 already decided COMMIT; refusing ABORT");
}

TEST(FoldTest, EventOfAnotherXidIsInvalid) {
  v1::TxnRecord rec = RecordIn(v1::PREPARING);
  EXPECT_EQ(Fold(Ended("tx-other"), 9, &rec).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rec.state(), v1::PREPARING);
}

}  // namespace
}  // namespace treaty::log
