// The xid window end to end: with retentions shortened to fractions of a second, a committed
// transfer's summary and outcome record expire while treatyd keeps refusing its xid (through the
// treaty CLI) and answers its QueryOutcome with COMMIT, until --xid-retention passes.
#include <map>
#include <string>
#include <vector>

#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::integ {
namespace {

// CLI exit codes (cli/commands.h): 0 committed, 5 refused by the coordinator.
constexpr int kExitCommitted = 0;
constexpr int kExitRejected = 5;

// Short enough that a transfer's events, summary and outcome record go within a second of its
// END: every retention pass (each 100 ms) purges and expires what is 100 ms old.
const std::vector<std::string> kFastRetention = {"--event-retention",     "100ms",
                                                 "--readmodel-retention", "100ms",
                                                 "--retention-interval",  "100ms"};

// What `treaty tx get` prints for an xid the log remembers only as used.
constexpr char kRememberedText[] = "was used by a 2PC transaction that finished at";

class XidWindowTest : public IntegrationTest {
 protected:
  // Starts treatyd with the fast retentions and the given --xid-retention, and two banks.
  void StartWith(const std::string& xid_retention) {
    std::vector<std::string> args = kFastRetention;
    args.insert(args.end(), {"--xid-retention", xid_retention});
    AddTreatyd(args);
    bank_a_ = &AddBank("bank-a", "alice=1000");
    bank_b_ = &AddBank("bank-b", "bob=0");
    ASSERT_TRUE(StartAll());
    file_ = WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 30}));
  }

  CommandResult SubmitTransfer(const std::string& xid) {
    return Treaty({"submit", "2pc", "-f", file_, "--xid", xid, "--wait"});
  }

  // Submits a transfer of 30 from alice to bob and waits until it is COMMITTED.
  void Commit(const std::string& xid) {
    CommandResult submit = SubmitTransfer(xid);
    ASSERT_EQ(submit.exit_code, kExitCommitted) << submit.Describe();
    auto tx = WaitFinished(xid, 10000);
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_EQ(tx->state(), v1::COMMITTED) << tx->DebugString();
  }

  // Waits until `treaty tx get xid` fails with stderr containing text; the last result.
  CommandResult WaitTxGetSays(const std::string& xid, const std::string& text) {
    CommandResult get;
    WaitUntil(
        [&] {
          get = Treaty({"tx", "get", xid});
          return get.exit_code != 0 && get.err.find(text) != std::string::npos;
        },
        15000, 100);
    return get;
  }

  v1::Outcome QueryOutcome(const std::string& xid) {
    v1::QueryOutcomeRequest req;
    req.set_xid(xid);
    auto resp = net::Decode<v1::QueryOutcomeResponse>(
        CallCoordinator(v1::methods::kQueryOutcome, req.SerializeAsString()));
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    return resp.ok() ? resp->outcome() : v1::OUTCOME_UNSPECIFIED;
  }

  // The log's last lsn, as the read model's projector reports it.
  uint64_t LogLastLsn() {
    auto stats = net::Decode<v1::StatsResponse>(
        CallCoordinator(v1::methods::kStats, v1::StatsRequest().SerializeAsString()));
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok() ? stats->projector().log_last_lsn() : 0;
  }

  int64_t Balance(const Node& bank, const std::string& account) {
    auto balances = Balances(bank);
    EXPECT_TRUE(balances.ok()) << balances.status().ToString();
    return balances.ok() ? (*balances)[account] : -1;
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
  std::string file_;
};

TEST_F(XidWindowTest, ResubmittingAnXidWhoseDetailsExpiredIsRefusedAndQueryOutcomeSaysCommit) {
  StartWith("1h");
  Commit("xw-1");
  CommandResult gone = WaitTxGetSays("xw-1", kRememberedText);
  ASSERT_NE(gone.err.find(kRememberedText), std::string::npos)
      << "the summary and outcome record of xw-1 did not expire in time: " << gone.Describe();
  EXPECT_NE(gone.err.find("(committed)"), std::string::npos) << gone.Describe();
  const uint64_t lsn_before = LogLastLsn();
  ASSERT_GT(lsn_before, 0u);

  CommandResult again = SubmitTransfer("xw-1");
  EXPECT_EQ(again.exit_code, kExitRejected) << again.Describe();
  for (const char* part :
       {"xid xw-1 was used by a 2PC transaction that finished at 20", "(committed)",
        "remembered for 1h after they finish (--xid-retention)", "use a new xid"}) {
    EXPECT_NE(again.err.find(part), std::string::npos)
        << "the refusal should say \"" << part << "\": " << again.Describe();
  }
  EXPECT_EQ(LogLastLsn(), lsn_before) << "a refused resubmission must log nothing";
  EXPECT_EQ(Balance(*bank_a_, "alice"), 970) << "the transfer must have run exactly once";
  EXPECT_EQ(Balance(*bank_b_, "bob"), 30);

  EXPECT_EQ(QueryOutcome("xw-1"), v1::OUTCOME_COMMIT)
      << "a participant in doubt must learn the commit, not a presumed abort";
  EXPECT_EQ(QueryOutcome("xw-never-used"), v1::OUTCOME_ABORT) << "unknown xids stay presumed abort";
}

TEST_F(XidWindowTest, AnXidMayBeReusedOnceTheXidRetentionPassed) {
  StartWith("5s");
  Commit("xw-2");
  CommandResult remembered = WaitTxGetSays("xw-2", kRememberedText);
  ASSERT_NE(remembered.err.find(kRememberedText), std::string::npos) << remembered.Describe();
  CommandResult refused = SubmitTransfer("xw-2");
  EXPECT_EQ(refused.exit_code, kExitRejected) << "still inside the window: " << refused.Describe();

  CommandResult forgotten = WaitTxGetSays("xw-2", "no transaction with xid xw-2");
  ASSERT_NE(forgotten.err.find("no transaction with xid xw-2"), std::string::npos)
      << "xw-2 was not forgotten after --xid-retention: " << forgotten.Describe();
  EXPECT_EQ(QueryOutcome("xw-2"), v1::OUTCOME_ABORT) << "past the window the xid is unknown";
  const uint64_t lsn_before = LogLastLsn();
  Commit("xw-2");  // documented: after the window the xid starts a new transaction
  EXPECT_GT(LogLastLsn(), lsn_before) << "the reuse is a new transaction in the log";
  // Documented too (README): the participants' barrier still holds the first use's branches, so
  // they answer the new transaction from it without running their handlers again.
  EXPECT_EQ(Balance(*bank_a_, "alice"), 970);
  EXPECT_EQ(Balance(*bank_b_, "bob"), 30);
}

}  // namespace
}  // namespace treaty::integ
