// The read model end to end: real treatyd and bank-participant processes, queried through the
// treaty CLI (tx list, tx watch, stats, admin rebuild-readmodel) and the admin HTTP /v1/ routes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::integ {
namespace {

constexpr int kExitCommitted = 0;
constexpr int kExitAborted = 3;

// Protobuf JSON prints 64-bit integers as strings; this reads either form.
uint64_t JsonCount(const nlohmann::json& j) {
  if (j.is_string()) return std::stoull(j.get<std::string>());
  if (j.is_number()) return j.get<uint64_t>();
  return 0;
}

// GET http://127.0.0.1:port/path; the body, or the error text. HTTP/1.0, so the server closes.
std::string HttpGet(uint16_t port, const std::string& path, int* status) {
  *status = 0;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket failed";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "send failed";
  }
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (response.rfind("HTTP/1.", 0) == 0 && response.size() > 12)
    *status = std::stoi(response.substr(9, 3));
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? response : response.substr(body + 4);
}

class ReadModelTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    AddTreatyd();
    AddBank("bank-a", "alice=1000");
    AddBank("bank-b", "bob=0");
    ASSERT_TRUE(StartAll());
    ASSERT_TRUE(WaitCaughtUp());
    baseline_ = CurrentStats();
  }

  // Stats over RPC (the fixture's own client).
  v1::StatsResponse CurrentStats() {
    auto stats = net::Decode<v1::StatsResponse>(rpc().Call(treatyd().address, v1::methods::kStats,
                                                           v1::StatsRequest().SerializeAsString(),
                                                           kRpcDeadlineMs));
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok() ? *stats : v1::StatsResponse();
  }

  // True once every transaction has finished and the projector has every event of the log.
  ::testing::AssertionResult WaitCaughtUp(int64_t timeout_ms = 15000) {
    v1::StatsResponse last;
    const bool ok = WaitUntil(
        [&] {
          last = CurrentStats();
          for (const auto& c : last.states()) {
            if (c.state() != v1::COMMITTED && c.state() != v1::ABORTED) return false;
          }
          return last.projector().log_last_lsn() > 0 && last.projector().lag_events() == 0;
        },
        timeout_ms, 50);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "transactions did not settle or the projector did not "
                                         << "catch up: " << last.ShortDebugString();
  }

  // Submits `commits` transfers of 1 and `aborts` transfers bank-b cannot pay, via the CLI.
  void SubmitMix(int commits, int aborts, const std::string& tag) {
    std::string ok_file =
        WriteTempFile(tag + "-ok.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 1}));
    std::string bad_file = WriteTempFile(
        tag + "-bad.json", TransferFileJson({"bank-b", "bob", "bank-a", "alice", 1'000'000}));
    for (int i = 0; i < commits; ++i) {
      CommandResult r = Treaty(
          {"submit", "2pc", "-f", ok_file, "--xid", tag + "-c-" + std::to_string(i), "--wait"});
      ASSERT_EQ(r.exit_code, kExitCommitted) << r.Describe();
    }
    for (int i = 0; i < aborts; ++i) {
      CommandResult r = Treaty(
          {"submit", "2pc", "-f", bad_file, "--xid", tag + "-a-" + std::to_string(i), "--wait"});
      ASSERT_EQ(r.exit_code, kExitAborted) << r.Describe();
    }
    for (int i = 0; i < commits; ++i) {
      ASSERT_TRUE(WaitFinished(tag + "-c-" + std::to_string(i), 10000).ok());
    }
    for (int i = 0; i < aborts; ++i) {
      ASSERT_TRUE(WaitFinished(tag + "-a-" + std::to_string(i), 10000).ok());
    }
  }

  // Xids listed by `treaty tx list --state STATE --output json` (every page) with the prefix.
  std::set<std::string> Listed(const std::string& state, const std::string& prefix,
                               const std::vector<std::string>& extra = {}) {
    std::set<std::string> xids;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      std::vector<std::string> args = {"tx",      "list", "--state",  state,
                                       "--limit", "7",    "--output", "json"};
      args.insert(args.end(), extra.begin(), extra.end());
      if (!token.empty()) args.insert(args.end(), {"--page-token", token});
      CommandResult r = Treaty(args);
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
      auto j = nlohmann::json::parse(r.out, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << r.out;
      if (r.exit_code != 0 || j.is_discarded()) break;
      for (const auto& tx : j.value("transactions", nlohmann::json::array())) {
        const std::string xid = tx.value("xid", "");
        EXPECT_EQ(tx.value("state", ""), state) << tx.dump();
        if (xid.rfind(prefix, 0) == 0) xids.insert(xid);
      }
      token = j.value("nextPageToken", "");
      if (token.empty()) break;
    }
    return xids;
  }

  // `treaty stats --output json`: total committed and aborted.
  std::pair<uint64_t, uint64_t> CliTotals() {
    CommandResult r = Treaty({"stats", "--output", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    if (j.is_discarded()) return {0, 0};
    return {JsonCount(j["total"]["committed"]["count"]), JsonCount(j["total"]["aborted"]["count"])};
  }

  // The parts of Stats that must not change unless transactions finish.
  static std::string Stable(v1::StatsResponse s) {
    s.clear_projector();
    s.clear_throughput();
    s.clear_now_unix_ms();
    return s.ShortDebugString();
  }

  v1::StatsResponse baseline_;
};

TEST_F(ReadModelTest, ListStatsAndWatchAgreeWithTheSubmittedTransactions) {
  // A watcher for commits, started before them.
  auto bin = BinPath("treaty");
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  auto watch = Process::Spawn({*bin, "--coordinator", treatyd().address, "tx", "watch", "--state",
                               "committed", "--count", "3", "--for", "60s", "--output", "json"},
                              tmp().Sub("watch.out"));
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  SleepMs(1000);  // lets it register its first long poll

  constexpr int kCommits = 6, kAborts = 4;
  SubmitMix(kCommits, kAborts, "rm");
  ASSERT_TRUE(WaitCaughtUp());

  EXPECT_EQ(Listed("COMMITTED", "rm-c-").size(), static_cast<size_t>(kCommits));
  EXPECT_EQ(Listed("ABORTED", "rm-a-").size(), static_cast<size_t>(kAborts));
  EXPECT_EQ(Listed("COMMITTED", "rm-c-", {"--service", "bank-b"}).size(),
            static_cast<size_t>(kCommits))
      << "every transfer has a bank-b branch";
  EXPECT_TRUE(Listed("ABORTED", "rm-", {"--since", "1h", "--until", "1h"}).empty())
      << "an empty time window lists nothing";

  const auto [committed, aborted] = CliTotals();
  EXPECT_EQ(committed, baseline_.total().committed().count() + kCommits);
  EXPECT_EQ(aborted, baseline_.total().aborted().count() + kAborts);
  CommandResult table = Treaty({"stats"});
  EXPECT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_NE(table.out.find("bank-a"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("projector"), std::string::npos) << table.out;

  std::optional<int> watch_exit = (*watch)->WaitExit(30000);
  ASSERT_TRUE(watch_exit.has_value()) << "tx watch --count 3 did not see 3 commits:\n"
                                      << ReadFile(tmp().Sub("watch.out"));
  EXPECT_EQ(*watch_exit, 0);
  int seen = 0;
  std::istringstream lines(ReadFile(tmp().Sub("watch.out")));
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;  // the harness's header line
    EXPECT_EQ(j.value("state", ""), "COMMITTED") << line;
    EXPECT_EQ(j.value("xid", "").rfind("rm-c-", 0), 0u) << line;
    ++seen;
  }
  EXPECT_EQ(seen, 3);

  CommandResult get = Treaty({"tx", "get", "rm-a-0", "--output", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.Describe();
  EXPECT_EQ(JsonStringField(get.out, "state"), "ABORTED") << get.out;
}

TEST_F(ReadModelTest, AdminHttpServesTheJsonQueries) {
  SubmitMix(2, 1, "http");
  ASSERT_TRUE(WaitCaughtUp());
  int status = 0;
  std::string body =
      HttpGet(treatyd().admin_port, "/v1/transactions?state=committed&limit=1000", &status);
  ASSERT_EQ(status, 200) << body;
  auto list = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(list.is_discarded()) << body;
  std::set<std::string> xids;
  for (const auto& tx : list["transactions"]) xids.insert(tx.value("xid", ""));
  EXPECT_TRUE(xids.count("http-c-0") && xids.count("http-c-1")) << body;

  body = HttpGet(treatyd().admin_port, "/v1/transactions/http-a-0", &status);
  ASSERT_EQ(status, 200) << body;
  EXPECT_EQ(nlohmann::json::parse(body, nullptr, false).value("state", ""), "ABORTED") << body;
  HttpGet(treatyd().admin_port, "/v1/transactions/no-such-xid", &status);
  EXPECT_EQ(status, 404);
  HttpGet(treatyd().admin_port, "/v1/transactions?state=bogus", &status);
  EXPECT_EQ(status, 400);
  body = HttpGet(treatyd().admin_port, "/v1/stats", &status);
  ASSERT_EQ(status, 200) << body;
  EXPECT_GE(JsonCount(nlohmann::json::parse(body)["total"]["committed"]["count"]), 2u) << body;
  body = HttpGet(treatyd().admin_port, "/v1/attention", &status);
  EXPECT_EQ(status, 200) << body;
  body = HttpGet(treatyd().admin_port, "/metrics", &status);
  EXPECT_NE(body.find("treaty_readmodel_lag_events"), std::string::npos) << body;
}

TEST_F(ReadModelTest, CountsStayExactAfterKill9MidRunAndRestart) {
  // A burst of transfers without waiting, and treatyd killed while they are in flight.
  constexpr int kBurst = 40;
  std::vector<std::string> xids;
  for (int i = 0; i < kBurst; ++i) {
    const std::string xid = "burst-" + std::to_string(i);
    xids.push_back(xid);
    const bool fail = i % 4 == 3;
    auto r = Submit(TransferRequest(xid,
                                    fail ? Transfer{"bank-b", "bob", "bank-a", "alice", 1'000'000}
                                         : Transfer{"bank-a", "alice", "bank-b", "bob", 1},
                                    /*wait=*/false));
    if (!r.ok()) break;
    if (i == kBurst / 2) treatyd().process->Kill9();
  }
  treatyd().process->Kill9();
  ASSERT_TRUE(Start(treatyd())) << "treatyd did not restart on its data dir";

  // Every transaction the log accepted finishes after recovery; count them by their summaries.
  uint64_t committed = 0, aborted = 0;
  for (const std::string& xid : xids) {
    // Right after the restart the log (or the recovered core) knows every logged xid.
    auto known = GetTransaction(xid);
    if (!known.ok() && known.status().code() == StatusCode::kNotFound) continue;  // never logged
    auto tx = WaitFinished(xid, 15000);
    ASSERT_TRUE(tx.ok()) << xid << ": " << tx.status().ToString();
    ASSERT_TRUE(tx->state() == v1::COMMITTED || tx->state() == v1::ABORTED) << tx->DebugString();
    ++(tx->state() == v1::COMMITTED ? committed : aborted);
  }
  ASSERT_GT(committed + aborted, 0u) << "no transaction of the burst was logged";
  ASSERT_TRUE(WaitCaughtUp());
  const v1::StatsResponse after = CurrentStats();
  EXPECT_EQ(after.total().committed().count(), baseline_.total().committed().count() + committed)
      << "a restart must neither double count nor skip";
  EXPECT_EQ(after.total().aborted().count(), baseline_.total().aborted().count() + aborted);
  EXPECT_EQ(Listed("COMMITTED", "burst-").size(), committed);
  EXPECT_EQ(Listed("ABORTED", "burst-").size(), aborted);

  // And again: a second kill at rest changes nothing.
  treatyd().process->Kill9();
  ASSERT_TRUE(Start(treatyd()));
  ASSERT_TRUE(WaitCaughtUp());
  EXPECT_EQ(Stable(CurrentStats()), Stable(after));
}

TEST_F(ReadModelTest, RebuildGivesTheSameListAndStats) {
  SubmitMix(5, 3, "rb");
  ASSERT_TRUE(WaitCaughtUp());
  const std::string stats_before = Stable(CurrentStats());
  const std::set<std::string> committed_before = Listed("COMMITTED", "");
  const std::set<std::string> aborted_before = Listed("ABORTED", "");

  CommandResult rebuild = Treaty({"admin", "rebuild-readmodel"});
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.Describe();
  EXPECT_NE(rebuild.out.find("rebuilt the read model"), std::string::npos) << rebuild.out;

  EXPECT_EQ(Stable(CurrentStats()), stats_before);
  EXPECT_EQ(Listed("COMMITTED", ""), committed_before);
  EXPECT_EQ(Listed("ABORTED", ""), aborted_before);
  EXPECT_EQ(CurrentStats().projector().rebuilds_total(), 1u);
}

}  // namespace
}  // namespace treaty::integ
