// Registration and in-doubt resolution against a fake coordinator on loopback.
#include <gtest/gtest.h>

#include "common/clock.h"
#include "participant/participant.h"
#include "tests/unit/participant/participant_test_util.h"
#include "tests/unit/participant/test_service.h"

namespace treaty::participant::testing {
namespace {

constexpr int64_t kInDoubtAfterMs = 10'000;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(coordinator_.listen_status().ok()); }

  ParticipantOptions Options() {
    ParticipantOptions options = TestOptions(dir_.Sub("db"));
    options.coordinator = coordinator_.address();
    options.register_interval_ms = 50;
    options.recovery_interval_ms = 20;
    options.in_doubt_after_ms = kInDoubtAfterMs;
    options.clock = &clock_;
    return options;
  }
  std::unique_ptr<TestParticipant> StartParticipant() {
    auto svc = std::make_unique<TestParticipant>(Options());
    EXPECT_TRUE(svc->start_status().ok()) << svc->start_status().ToString();
    return svc;
  }

  FakeClock clock_;
  FakeCoordinator coordinator_;
  TempDir dir_;
};

TEST_F(RecoveryTest, RegistersItsAddressAndKeepsReRegistering) {
  auto svc = StartParticipant();
  ASSERT_TRUE(WaitFor([&] { return coordinator_.Registrations().size() >= 3; }))
      << "expected periodic re-registration, got " << coordinator_.Registrations().size();
  const v1::RegisterRequest first = coordinator_.Registrations().front();
  EXPECT_EQ(first.service(), "svc");
  EXPECT_EQ(first.address(), svc->participant().address());
  EXPECT_EQ(first.address(), "127.0.0.1:" + std::to_string(svc->participant().port()));
}

TEST_F(RecoveryTest, FreshPreparedBranchIsNotQueriedBeforeInDoubtAge) {
  auto svc = StartParticipant();
  ASSERT_EQ(svc->client().Prepare("tx-young", 0, "put")->vote(), v1::YES);
  // Several scan periods pass in real time while the fake clock stands still.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(coordinator_.Queries("tx-young"), 0)
      << "a branch younger than in_doubt_after_ms is waiting for its decision normally";
  EXPECT_EQ(svc->client().State("tx-young", 0), v1::BRANCH_PREPARED);
}

TEST_F(RecoveryTest, InDoubtBranchCommitsWhenCoordinatorSaysCommit) {
  auto svc = StartParticipant();
  coordinator_.SetOutcome("tx-c", v1::OUTCOME_COMMIT);
  ASSERT_EQ(svc->client().Prepare("tx-c", 0, "put", "a")->vote(), v1::YES);
  ASSERT_EQ(svc->client().Prepare("tx-c", 1, "put", "b")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] {
    return svc->client().State("tx-c", 0) == v1::BRANCH_COMMITTED &&
           svc->client().State("tx-c", 1) == v1::BRANCH_COMMITTED;
  })) << "in-doubt branches were not committed";
  EXPECT_EQ(svc->Get("committed/a"), "tx-c");
  EXPECT_EQ(svc->Get("committed/b"), "tx-c");
  EXPECT_EQ(svc->calls().commit.load(), 2);
  EXPECT_EQ(coordinator_.Queries("tx-c"), 1) << "one query per xid, not per branch";
  EXPECT_TRUE(WaitFor([&] { return svc->participant().Stats().resolved_in_doubt == 2; }));
}

TEST_F(RecoveryTest, InDoubtBranchOfUnknownXidIsAborted) {
  auto svc = StartParticipant();
  ASSERT_EQ(svc->client().Prepare("tx-unknown", 0, "put", "a")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] { return svc->client().State("tx-unknown", 0) == v1::BRANCH_ABORTED; }))
      << "presumed abort: an xid the coordinator does not know must be aborted";
  EXPECT_EQ(svc->Get("aborted/a"), "tx-unknown");
  EXPECT_EQ(svc->calls().commit.load(), 0);
}

TEST_F(RecoveryTest, ExplicitAbortOutcomeAbortsAndLateCommitIsRefused) {
  auto svc = StartParticipant();
  coordinator_.SetOutcome("tx-a", v1::OUTCOME_ABORT);
  ASSERT_EQ(svc->client().Prepare("tx-a", 0, "put")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] { return svc->client().State("tx-a", 0) == v1::BRANCH_ABORTED; }));
  EXPECT_EQ(svc->client().Commit("tx-a", 0).code(), StatusCode::kFailedPrecondition);
}

TEST_F(RecoveryTest, PendingOutcomeKeepsBranchPreparedUntilDecided) {
  auto svc = StartParticipant();
  coordinator_.SetOutcome("tx-p", v1::OUTCOME_PENDING);
  ASSERT_EQ(svc->client().Prepare("tx-p", 0, "put")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] { return coordinator_.Queries("tx-p") >= 3; }))
      << "a PENDING answer must be asked again later";
  EXPECT_EQ(svc->client().State("tx-p", 0), v1::BRANCH_PREPARED);
  coordinator_.SetOutcome("tx-p", v1::OUTCOME_COMMIT);
  EXPECT_TRUE(WaitFor([&] { return svc->client().State("tx-p", 0) == v1::BRANCH_COMMITTED; }));
}

TEST_F(RecoveryTest, BranchPreparedBeforeRestartIsResolvedAtOnce) {
  coordinator_.SetOutcome("tx-r", v1::OUTCOME_COMMIT);
  {
    // First life without a coordinator: the branch stays prepared.
    ParticipantOptions options = Options();
    options.coordinator.clear();
    TestParticipant svc(options);
    ASSERT_TRUE(svc.start_status().ok());
    ASSERT_EQ(svc.client().Prepare("tx-r", 0, "put", "a")->vote(), v1::YES);
  }
  auto svc = StartParticipant();  // the fake clock has not moved
  ASSERT_TRUE(WaitFor([&] { return svc->client().State("tx-r", 0) == v1::BRANCH_COMMITTED; }))
      << "a branch found prepared at start is in doubt immediately";
  EXPECT_EQ(svc->Get("committed/a"), "tx-r");
}

TEST_F(RecoveryTest, UnreachableCoordinatorLeavesBranchPrepared) {
  ParticipantOptions options = Options();
  options.coordinator = "127.0.0.1:1";  // nothing listens there
  TestParticipant svc(options);
  ASSERT_TRUE(svc.start_status().ok());
  ASSERT_EQ(svc.client().Prepare("tx-u", 0, "put")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] { return svc.participant().Stats().in_doubt_queries >= 2; }));
  EXPECT_EQ(svc.client().State("tx-u", 0), v1::BRANCH_PREPARED)
      << "without an answer the branch must stay prepared (never decide unilaterally)";
}

}  // namespace
}  // namespace treaty::participant::testing
