// Barrier semantics, durability across restart, data dir checks and group commit, exercised over
// real loopback RPC as the coordinator would call a participant.
#include "participant/participant.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <fstream>
#include <future>
#include <vector>

#include "common/limits.h"
#include "tests/unit/participant/participant_test_util.h"
#include "tests/unit/participant/test_service.h"

namespace treaty::participant::testing {
namespace {

class ParticipantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    svc_ = std::make_unique<TestParticipant>(TestOptions(dir_.Sub("db")));
    ASSERT_TRUE(svc_->start_status().ok()) << svc_->start_status().ToString();
  }
  ParticipantClient& client() { return svc_->client(); }
  HandlerCalls& calls() { return svc_->calls(); }

  TempDir dir_;
  std::unique_ptr<TestParticipant> svc_;
};

TEST_F(ParticipantTest, YesVoteRecordsPreparedBranchWithHandlerWrites) {
  Result<v1::PrepareResponse> vote = client().Prepare("tx-1", 0, "put", "a");
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(vote->vote(), v1::YES);
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_PREPARED);
  EXPECT_EQ(svc_->Get("a"), "prepared") << "the prepare handler's write must be applied";
  EXPECT_EQ(svc_->participant().Stats().prepared, 1u);
}

TEST_F(ParticipantTest, DuplicatePrepareReturnsFirstVoteWithoutRerunningHandler) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put")->vote(), v1::YES);
  Result<v1::PrepareResponse> again = client().Prepare("tx-1", 0, "put");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->vote(), v1::YES);

  Result<v1::PrepareResponse> no = client().Prepare("tx-2", 0, "no");
  ASSERT_EQ(no->vote(), v1::NO);
  Result<v1::PrepareResponse> no_again = client().Prepare("tx-2", 0, "no");
  ASSERT_TRUE(no_again.ok()) << no_again.status().ToString();
  EXPECT_EQ(no_again->vote(), v1::NO);
  EXPECT_EQ(no_again->reason(), "not today") << "a repeated NO must carry the recorded reason";
  EXPECT_EQ(calls().prepare.load(), 2) << "each prepare handler must run exactly once";
}

TEST_F(ParticipantTest, AbortBeforePrepareMakesLatePrepareVoteNo) {
  ASSERT_TRUE(client().Abort("tx-1", 3).ok()) << "an abort of an unknown branch is a null abort";
  EXPECT_EQ(client().State("tx-1", 3), v1::BRANCH_ABORTED);
  Result<v1::PrepareResponse> late = client().Prepare("tx-1", 3, "put", "a");
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  EXPECT_EQ(late->vote(), v1::NO);
  EXPECT_EQ(late->reason(), "aborted before prepare");
  EXPECT_EQ(calls().prepare.load(), 0) << "the handler must not run after the abort (anti-hanging)";
  EXPECT_EQ(svc_->Get("a"), "<none>");
}

TEST_F(ParticipantTest, CommitTwiceAppliesOnce) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put", "a")->vote(), v1::YES);
  ASSERT_TRUE(client().Commit("tx-1", 0).ok());
  Status again = client().Commit("tx-1", 0);
  EXPECT_TRUE(again.ok()) << "a repeated commit must be acknowledged: " << again.ToString();
  EXPECT_EQ(calls().commit.load(), 1) << "the commit handler must run once";
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_COMMITTED);
  EXPECT_EQ(svc_->Get("committed/a"), "tx-1");
  EXPECT_EQ(svc_->participant().Stats().prepared, 0u);
}

TEST_F(ParticipantTest, AbortAfterCommitIsRefused) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put")->vote(), v1::YES);
  ASSERT_TRUE(client().Commit("tx-1", 0).ok());
  EXPECT_EQ(client().Abort("tx-1", 0).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(calls().abort.load(), 0);
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_COMMITTED);
}

