// Crashes (kill -9) at the two moments 2PC must survive: the coordinator after its decision is
// durable but before it is delivered, and a participant after it prepared.
#include <cstdio>
#include <future>
#include <mutex>
#include <string>

#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "tests/integration/frame_proxy.h"
#include "treaty/v1/methods.h"

namespace treaty::integ {
namespace {

namespace methods = v1::methods;

constexpr int kExitCommitted = 0;

class CrashTest : public IntegrationTest {
 protected:
  // Sum of both banks' balances, or -1 (with a test failure) if a bank cannot be read.
  int64_t TotalMoney(const Node& a, const Node& b) {
    int64_t total = 0;
    for (const Node* bank : {&a, &b}) {
      auto balances = Balances(*bank);
      EXPECT_TRUE(balances.ok()) << balances.status().ToString();
      if (!balances.ok()) return -1;
      for (const auto& [account, value] : *balances) total += value;
    }
    return total;
  }
};

// bank-b is reached only through proxies: its registration is rewritten to point at a participant
// proxy, which swallows COMMIT calls while the test wants delivery to be impossible. Its in-doubt
// queries (coordinator.QueryOutcome) are swallowed too, so the only way bank-b can learn the
// outcome is the restarted coordinator redelivering it from its log.
TEST_F(CrashTest, PreparedBranchReceivesCommitAfterCoordinatorCrash) {
  Node& coord = AddTreatyd();
  Node& bank_a = AddBank("bank-a", "alice=100");
  ASSERT_TRUE(Start(coord));

  // The address bank-b's registrations are rewritten to; set before bank-b starts.
  std::mutex advertised_mu;
  std::string advertised;
  FrameProxy to_coord(coord.port);
  to_coord.SetRewrite([&](const std::string& method, std::string& payload) {
    if (method != methods::kRegister) return;
    v1::RegisterRequest reg;
    if (!reg.ParseFromString(payload) || reg.service() != "bank-b") return;
    std::lock_guard<std::mutex> lock(advertised_mu);
    reg.set_address(advertised);
    payload = reg.SerializeAsString();
  });
  ASSERT_TRUE(to_coord.Start().ok());
  Node& bank_b = AddBank("bank-b", "bob=50", to_coord.address());
  FrameProxy to_bank_b(bank_b.port);
  ASSERT_TRUE(to_bank_b.Start().ok());
  {
    std::lock_guard<std::mutex> lock(advertised_mu);
    advertised = to_bank_b.address();
  }
  ASSERT_TRUE(StartAll());

  to_coord.DropRequests(methods::kQueryOutcome);
  to_bank_b.DropRequests(methods::kCommit);
  std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 30}));
  CommandResult submit = Treaty(
      {"submit", "2pc", "-f", file, "--xid", "tx-crash-coord", "--wait", "--output", "json"});
  ASSERT_EQ(submit.exit_code, kExitCommitted)
      << "submit --wait must report the commit once the decision is durable, even though bank-b "
         "cannot receive it yet\n"
      << submit.Describe();

  ASSERT_TRUE(WaitUntil([&] { return to_bank_b.dropped(methods::kCommit) >= 1; }, 10000))
      << "treatyd never tried to deliver COMMIT to bank-b";
  auto b_state = BranchStateAt(bank_b, "tx-crash-coord", 1);
  ASSERT_TRUE(b_state.ok()) << b_state.status().ToString();
  ASSERT_EQ(*b_state, v1::BRANCH_PREPARED) << "bank-b must still be prepared (COMMIT was dropped)";

  coord.process->Kill9();
  to_bank_b.PassAll();
  ASSERT_TRUE(Start(coord)) << "treatyd did not restart on its data dir";

  auto tx = WaitFinished("tx-crash-coord", 20000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->state(), v1::COMMITTED)
      << "the restarted treatyd should deliver the logged COMMIT\n"
      << tx->DebugString();
  auto a_final = BranchStateAt(bank_a, "tx-crash-coord", 0);
  auto b_final = BranchStateAt(bank_b, "tx-crash-coord", 1);
  ASSERT_TRUE(a_final.ok() && b_final.ok());
  EXPECT_EQ(*a_final, v1::BRANCH_COMMITTED);
  EXPECT_EQ(*b_final, v1::BRANCH_COMMITTED) << "bank-b never received the COMMIT";

  auto a = Balances(bank_a);
  auto b = Balances(bank_b);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["alice"], 70);
  EXPECT_EQ((*b)["bob"], 80);
}

