// The event log in cluster mode: three EventLogs in this process replicate through libraft over
// loopback TCP (real Raft directories, real RocksDB). Asserts on what every node ends up holding.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "log/log.h"
#include "tests/unit/log/log_test_util.h"

namespace treaty::log {
namespace {

using testing::AppendAndWait;
using testing::Begun;
using testing::Decided;
using testing::Ended;

// A port free right now on 127.0.0.1 (the kernel picks it).
uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class ClusterLogTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 3;

  void SetUp() override {
    for (int i = 0; i < kNodes; ++i) {
      peers_.push_back({static_cast<uint64_t>(i + 1), "127.0.0.1:" + std::to_string(FreePort())});
    }
    logs_.resize(kNodes);
  }
  void TearDown() override {
    for (auto& log : logs_) log.reset();
  }

  LogOptions NodeOptions(int i) {
    LogOptions options;
    options.dir = dir_.Sub("n" + std::to_string(i + 1) + "/log");
    ClusterOptions cluster;
    cluster.node_id = peers_[static_cast<size_t>(i)].id;
    cluster.peers = peers_;
    cluster.raft_dir = dir_.Sub("n" + std::to_string(i + 1) + "/raft");
    // Generous for a loaded 2-core CI machine running three nodes in one process.
    cluster.election_timeout_ms = 600;
    cluster.heartbeat_timeout_ms = 60;
    cluster.snapshot_threshold = snapshot_threshold_;
    cluster.snapshot_trailing = snapshot_threshold_ / 2;
    options.cluster = cluster;
    std::filesystem::create_directories(dir_.Sub("n" + std::to_string(i + 1)));
    return options;
  }

  void StartNode(int i) {
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(NodeOptions(i));
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    logs_[static_cast<size_t>(i)] = std::move(*log);
  }

  // Index of the serving leader among the running nodes, waiting up to 10 s.
  std::optional<int> WaitLeader() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      for (size_t i = 0; i < logs_.size(); ++i) {
        if (logs_[i] && logs_[i]->cluster_state().serving) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

  // Waits until node i applied everything up to lsn.
  bool WaitLsn(int i, uint64_t lsn) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (logs_[static_cast<size_t>(i)]->last_lsn() >= lsn) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Commits n transactions (BEGIN, COMMIT, END each) on the leader; returns the last lsn.
  uint64_t CommitMany(EventLog& leader, int n, const std::string& prefix) {
    uint64_t last = 0;
    for (int k = 0; k < n; ++k) {
      const std::string xid = prefix + std::to_string(k);
      auto done = AppendAndWait(leader, {Begun(xid), Decided(xid, v1::COMMIT), Ended(xid)});
      EXPECT_TRUE(done.status.ok()) << done.status.ToString();
      last = done.last_lsn;
    }
    return last;
  }

  testing::TempDir dir_;
  std::vector<ClusterPeer> peers_;
  std::vector<std::unique_ptr<EventLog>> logs_;
  uint32_t snapshot_threshold_ = 4096;
};

TEST_F(ClusterLogTest, ReplicatesAppendsToEveryNodeAndRefusesWritesOnFollowers) {
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value()) << "no leader within 10 s";
  EventLog& lead = *logs_[static_cast<size_t>(*leader)];
  EXPECT_EQ(lead.cluster_state().role, ClusterRole::kLeader);

