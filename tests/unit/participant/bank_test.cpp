// The bank example's business logic (examples/bank) on real participants over loopback RPC.
// RandomTransfersConserveMoney prints its seed; set TREATY_TEST_SEED to replay a run.
#include "examples/bank/bank.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <numeric>
#include <optional>

#include "common/random.h"
#include "tests/unit/participant/participant_test_util.h"

namespace treaty::bank {
namespace {

using participant::Participant;
using participant::ParticipantOptions;
using participant::testing::ParticipantClient;
using participant::testing::TempDir;

// One bank participant (no coordinator) with a client.
class Bank {
 public:
  Bank(const std::string& service, const std::string& dir, Balances initial)
      : participant_(Options(service, dir)) {
    InstallBank(participant_, std::move(initial));
    start_status_ = participant_.Start();
    if (start_status_.ok()) client_ = std::make_unique<ParticipantClient>(participant_.address());
  }
  static ParticipantOptions Options(const std::string& service, const std::string& dir) {
    ParticipantOptions options;
    options.service = service;
    options.data_dir = dir;
    return options;
  }
  const Status& start_status() const { return start_status_; }
  ParticipantClient& client() { return *client_; }
  Balances balances() {
    Result<std::string> json = client_->Call(kBalancesMethod, "");
    if (!json.ok()) return {};
    Result<Balances> parsed = ParseBalancesJson(*json);
    return parsed.ok() ? *parsed : Balances{};
  }

 private:
  Participant participant_;
  Status start_status_;
  std::unique_ptr<ParticipantClient> client_;
};

int64_t Total(const Balances& b) {
  return std::accumulate(b.begin(), b.end(), int64_t{0},
                         [](int64_t sum, const auto& kv) { return sum + kv.second; });
}

class BankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<Bank>("bank-a", dir_.Sub("a"), Balances{{"alice", 100}, {"bob", 50}});
    b_ = std::make_unique<Bank>("bank-b", dir_.Sub("b"), Balances{{"carol", 10}});
    ASSERT_TRUE(a_->start_status().ok()) << a_->start_status().ToString();
    ASSERT_TRUE(b_->start_status().ok()) << b_->start_status().ToString();
  }

  // Prepares a debit on `from` (branch 0) and a credit on `to` (branch 1); returns the votes.
  std::pair<v1::PrepareResponse, v1::PrepareResponse> Prepare(const std::string& xid, Bank& from,
                                                              const std::string& from_acct,
                                                              Bank& to, const std::string& to_acct,
                                                              int64_t amount) {
    Result<v1::PrepareResponse> debit =
        from.client().Prepare(xid, 0, kDebitOp, OpPayload(from_acct, amount));
    Result<v1::PrepareResponse> credit =
        to.client().Prepare(xid, 1, kCreditOp, OpPayload(to_acct, amount));
    EXPECT_TRUE(debit.ok()) << debit.status().ToString();
    EXPECT_TRUE(credit.ok()) << credit.status().ToString();
    return {debit.ok() ? *debit : v1::PrepareResponse(),
            credit.ok() ? *credit : v1::PrepareResponse()};
  }

  TempDir dir_;
  std::unique_ptr<Bank> a_;
  std::unique_ptr<Bank> b_;
};

TEST_F(BankTest, SeededBalancesAreServedAsJson) {
  EXPECT_EQ(*a_->client().Call(kBalancesMethod, ""), R"({"alice":100,"bob":50})");
}

TEST_F(BankTest, DebitBeyondAvailableFundsVotesNoWithReason) {
  Result<v1::PrepareResponse> vote =
      a_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 130));
  ASSERT_TRUE(vote.ok());
  EXPECT_EQ(vote->vote(), v1::NO);
  EXPECT_EQ(vote->reason(), "insufficient funds: alice has 100, needs 130");
}

TEST_F(BankTest, PreparedDebitReservesFundsFromLaterDebits) {
  ASSERT_EQ(a_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 80))->vote(), v1::YES);
  Result<v1::PrepareResponse> second =
      a_->client().Prepare("tx-2", 0, kDebitOp, OpPayload("alice", 30));
  EXPECT_EQ(second->vote(), v1::NO);
  EXPECT_EQ(second->reason(), "insufficient funds: alice has 20, needs 30");
  EXPECT_EQ(a_->balances().at("alice"), 100) << "a reservation does not change the balance";
}

