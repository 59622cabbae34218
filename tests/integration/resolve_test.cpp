// `treaty tx resolve` of 2PC transactions through real processes: a transaction stuck delivering
// its COMMIT to a failing bank is redelivered at once by --retry once the bank is fixed, and a
// transaction still preparing is aborted by --abort.
#include <string>

#include "tests/integration/cluster.h"

namespace treaty::integ {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRejected = 5;

class ResolveTest : public IntegrationTest {
 protected:
  // treatyd with slow retries (so a failing branch soon waits seconds between attempts and only a
  // resolve delivers at once), breakers off (an open breaker would delay the redelivery until its
  // half-open probe) and a long prepare budget; bank-a (alice=100) and bank-b (bob=50).
  void StartBanks() {
    AddTreatyd({"--retry-initial-ms", "400", "--retry-max-ms", "60000", "--prepare-timeout-ms",
                "20000", "--breaker-failures", "0", "--breaker-failure-rate", "2"});
    bank_a_ = &AddBank("bank-a", "alice=100");
    bank_b_ = &AddBank("bank-b", "bob=50");
    ASSERT_TRUE(StartAll());
  }

  // Submits alice -> bob (30) while bank-a's prepare hangs, and waits until bank-b prepared:
  // the transaction is then PREPARING, waiting for bank-a's vote.
  void SubmitWhileBankAHangs(const std::string& xid) {
    ASSERT_TRUE(SetFault(*bank_a_, "hang"));
    auto submitted = Submit(TransferRequest(xid, {"bank-a", "alice", "bank-b", "bob", 30}, false));
    ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = BranchStateAt(*bank_b_, xid, 1);
          return s.ok() && *s == v1::BRANCH_PREPARED;
        },
        10000))
        << "bank-b should prepare while bank-a hangs";
  }

  std::string Branches(const v1::Transaction& tx) {
    std::string out;
    for (const auto& b : tx.branches()) {
      out += b.service() + ": vote=" + v1::Vote_Name(b.vote()) +
             " acked=" + (b.acknowledged() ? "yes" : "no") +
             " attempts=" + std::to_string(b.attempts()) + " error=" + b.last_error() + "; ";
    }
    return out;
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
};

TEST_F(ResolveTest, RetryRedeliversACommitStuckOnAFailingBranchAtOnce) {
  StartBanks();
  SubmitWhileBankAHangs("stuck-1");
  // bank-b now fails every call; releasing bank-a lets the transaction decide COMMIT, whose
  // delivery to bank-b keeps failing with growing backoff.
  ASSERT_TRUE(SetFault(*bank_b_, "fail"));
  ASSERT_TRUE(SetFault(*bank_a_, "none"));
  Result<v1::Transaction> stuck = Status::DeadlineExceeded("not queried");
  ASSERT_TRUE(WaitUntil(
      [&] {
        stuck = GetTransaction("stuck-1");
        return stuck.ok() && stuck->state() == v1::COMMITTING && stuck->branches_size() == 2 &&
               stuck->branches(1).attempts() >= 4;
      },
      20000))
      << "COMMIT to bank-b should be failing and retried: "
      << (stuck.ok() ? Branches(*stuck) : stuck.status().ToString());
  EXPECT_NE(stuck->branches(1).last_error().find("injected fault"), std::string::npos)
      << Branches(*stuck);
  auto balances_b = Balances(*bank_b_);
  ASSERT_TRUE(balances_b.ok()) << balances_b.status().ToString();
  EXPECT_EQ((*balances_b)["bob"], 50) << "bank-b has not committed yet";

  // Refusals while stuck: abort of a decided transaction, mark-compensated of a 2PC one.
  CommandResult abort = Treaty({"tx", "resolve", "stuck-1", "--abort"});
  EXPECT_EQ(abort.exit_code, kExitRejected) << abort.Describe();
  EXPECT_NE(abort.err.find("already decided COMMIT; use --retry"), std::string::npos)
      << abort.Describe();
  CommandResult mark = Treaty({"tx", "resolve", "stuck-1", "--mark-compensated", "x"});
  EXPECT_EQ(mark.exit_code, kExitRejected) << mark.Describe();
  EXPECT_NE(mark.err.find("no compensations"), std::string::npos) << mark.Describe();

  ASSERT_TRUE(SetFault(*bank_b_, "none"));
  const int64_t start_ms = NowMs();
  CommandResult retry = Treaty({"tx", "resolve", "stuck-1", "--retry", "--reason", "bank-b fixed"});
  ASSERT_EQ(retry.exit_code, kExitOk) << retry.Describe();
  EXPECT_NE(retry.out.find("COMMITTING"), std::string::npos) << retry.Describe();
  EXPECT_NE(retry.out.find("redelivered now"), std::string::npos) << retry.Describe();
  auto done = WaitFinished("stuck-1", 10000);
  const int64_t took_ms = NowMs() - start_ms;
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_EQ(done->state(), v1::COMMITTED) << Branches(*done);
  EXPECT_LT(took_ms, 3000) << "the resolve should deliver at once, not at the next backoff";

  auto committed = BranchStateAt(*bank_b_, "stuck-1", 1);
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_EQ(*committed, v1::BRANCH_COMMITTED);
  auto a = Balances(*bank_a_);
  auto b = Balances(*bank_b_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["alice"], 70);
  EXPECT_EQ((*b)["bob"], 80);
  EXPECT_EQ((*a)["alice"] + (*b)["bob"], 150) << "money is conserved";

  CommandResult again = Treaty({"tx", "resolve", "stuck-1", "--retry"});
  EXPECT_EQ(again.exit_code, kExitRejected) << "nothing left to resolve: " << again.Describe();
  EXPECT_NE(again.err.find("COMMITTED"), std::string::npos) << again.Describe();
}

TEST_F(ResolveTest, AbortOfAPreparingTransactionAbortsItAndNamesWhoAndWhy) {
  StartBanks();
  SubmitWhileBankAHangs("prep-1");
  CommandResult retry = Treaty({"tx", "resolve", "prep-1", "--retry"});
  EXPECT_EQ(retry.exit_code, kExitRejected) << "no decision to redeliver: " << retry.Describe();
  CommandResult abort =
      Treaty({"tx", "resolve", "prep-1", "--abort", "--reason", "bank-a is hanging"});
  ASSERT_EQ(abort.exit_code, kExitOk) << abort.Describe();
  EXPECT_NE(abort.out.find("ABORTING"), std::string::npos) << abort.Describe();
  // bank-b's prepared credit is aborted at once; bank-a's ABORT waits for its hang to end.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto s = BranchStateAt(*bank_b_, "prep-1", 1);
        return s.ok() && *s == v1::BRANCH_ABORTED;
      },
      10000));
  ASSERT_TRUE(SetFault(*bank_a_, "none"));
  auto done = WaitFinished("prep-1", 15000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state(), v1::ABORTED) << Branches(*done);
  EXPECT_NE(done->reason().find("bank-a is hanging"), std::string::npos) << done->reason();
  auto a = Balances(*bank_a_);
  auto b = Balances(*bank_b_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["alice"], 100);
  EXPECT_EQ((*b)["bob"], 50);
}

}  // namespace
}  // namespace treaty::integ