  const uint64_t last = CommitMany(lead, 20, "x");
  ASSERT_EQ(last, 60u);
  ASSERT_TRUE(lead.PutMeta("node/1/client_address", "127.0.0.1:7701").ok());

  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(WaitLsn(i, last)) << "node " << i + 1 << " did not apply lsn " << last;
    auto rec = logs_[static_cast<size_t>(i)]->Find("x7");
    ASSERT_TRUE(rec.ok() && rec->has_value());
    EXPECT_EQ((*rec)->state(), v1::COMMITTED) << "node " << i + 1;
    EXPECT_TRUE(logs_[static_cast<size_t>(i)]->LoadActive()->empty());
  }
  // Meta writes are replicated too (give the followers a moment to apply the entry).
  for (int i = 0; i < kNodes; ++i) {
    std::optional<std::string> value;
    for (int tries = 0; tries < 200 && !value; ++tries) {
      value = *logs_[static_cast<size_t>(i)]->GetMeta("node/1/client_address");
      if (!value) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(value.value_or(""), "127.0.0.1:7701") << "node " << i + 1;
  }

  // A follower refuses writes at once.
  const int follower = (*leader + 1) % kNodes;
  auto refused = AppendAndWait(*logs_[static_cast<size_t>(follower)], {Begun("y")});
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(logs_[static_cast<size_t>(follower)]->PutMeta("k", "v").ok());

  // A contradicting append is refused on the leader, and identically everywhere (same lsns).
  auto bad = AppendAndWait(lead, {Decided("x1", v1::ABORT)});
  EXPECT_EQ(bad.status.code(), StatusCode::kFailedPrecondition);
  const uint64_t after = CommitMany(lead, 1, "z");
  EXPECT_EQ(after, last + 3);
  for (int i = 0; i < kNodes; ++i) EXPECT_TRUE(WaitLsn(i, after));

  // A barrier succeeds on the leader only.
  std::promise<Status> barrier;
  lead.Barrier([&barrier](Status s, uint64_t) { barrier.set_value(std::move(s)); });
  EXPECT_TRUE(barrier.get_future().get().ok());
}

TEST_F(ClusterLogTest, LeaderLossKeepsCommittedEntriesAndANewLeaderServes) {
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t last = CommitMany(*logs_[static_cast<size_t>(*leader)], 10, "a");

  logs_[static_cast<size_t>(*leader)].reset();  // the leader goes away
  std::optional<int> next = WaitLeader();
  ASSERT_TRUE(next.has_value()) << "no new leader after the old one stopped";
  ASSERT_NE(*next, *leader);
  EventLog& lead = *logs_[static_cast<size_t>(*next)];
  EXPECT_GE(lead.last_lsn(), last);  // nothing acknowledged was lost
  auto rec = lead.Find("a9");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->state(), v1::COMMITTED);
  const uint64_t more = CommitMany(lead, 5, "b");

  // The old leader comes back with its directory and catches up as a follower.
  StartNode(*leader);
  ASSERT_TRUE(WaitLsn(*leader, more));
  auto back = logs_[static_cast<size_t>(*leader)]->Find("b4");
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->state(), v1::COMMITTED);
}

TEST_F(ClusterLogTest, NodeWithAnEmptyDirectoryCatchesUpThroughASnapshot) {
  snapshot_threshold_ = 16;  // snapshots (and log truncation) every 16 entries
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  const int lost = (*leader + 1) % kNodes;
  logs_[static_cast<size_t>(lost)].reset();
  std::filesystem::remove_all(dir_.Sub("n" + std::to_string(lost + 1)));

  const uint64_t last = CommitMany(*logs_[static_cast<size_t>(*leader)], 60, "s");
  StartNode(lost);  // empty directory: bootstraps, then gets a snapshot and the rest
  ASSERT_TRUE(WaitLsn(lost, last)) << "the wiped node did not catch up";
  for (const char* xid : {"s0", "s30", "s59"}) {
    auto rec = logs_[static_cast<size_t>(lost)]->Find(xid);
    ASSERT_TRUE(rec.ok() && rec->has_value()) << xid;
    EXPECT_EQ((*rec)->state(), v1::COMMITTED) << xid;
  }
}

