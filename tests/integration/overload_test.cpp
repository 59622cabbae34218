// Admission control and observability with real processes: a burst far above the per-client rate
// gets clean RESOURCE_EXHAUSTED answers (and the CLI says so) while treatyd's memory stays
// bounded; the global bound on held transactions refuses new work while a slow participant holds
// it; /metrics is well-formed Prometheus text with the resilience families.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/prom_text.h"

namespace treaty::integ {
namespace {

// CLI exit code for RESOURCE_EXHAUSTED (cli/commands.h kExitBusy).
constexpr int kExitBusy = 7;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The client id the treaty CLI submits under (cli/commands.cpp): "cli:$USER".
std::string CliClientId() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user != nullptr ? user : "unknown");
}

// Answers to a batch of submissions, counted by kind. Thread-safe.
class Tally {
 public:
  void Add(const std::string& xid, const Result<v1::SubmitResponse>& r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (r.ok()) {
      accepted_.push_back(xid);
    } else if (r.status().code() == StatusCode::kResourceExhausted) {
      ++exhausted_;
      if (!Contains(r.status().message(), "retry after")) bad_hint_ = r.status().ToString();
      if (example_.empty()) example_ = r.status().ToString();
    } else {
      ++other_;
      if (other_error_.empty()) other_error_ = xid + ": " + r.status().ToString();
    }
  }
  // Only read after the submitting threads joined.
  std::vector<std::string> accepted_;
  int exhausted_ = 0;
  int other_ = 0;
  std::string example_;      // one RESOURCE_EXHAUSTED answer
  std::string bad_hint_;     // a RESOURCE_EXHAUSTED answer without "retry after", if any
  std::string other_error_;  // the first other error

 private:
  std::mutex mu_;
};

class OverloadTest : public IntegrationTest {
 protected:
  // Submits a transfer of 1 between acct0 at both banks under client_id.
  Result<v1::SubmitResponse> SubmitAs(const std::string& xid, const std::string& client_id,
                                      bool wait) {
    v1::SubmitRequest req = TransferRequest(xid, {"bank-a", "acct0", "bank-b", "acct0", 1}, wait);
    req.set_client_id(client_id);
    return Submit(req, 10000);
  }

  void AddBanks() {
    bank_a_ = &AddBank("bank-a", "acct0=1000000");
    bank_b_ = &AddBank("bank-b", "acct0=1000000");
  }

  // Waits for every xid to finish and returns how many committed; fails the test otherwise.
  int64_t CommittedOf(const std::vector<std::string>& xids) {
    int64_t committed = 0;
    for (const auto& xid : xids) {
      auto tx = WaitFinished(xid, 15000);
      EXPECT_TRUE(tx.ok() && (tx->state() == v1::COMMITTED || tx->state() == v1::ABORTED))
          << xid
          << " did not finish: " << (tx.ok() ? tx->ShortDebugString() : tx.status().ToString());
      committed += tx.ok() && tx->state() == v1::COMMITTED;
    }
    return committed;
  }

  // Money moved from bank-a to bank-b matches the committed count (and none was created).
  void ExpectConserved(int64_t committed_at_least) {
    auto a = Balances(*bank_a_);
    auto b = Balances(*bank_b_);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)["acct0"] + (*b)["acct0"], 2'000'000) << "money was created or destroyed";
    EXPECT_GE((*b)["acct0"] - 1'000'000, committed_at_least) << "committed transfers not applied";
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
};

