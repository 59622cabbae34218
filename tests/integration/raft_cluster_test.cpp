// A 3-node coordinator cluster as real processes (treatyd --node-id/--raft/--peers) with bank
// participants: redirects, a follower rebuilt from an empty data directory, a minority that must
// refuse to decide, and `treaty cluster status`. The kill -9 leader chaos run is in
// chaos_test.cpp (ClusterSurvivesRepeatedLeaderKills...).
#include <filesystem>
#include <string>

#include "net/leader.h"
#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::integ {
namespace {

class RaftClusterTest : public IntegrationTest {
 protected:
  void SetUpCluster() {
    AddTreatydCluster(3);
    bank_a_ = &AddBank("bank-a", "alice=1000");
    bank_b_ = &AddBank("bank-b", "bob=1000");
    ASSERT_TRUE(StartAll());
  }

  // A committed transfer of amount from alice to bob; returns its xid.
  std::string Transfer(const std::string& xid, int64_t amount) {
    auto resp =
        Submit(TransferRequest(xid, {"bank-a", "alice", "bank-b", "bob", amount}, true), 15000);
    EXPECT_TRUE(resp.ok()) << xid << ": " << resp.status().ToString();
    if (resp.ok()) {
      EXPECT_TRUE(IsCommitState(resp->state())) << resp->ShortDebugString();
    }
    return xid;
  }

  std::vector<Node*> Followers(const Node* leader) {
    std::vector<Node*> out;
    for (Node* c : coordinators()) {
      if (c != leader) out.push_back(c);
    }
    return out;
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
};

TEST_F(RaftClusterTest, FollowersRedirectWritesToTheLeaderAndServeStatus) {
  SetUpCluster();
  Node* leader = WaitLeader();
  ASSERT_NE(leader, nullptr);
  Transfer("redirect-1", 5);
  Node* follower = Followers(leader).front();
  // A write sent to a follower is refused with a hint naming the leader's client address.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto direct =
            rpc().Call(follower->address, v1::methods::kSubmit,
                       TransferRequest("redirect-2", {"bank-a", "alice", "bank-b", "bob", 1}, true)
                           .SerializeAsString(),
                       3000);
        auto hint = net::LeaderHint(direct.status());
        return !direct.ok() && hint && *hint == leader->address;
      },
      5000));
  // Every node reports the same term and leader; the follower has applied the transfer.
  auto status = ClusterStatusOf(*follower);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->role(), "follower");
  EXPECT_FALSE(status->serving());
  EXPECT_EQ(status->nodes_size(), 3);
  auto lead_status = ClusterStatusOf(*leader);
  ASSERT_TRUE(lead_status.ok());
  EXPECT_EQ(lead_status->role(), "leader");
  EXPECT_EQ(status->leader_id(), lead_status->node_id());
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto s = ClusterStatusOf(*follower);
        return s.ok() && s->applied_index() >= lead_status->commit_index();
      },
      5000));

  // The follower serves the read model itself and says how far its copy is applied.
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::ListTransactionsRequest list;
        auto page = net::Decode<v1::ListTransactionsResponse>(rpc().Call(
            follower->address, v1::methods::kListTransactions, list.SerializeAsString(), 3000));
        if (!page.ok()) return false;
        bool has = false;
        for (const auto& t : page->transactions()) has = has || t.xid() == "redirect-1";
        EXPECT_EQ(page->served_by().role(), "follower");
        EXPECT_EQ(page->served_by().node_id(), status->node_id());
        return has && page->served_by().applied_index() > 0;
      },
      5000))
      << "the follower's read model does not show the committed transfer";

  // The CLI finds the leader from the whole list and shows every node.
  CommandResult cli = Treaty({"cluster", "status"});
  EXPECT_EQ(cli.exit_code, 0) << cli.Describe();
  EXPECT_NE(cli.out.find("leader"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("follower"), std::string::npos) << cli.out;
}

TEST_F(RaftClusterTest, FollowerWithAnEmptyDataDirectoryCatchesUp) {
  SetUpCluster();
  Node* leader = WaitLeader();
  ASSERT_NE(leader, nullptr);
  Node* lost = Followers(leader).front();
  lost->process->Kill9();
  std::filesystem::remove_all(lost->data_dir);  // the disk is gone
  for (int i = 0; i < 20; ++i) Transfer("while-away-" + std::to_string(i), 1);

  ASSERT_TRUE(Start(*lost));
  auto lead_status = ClusterStatusOf(*leader);
  ASSERT_TRUE(lead_status.ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto s = ClusterStatusOf(*lost);
        return s.ok() && s->applied_index() >= lead_status->commit_index();
      },
      20000))
      << "the rebuilt follower did not catch up";

  // Now the rebuilt node must be able to carry the cluster: stop the other follower and the
  // leader can still commit only with the rebuilt node's votes and copies.
  Node* other = Followers(leader).back();
  if (other == lost) other = Followers(leader).front();
  other->process->Kill9();
  Transfer("after-rebuild", 1);
  auto tx = GetTransaction("while-away-7");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_TRUE(IsCommitState(tx->state()));
  auto balances_a = Balances(*bank_a_);
  auto balances_b = Balances(*bank_b_);
  ASSERT_TRUE(balances_a.ok() && balances_b.ok());
  EXPECT_EQ(balances_a->at("alice") + balances_b->at("bob"), 2000);
}