TEST_F(BankTest, BadPayloadOrUnknownAccountVotesNo) {
  auto reason = [&](const std::string& op, const std::string& payload) {
    Result<v1::PrepareResponse> v = a_->client().Prepare("tx-" + payload, 0, op, payload);
    EXPECT_TRUE(v.ok() && v->vote() == v1::NO) << payload;
    return v.ok() ? v->reason() : v.status().ToString();
  };
  EXPECT_EQ(reason(kDebitOp, OpPayload("carol", 5)), "unknown account: carol");
  EXPECT_EQ(reason(kCreditOp, OpPayload("carol", 5)), "unknown account: carol");
  for (const std::string& bad :
       {std::string("not json"), std::string(R"({"account":"alice"})"),
        std::string(R"({"account":"alice","amount":-5})"),
        std::string(R"({"account":"alice","amount":1.5})"),
        std::string(R"({"account":"alice","amount":0})"), std::string(R"([1,2])")}) {
    EXPECT_EQ(reason(kDebitOp, bad).rfind("invalid payload: ", 0), 0u) << bad;
    EXPECT_EQ(reason(kCreditOp, bad).rfind("invalid payload: ", 0), 0u) << bad;
  }
}

TEST_F(BankTest, CommittedTransferMovesMoney) {
  auto [debit, credit] = Prepare("tx-1", *a_, "alice", *b_, "carol", 30);
  ASSERT_EQ(debit.vote(), v1::YES);
  ASSERT_EQ(credit.vote(), v1::YES);
  EXPECT_EQ(b_->balances().at("carol"), 10) << "a prepared credit is not spendable yet";
  ASSERT_TRUE(a_->client().Commit("tx-1", 0).ok());
  ASSERT_TRUE(b_->client().Commit("tx-1", 1).ok());
  ASSERT_TRUE(b_->client().Commit("tx-1", 1).ok()) << "redelivered commit";
  EXPECT_EQ(a_->balances(), (Balances{{"alice", 70}, {"bob", 50}}));
  EXPECT_EQ(b_->balances(), (Balances{{"carol", 40}}));
  // The reservation is gone: alice can spend all 70.
  EXPECT_EQ(a_->client().Prepare("tx-2", 0, kDebitOp, OpPayload("alice", 70))->vote(), v1::YES);
}

TEST_F(BankTest, AbortedTransferRestoresReservation) {
  auto [debit, credit] = Prepare("tx-1", *a_, "alice", *b_, "carol", 100);
  ASSERT_EQ(debit.vote(), v1::YES);
  ASSERT_TRUE(a_->client().Abort("tx-1", 0).ok());
  ASSERT_TRUE(b_->client().Abort("tx-1", 1).ok());
  EXPECT_EQ(a_->balances().at("alice"), 100);
  EXPECT_EQ(b_->balances().at("carol"), 10);
  EXPECT_EQ(a_->client().Prepare("tx-2", 0, kDebitOp, OpPayload("alice", 100))->vote(), v1::YES)
      << "the aborted reservation must be released";
}

TEST_F(BankTest, BalancesSurviveRestartAndAreNotReseeded) {
  auto [debit, credit] = Prepare("tx-1", *a_, "alice", *a_, "bob", 25);
  ASSERT_TRUE(a_->client().Commit("tx-1", 0).ok());
  ASSERT_TRUE(a_->client().Commit("tx-1", 1).ok());
  a_.reset();
  a_ = std::make_unique<Bank>("bank-a", dir_.Sub("a"), Balances{{"alice", 999}, {"zed", 1}});
  ASSERT_TRUE(a_->start_status().ok());
  EXPECT_EQ(a_->balances(), (Balances{{"alice", 75}, {"bob", 75}}));
}