// Retention's remembered xids are replicated like the purges that write them: every node holds
// the same xids records, an expiry decided by the leader deletes them everywhere, and a node that
// catches up through a snapshot (its entries truncated away) gets them from the snapshot.
TEST_F(ClusterLogTest, RememberedXidsReachEveryNodeAndASnapshotRestoredOne) {
  snapshot_threshold_ = 16;
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  EventLog& lead = *logs_[static_cast<size_t>(*leader)];
  const int lost = (*leader + 1) % kNodes;
  const int follower = (*leader + 2) % kNodes;
  logs_[static_cast<size_t>(lost)].reset();
  std::filesystem::remove_all(dir_.Sub("n" + std::to_string(lost + 1)));

  CommitMany(lead, 5, "r");  // END at 3000
  ASSERT_TRUE(AppendAndWait(lead, {Begun("old"), Decided("old", v1::ABORT), Ended("old", 2000)})
                  .status.ok());
  std::vector<PurgeRequest> drops = {{"old", {}, true, 10'000}};
  for (int k = 0; k < 5; ++k) drops.push_back({"r" + std::to_string(k), {}, true, 10'000});
  auto purged = lead.Purge(drops);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(purged->outcomes_deleted, 6u);
  auto expired = lead.ExpireXids(2500, 100);
  ASSERT_TRUE(expired.ok()) << expired.status().ToString();
  EXPECT_EQ(expired->expired, 1u) << "only xid=old finished at or before the cutoff";

  const uint64_t last = CommitMany(lead, 40, "s");  // snapshots and truncates the Raft log
  StartNode(lost);
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(WaitLsn(i, last)) << "node " << i + 1 << " did not catch up";
    EventLog& node = *logs_[static_cast<size_t>(i)];
    for (int k = 0; k < 5; ++k) {
      const std::string xid = "r" + std::to_string(k);
      auto used = node.FindUsedXid(xid);
      ASSERT_TRUE(used.ok()) << used.status().ToString();
      ASSERT_TRUE(used->has_value()) << "node " << i + 1 << " does not remember " << xid;
      EXPECT_EQ((*used)->outcome, UsedXid::Outcome::kCommitted);
      EXPECT_EQ((*used)->finished_unix_ms, 3000);
      EXPECT_FALSE(node.Find(xid)->has_value()) << "node " << i + 1 << " kept the outcome";
    }
    auto old = node.FindUsedXid("old");
    ASSERT_TRUE(old.ok());
    EXPECT_FALSE(old->has_value()) << "node " << i + 1 << " kept an expired xid";
  }
  // The expiry is the leader's decision: a follower refuses to make one.
  auto refused = logs_[static_cast<size_t>(follower)]->ExpireXids(10'000, 100);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
}

TEST_F(ClusterLogTest, MinorityRefusesToDecide) {
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  CommitMany(*logs_[static_cast<size_t>(*leader)], 1, "m");
  // Stop both followers: the leader alone cannot commit and steps down.
  for (int i = 0; i < kNodes; ++i) {
    if (i != *leader) logs_[static_cast<size_t>(i)].reset();
  }
  auto refused = AppendAndWait(*logs_[static_cast<size_t>(*leader)], {Begun("lonely")});
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable) << refused.status.ToString();
  // It stepped down (libraft publishes the new role a poll later than it fails the append).
  EventLog& lone = *logs_[static_cast<size_t>(*leader)];
  ClusterState state = lone.cluster_state();
  for (int tries = 0; tries < 100 && state.role == ClusterRole::kLeader; ++tries) {
    state = lone.WaitClusterChange(state.epoch, 50);
  }
  EXPECT_NE(state.role, ClusterRole::kLeader);
  EXPECT_FALSE(state.serving);
  auto rec = logs_[static_cast<size_t>(*leader)]->Find("lonely");
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE(rec->has_value()) << "a lone node applied an entry no majority has";
}

// Membership: a 4th node started to join (no bootstrap) is added and promoted, then one of the
// original three is removed; the cluster keeps committing with the new configuration.
TEST_F(ClusterLogTest, AddsAJoiningNodeAndRemovesAnOriginalOne) {
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t before = CommitMany(*logs_[static_cast<size_t>(*leader)], 10, "p");

  // The 4th node: an empty directory, join (it knows only itself and waits to be added).
  const ClusterPeer fourth{4, "127.0.0.1:" + std::to_string(FreePort())};
  LogOptions options = NodeOptions(0);
  options.dir = dir_.Sub("n4/log");
  options.cluster->node_id = 4;
  options.cluster->peers = {fourth};
  options.cluster->raft_dir = dir_.Sub("n4/raft");
  options.cluster->join = true;
  std::filesystem::create_directories(dir_.Sub("n4"));
  Result<std::unique_ptr<EventLog>> joined = EventLog::Open(options);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  logs_.push_back(std::move(*joined));
  EXPECT_TRUE(logs_[3]->cluster_peers().empty()) << "a joining node has no configuration yet";
  EXPECT_FALSE(logs_[3]->cluster_state().serving);

  EventLog& lead = *logs_[static_cast<size_t>(*leader)];
  // Only the leader changes the membership.
  const int follower = (*leader + 1) % kNodes;
  EXPECT_EQ(logs_[static_cast<size_t>(follower)]->AddNode(4, fourth.raft_address).code(),
            StatusCode::kUnavailable);
  // One change at a time: a second one while the first runs is refused.
  std::promise<Status> first;
  lead.ChangeMembership({MembershipChange::Action::kAdd, 4, fourth.raft_address},
                        [&first](Status s) { first.set_value(std::move(s)); });
  const Status second = lead.RemoveNode(static_cast<uint64_t>(follower + 1));
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition) << second.ToString();
  const Status added = first.get_future().get();
  ASSERT_TRUE(added.ok()) << added.ToString();
  // Repeating it is harmless; the configuration lists 4 voters on the leader.
  EXPECT_TRUE(lead.AddNode(4, fourth.raft_address).ok());
  EXPECT_EQ(lead.AddNode(4, "127.0.0.1:1").code(), StatusCode::kFailedPrecondition);
  std::vector<ClusterPeer> conf = lead.cluster_peers();
  ASSERT_EQ(conf.size(), 4u);
  for (const ClusterPeer& p : conf) {
    EXPECT_EQ(p.role, ClusterMemberRole::kVoter) << "node " << p.id;
  }

  // The new node has the data from before it joined and what follows.
  const uint64_t after_add = CommitMany(lead, 5, "q");
  ASSERT_TRUE(WaitLsn(3, after_add)) << "the joined node did not catch up";
  auto rec = logs_[3]->Find("p3");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->state(), v1::COMMITTED);
  EXPECT_GT(after_add, before);
  EXPECT_EQ(logs_[3]->cluster_peers().size(), 4u);

  // Remove an original follower; appends still commit, and it gets nothing new.
  const int removed = (*leader + 1) % kNodes;
  ASSERT_TRUE(lead.RemoveNode(static_cast<uint64_t>(removed + 1)).ok());
  EXPECT_TRUE(lead.RemoveNode(static_cast<uint64_t>(removed + 1)).ok());  // not a member: OK
  EXPECT_EQ(lead.cluster_peers().size(), 3u);
  const uint64_t removed_lsn = logs_[static_cast<size_t>(removed)]->last_lsn();
  const uint64_t after_remove = CommitMany(lead, 5, "r");
  ASSERT_TRUE(WaitLsn(3, after_remove));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(logs_[static_cast<size_t>(removed)]->last_lsn(), removed_lsn)
      << "a removed node still receives entries";
  logs_[static_cast<size_t>(removed)].reset();  // removed nodes keep campaigning: stop them

  // The three voters left (leader, the other original, node 4) commit with 2 of 3 alive.
  const int other = (*leader + 2) % kNodes;
  logs_[static_cast<size_t>(other)].reset();
  const uint64_t last = CommitMany(lead, 3, "t");
  ASSERT_TRUE(WaitLsn(3, last));
}

TEST_F(ClusterLogTest, TheLeaderMayRemoveItselfAndStepsDown) {
  for (int i = 0; i < kNodes; ++i) StartNode(i);
  std::optional<int> leader = WaitLeader();
  ASSERT_TRUE(leader.has_value());
  CommitMany(*logs_[static_cast<size_t>(*leader)], 3, "u");
  const Status removed =
      logs_[static_cast<size_t>(*leader)]->RemoveNode(static_cast<uint64_t>(*leader + 1));
  ASSERT_TRUE(removed.ok()) << removed.ToString();
  logs_[static_cast<size_t>(*leader)].reset();  // a removed node keeps campaigning: stop it
  std::optional<int> next = WaitLeader();
  ASSERT_TRUE(next.has_value()) << "the two nodes left elected no leader";
  EventLog& lead = *logs_[static_cast<size_t>(*next)];
  EXPECT_EQ(lead.cluster_peers().size(), 2u);
  const uint64_t last = CommitMany(lead, 3, "v");
  for (int i = 0; i < kNodes; ++i) {
    if (logs_[static_cast<size_t>(i)]) {
      EXPECT_TRUE(WaitLsn(i, last)) << "node " << i + 1;
    }
  }
}

TEST_F(ClusterLogTest, RefusesMembershipChangesThatCannotWork) {
  // A one-node cluster: its only voter cannot be removed.
  peers_.resize(1);
  StartNode(0);
  ASSERT_TRUE(WaitLeader().has_value());
  EXPECT_EQ(logs_[0]->RemoveNode(1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(logs_[0]->AddNode(0, "127.0.0.1:1").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(logs_[0]->AddNode(2, peers_[0].raft_address).code(), StatusCode::kFailedPrecondition);
  // No node ever answers at that address: the promotion cannot finish in time.
  const Status lost = logs_[0]->AddNode(2, "127.0.0.1:" + std::to_string(FreePort()), 1500);
  EXPECT_TRUE(lost.code() == StatusCode::kDeadlineExceeded ||
              lost.code() == StatusCode::kFailedPrecondition)
      << lost.ToString();
}

}  // namespace
}  // namespace treaty::log
