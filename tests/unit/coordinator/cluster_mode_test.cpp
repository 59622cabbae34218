// Cluster mode without Raft: treatyd's cluster flags, and a follower coordinator over the
// single-node log (its gating does not depend on the log's replication).
#include "coordinator/cluster_mode.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordinator/coordinator.h"
#include "coordinator/metrics.h"
#include "net/leader.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "tests/testing/temp_dir.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::coordinator {
namespace {

ClusterFlags Flags(uint64_t id, std::string raft, std::string peers) {
  ClusterFlags f;
  f.node_id = id;
  f.raft = std::move(raft);
  f.peers = std::move(peers);
  return f;
}

constexpr char kPeers[] = "1=127.0.0.1:9101, 2=127.0.0.1:9102,3=127.0.0.1:9103";

TEST(ClusterFlagsTest, NoClusterFlagsMeansSingleNode) {
  auto options = ClusterOptionsFromFlags({}, "/data");
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_FALSE(options->has_value());
}

TEST(ClusterFlagsTest, ValidFlagsGiveTheLogsClusterOptions) {
  ClusterFlags f = Flags(2, "127.0.0.1:9102", kPeers);
  f.election_timeout_ms = 300;
  auto options = ClusterOptionsFromFlags(f, "/data");
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  ASSERT_TRUE(options->has_value());
  const log::ClusterOptions& c = **options;
  EXPECT_EQ(c.node_id, 2u);
  ASSERT_EQ(c.peers.size(), 3u);
  EXPECT_EQ(c.peers[0].id, 1u);
  EXPECT_EQ(c.peers[1].raft_address, "127.0.0.1:9102");
  EXPECT_EQ(c.raft_dir, "/data/raft");
  EXPECT_EQ(c.election_timeout_ms, 300u);
  EXPECT_EQ(c.heartbeat_timeout_ms, 50u) << "default heartbeat";
}

TEST(ClusterFlagsTest, BadFlagsAreRejectedNamingTheProblem) {
  struct Case {
    ClusterFlags flags;
    std::string expected;  // part of the message
  };
  ClusterFlags partial;
  partial.node_id = 1;
  partial.peers = kPeers;
  ClusterFlags timing_only;
  timing_only.heartbeat_ms = 10;
  ClusterFlags slow_heartbeat = Flags(1, "127.0.0.1:9101", kPeers);
  slow_heartbeat.heartbeat_ms = 500;
  const std::vector<Case> cases = {
      {partial, "missing: --raft"},
      {timing_only, "cluster flags"},
      {Flags(4, "127.0.0.1:9104", kPeers), "not one of the --peers"},
      {Flags(1, "127.0.0.1:9999", kPeers), "differs from node 1"},
      {Flags(1, "127.0.0.1:9101", "1=127.0.0.1:9101,1=127.0.0.1:9102"), "appears twice"},
      {Flags(1, "127.0.0.1:9101", "0=127.0.0.1:9100,1=127.0.0.1:9101"), ">= 1"},
      {Flags(1, "127.0.0.1:9101", "1=127.0.0.1:9101,x"), "not ID=HOST:PORT"},
      {Flags(1, "127.0.0.1:9101", "1=127.0.0.1:9101,2=nohost"), "HOST:PORT"},
      {Flags(0, "127.0.0.1:9101", kPeers), "--node-id must be >= 1"},
      {Flags(1, "h:1", "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5,6=h:6,7=h:7,8=h:8"), "at most 7"},
      {slow_heartbeat, "shorter than --election-timeout-ms"},
  };
  for (const auto& c : cases) {
    auto options = ClusterOptionsFromFlags(c.flags, "/data");
    ASSERT_FALSE(options.ok()) << "accepted; expected an error mentioning '" << c.expected << "'";
    EXPECT_EQ(options.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(options.status().message().find(c.expected), std::string::npos)
        << "message '" << options.status().message() << "' does not mention '" << c.expected << "'";
  }
}

TEST(DataDirTest, RaftFolderBelongsToATreatyDataDir) {
  treaty::testing::TempDir dir("datadir");
  std::filesystem::create_directories(dir.Sub("raft"));
  std::filesystem::create_directories(dir.Sub("log"));
  EXPECT_TRUE(CheckDataDir(dir.path()).ok());
  std::ofstream(dir.Sub("foreign.txt")) << "x";
  EXPECT_EQ(CheckDataDir(dir.path()).code(), StatusCode::kFailedPrecondition);
}

// A coordinator over a single-node log opened by the test (as treatyd does with the cluster log).
class SharedLogCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::LogOptions o;
    o.dir = dir_.Sub("log");
    o.sync = false;
    auto log = log::EventLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  void StartCoordinator(bool follower) {
    CoordinatorOptions o;
    o.data_dir = dir_.path();
    o.listen = "127.0.0.1:0";
    o.log = log_.get();
    o.follower = follower;
    o.client_address_of = [](uint64_t) { return std::string(kLeaderAddress); };
    auto c = Coordinator::Start(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    coordinator_ = std::move(*c);
    address_ = "127.0.0.1:" + std::to_string(coordinator_->port());
  }

  Result<std::string> Call(const char* method, const google::protobuf::Message& request) {
    return rpc_.Call(address_, method, request.SerializeAsString(), 5000);
  }

  static constexpr char kLeaderAddress[] = "10.0.0.7:7700";
  treaty::testing::TempDir dir_{"cluster_mode"};
  std::unique_ptr<log::EventLog> log_;
  std::unique_ptr<Coordinator> coordinator_;  // destroyed before the log
  std::string address_;
  net::RpcClient rpc_;
};

TEST_F(SharedLogCoordinatorTest, FollowerRedirectsWritesToTheLeader) {
  StartCoordinator(/*follower=*/true);
  v1::SubmitRequest submit;
  submit.set_xid("tx-1");
  submit.add_branches()->set_service("bank-a");
  auto submitted = Call(v1::methods::kSubmit, submit);
  ASSERT_FALSE(submitted.ok()) << "a follower must not accept a transaction";
  EXPECT_EQ(submitted.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(net::LeaderHint(submitted.status()), std::optional<std::string>(kLeaderAddress))
      << submitted.status().ToString();
  for (const char* method : {v1::methods::kQueryOutcome, v1::methods::kRegister,
                             v1::methods::kGetTransaction, v1::methods::kListServices}) {
    auto r = rpc_.Call(address_, method, "", 5000);
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << method;
    EXPECT_TRUE(net::LeaderHint(r.status()).has_value()) << method << ": " << r.status().ToString();
  }
}

TEST_F(SharedLogCoordinatorTest, FollowerServesTheReadModelAndClusterStatus) {
  StartCoordinator(/*follower=*/true);
  auto page = net::Decode<v1::ListTransactionsResponse>(
      Call(v1::methods::kListTransactions, v1::ListTransactionsRequest()));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->transactions_size(), 0);
  auto stats = Call(v1::methods::kStats, v1::StatsRequest());
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  auto status = net::Decode<v1::ClusterStatusResponse>(
      Call(v1::methods::kClusterStatus, v1::ClusterStatusRequest()));
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->leader_client_address(), kLeaderAddress);
}

TEST_F(SharedLogCoordinatorTest, SingleNodeLeaderServesAndReportsItsRole) {
  StartCoordinator(/*follower=*/false);
  auto status = net::Decode<v1::ClusterStatusResponse>(
      Call(v1::methods::kClusterStatus, v1::ClusterStatusRequest()));
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->role(), "single");
  EXPECT_TRUE(status->serving());
  EXPECT_EQ(status->node_id(), 0u);
  EXPECT_EQ(status->nodes_size(), 0);
  v1::QueryOutcomeRequest query;
  query.set_xid("never-seen");
  auto outcome = net::Decode<v1::QueryOutcomeResponse>(Call(v1::methods::kQueryOutcome, query));
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->outcome(), v1::OUTCOME_ABORT) << "presumed abort for an unknown xid";
}