// bank-b is frozen (SIGSTOP) so the transaction stays in PREPARING while bank-a has prepared;
// bank-a is then killed, bank-b thawed and bank-a restarted on its data dir. Whatever the decision
// (commit if bank-b votes in time, abort on the prepare timeout), both banks must apply the same
// one.
TEST_F(CrashTest, ParticipantKilledAfterPrepareAgreesWithTheDecision) {
  AddTreatyd({"--prepare-timeout-ms", "10000"});
  Node& bank_a = AddBank("bank-a", "alice=100");
  Node& bank_b = AddBank("bank-b", "bob=50");
  ASSERT_TRUE(StartAll());
  const int64_t total_before = TotalMoney(bank_a, bank_b);

  bank_b.process->Freeze();
  const std::string xid = "tx-crash-participant";
  auto submitted = std::async(std::launch::async, [&] {
    return Submit(TransferRequest(xid, {"bank-a", "alice", "bank-b", "bob", 30}, true), 30000);
  });
  bool prepared = WaitUntil(
      [&] {
        auto s = BranchStateAt(bank_a, xid, 0);
        return s.ok() && *s == v1::BRANCH_PREPARED;
      },
      10000);
  if (!prepared) bank_b.process->Thaw();
  ASSERT_TRUE(prepared) << "bank-a never prepared the debit branch";

  bank_a.process->Kill9();
  bank_b.process->Thaw();
  ASSERT_TRUE(Start(bank_a)) << "bank-a did not restart on its data dir";

  auto reply = submitted.get();
  auto tx = WaitFinished(xid, 30000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->state() == v1::COMMITTED || tx->state() == v1::ABORTED)
      << "the transaction never finished\n"
      << tx->DebugString();
  if (reply.ok()) {
    EXPECT_EQ(IsCommitState(reply->state()), tx->state() == v1::COMMITTED)
        << "the client was told " << v1::TxState_Name(reply->state()) << " but the log says "
        << v1::TxState_Name(tx->state());
  }

  auto a_state = BranchStateAt(bank_a, xid, 0);
  auto b_state = BranchStateAt(bank_b, xid, 1);
  ASSERT_TRUE(a_state.ok() && b_state.ok());
  const bool committed = tx->state() == v1::COMMITTED;
  std::printf(
      "decision after the participant crash: %s (client was told: %s)\n",
      v1::TxState_Name(tx->state()).c_str(),
      reply.ok() ? v1::TxState_Name(reply->state()).c_str() : reply.status().ToString().c_str());
  EXPECT_EQ(*a_state == v1::BRANCH_COMMITTED, committed)
      << "bank-a's branch is " << v1::BranchState_Name(*a_state) << " but the tx is "
      << v1::TxState_Name(tx->state());
  EXPECT_EQ(*b_state == v1::BRANCH_COMMITTED, committed)
      << "bank-b's branch is " << v1::BranchState_Name(*b_state) << " but the tx is "
      << v1::TxState_Name(tx->state());
  EXPECT_NE(*a_state, v1::BRANCH_PREPARED) << "bank-a is still in doubt";
  EXPECT_NE(*b_state, v1::BRANCH_PREPARED) << "bank-b is still in doubt";

  EXPECT_EQ(TotalMoney(bank_a, bank_b), total_before) << "money was created or destroyed";
  auto a = Balances(bank_a);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)["alice"], committed ? 70 : 100);
}

}  // namespace
}  // namespace treaty::integ