TEST_F(OverloadTest, SubmissionBurstGetsRetryAfterAnswersWhileMemoryStaysBounded) {
  constexpr int kRate = 50;
  constexpr int kThreads = 10;
  constexpr int kPerThread = 50;  // 500 submissions: 10x the per-second rate, in well under 1 s
  AddTreatyd(
      {"--admission-rate", std::to_string(kRate), "--admission-burst", std::to_string(kRate)});
  AddBanks();
  ASSERT_TRUE(StartAll());
  SleepMs(300);
  const pid_t pid = treatyd().process->pid();
  const int64_t idle_kib = ResidentKiB(pid);
  ASSERT_GT(idle_kib, 0) << "cannot read VmRSS of treatyd";

  std::atomic<bool> sampling{true};
  std::atomic<int64_t> peak_kib{idle_kib};
  std::thread sampler([&] {
    while (sampling) {
      const int64_t kib = ResidentKiB(pid);
      if (kib > peak_kib) peak_kib = kib;
      SleepMs(10);
    }
  });
  Tally burst;
  const int64_t start = NowMs();
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string xid = "burst-" + std::to_string(t) + "-" + std::to_string(i);
        burst.Add(xid, SubmitAs(xid, "burst", /*wait=*/true));
      }
    });
  }
  for (auto& c : clients) c.join();
  const int64_t burst_ms = NowMs() - start;
  sampling = false;
  sampler.join();
  std::printf("overload: %d submissions in %" PRId64
              " ms: %zu accepted, %d RESOURCE_EXHAUSTED "
              "(e.g. %s), %d other; treatyd RSS idle %" PRId64 " KiB, peak %" PRId64 " KiB\n",
              kThreads * kPerThread, burst_ms, burst.accepted_.size(), burst.exhausted_,
              burst.example_.c_str(), burst.other_, idle_kib, peak_kib.load());
  EXPECT_EQ(burst.other_, 0) << "only RESOURCE_EXHAUSTED refusals expected; first other: "
                             << burst.other_error_;
  EXPECT_GT(burst.exhausted_, 0) << "10x the rate should be throttled";
  EXPECT_EQ(burst.bad_hint_, "") << "a RESOURCE_EXHAUSTED answer without a retry-after hint";
  EXPECT_GE(burst.accepted_.size(), size_t{kRate}) << "the first burst of tokens should be used";
  const auto allowed = static_cast<size_t>(kRate + kRate * burst_ms / 1000 + 2);
  EXPECT_LE(burst.accepted_.size(), allowed) << "more accepted than the token bucket allows";
  EXPECT_LT(peak_kib.load(), 2 * idle_kib + 64 * 1024) << "treatyd memory grew under overload";

  // The CLI's own bucket, drained by a competing client under its id: the CLI says plainly that
  // the coordinator is busy and exits 7.
  std::atomic<bool> draining{true};
  std::atomic<bool> drained{false};
  Tally drain;
  std::thread drainer([&] {
    for (int i = 0; draining; ++i) {
      const std::string xid = "drain-" + std::to_string(i);
      auto r = SubmitAs(xid, CliClientId(), /*wait=*/false);
      const bool refused = !r.ok() && r.status().code() == StatusCode::kResourceExhausted;
      drain.Add(xid, r);
      if (refused) {
        drained = true;
        SleepMs(1);
      }
    }
  });
  WaitUntil([&] { return drained.load(); }, 5000, 5);
  const std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "acct0", "bank-b", "acct0", 1}));
  CommandResult cli;
  for (int attempt = 0; attempt < 5 && cli.exit_code != kExitBusy; ++attempt) {
    cli = Treaty({"submit", "2pc", "-f", file, "--xid", "cli-busy-" + std::to_string(attempt)});
  }
  draining = false;
  drainer.join();
  EXPECT_EQ(cli.exit_code, kExitBusy) << "the CLI should exit 7 when throttled\n" << cli.Describe();
  EXPECT_TRUE(Contains(cli.err, "too busy") && Contains(cli.err, "retry after"))
      << "the CLI should say plainly that the coordinator is busy\n"
      << cli.Describe();

  // treatyd keeps serving: once the bucket refilled, submissions commit again.
  SleepMs(1000 + 100);
  auto after = SubmitAs("after-burst", "burst", /*wait=*/true);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(IsCommitState(after->state())) << after->ShortDebugString();
  EXPECT_TRUE(treatyd().process->Running()) << "treatyd died under overload";
  std::vector<std::string> xids = burst.accepted_;
  xids.insert(xids.end(), drain.accepted_.begin(), drain.accepted_.end());
  xids.push_back("after-burst");
  const int64_t committed = CommittedOf(xids);
  EXPECT_EQ(committed, static_cast<int64_t>(xids.size())) << "accepted transfers should commit";
  ExpectConserved(committed);
}