TEST_F(BankTest, RandomTransfersConserveMoney) {
  const char* env = std::getenv("TREATY_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : EntropySeed();
  std::printf("[ seed     ] TREATY_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("replay with TREATY_TEST_SEED=" + std::to_string(seed));
  SeededRandom rng(seed);
  struct Account {
    Bank* bank;
    std::string name;
  };
  const std::vector<Account> accounts = {
      {a_.get(), "alice"}, {a_.get(), "bob"}, {b_.get(), "carol"}};
  const int64_t total = Total(a_->balances()) + Total(b_->balances());

  constexpr int kTransfers = 120;
  for (int i = 0; i < kTransfers; ++i) {
    const Account& from = accounts[rng.Uniform(accounts.size())];
    const Account& to = accounts[rng.Uniform(accounts.size())];
    const int64_t amount = 1 + static_cast<int64_t>(rng.Uniform(80));
    const std::string xid = "tx-" + std::to_string(i);
    auto [debit, credit] = Prepare(xid, *from.bank, from.name, *to.bank, to.name, amount);
    // Commit only if both voted YES; sometimes abort anyway (a prepare timeout elsewhere).
    const bool commit = debit.vote() == v1::YES && credit.vote() == v1::YES && !rng.Chance(0.2);
    for (int delivery = 0; delivery < (rng.Chance(0.3) ? 2 : 1); ++delivery) {
      if (commit) {
        ASSERT_TRUE(from.bank->client().Commit(xid, 0).ok()) << xid;
        ASSERT_TRUE(to.bank->client().Commit(xid, 1).ok()) << xid;
      } else {
        ASSERT_TRUE(from.bank->client().Abort(xid, 0).ok()) << xid;
        ASSERT_TRUE(to.bank->client().Abort(xid, 1).ok()) << xid;
      }
    }
    const Balances a = a_->balances();
    const Balances b = b_->balances();
    ASSERT_EQ(Total(a) + Total(b), total) << "money not conserved after " << xid;
    for (const Balances* bank : {&a, &b}) {
      for (const auto& [name, balance] : *bank) ASSERT_GE(balance, 0) << name << " after " << xid;
    }
  }
  // Nothing is left reserved: every account can spend its whole balance.
  for (const Account& acct : accounts) {
    const int64_t balance = acct.bank->balances().at(acct.name);
    if (balance == 0) continue;
    EXPECT_EQ(acct.bank->client()
                  .Prepare("tx-final-" + acct.name, 0, kDebitOp, OpPayload(acct.name, balance))
                  ->vote(),
              v1::YES)
        << acct.name << " still has funds reserved";
  }
}

TEST(BankFormatTest, ParseAccountsAcceptsListAndNamesBadItem) {
  Result<Balances> ok = ParseAccounts("alice=100,bob=50");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (Balances{{"alice", 100}, {"bob", 50}}));
  for (const char* bad : {"alice", "alice=", "=5", "alice=-1", "alice=1x", "a/b=1"}) {
    Result<Balances> r = ParseAccounts(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseAccounts("alice=1,alice=2").status().code(), StatusCode::kInvalidArgument);
}

TEST(BankFormatTest, BalancesJsonAndTableFormats) {
  const Balances balances = {{"alice", 70}, {"bob", 1080}};
  EXPECT_EQ(BalancesJson(balances), R"({"alice":70,"bob":1080})");
  EXPECT_EQ(*ParseBalancesJson(BalancesJson(balances)), balances);
  EXPECT_EQ(BalancesTable(balances),
            "ACCOUNT  BALANCE\n"
            "alice         70\n"
            "bob         1080\n");
  EXPECT_FALSE(ParseBalancesJson("[1]").ok());
}

// ---- Fault injection (examples/bank/fault.h) through real loopback RPC ----

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// One bank participant whose handlers consult a FaultInjector, with a client for the business
// calls and a separate one for bank.SetFault.
class FaultyBank {
 public:
  FaultyBank(const std::string& dir, FaultSetting initial = {})
      : faults_(std::make_shared<FaultInjector>(initial)),
        participant_(Bank::Options("bank-f", dir)) {
    InstallBank(participant_, Balances{{"alice", 100}, {"bob", 50}}, faults_);
    start_status_ = participant_.Start();
    if (start_status_.ok()) {
      client_ = std::make_unique<ParticipantClient>(participant_.address());
      control_ = std::make_unique<ParticipantClient>(participant_.address());
    }
  }
  ~FaultyBank() {
    faults_->Shutdown();  // as bank-participant does: a hang must not hold Stop
    participant_.Stop();
  }
  const Status& start_status() const { return start_status_; }
  ParticipantClient& client() { return *client_; }
  FaultInjector& faults() { return *faults_; }
  Participant& participant() { return participant_; }
  // Calls bank.SetFault with a raw JSON payload; returns the reply (the setting in force).
  Result<std::string> SetFault(const std::string& json) {
    return control_->Call(kSetFaultMethod, json);
  }
  Balances balances() {
    Result<std::string> json = client_->Call(kBalancesMethod, "");
    if (!json.ok()) return {};
    Result<Balances> parsed = ParseBalancesJson(*json);
    return parsed.ok() ? *parsed : Balances{};
  }

 private:
  std::shared_ptr<FaultInjector> faults_;
  Participant participant_;
  Status start_status_;
  std::unique_ptr<ParticipantClient> client_;
  std::unique_ptr<ParticipantClient> control_;
};

class BankFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bank_ = std::make_unique<FaultyBank>(dir_.Sub("f"));
    ASSERT_TRUE(bank_->start_status().ok()) << bank_->start_status().ToString();
  }
  TempDir dir_;
  std::unique_ptr<FaultyBank> bank_;
};

