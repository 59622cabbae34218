// The CLI against a coordinator cluster of fake nodes (real RpcServers on loopback): `treaty
// cluster status` (table, JSON, exit codes) and a submission that follows a leader hint with the
// xid it chose before the first attempt.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cluster_commands.h"
#include "cli/commands.h"
#include "net/leader.h"
#include "net/rpc.h"
#include "tests/testing/temp_dir.h"
#include "treaty/v1/methods.h"

namespace treaty::cli {
namespace {

// One fake coordinator node: answers `method` with `answer(request payload)`.
class FakeNode {
 public:
  using Answer = std::function<Result<std::string>(const std::string& payload)>;
  FakeNode(const char* method, Answer answer) : server_(io_.io()) {
    server_.Register(method, [answer](std::string payload, uint32_t, net::Responder respond) {
      respond(answer(payload));
    });
    EXPECT_TRUE(server_.Listen("127.0.0.1:0").ok());
  }
  ~FakeNode() {
    server_.Stop();
    io_.Stop();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }

 private:
  net::IoThread io_;
  net::RpcServer server_;
};

v1::ClusterStatusResponse NodeStatus(uint64_t id, const std::string& role, bool serving,
                                     uint64_t leader_id, uint64_t commit, uint64_t applied) {
  v1::ClusterStatusResponse s;
  s.set_node_id(id);
  s.set_role(role);
  s.set_serving(serving);
  s.set_term(3);
  s.set_leader_id(leader_id);
  s.set_commit_index(commit);
  s.set_applied_index(applied);
  return s;
}

NodeReport Answered(const std::string& address, v1::ClusterStatusResponse s) {
  return NodeReport{address, std::move(s), Status::Ok()};
}
NodeReport Unreachable(const std::string& address) {
  return NodeReport{address, std::nullopt, Status::Unavailable("connection refused")};
}

TEST(ClusterStatusTest, TableShowsEveryNodeWithLagAndExitsZeroWithALeader) {
  std::ostringstream out, err;
  const int code =
      PrintClusterStatus({Answered("10.0.0.1:7700", NodeStatus(1, "leader", true, 1, 120, 120)),
                          Answered("10.0.0.2:7700", NodeStatus(2, "follower", false, 1, 118, 100)),
                          Unreachable("10.0.0.3:7700")},
                         "table", out, err);
  EXPECT_EQ(code, kExitOk) << err.str();
  const std::string table = out.str();
  EXPECT_NE(table.find("NODE  ADDRESS"), std::string::npos) << table;
  EXPECT_NE(table.find("10.0.0.2:7700         follower        no       3       1       118       "
                       "100       20"),
            std::string::npos)
      << "lag is the highest commit index seen (120) minus the node's applied index:\n"
      << table;
  EXPECT_NE(table.find("10.0.0.3:7700         unreachable"), std::string::npos) << table;
}

TEST(ClusterStatusTest, AMemberThatIsNotAVoterYetShowsItsMembershipRole) {
  std::ostringstream out, err;
  v1::ClusterStatusResponse spare = NodeStatus(4, "follower", false, 1, 120, 90);
  for (uint64_t id : {1, 2, 3, 4}) {
    v1::ClusterNode* member = spare.add_nodes();
    member->set_id(id);
    member->set_role(id == 4 ? "spare" : "voter");
  }
  PrintClusterStatus({Answered("10.0.0.1:7700", NodeStatus(1, "leader", true, 1, 120, 120)),
                      Answered("10.0.0.4:7700", spare)},
                     "table", out, err);
  EXPECT_NE(out.str().find("10.0.0.4:7700         follower/spare  no"), std::string::npos)
      << out.str();
  EXPECT_EQ(out.str().find("leader/"), std::string::npos) << "voters show their Raft state only";
  EXPECT_TRUE(err.str().empty()) << err.str();
}

TEST(ClusterStatusTest, WithoutAServingLeaderExitsUnreachableSayingNoLeader) {
  std::ostringstream out, err;
  const int code = PrintClusterStatus(
      {Answered("a:1", NodeStatus(1, "candidate", false, 0, 7, 7)),
       Answered("b:2", NodeStatus(2, "leader", false, 2, 7, 7))},  // elected, not serving yet
      "table", out, err);
  EXPECT_EQ(code, kExitUnreachable);
  EXPECT_NE(err.str().find("no leader"), std::string::npos) << err.str();
}

TEST(ClusterStatusTest, NoNodeAnsweringExitsUnreachable) {
  std::ostringstream out, err;
  EXPECT_EQ(PrintClusterStatus({Unreachable("a:1"), Unreachable("b:2")}, "table", out, err),
            kExitUnreachable);
  EXPECT_NE(err.str().find("no coordinator reachable"), std::string::npos) << err.str();
}

TEST(ClusterStatusTest, ANodeAnsweringAnErrorIsReachableButNoLeader) {
  std::ostringstream out, err;
  EXPECT_EQ(PrintClusterStatus(
                {NodeReport{"a:1", std::nullopt, Status::NotFound("unknown method coordinator.X")}},
                "table", out, err),
            kExitUnreachable);
  EXPECT_NE(out.str().find("a:1                   error (NOT_FOUND"), std::string::npos)
      << out.str();
  EXPECT_NE(err.str().find("no leader"), std::string::npos) << err.str();
}

TEST(ClusterStatusTest, ASingleNodeCountsAsLeader) {
  std::ostringstream out, err;
  EXPECT_EQ(PrintClusterStatus({Answered("a:1", NodeStatus(0, "single", true, 0, 0, 0))}, "table",
                               out, err),
            kExitOk)
      << err.str();
}

TEST(ClusterStatusTest, JsonNamesTheLeaderAndTheUnreachable) {
  std::ostringstream out, err;
  PrintClusterStatus({Answered("a:1", NodeStatus(1, "leader", true, 1, 5, 4)), Unreachable("b:2")},
                     "json", out, err);
  const std::string j = out.str();
  EXPECT_NE(j.find(R"("leader":"a:1")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("reachable":false)"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("lag":1)"), std::string::npos) << j;
}

TEST(ClusterStatusTest, AsksEveryAddress) {
  auto answer = [](uint64_t id, const char* role) {
    return [id, role](const std::string&) -> Result<std::string> {
      return NodeStatus(id, role, id == 2, 2, 9, 9).SerializeAsString();
    };
  };
  FakeNode follower(v1::methods::kClusterStatus, answer(1, "follower"));
  FakeNode leader(v1::methods::kClusterStatus, answer(2, "leader"));
  const std::string dead = "127.0.0.1:1";
  GlobalOptions global;
  global.coordinators = {follower.address(), dead, leader.address()};
  std::ostringstream out, err;
  EXPECT_EQ(ClusterStatus(global, out, err), kExitOk) << err.str() << out.str();
  const std::vector<NodeReport> reports = FetchClusterStatus(global.coordinators, 1000);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].status->node_id(), 1u);
  EXPECT_FALSE(reports[1].status.has_value());
  EXPECT_EQ(reports[2].status->role(), "leader");
}

TEST(SubmitTest, TheXidIsChosenBeforeTheFirstAttemptAndKeptAcrossTheLeaderChange) {
  std::mutex mu;
  std::vector<std::string> xids;  // as each node received them
  auto record = [&](const std::string& payload) {
    v1::SubmitRequest req;
    req.ParseFromString(payload);
    std::lock_guard<std::mutex> lock(mu);
    xids.push_back(req.xid());
    return req;
  };
  FakeNode leader(v1::methods::kSubmit, [&](const std::string& payload) -> Result<std::string> {
    v1::SubmitResponse resp;
    resp.set_xid(record(payload).xid());
    resp.set_state(v1::COMMITTED);
    return resp.SerializeAsString();
  });
  FakeNode follower(v1::methods::kSubmit, [&](const std::string& payload) -> Result<std::string> {
    record(payload);
    return net::NotLeader(1, leader.address());
  });
  testing::TempDir dir;
  const std::string file = dir.Sub("tx.json");
  std::ofstream(file) << R"({"branches":[{"service":"bank-a","op":"debit"}]})";

  GlobalOptions global;
  global.coordinators = {follower.address(), leader.address()};
  SubmitOptions submit;
  submit.file = file;
  submit.wait = true;
  std::ostringstream out, err;
  EXPECT_EQ(SubmitTwoPc(global, submit, out, err), kExitOk) << err.str();
  ASSERT_EQ(xids.size(), 2u);
  EXPECT_EQ(xids[0].rfind("tx-", 0), 0u) << "the CLI picks the xid, not the coordinator";
  EXPECT_EQ(xids[0], xids[1]) << "a retry at the leader must be the same transaction";
}

}  // namespace
}  // namespace treaty::cli