TEST_F(OverloadTest, MaxActiveRefusesNewTransactionsWhileASlowParticipantHoldsThem) {
  constexpr int kMaxActive = 3;
  constexpr int kSubmissions = 10;
  AddTreatyd({"--max-active", std::to_string(kMaxActive), "--prepare-timeout-ms", "10000"});
  AddBanks();
  ASSERT_TRUE(StartAll());
  ASSERT_TRUE(SetFault(*bank_b_, "slow", 300));

  Tally held;
  std::vector<std::thread> clients;
  for (int i = 0; i < kSubmissions; ++i) {
    clients.emplace_back([&, i] {
      const std::string xid = "held-" + std::to_string(i);
      held.Add(xid, SubmitAs(xid, "client-" + std::to_string(i), /*wait=*/false));
    });
  }
  for (auto& c : clients) c.join();
  std::printf("max-active: %zu accepted, %d RESOURCE_EXHAUSTED (e.g. %s)\n", held.accepted_.size(),
              held.exhausted_, held.example_.c_str());
  EXPECT_EQ(held.other_, 0) << held.other_error_;
  EXPECT_GE(held.accepted_.size(), 1u);
  EXPECT_LE(held.accepted_.size(), size_t{kMaxActive})
      << "more transactions held than --max-active";
  EXPECT_GT(held.exhausted_, 0) << "submissions beyond --max-active should be refused";
  EXPECT_TRUE(Contains(held.example_, "holding"))
      << "refusal should name the bound: " << held.example_;
  EXPECT_EQ(held.bad_hint_, "") << "a RESOURCE_EXHAUSTED answer without a retry-after hint";

  ASSERT_TRUE(SetFault(*bank_b_, "none"));
  EXPECT_EQ(CommittedOf(held.accepted_), static_cast<int64_t>(held.accepted_.size()))
      << "held transactions should commit once the participant is fast again";
  auto after = SubmitAs("held-after", "client-after", /*wait=*/true);
  ASSERT_TRUE(after.ok()) << "a submission after the held ones finished: "
                          << after.status().ToString();
  EXPECT_TRUE(IsCommitState(after->state())) << after->ShortDebugString();
  EXPECT_EQ(CommittedOf({"held-after"}), 1);
  ExpectConserved(static_cast<int64_t>(held.accepted_.size()) + 1);
}