TEST_F(BankFaultTest, FailModeAnswersUnavailableAndWritesNothing) {
  Result<std::string> set = bank_->SetFault(R"({"mode":"fail"})");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, R"({"delay_ms":0,"mode":"fail"})");
  Result<v1::PrepareResponse> vote =
      bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 30));
  EXPECT_EQ(vote.status().code(), StatusCode::kUnavailable)
      << "a failing participant must give a transient error, got " << vote.status().ToString();
  EXPECT_EQ(vote.status().message(), "injected fault");
  EXPECT_EQ(bank_->client().State("tx-1", 0), v1::BRANCH_STATE_UNKNOWN)
      << "a failed prepare must record nothing";
  EXPECT_EQ(bank_->balances(), (Balances{{"alice", 100}, {"bob", 50}}))
      << "queries keep working in fail mode";
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"none"})").ok());
  vote = bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 100));
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(vote->vote(), v1::YES) << "the failed attempt must not have reserved any funds";
}

TEST_F(BankFaultTest, FailModeKeepsPreparedBranchUntilDecisionGetsThrough) {
  ASSERT_EQ(bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 30))->vote(), v1::YES);
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"fail"})").ok());
  EXPECT_EQ(bank_->client().Commit("tx-1", 0).code(), StatusCode::kUnavailable);
  EXPECT_EQ(bank_->client().State("tx-1", 0), v1::BRANCH_PREPARED)
      << "a failed commit must leave the branch prepared for redelivery";
  EXPECT_EQ(bank_->balances().at("alice"), 100);
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"none"})").ok());
  ASSERT_TRUE(bank_->client().Commit("tx-1", 0).ok()) << "redelivered commit after recovery";
  EXPECT_EQ(bank_->balances().at("alice"), 70);
  EXPECT_EQ(bank_->faults().injected(), 1u);
}

TEST_F(BankFaultTest, SlowModeDelaysHandlersButResultsStayCorrect) {
  ASSERT_EQ(*bank_->SetFault(R"({"mode":"slow","delay_ms":150})"),
            R"({"delay_ms":150,"mode":"slow"})");
  const Clock::time_point start = Clock::now();
  Result<v1::PrepareResponse> vote =
      bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 30));
  const int64_t prepare_ms = MsSince(start);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(vote->vote(), v1::YES);
  EXPECT_GE(prepare_ms, 150) << "slow mode must delay the handler by delay_ms";
  ASSERT_TRUE(bank_->client().Commit("tx-1", 0).ok());
  EXPECT_GE(MsSince(start), 300) << "the commit handler is delayed too";
  EXPECT_EQ(bank_->balances().at("alice"), 70);
}

TEST_F(BankFaultTest, HangStallsTheInstanceUntilSetFaultNone) {
  ASSERT_EQ(*bank_->SetFault(R"({"mode":"hang"})"), R"({"delay_ms":600000,"mode":"hang"})");
  std::future<Result<v1::PrepareResponse>> pending = std::async(std::launch::async, [&] {
    return bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 30));
  });
  ASSERT_TRUE(participant::testing::WaitFor([&] { return bank_->faults().injected() == 1; }))
      << "the prepare never reached the handler";
  EXPECT_EQ(pending.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "a hanging handler answered";
  Result<std::string> stalled =
      bank_->client().rpc().Call(bank_->client().address(), kBalancesMethod, "", 200);
  EXPECT_EQ(stalled.status().code(), StatusCode::kDeadlineExceeded)
      << "a hang holds the worker, so queries stall too (as in a hung service)";

  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"none"})").ok())
      << "the control method must get through while the worker hangs";
  EXPECT_LT(MsSince(start), 1000);
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the hanging prepare did not resume after mode none";
  Result<v1::PrepareResponse> vote = pending.get();
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(vote->vote(), v1::YES) << "the interrupted handler then runs normally";
  EXPECT_EQ(bank_->balances().at("alice"), 100);
}