TEST_F(SharedLogCoordinatorTest, FollowerNeedsTheClusterLog) {
  CoordinatorOptions o;
  o.data_dir = dir_.path();
  o.follower = true;
  EXPECT_EQ(Coordinator::Start(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SharedLogCoordinatorTest, GateOnASingleNodeLog) {
  ClusterGate leader(*log_, /*follower=*/false, {});
  EXPECT_TRUE(leader.CheckServing().ok());
  EXPECT_FALSE(leader.clustered());
  EXPECT_FALSE(leader.LeadershipLost(Status::Unavailable("x")))
      << "a single node never loses a leadership";
  EXPECT_EQ(leader.Readiness().status, 200);
  ClusterGate follower(*log_, /*follower=*/true, {});
  EXPECT_EQ(follower.CheckServing().code(), StatusCode::kUnavailable);
  EXPECT_EQ(follower.Readiness().status, 503);
}

TEST_F(SharedLogCoordinatorTest, SingleNodeMetricsHaveNoRaftGauges) {
  Metrics metrics(log_.get());
  const std::string text = metrics.Scrape();
  EXPECT_EQ(text.find("treaty_raft_"), std::string::npos) << text;
  EXPECT_NE(text.find("treaty_log_last_lsn"), std::string::npos);
}

}  // namespace
}  // namespace treaty::coordinator