TEST_F(OverloadTest, MetricsEndpointServesStrictPrometheusTextWithTheResilienceFamilies) {
  AddTreatyd();
  AddBanks();
  ASSERT_TRUE(StartAll());
  std::vector<std::string> xids;
  for (int i = 0; i < 3; ++i) {
    const std::string xid = "m-" + std::to_string(i);
    ASSERT_TRUE(SubmitAs(xid, "metrics", /*wait=*/true).ok());
    xids.push_back(xid);
  }
  EXPECT_EQ(CommittedOf(xids), 3);

  auto http = HttpGet(treatyd().admin_port, "/metrics", 5000);
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  ASSERT_EQ(http->status, 200) << http->body.substr(0, 500);
  auto families = ParsePromText(http->body);
  ASSERT_TRUE(families.ok()) << families.status().ToString();
  const std::map<std::string, std::string> want = {
      {"treaty_tx_total", "counter"},
      {"treaty_tx_duration_seconds", "histogram"},
      {"treaty_log_syncs_total", "counter"},
      {"treaty_log_batches_total", "counter"},
      {"treaty_log_sync_seconds_total", "counter"},
      {"treaty_participant_calls_total", "counter"},
      {"treaty_breaker_state", "gauge"},
      {"treaty_submit_throttled_total", "counter"},
  };
  for (const auto& [name, type] : want) {
    auto f = families->find(name);
    ASSERT_NE(f, families->end()) << "/metrics has no family " << name;
    EXPECT_EQ(f->second.type, type) << name;
    EXPECT_FALSE(f->second.samples.empty()) << name << " has no samples";
  }
  auto committed =
      PromValue(*families, "treaty_tx_total", "treaty_tx_total", {{"outcome", "committed"}});
  ASSERT_TRUE(committed.has_value());
  EXPECT_GE(*committed, 3) << "treaty_tx_total{outcome=\"committed\"}";
  auto timed = PromValue(*families, "treaty_tx_duration_seconds",
                         "treaty_tx_duration_seconds_count", {{"outcome", "committed"}});
  ASSERT_TRUE(timed.has_value());
  EXPECT_EQ(*timed, *committed) << "every committed transaction has a latency sample";
  auto syncs = PromValue(*families, "treaty_log_syncs_total", "treaty_log_syncs_total");
  ASSERT_TRUE(syncs.has_value());
  EXPECT_GT(*syncs, 0) << "committed transactions need synced log writes";
  auto prepares =
      PromValue(*families, "treaty_participant_calls_total", "treaty_participant_calls_total",
                {{"service", "bank-a"}, {"phase", "prepare"}, {"result", "ok"}});
  ASSERT_TRUE(prepares.has_value());
  EXPECT_GE(*prepares, 3);
  auto breaker = PromValue(*families, "treaty_breaker_state", "treaty_breaker_state",
                           {{"instance", bank_a_->address}});
  ASSERT_TRUE(breaker.has_value()) << "no breaker state for " << bank_a_->address;
  EXPECT_EQ(*breaker, 0) << "a healthy instance's breaker is closed (0)";

  auto health = HttpGet(treatyd().admin_port, "/healthz", 5000);
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ(health->status, 200);
  std::string body = health->body;
  body.erase(std::remove_if(body.begin(), body.end(), ::isspace), body.end());
  EXPECT_EQ(body, "ok");
}

// The /metrics test is only as strict as its parser: malformed expositions must be rejected.
TEST(PromTextTest, ParserRejectsMalformedExpositions) {
  const std::string ok =
      "# HELP c_total A counter\n# TYPE c_total counter\nc_total{a=\"x\\\"y\"} 3\n"
      "# HELP h Latency\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
      "h_sum 0.3\nh_count 2\n";
  auto parsed = ParsePromText(ok);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(PromValue(*parsed, "c_total", "c_total", {{"a", "x\"y"}}), 3.0);
  const std::map<std::string, std::string> bad = {
      {"no TYPE", "# HELP x X\nx 1\n"},
      {"no HELP", "# TYPE x gauge\nx 1\n"},
      {"bad value", "# HELP x X\n# TYPE x gauge\nx one\n"},
      {"unquoted label", "# HELP x X\n# TYPE x gauge\nx{a=b} 1\n"},
      {"negative counter", "# HELP x X\n# TYPE x counter\nx -1\n"},
      {"duplicate", "# HELP x X\n# TYPE x gauge\nx 1\nx 2\n"},
      {"TYPE after samples", "# HELP x X\n# TYPE x gauge\nx 1\n# TYPE x gauge\n"},
      {"split family",
       "# HELP x X\n# TYPE x gauge\n# HELP y Y\n# TYPE y gauge\nx{a=\"1\"} 1\ny 1\n"
       "x{a=\"2\"} 1\n"},
      {"histogram count mismatch",
       "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"},
      {"histogram not cumulative",
       "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
       "h_sum 1\nh_count 1\n"},
  };
  for (const auto& [why, text] : bad) {
    EXPECT_FALSE(ParsePromText(text).ok()) << "accepted an exposition with " << why;
  }
}

}  // namespace
}  // namespace treaty::integ