TEST_F(ParticipantTest, CommitOfAbortedOrUnknownBranchIsRefused) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put")->vote(), v1::YES);
  ASSERT_TRUE(client().Abort("tx-1", 0).ok());
  EXPECT_EQ(client().Commit("tx-1", 0).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(client().Commit("tx-unknown", 0).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(client().State("tx-unknown", 0), v1::BRANCH_STATE_UNKNOWN)
      << "a refused commit must record nothing";
  EXPECT_EQ(calls().commit.load(), 0);
}

// A coordinator that resumes an aborted transaction's prepare (a new leader after a failover)
// must learn that this branch is gone, or it would commit a transaction that already aborted here.
TEST_F(ParticipantTest, RepeatedPrepareOfAnAbortedBranchVotesNoAndItsCommitIsRefused) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put", "a")->vote(), v1::YES);
  ASSERT_TRUE(client().Abort("tx-1", 0).ok());
  Result<v1::PrepareResponse> again = client().Prepare("tx-1", 0, "put", "a");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->vote(), v1::NO)
      << "a branch that voted YES and then aborted must not vote YES again";
  EXPECT_EQ(again->reason(), "branch already aborted");
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_ABORTED);
  EXPECT_EQ(client().Commit("tx-1", 0).code(), StatusCode::kFailedPrecondition)
      << "a commit of the aborted branch must be refused";
  EXPECT_EQ(calls().prepare.load(), 1) << "the repeated prepare must not run the handler";
  EXPECT_EQ(calls().commit.load(), 0);
  EXPECT_EQ(svc_->Get("committed/a"), "<none>") << "nothing of the branch may be committed";
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_ABORTED);
}

TEST_F(ParticipantTest, AbortOfPreparedBranchRunsAbortHandlerOnce) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put", "a")->vote(), v1::YES);
  ASSERT_TRUE(client().Abort("tx-1", 0).ok());
  ASSERT_TRUE(client().Abort("tx-1", 0).ok());
  EXPECT_EQ(calls().abort.load(), 1);
  EXPECT_EQ(svc_->Get("aborted/a"), "tx-1") << "the abort handler gets the prepared payload";
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_ABORTED);
}

TEST_F(ParticipantTest, NoVoteDiscardsHandlerWritesAndEndsTheBranch) {
  Result<v1::PrepareResponse> vote = client().Prepare("tx-1", 0, "no", "a");
  ASSERT_TRUE(vote.ok());
  EXPECT_EQ(vote->vote(), v1::NO);
  EXPECT_EQ(vote->reason(), "not today");
  EXPECT_EQ(svc_->Get("junk/a"), "<none>") << "a NO voter's writes must be discarded";
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_ABORTED);
  EXPECT_TRUE(client().Abort("tx-1", 0).ok());
  EXPECT_EQ(client().Commit("tx-1", 0).code(), StatusCode::kFailedPrecondition);
}

TEST_F(ParticipantTest, ReadOnlyVoteDiscardsWritesAndAcceptsEitherDecision) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "ro", "a")->vote(), v1::READ_ONLY);
  EXPECT_EQ(svc_->Get("junk/a"), "<none>");
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_READ_ONLY);
  EXPECT_TRUE(client().Commit("tx-1", 0).ok());
  EXPECT_TRUE(client().Abort("tx-1", 0).ok());
  EXPECT_EQ(svc_->participant().Stats().prepared, 0u) << "a READ_ONLY branch is never in doubt";
}

TEST_F(ParticipantTest, UnknownOpIsNotFoundAndRecordsNothing) {
  Result<v1::PrepareResponse> vote = client().Prepare("tx-1", 0, "nope");
  ASSERT_FALSE(vote.ok());
  EXPECT_EQ(vote.status().code(), StatusCode::kNotFound);
  EXPECT_NE(vote.status().message().find("service svc has no handler for op nope"),
            std::string::npos)
      << vote.status().ToString();
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_STATE_UNKNOWN);
}

TEST_F(ParticipantTest, ThrowingOrFailingHandlerReturnsErrorAndRecordsNothing) {
  Result<v1::PrepareResponse> thrown = client().Prepare("tx-1", 0, "throw", "a");
  EXPECT_EQ(thrown.status().code(), StatusCode::kInternal) << thrown.status().ToString();
  EXPECT_EQ(svc_->Get("junk/a"), "<none>");
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_STATE_UNKNOWN);

  Result<v1::PrepareResponse> failed = client().Prepare("tx-2", 0, "fail");
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  EXPECT_EQ(client().State("tx-2", 0), v1::BRANCH_STATE_UNKNOWN)
      << "a failed prepare may be retried, so nothing is recorded";
  EXPECT_EQ(client().Prepare("tx-2", 0, "fail").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls().prepare.load(), 3);
}

