// End-to-end transfers through the treaty CLI: commit, abort, idempotent resubmission.
#include <map>
#include <string>

#include "tests/integration/cluster.h"

namespace treaty::integ {
namespace {

// CLI exit codes (cli/): 0 committed, 3 aborted.
constexpr int kExitCommitted = 0;
constexpr int kExitAborted = 3;

class TransferTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    AddTreatyd();
    bank_a_ = &AddBank("bank-a", "alice=100,carol=10");
    bank_b_ = &AddBank("bank-b", "bob=50,dave=0");
    ASSERT_TRUE(StartAll());
  }

  // Balances of both banks as one map "bank-a/alice" -> 100.
  std::map<std::string, int64_t> AllBalances() {
    std::map<std::string, int64_t> all;
    for (const Node* bank : {bank_a_, bank_b_}) {
      auto b = Balances(*bank);
      EXPECT_TRUE(b.ok()) << b.status().ToString();
      if (!b.ok()) continue;
      for (const auto& [account, value] : *b) all[bank->name + "/" + account] = value;
    }
    return all;
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
};

TEST_F(TransferTest, CommittedTransferMovesMoneyOnBothBanks) {
  std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 30}));
  CommandResult submit =
      Treaty({"submit", "2pc", "-f", file, "--xid", "tx-commit-1", "--wait", "--output", "json"});
  ASSERT_EQ(submit.exit_code, kExitCommitted) << "submit --wait should report a commit\n"
                                              << submit.Describe();
  EXPECT_EQ(JsonStringField(submit.out, "xid"), "tx-commit-1") << submit.out;
  std::string state = JsonStringField(submit.out, "state");
  EXPECT_TRUE(state == "COMMITTING" || state == "COMMITTED")
      << "submit output should carry a commit state, got: " << submit.out;

  // Every branch acknowledges eventually; only then is the transaction COMMITTED.
  auto tx = WaitFinished("tx-commit-1", 10000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->state(), v1::COMMITTED) << tx->DebugString();

  CommandResult get = Treaty({"tx", "get", "tx-commit-1", "--output", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_EQ(JsonStringField(get.out, "state"), "COMMITTED") << get.out;

  auto all = AllBalances();
  EXPECT_EQ(all["bank-a/alice"], 70) << "debit of 30 not applied on bank-a";
  EXPECT_EQ(all["bank-b/bob"], 80) << "credit of 30 not applied on bank-b";
  EXPECT_EQ(all["bank-a/carol"], 10) << "an unrelated account changed";
  EXPECT_EQ(all["bank-b/dave"], 0) << "an unrelated account changed";

  // The bank's own CLI reads the same committed balances.
  auto bank_bin = BinPath("bank-participant");
  ASSERT_TRUE(bank_bin.ok()) << bank_bin.status().ToString();
  CommandResult balances =
      RunCommand({*bank_bin, "balances", "--listen", bank_b_->address, "--output", "json"}, 10000);
  ASSERT_EQ(balances.exit_code, 0) << balances.Describe();
  auto parsed = ParseBalances(balances.out);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)["bob"], 80) << balances.out;
}

TEST_F(TransferTest, InsufficientFundsAbortsAndLeavesBalancesUnchanged) {
  auto before = AllBalances();
  std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "carol", "bank-b", "dave", 11}));
  CommandResult submit =
      Treaty({"submit", "2pc", "-f", file, "--xid", "tx-abort-1", "--wait", "--output", "json"});
  ASSERT_EQ(submit.exit_code, kExitAborted) << "a debit of 11 from a balance of 10 must abort\n"
                                            << submit.Describe();
  std::string state = JsonStringField(submit.out, "state");
  EXPECT_TRUE(state == "ABORTING" || state == "ABORTED") << submit.out;

  auto tx = WaitFinished("tx-abort-1", 10000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->state(), v1::ABORTED) << tx->DebugString();

  CommandResult get = Treaty({"tx", "get", "tx-abort-1", "--output", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_EQ(JsonStringField(get.out, "state"), "ABORTED") << get.out;

  EXPECT_EQ(AllBalances(), before) << "an aborted transfer changed balances";
  auto credit = BranchStateAt(*bank_b_, "tx-abort-1", 1);
  ASSERT_TRUE(credit.ok()) << credit.status().ToString();
  EXPECT_NE(*credit, v1::BRANCH_COMMITTED) << "the credit branch committed in an aborted tx";
}

TEST_F(TransferTest, SameXidSubmittedTwiceMovesMoneyOnce) {
  std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 25}));
  for (int round = 1; round <= 2; ++round) {
    CommandResult submit =
        Treaty({"submit", "2pc", "-f", file, "--xid", "tx-idem-1", "--wait", "--output", "json"});
    ASSERT_EQ(submit.exit_code, kExitCommitted)
        << "submission #" << round << " of the same xid should report the commit\n"
        << submit.Describe();
    EXPECT_EQ(JsonStringField(submit.out, "xid"), "tx-idem-1") << submit.out;
  }
  auto tx = WaitFinished("tx-idem-1", 10000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->state(), v1::COMMITTED) << tx->DebugString();

  // A third submission after the transaction finished must not run it again either.
  std::string again_file = WriteTempFile("t2.json", ReadFile(file));
  CommandResult again = Treaty({"submit", "2pc", "-f", again_file, "--xid", "tx-idem-1", "--wait"});
  EXPECT_EQ(again.exit_code, kExitCommitted) << again.Describe();

  auto all = AllBalances();
  EXPECT_EQ(all["bank-a/alice"], 75) << "the debit ran more than once (or never)";
  EXPECT_EQ(all["bank-b/bob"], 75) << "the credit ran more than once (or never)";
}

}  // namespace
}  // namespace treaty::integ
