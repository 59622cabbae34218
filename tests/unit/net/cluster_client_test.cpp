// ClusterClient against fake coordinator nodes (real RpcServers on loopback): leader hints,
// rotation past dead or leaderless nodes, backoff until the deadline, and which statuses end a
// call at once.
#include "net/cluster_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/leader.h"
#include "tests/unit/net/net_test_util.h"

namespace treaty::net {
namespace {

using namespace std::chrono_literals;
constexpr const char* kMethod = "test.Write";

// A coordinator node stand-in: answers kMethod with whatever `answer` returns (a status, or
// the node's name as the payload for OK) and counts the calls.
class FakeNode {
 public:
  using Answer = std::function<Result<std::string>()>;

  explicit FakeNode(Answer answer) : answer_(std::move(answer)), server_(io_.io()) {
    server_.Register(kMethod, [this](std::string, uint32_t, Responder respond) {
      calls_.fetch_add(1);
      if (hold_.load()) {
        held_.Add("", std::move(respond));  // never answered: the caller's deadline passes
        return;
      }
      respond(answer_());
    });
    listen_ = server_.Listen("127.0.0.1:0");
  }
  ~FakeNode() {
    server_.Stop();
    io_.Stop();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  int calls() const { return calls_.load(); }
  const Status& listen_status() const { return listen_; }
  void Hold() { hold_.store(true); }

 private:
  Answer answer_;
  IoThread io_;
  RpcServer server_;
  Status listen_;
  std::atomic<int> calls_{0};
  std::atomic<bool> hold_{false};
  testing::HeldResponders held_;
};

FakeNode::Answer Leader(std::string name) {
  return [name] { return Result<std::string>(name); };
}
FakeNode::Answer Follower(uint64_t id, std::function<std::string()> leader_address) {
  return [id, leader_address] { return Result<std::string>(NotLeader(id, leader_address())); };
}

// An address nothing listens on: a port that was bound and released.
std::string DeadAddress() {
  testing::RawListener l;
  return l.address();
}

int64_t MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

TEST(ClusterClientTest, FollowsTheLeaderHintAndRemembersTheLeader) {
  FakeNode leader(Leader("leader"));
  FakeNode first(Follower(1, [&] { return leader.address(); }));
  FakeNode second(Follower(2, [&] { return leader.address(); }));
  ClusterClient client({first.address(), second.address(), leader.address()});

  auto r = client.Call(kMethod, "x", 2000, /*idempotent=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "leader");
  EXPECT_EQ(first.calls(), 1);
  EXPECT_EQ(second.calls(), 0) << "the hint is followed at once, not the next address";
  EXPECT_EQ(client.leader(), leader.address());

  ASSERT_TRUE(client.Call(kMethod, "y", 2000, true).ok());
  EXPECT_EQ(first.calls(), 1) << "the second call goes straight to the leader it found";
  EXPECT_EQ(leader.calls(), 2);
}

TEST(ClusterClientTest, SkipsAnAddressThatIsDown) {
  FakeNode leader(Leader("leader"));
  ClusterClient client({DeadAddress(), leader.address()});
  auto r = client.Call(kMethod, "x", 2000, /*idempotent=*/false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(client.leader(), leader.address());
}

TEST(ClusterClientTest, WithoutALeaderFailsWithTheLastErrorAfterTheDeadline) {
  FakeNode a(Follower(1, [] { return std::string(); }));
  FakeNode b(Follower(2, [] { return std::string(); }));
  ClusterClient client({a.address(), DeadAddress(), b.address()});
  const auto started = std::chrono::steady_clock::now();
  auto r = client.Call(kMethod, "x", 400, true);
  const int64_t took = MsSince(started);
  ASSERT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("not the leader"), std::string::npos)
      << "expected the last node's answer, got: " << r.status().ToString();
  EXPECT_GE(took, 350) << "the call gives up only when its deadline passed";
  EXPECT_LT(took, 2000);
  EXPECT_GE(a.calls(), 3) << "rounds are repeated (with backoff) until the deadline";
  EXPECT_LE(a.calls(), 10) << "backoff between rounds: 50 ms doubling to 250 ms";
}

TEST(ClusterClientTest, UnreachableTimeoutEndsACallNoNodeAnswers) {
  ClusterClientOptions options;
  options.unreachable_timeout_ms = 200;
  ClusterClient client({DeadAddress(), DeadAddress()}, options);
  const auto started = std::chrono::steady_clock::now();
  auto r = client.Call(kMethod, "x", 10'000, true);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_GE(MsSince(started), 200);
  EXPECT_LT(MsSince(started), 2000) << "a cluster that refuses every connection is reported down";
}

TEST(ClusterClientTest, UnreachableTimeoutDoesNotEndACallFollowersAnswer) {
  FakeNode a(Follower(1, [] { return std::string(); }));  // an election: no hint
  ClusterClientOptions options;
  options.unreachable_timeout_ms = 50;
  ClusterClient client({a.address(), DeadAddress()}, options);
  const auto started = std::chrono::steady_clock::now();
  auto r = client.Call(kMethod, "x", 500, true);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_GE(MsSince(started), 450) << "a follower answering NotLeader is not an unreachable node";
}

TEST(ClusterClientTest, FindsALeaderElectedWhileTheCallWaits) {
  std::atomic<bool> elected{false};
  FakeNode a([&]() -> Result<std::string> {
    if (elected.load()) return std::string("a");
    return NotLeader(1, "");
  });
  FakeNode b(Follower(2, [&] { return elected.load() ? a.address() : std::string(); }));
  ClusterClient client({b.address(), a.address()});
  std::thread election([&] {
    std::this_thread::sleep_for(300ms);
    elected.store(true);
  });
  auto r = client.Call(kMethod, "x", 3000, true);
  election.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "a");
}

TEST(ClusterClientTest, OtherStatusesAreReturnedAtOnce) {
  for (Status s : {Status::InvalidArgument("bad"), Status::NotFound("no such xid"),
                   Status::ResourceExhausted("retry after 5 ms")}) {
    FakeNode refusing([s] { return Result<std::string>(s); });
    FakeNode other(Leader("other"));
    ClusterClient client({refusing.address(), other.address()});
    auto r = client.Call(kMethod, "x", 2000, true);
    EXPECT_EQ(r.status().code(), s.code()) << r.status().ToString();
    EXPECT_EQ(other.calls(), 0) << s.ToString() << " must not be tried elsewhere";
  }
}

TEST(ClusterClientTest, AnAttemptTimeoutMovesOnOnlyForIdempotentCalls) {
  FakeNode hung(Leader("hung"));
  hung.Hold();
  FakeNode leader(Leader("leader"));
  ClusterClientOptions options;
  options.attempt_timeout_ms = 100;

  ClusterClient idempotent({hung.address(), leader.address()}, options);
  auto r = idempotent.Call(kMethod, "x", 2000, true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "leader");

  ClusterClient once({hung.address(), leader.address()}, options);
  auto r2 = once.Call(kMethod, "x", 500, false);
  EXPECT_EQ(r2.status().code(), StatusCode::kDeadlineExceeded) << r2.status().ToString();
  EXPECT_EQ(leader.calls(), 1) << "a call that is not safe to repeat is not sent twice";
}

TEST(ClusterClientTest, CloseFailsACallWaitingToRetry) {
  FakeNode a(Follower(1, [] { return std::string(); }));
  ClusterClientOptions options;
  options.initial_backoff_ms = 5000;
  IoThread io;
  ClusterClient client(io.io(), {a.address()}, options);
  testing::Recorder done;
  client.CallAsync(kMethod, "x", 60'000, true, done.callback());
  while (a.calls() < 1) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(100ms);  // the answer arrived: the call waits for its next round
  const auto started = std::chrono::steady_clock::now();
  client.Close();
  ASSERT_TRUE(done.WaitFor(1, 2s)) << "Close must end a call paused between rounds";
  EXPECT_LT(MsSince(started), 1000);
  EXPECT_EQ(done.at(0).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(client.Call(kMethod, "y", 1000, true).status().code(), StatusCode::kUnavailable)
      << "a closed client refuses new calls";
}

TEST(ParseAddressListTest, SplitsOnCommasAndRefusesEmptyElements) {
  auto list = ParseAddressList("a:1, b:2,c:3");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(*list, (std::vector<std::string>{"a:1", "b:2", "c:3"}));
  for (const char* bad : {"", "a:1,,b:2", "a:1,", " "}) {
    EXPECT_EQ(ParseAddressList(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ClusterClientTest, AnEmptyListIsUnavailable) {
  ClusterClient client({});
  EXPECT_EQ(client.Call(kMethod, "x", 100, true).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace treaty::net