TEST_F(ParticipantTest, InvalidXidIsRefused) {
  EXPECT_EQ(client().Prepare("", 0, "put").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client().Abort(std::string("a\0b", 3), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client().Prepare(std::string(kMaxXidBytes + 1, 'x'), 0, "put").status().code(),
            StatusCode::kInvalidArgument)
      << "a participant accepts no xid the coordinator would refuse";
}

TEST_F(ParticipantTest, InspectListsEveryBranchOfTheXidOnly) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put", "a")->vote(), v1::YES);
  ASSERT_EQ(client().Prepare("tx-1", 1, "no", "b")->vote(), v1::NO);
  ASSERT_EQ(client().Prepare("tx-1", 2, "ro", "c")->vote(), v1::READ_ONLY);
  ASSERT_EQ(client().Prepare("tx-10", 0, "put", "d")->vote(), v1::YES);
  const std::map<uint32_t, v1::BranchState> expected = {
      {0, v1::BRANCH_PREPARED}, {1, v1::BRANCH_ABORTED}, {2, v1::BRANCH_READ_ONLY}};
  EXPECT_EQ(client().Inspect("tx-1"), expected);
}

TEST_F(ParticipantTest, ConcurrentPreparesAreSerializedDurableAndGroupCommitted) {
  constexpr int kPrepares = 400;
  std::vector<std::future<Result<std::string>>> replies;
  for (int i = 0; i < kPrepares; ++i) {
    v1::PrepareRequest req;
    req.set_xid("tx-" + std::to_string(i));
    req.set_op("incr");
    auto done = std::make_shared<std::promise<Result<std::string>>>();
    replies.push_back(done->get_future());
    client().rpc().CallAsync(client().address(), v1::methods::kPrepare, req.SerializeAsString(),
                             kCallMs, [done](Result<std::string> r) { done->set_value(r); });
  }
  for (int i = 0; i < kPrepares; ++i) {
    Result<v1::PrepareResponse> vote = net::Decode<v1::PrepareResponse>(replies[i].get());
    ASSERT_TRUE(vote.ok()) << "prepare " << i << ": " << vote.status().ToString();
    ASSERT_EQ(vote->vote(), v1::YES) << "prepare " << i;
  }
  EXPECT_EQ(svc_->Get("counter"), std::to_string(kPrepares))
      << "read-modify-write handlers must run one at a time and see each other's writes";
  const ParticipantStats stats = svc_->participant().Stats();
  EXPECT_EQ(stats.prepared, static_cast<size_t>(kPrepares));
  EXPECT_GE(stats.requests, static_cast<uint64_t>(kPrepares));
  EXPECT_LE(stats.syncs, stats.rounds) << "at most one WAL sync per round";
  EXPECT_LT(stats.syncs, static_cast<uint64_t>(kPrepares))
      << "pipelined prepares must share WAL syncs (group commit)";

  // Every branch is durably prepared: it is still there after a restart.
  svc_.reset();
  svc_ = std::make_unique<TestParticipant>(TestOptions(dir_.Sub("db")));
  ASSERT_TRUE(svc_->start_status().ok()) << svc_->start_status().ToString();
  EXPECT_EQ(svc_->participant().Stats().prepared, static_cast<size_t>(kPrepares));
  EXPECT_EQ(svc_->Get("counter"), std::to_string(kPrepares));
}

TEST_F(ParticipantTest, EveryRoundThatWroteIsSyncedBeforeItsReplyAndReadsAreNot) {
  const uint64_t syncs_before = svc_->participant().Stats().syncs;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client().Prepare("tx-" + std::to_string(i), 0, "put")->vote(), v1::YES);
  }
  // Each sequential prepare was its own round, and its reply arrived only after that round's sync.
  EXPECT_EQ(svc_->participant().Stats().syncs - syncs_before, 5u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client().State("tx-0", 0), v1::BRANCH_PREPARED);
  EXPECT_EQ(svc_->participant().Stats().syncs - syncs_before, 5u)
      << "rounds that only read must not sync";
}

TEST_F(ParticipantTest, PreparedBranchSurvivesRestartAndCommitsAfterIt) {
  ASSERT_EQ(client().Prepare("tx-1", 0, "put", "a")->vote(), v1::YES);
  svc_->participant().Stop();
  svc_.reset();

  svc_ = std::make_unique<TestParticipant>(TestOptions(dir_.Sub("db")));
  ASSERT_TRUE(svc_->start_status().ok()) << svc_->start_status().ToString();
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_PREPARED);
  EXPECT_EQ(svc_->participant().Stats().prepared, 1u) << "prepared branches are loaded at start";
  EXPECT_EQ(svc_->Get("a"), "prepared");
  ASSERT_TRUE(client().Commit("tx-1", 0).ok());
  EXPECT_EQ(calls().commit.load(), 1);
  EXPECT_EQ(svc_->Get("committed/a"), "tx-1") << "commit after restart uses the recorded payload";
  EXPECT_EQ(client().State("tx-1", 0), v1::BRANCH_COMMITTED);
}