TEST_F(BankFaultTest, ShutdownEndsAHangWithUnavailable) {
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"hang"})").ok());
  std::future<Result<v1::PrepareResponse>> pending = std::async(std::launch::async, [&] {
    return bank_->client().Prepare("tx-1", 0, kDebitOp, OpPayload("alice", 30));
  });
  ASSERT_TRUE(participant::testing::WaitFor([&] { return bank_->faults().injected() == 1; }));
  bank_->faults().Shutdown();
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "Shutdown did not end the hang";
  EXPECT_EQ(pending.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(bank_->client().State("tx-1", 0), v1::BRANCH_STATE_UNKNOWN);
  const Clock::time_point start = Clock::now();
  bank_->participant().Stop();
  EXPECT_LT(MsSince(start), 2000) << "Stop was held up after Shutdown";
}

TEST_F(BankFaultTest, BadSetFaultRequestIsRefusedAndChangesNothing) {
  ASSERT_TRUE(bank_->SetFault(R"({"mode":"fail"})").ok());
  for (const char* bad : {"nope", "[]", R"({"delay_ms":5})", R"({"mode":"explode"})",
                          R"({"mode":"slow","delay_ms":-1})", R"({"mode":"hang","delay_ms":1.5})",
                          R"({"mode":"hang","delay_ms":99999999999})"}) {
    Result<std::string> r = bank_->SetFault(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(bank_->faults().setting().mode, FaultMode::kFail);
}

TEST(BankFaultStartTest, FaultGivenAtStartAppliesFromFirstCall) {
  TempDir dir;
  FaultyBank bank(dir.Sub("f"), FaultSetting{FaultMode::kFail, 0});
  ASSERT_TRUE(bank.start_status().ok()) << bank.start_status().ToString();
  EXPECT_EQ(bank.client().Prepare("tx-1", 0, kCreditOp, OpPayload("bob", 1)).status().code(),
            StatusCode::kUnavailable);
}

TEST(BankFaultStartTest, ControlMethodMustNotClashWithOtherMethods) {
  TempDir dir;
  for (const std::string& method : {std::string(v1::methods::kPrepare), std::string("q.Same")}) {
    Participant participant(Bank::Options("bank-c", dir.Sub("c")));
    participant.RegisterQuery("q.Same", [](const std::string&, participant::LocalReader&) {
      return Result<std::string>(std::string());
    });
    participant.RegisterControl(
        method, [](const std::string&) { return Result<std::string>(std::string()); });
    EXPECT_EQ(participant.Start().code(), StatusCode::kInvalidArgument) << method;
  }
}

TEST(BankFaultFormatTest, SettingDefaultsAndJson) {
  EXPECT_EQ(MakeFaultSetting("hang", std::nullopt)->delay_ms, kDefaultHangMs);
  EXPECT_EQ(MakeFaultSetting("slow", std::nullopt)->delay_ms, kDefaultSlowMs);
  EXPECT_EQ(MakeFaultSetting("slow", 7)->delay_ms, 7);
  EXPECT_EQ(MakeFaultSetting("fail", 7)->delay_ms, 0) << "fail does not wait";
  EXPECT_EQ(MakeFaultSetting("none", std::nullopt)->mode, FaultMode::kNone);
  EXPECT_EQ(MakeFaultSetting("slow", kMaxFaultDelayMs + 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFaultSetting("Fail", std::nullopt).status().code(), StatusCode::kInvalidArgument);
  const FaultSetting slow{FaultMode::kSlow, 25};
  EXPECT_EQ(FaultSettingJson(slow), R"({"delay_ms":25,"mode":"slow"})");
  Result<FaultSetting> back = ParseFaultSetting(FaultSettingJson(slow));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->mode, FaultMode::kSlow);
  EXPECT_EQ(back->delay_ms, 25);
}

}  // namespace
}  // namespace treaty::bank
