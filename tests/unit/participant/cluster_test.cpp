// A participant given a coordinator cluster (a list of addresses): registration and in-doubt
// queries reach the leader when the first address is a follower that answers with a leader hint.
#include <gtest/gtest.h>

#include <atomic>

#include "common/clock.h"
#include "net/leader.h"
#include "participant/participant.h"
#include "tests/unit/participant/participant_test_util.h"
#include "tests/unit/participant/test_service.h"

namespace treaty::participant::testing {
namespace {

constexpr int64_t kInDoubtAfterMs = 10'000;

// A follower node: answers every coordinator call with NotLeader and a hint to `leader`.
class FollowerNode {
 public:
  explicit FollowerNode(std::string leader) : server_(io_.io()) {
    for (const char* method : {v1::methods::kRegister, v1::methods::kQueryOutcome}) {
      server_.Register(method, [this, leader](std::string, uint32_t, net::Responder respond) {
        calls_.fetch_add(1);
        respond(net::NotLeader(2, leader));
      });
    }
    listen_status_ = server_.Listen("127.0.0.1:0");
  }
  ~FollowerNode() {
    server_.Stop();
    io_.Stop();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  const Status& listen_status() const { return listen_status_; }
  int calls() const { return calls_.load(); }

 private:
  net::IoThread io_;
  net::RpcServer server_;
  Status listen_status_;
  std::atomic<int> calls_{0};
};

class ClusterParticipantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(leader_.listen_status().ok());
    ASSERT_TRUE(follower_.listen_status().ok());
  }
  ParticipantOptions Options() {
    ParticipantOptions options = TestOptions(dir_.Sub("db"));
    options.coordinator = follower_.address() + "," + leader_.address();
    options.register_interval_ms = 50;
    options.recovery_interval_ms = 20;
    options.in_doubt_after_ms = kInDoubtAfterMs;
    options.clock = &clock_;
    return options;
  }

  FakeClock clock_;
  FakeCoordinator leader_;
  FollowerNode follower_{leader_.address()};
  TempDir dir_;
};

TEST_F(ClusterParticipantTest, RegistrationFollowsTheLeaderHint) {
  TestParticipant svc(Options());
  ASSERT_TRUE(svc.start_status().ok()) << svc.start_status().ToString();
  ASSERT_TRUE(WaitFor([&] { return leader_.Registrations().size() >= 3; }))
      << "registrations did not reach the leader; got " << leader_.Registrations().size();
  EXPECT_EQ(leader_.Registrations().front().address(), svc.participant().address());
  EXPECT_EQ(follower_.calls(), 1)
      << "after the first hint, heartbeats go straight to the leader it found";
}

TEST_F(ClusterParticipantTest, InDoubtQueryFollowsTheLeaderHint) {
  leader_.SetOutcome("tx-c", v1::OUTCOME_COMMIT);
  TestParticipant svc(Options());
  ASSERT_TRUE(svc.start_status().ok()) << svc.start_status().ToString();
  ASSERT_EQ(svc.client().Prepare("tx-c", 0, "put", "a")->vote(), v1::YES);
  clock_.AdvanceMs(kInDoubtAfterMs + 1);
  ASSERT_TRUE(WaitFor([&] { return svc.client().State("tx-c", 0) == v1::BRANCH_COMMITTED; }))
      << "the in-doubt branch was not resolved through the leader";
  EXPECT_EQ(leader_.Queries("tx-c"), 1);
}

TEST_F(ClusterParticipantTest, AMalformedCoordinatorListIsRefusedAtStart) {
  ParticipantOptions options = Options();
  options.coordinator = leader_.address() + ",,";
  TestParticipant svc(options);
  EXPECT_EQ(svc.start_status().code(), StatusCode::kInvalidArgument)
      << svc.start_status().ToString();
}

}  // namespace
}  // namespace treaty::participant::testing