TEST(ParticipantLifecycleTest, StopIsIdempotentAndStartRunsOnce) {
  TempDir dir;
  TestParticipant svc(TestOptions(dir.Sub("db")));
  ASSERT_TRUE(svc.start_status().ok());
  EXPECT_EQ(svc.participant().Start().code(), StatusCode::kFailedPrecondition);
  svc.participant().Stop();
  svc.participant().Stop();
}

TEST(ParticipantDataDirTest, InitializerRunsOnlyForANewDir) {
  TempDir dir;
  int runs = 0;
  for (int i = 0; i < 2; ++i) {
    Participant p(TestOptions(dir.Sub("db")));
    p.RegisterQuery(kGetMethod, [](const std::string& key, LocalReader& db) -> Result<std::string> {
      auto v = db.Get(key);
      if (!v.ok()) return v.status();
      return v->value_or("<none>");
    });
    p.SetInitializer([&runs, i](LocalTxn& txn) {
      ++runs;
      txn.Put("seed", std::to_string(i));
      return Status::Ok();
    });
    ASSERT_TRUE(p.Start().ok());
    ParticipantClient client(p.address());
    EXPECT_EQ(*client.Call(kGetMethod, "seed"), "0") << "start " << i;
  }
  EXPECT_EQ(runs, 1);
}

TEST(ParticipantDataDirTest, DirOfAnotherServiceIsRefused) {
  TempDir dir;
  { ASSERT_TRUE(TestParticipant(TestOptions(dir.Sub("db"))).start_status().ok()); }
  ParticipantOptions other = TestOptions(dir.Sub("db"));
  other.service = "other";
  Status s = TestParticipant(other).start_status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("belongs to service 'svc'"), std::string::npos) << s.ToString();
}

TEST(ParticipantDataDirTest, ForeignDatabaseIsRefused) {
  TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.Sub("db"), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "someone", "else").ok());
  }
  Status s = TestParticipant(TestOptions(dir.Sub("db"))).start_status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("not a Treaty participant store"), std::string::npos) << s.ToString();
}

TEST(ParticipantDataDirTest, NonEmptyDirWithoutDatabaseIsRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir.Sub("db"));
  std::ofstream(dir.Sub("db") + "/notes.txt") << "my files";
  Status s = TestParticipant(TestOptions(dir.Sub("db"))).start_status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("db") + "/notes.txt"));
}

TEST(ParticipantDataDirTest, CorruptDatabaseIsAnErrorNotACrash) {
  TempDir dir;
  { ASSERT_TRUE(TestParticipant(TestOptions(dir.Sub("db"))).start_status().ok()); }
  std::ofstream(dir.Sub("db") + "/CURRENT", std::ios::trunc) << "garbage-not-a-manifest\n";
  Status s = TestParticipant(TestOptions(dir.Sub("db"))).start_status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir.Sub("db")), std::string::npos)
      << "the error must name the directory: " << s.ToString();
}

TEST(ParticipantDataDirTest, LockedDirIsUnavailable) {
  TempDir dir;
  TestParticipant first(TestOptions(dir.Sub("db")));
  ASSERT_TRUE(first.start_status().ok());
  Status s = TestParticipant(TestOptions(dir.Sub("db"))).start_status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

TEST(ParticipantOptionsTest, MissingServiceOrDirOrPrepareHandlerIsInvalid) {
  TempDir dir;
  ParticipantOptions no_service = TestOptions(dir.Sub("db"));
  no_service.service.clear();
  EXPECT_EQ(Participant(no_service).Start().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Participant(TestOptions("")).Start().code(), StatusCode::kInvalidArgument);
  Participant no_prepare(TestOptions(dir.Sub("db")));
  no_prepare.RegisterOp("x", {});
  EXPECT_EQ(no_prepare.Start().code(), StatusCode::kInvalidArgument);
  ParticipantOptions bad_listen = TestOptions(dir.Sub("db"));
  bad_listen.listen = "nonsense";
  EXPECT_EQ(Participant(bad_listen).Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treaty::participant::testing
