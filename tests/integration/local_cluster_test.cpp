// scripts/local-cluster.sh, as the README and the demo use it: start a 3-node cluster with the
// example services, commit transfers through the CLI across a kill -9 of the leader, stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

#ifndef TREATY_SOURCE_DIR
#error "TREATY_SOURCE_DIR must be defined by the build (the repository root)"
#endif

namespace treaty::integ {
namespace {

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A base port whose next 50 ports are free (the script uses base+1 .. base+43).
int FreeBase() {
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int base = 20000 + static_cast<int>(rng() % 400) * 100;
    bool free = true;
    for (int p = base; p < base + 50 && free; ++p) free = PortFree(p);
    if (free) return base;
  }
  return 0;
}

class LocalClusterScriptTest : public IntegrationTest {
 protected:
  CommandResult Script(const std::vector<std::string>& args, int64_t timeout_ms = 60000) {
    std::vector<std::string> argv = {"/usr/bin/env", "BUILD_DIR=" + BinDir() + "/..",
                                     "TREATY_LOG_LEVEL=warn", "bash",
                                     std::string(TREATY_SOURCE_DIR) + "/scripts/local-cluster.sh"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--dir", dir_});
    return RunCommand(argv, timeout_ms);
  }
  CommandResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinDir() + "/treaty", "--coordinator", coordinators_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, 60000);
  }
  void TearDown() override {
    if (!dir_.empty()) Script({"stop"});
    IntegrationTest::TearDown();
  }

  std::string dir_;
  std::string coordinators_;
};

TEST_F(LocalClusterScriptTest, StartsAClusterThatCommitsAcrossALeaderKill) {
  const int base = FreeBase();
  ASSERT_NE(base, 0) << "no 50 free ports in a row";
  dir_ = tmp().Sub("local-cluster");
  CommandResult started = Script({"start", "--base-port", std::to_string(base)});
  ASSERT_EQ(started.exit_code, 0) << started.Describe();
  for (int i = 1; i <= 3; ++i) {
    coordinators_ += (i > 1 ? "," : "") + std::string("127.0.0.1:") + std::to_string(base + i);
  }
  EXPECT_NE(ReadFile(dir_ + "/cluster.env").find("COORDINATORS=" + coordinators_),
            std::string::npos);
  CommandResult status = Script({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.Describe();
  EXPECT_NE(status.out.find("leader"), std::string::npos) << status.out;

  const std::string transfer = WriteTempFile(
      "transfer.json",
      R"({"branches":[{"service":"bank-a","op":"debit","payload":{"account":"alice","amount":10}},)"
      R"({"service":"bank-b","op":"credit","payload":{"account":"bob","amount":10}}]})");
  // The banks register with the leader shortly after they listen.
  CommandResult first;
  ASSERT_TRUE(WaitUntil(
      [&] {
        first = Cli({"submit", "2pc", "-f", transfer, "--xid", "lc-1", "--wait"});
        return first.exit_code == 0;
      },
      20000, 200))
      << first.Describe();

  CommandResult killed = Script({"kill-leader"});
  ASSERT_EQ(killed.exit_code, 0) << killed.Describe();
  CommandResult second = Cli({"submit", "2pc", "-f", transfer, "--xid", "lc-2", "--wait"});
  EXPECT_EQ(second.exit_code, 0) << "the new leader did not commit: " << second.Describe();

  const std::string bank_b = "127.0.0.1:" + std::to_string(base + 32);
  CommandResult balances = RunCommand(
      {BinDir() + "/bank-participant", "balances", "--listen", bank_b, "--output", "json"}, 10000);
  EXPECT_NE(balances.out.find("\"bob\":70"), std::string::npos)
      << "bob started with 50 and received 10 twice: " << balances.Describe();

  CommandResult stopped = Script({"stop"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.Describe();
  dir_.clear();
}

}  // namespace
}  // namespace treaty::integ
