// A new coordinator (a restarted node, a cluster's new leader) has not heard from every
// participant yet: during its first lease period a submission naming a service that has not
// registered with it waits for the registration instead of failing as "unknown service".
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"

namespace treaty::integ {
namespace {

// CLI exit codes (cli/): 0 committed.
constexpr int kExitCommitted = 0;

class RegistrationTest : public IntegrationTest {};

TEST_F(RegistrationTest, ASubmissionWaitsForAServiceThatRegistersDuringTheFirstLease) {
  Node& treatyd = AddTreatyd({"--lease-ms", "8000"});
  Node& bank_a = AddBank("bank-a", "alice=100");
  Node& bank_b = AddBank("bank-b", "bob=0");
  ASSERT_TRUE(Start(treatyd));
  ASSERT_TRUE(Start(bank_a));
  ASSERT_TRUE(WaitRegistered(bank_a));

  // bank-b starts only after the transfer naming it was submitted.
  const std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 30}));
  auto submitted = std::async(std::launch::async, [&] {
    return Treaty(
        {"submit", "2pc", "-f", file, "--xid", "wait-1", "--wait", "--timeout-ms", "15000"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ASSERT_TRUE(Start(bank_b));
  CommandResult result = submitted.get();
  EXPECT_EQ(result.exit_code, kExitCommitted)
      << "the transfer should wait for bank-b to register, then commit\n"
      << result.Describe();
  auto balances = Balances(bank_b);
  ASSERT_TRUE(balances.ok()) << balances.status().ToString();
  auto tx = WaitFinished("wait-1", 10000);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->state(), v1::COMMITTED);
  balances = Balances(bank_b);
  ASSERT_TRUE(balances.ok()) << balances.status().ToString();
  EXPECT_EQ(balances->at("bob"), 30);
}

TEST_F(RegistrationTest, AfterTheFirstLeaseAnUnknownServiceIsRefusedAtOnce) {
  Node& treatyd = AddTreatyd({"--lease-ms", "500"});
  Node& bank_a = AddBank("bank-a", "alice=100");
  ASSERT_TRUE(Start(treatyd));
  ASSERT_TRUE(Start(bank_a));
  ASSERT_TRUE(WaitRegistered(bank_a));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-x", "bob", 30}));
  const auto start = std::chrono::steady_clock::now();
  CommandResult result = Treaty({"submit", "2pc", "-f", file, "--xid", "unknown-1", "--wait"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(result.exit_code, kExitCommitted) << result.Describe();
  EXPECT_NE(result.err.find("unknown service 'bank-x'"), std::string::npos) << result.Describe();
  EXPECT_LT(took, std::chrono::milliseconds(3000)) << "refused without waiting";
}

}  // namespace
}  // namespace treaty::integ