TEST_F(RaftClusterTest, MinorityRefusesToDecide) {
  SetUpCluster();
  Node* leader = WaitLeader();
  ASSERT_NE(leader, nullptr);
  Transfer("before-partition", 10);
  // Two of three nodes stop: the survivor may not decide anything.
  std::vector<Node*> stopped;
  for (Node* c : coordinators()) {
    if (c != leader) {
      c->process->Kill9();
      stopped.push_back(c);
    }
  }
  auto refused =
      Submit(TransferRequest("minority", {"bank-a", "alice", "bank-b", "bob", 10}, true), 4000);
  EXPECT_FALSE(refused.ok() && IsCommitState(refused->state()))
      << "a lone node committed: " << refused->ShortDebugString();
  auto balances_b = Balances(*bank_b_);
  ASSERT_TRUE(balances_b.ok());
  EXPECT_EQ(balances_b->at("bob"), 1010) << "the minority's transfer reached a participant";

  // A majority again: the cluster decides, and the retried xid is one transaction.
  ASSERT_TRUE(Start(*stopped.front()));
  auto resp =
      Submit(TransferRequest("minority", {"bank-a", "alice", "bank-b", "bob", 10}, true), 20000);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  auto finished = WaitFinished("minority", 20000);
  ASSERT_TRUE(finished.ok()) << finished.status().ToString();
  auto after = Balances(*bank_b_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->at("bob"), finished->state() == v1::COMMITTED ? 1020 : 1010);
}

TEST_F(RaftClusterTest, AddsAJoiningNodeAndRemovesAFollower) {
  SetUpCluster();
  Node* leader = WaitLeader();
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 5; ++i) Transfer("before-join-" + std::to_string(i), 1);

  // A 4th treatyd started with --join and an empty data dir waits to be added.
  Node& fourth = AddTreatydJoiner(4);
  ASSERT_TRUE(Start(fourth));
  CommandResult add =
      Treaty({"cluster", "add-node", "4", fourth.raft_address, "--client-address", fourth.address});
  ASSERT_EQ(add.exit_code, 0) << add.Describe();
  EXPECT_NE(add.out.find("voter"), std::string::npos) << add.out;
  // Adding it again changes nothing; another id at its address is refused.
  EXPECT_EQ(Treaty({"cluster", "add-node", "4", fourth.raft_address}).exit_code, 0);
  EXPECT_EQ(Treaty({"cluster", "add-node", "5", fourth.raft_address}).exit_code, 5);

  for (int i = 0; i < 5; ++i) Transfer("after-join-" + std::to_string(i), 1);
  auto lead_status = ClusterStatusOf(*WaitLeader());
  ASSERT_TRUE(lead_status.ok()) << lead_status.status().ToString();
  EXPECT_EQ(lead_status->nodes_size(), 4);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto s = ClusterStatusOf(fourth);
        return s.ok() && s->applied_index() >= lead_status->commit_index() &&
               s->nodes_size() == 4 && s->role() == "follower";
      },
      20000))
      << "the joined node did not catch up";

  // Remove one original follower (its treatyd is stopped right after, as documented).
  leader = WaitLeader();
  ASSERT_NE(leader, nullptr);
  Node* removed = Followers(leader).front();
  if (removed == &fourth) removed = Followers(leader).back();
  const std::string removed_id = removed->name.substr(removed->name.find('-') + 1);
  CommandResult remove = Treaty({"cluster", "remove-node", removed_id});
  ASSERT_EQ(remove.exit_code, 0) << remove.Describe();
  removed->process->Kill9();
  for (int i = 0; i < 3; ++i) Transfer("after-remove-" + std::to_string(i), 1);
  auto after_remove = ClusterStatusOf(*leader);
  ASSERT_TRUE(after_remove.ok());
  EXPECT_EQ(after_remove->nodes_size(), 3);

  // Three voters left: with one more original node down, two of three still commit.
  Node* other = nullptr;
  for (Node* c : Followers(leader)) {
    if (c != removed && c != &fourth) other = c;
  }
  ASSERT_NE(other, nullptr);
  other->process->Kill9();
  Transfer("two-of-three", 1);
  auto tx = GetTransaction("after-join-3");
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_TRUE(IsCommitState(tx->state()));
  auto balances_a = Balances(*bank_a_);
  auto balances_b = Balances(*bank_b_);
  ASSERT_TRUE(balances_a.ok() && balances_b.ok());
  EXPECT_EQ(balances_a->at("alice") + balances_b->at("bob"), 2000);
}

}  // namespace
}  // namespace treaty::integ
