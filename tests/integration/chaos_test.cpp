// Concurrent random transfers across three banks while the coordinator and the participants are
// killed (kill -9) and restarted at random. Seeded: the seed is printed, and TREATY_CHAOS_SEED
// replays the same workload and kill schedule (process timing still varies between runs).
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/random.h"
#include "tests/integration/cluster.h"

namespace treaty::integ {
namespace {

constexpr int kTransfers = 1000;
// The cluster variant: fewer transfers, the leader is the only victim and stays down longer (an
// election has to happen while it is away).
constexpr int kClusterTransfers = 500;
constexpr int kClusterNodes = 3;
// Client threads; each has at most one submission outstanding.
constexpr int kWorkers = 32;
// Submissions go out in bursts of kBurst at once, the bursts spread evenly over kSubmitWindowMs,
// so transactions really overlap and the faults hit a running workload.
constexpr int kBurst = 25;
constexpr int64_t kSubmitWindowMs = 20000;
// A submission without an answer is retried (same xid) until this budget is spent.
constexpr int64_t kAnswerBudgetMs = 12000;
// Faults are injected for at most this long.
constexpr int64_t kChaosWindowMs = 25000;
// Time allowed, after the faults stop, for every transaction and branch to settle.
constexpr int64_t kSettleBudgetMs = 45000;
constexpr int kBanks = 3;
constexpr int kAccountsPerBank = 4;
constexpr int64_t kInitialBalance = 100;

enum class Told { kNothing, kCommitted, kAborted };

struct Planned {
  std::string xid;
  Transfer transfer;
  int from_bank = 0;
  int to_bank = 0;
  Told told = Told::kNothing;
  std::string last_error;
};

// Counts for the summary line.
struct Tally {
  int kills = 0;
  int told_commit = 0;
  int told_abort = 0;
  int told_nothing = 0;
  int committed = 0;  // committed on both banks
};

class ChaosTest : public IntegrationTest {
 protected:
  void AddCluster(bool raft_cluster = false) {
    raft_cluster_ = raft_cluster;
    transfers_ = raft_cluster ? kClusterTransfers : kTransfers;
    if (raft_cluster) {
      AddTreatydCluster(kClusterNodes, {"--prepare-timeout-ms", "3000"});
    } else {
      coord_ = &AddTreatyd({"--prepare-timeout-ms", "3000"});
    }
    banks_ = AddBanks(kBanks, kAccountsPerBank, kInitialBalance);
  }

  Node& Bank(int i) { return *banks_[static_cast<size_t>(i)]; }

  // The seeded workload: transfers between two different banks, amounts 1..40 (some exceed the
  // balance and abort).
  std::vector<Planned> Plan(uint64_t seed) {
    SeededRandom rng(seed);
    std::vector<Planned> plan(static_cast<size_t>(transfers_));
    for (size_t k = 0; k < plan.size(); ++k) {
      Planned& p = plan[k];
      p.xid = "chaos-" + std::to_string(seed % 100000) + "-" + std::to_string(k);
      p.from_bank = static_cast<int>(rng.Uniform(kBanks));
      p.to_bank = (p.from_bank + 1 + static_cast<int>(rng.Uniform(kBanks - 1))) % kBanks;
      p.transfer = {Bank(p.from_bank).name, BankAccount(rng.Uniform(kAccountsPerBank)),
                    Bank(p.to_bank).name, BankAccount(rng.Uniform(kAccountsPerBank)),
                    1 + static_cast<int64_t>(rng.Uniform(40))};
    }
    return plan;
  }

  // Submits plan[k] until it gets an answer or the budget is spent. Runs on a worker thread.
  void SubmitWithRetries(Planned& p) {
    const v1::SubmitRequest req = TransferRequest(p.xid, p.transfer, /*wait=*/true);
    const int64_t give_up = NowMs() + kAnswerBudgetMs;
    while (!stop_) {
      auto resp = Submit(req, 4000);
      if (resp.ok()) {
        p.told = IsCommitState(resp->state()) ? Told::kCommitted : Told::kAborted;
        return;
      }
      p.last_error = resp.status().ToString();
      if (NowMs() >= give_up) return;
      SleepMs(200);
    }
  }

  // Runs the workload on worker threads while this (the spawning) thread kills and restarts
  // random processes. Returns an empty string, or why a restart failed.
  std::string RunUnderFaults(std::vector<Planned>& plan, uint64_t seed, Tally& tally) {
    const int64_t start_ms = NowMs();
    std::atomic<int> next{0};
    std::atomic<int> finished_workers{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&] {
        for (int k = next++; k < transfers_ && !stop_; k = next++) {
          const int64_t due = start_ms + (k / kBurst) * kSubmitWindowMs / (transfers_ / kBurst);
          if (due > NowMs()) SleepMs(due - NowMs());
          SubmitWithRetries(plan[static_cast<size_t>(k)]);
        }
        ++finished_workers;
      });
    }
    SeededRandom rng(seed ^ 0x9e3779b97f4a7c15ULL);
    std::vector<Node*> victims = {coord_};
    victims.insert(victims.end(), banks_.begin(), banks_.end());
    std::string failure;
    while (finished_workers < kWorkers && NowMs() - start_ms < kChaosWindowMs) {
      SleepMs((raft_cluster_ ? 2500 : 1000) + static_cast<int64_t>(rng.Uniform(1500)));
      if (finished_workers == kWorkers) break;
      Node* victim = raft_cluster_ ? WaitLeader(5000) : victims[rng.Uniform(victims.size())];
      if (victim == nullptr) {
        failure = "no serving leader within 5 s";
        stop_ = true;
        break;
      }
      const int64_t down_ms = raft_cluster_ ? 1500 + static_cast<int64_t>(rng.Uniform(1000))
                                            : 50 + static_cast<int64_t>(rng.Uniform(500));
      std::printf("chaos t=%.1fs kill -9 %s, down %" PRId64 " ms\n",
                  static_cast<double>(NowMs() - start_ms) / 1000.0, victim->name.c_str(), down_ms);
      std::fflush(stdout);
      victim->process->Kill9();
      ++tally.kills;
      SleepMs(down_ms);
      if (::testing::AssertionResult r = Start(*victim); !r) {
        failure = r.message();
        stop_ = true;
        break;
      }
    }
    for (auto& t : workers) t.join();
    return failure;
  }

  // Waits until every xid is COMMITTED or ABORTED at the coordinator, or unknown to it (presumed
  // abort). Returns the xids that never got there, with their last state.
  std::string SettleAtCoordinator(const std::vector<Planned>& plan,
                                  std::vector<FinalState>& finals) {
    std::vector<std::string> xids;
    for (const Planned& p : plan) xids.push_back(p.xid);
    const std::vector<FinalOutcome> outcomes = WaitAllFinished(xids, kSettleBudgetMs);
    finals.clear();
    std::string unsettled;
    size_t pending = 0;
    for (size_t k = 0; k < plan.size(); ++k) {
      finals.push_back(outcomes[k].state);
      if (outcomes[k].state != FinalState::kPending) continue;
      if (++pending <= 10) unsettled += "\n  " + plan[k].xid + ": " + outcomes[k].last_seen;
    }
    if (pending > 0) unsettled = std::to_string(pending) + " unfinished:" + unsettled;
    return unsettled;
  }

  // Reads every branch's state (debit = branch 0, credit = branch 1) until none is in doubt.
  // Returns an empty string, or why it did not settle.
  std::string SettleAtParticipants(const std::vector<Planned>& plan,
                                   std::vector<std::pair<v1::BranchState, v1::BranchState>>& out) {
    std::vector<TransferBranches> transfers;
    for (const Planned& p : plan) {
      transfers.push_back({p.xid, &Bank(p.from_bank), &Bank(p.to_bank)});
    }
    BranchReport report = WaitBranchesDecided(transfers, 15000);
    out = std::move(report.states);
    if (!report.error.empty()) return report.error;
    return report.in_doubt.empty() ? "" : report.in_doubt + " is still in doubt";
  }

  // Every invariant violation, one line each.
  std::vector<std::string> CheckInvariants(
      const std::vector<Planned>& plan, const std::vector<FinalState>& finals,
      const std::vector<std::pair<v1::BranchState, v1::BranchState>>& branches, Tally& tally) {
    std::vector<std::string> violations;
    Ledger ledger(banks_, kAccountsPerBank, kInitialBalance);
    for (size_t k = 0; k < plan.size(); ++k) {
      const Planned& p = plan[k];
      const auto [debit, credit] = branches[k];
      const int n = (debit == v1::BRANCH_COMMITTED) + (credit == v1::BRANCH_COMMITTED);
      const std::string where = p.xid + " (debit " + v1::BranchState_Name(debit) + ", credit " +
                                v1::BranchState_Name(credit) + ")";
      if (n == 1) violations.push_back(where + ": only one branch committed");
      if (finals[k] == FinalState::kCommitted && n != 2) {
        violations.push_back(where + ": the coordinator says COMMITTED");
      }
      if (finals[k] != FinalState::kCommitted && n != 0) {
        violations.push_back(where + ": the coordinator says aborted or does not know it");
      }
      if (p.told == Told::kCommitted && n != 2) {
        violations.push_back(where + ": the client was told it committed");
      }
      if (p.told == Told::kAborted && n != 0) {
        violations.push_back(where + ": the client was told it aborted");
      }
      tally.told_commit += p.told == Told::kCommitted;
      tally.told_abort += p.told == Told::kAborted;
      tally.told_nothing += p.told == Told::kNothing;
      if (n == 2) {
        ++tally.committed;
        ledger.Commit(p.transfer);
      }
    }
    for (std::string& line : CheckBalances(ledger)) violations.push_back(std::move(line));
    return violations;
  }

  // The whole scenario: seeded workload under kills, then settle and check every invariant.
  void Run(bool raft_cluster) {
    const uint64_t seed = SeedFromEnv("TREATY_CHAOS_SEED");
    std::printf("chaos seed=%" PRIu64 " (replay with TREATY_CHAOS_SEED=%" PRIu64 ")\n", seed, seed);
    std::fflush(stdout);
    RecordProperty("seed", std::to_string(seed));
    AddCluster(raft_cluster);
    ASSERT_TRUE(StartAll());
    std::vector<Planned> plan = Plan(seed);
    Tally tally;

    const int64_t start_ms = NowMs();
    const std::string restart_failure = RunUnderFaults(plan, seed, tally);
    ASSERT_EQ(restart_failure, "") << "restart after kill -9 failed (seed " << seed << ")";
    const double run_s = static_cast<double>(NowMs() - start_ms) / 1000.0;

    std::vector<FinalState> finals;
    const std::string unsettled = SettleAtCoordinator(plan, finals);
    ASSERT_EQ(unsettled, "") << "transactions never finished (seed " << seed << ")";
    std::vector<std::pair<v1::BranchState, v1::BranchState>> branches;
    const std::string in_doubt = SettleAtParticipants(plan, branches);
    ASSERT_EQ(in_doubt, "") << "branch states did not settle (seed " << seed << ")";

    const std::vector<std::string> violations = CheckInvariants(plan, finals, branches, tally);
    std::printf("chaos seed=%" PRIu64
                ": %d transfers in %.1f s, %d kills; client told %d committed, %d aborted, %d no "
                "answer; %d committed on both banks\n",
                seed, transfers_, run_s, tally.kills, tally.told_commit, tally.told_abort,
                tally.told_nothing, tally.committed);
    std::string report;
    for (size_t i = 0; i < violations.size() && i < 20; ++i) report += "\n  " + violations[i];
    EXPECT_TRUE(violations.empty())
        << violations.size() << " invariant violations (seed " << seed << "):" << report;
    EXPECT_GT(tally.committed, 0) << "nothing committed at all: the workload did not run";
  }

  Node* coord_ = nullptr;
  std::vector<Node*> banks_;
  bool raft_cluster_ = false;
  int transfers_ = kTransfers;
  std::atomic<bool> stop_{false};
};

TEST_F(ChaosTest, RandomTransfersSurviveRandomKillsWithoutLosingMoneyOrAtomicity) { Run(false); }

// Issue 8: a 3-node coordinator cluster under the same workload; the current leader is killed
// (kill -9) again and again. Every acknowledged commit must be committed on the participants,
// every xid all-or-nothing, money conserved, and in-flight transactions must finish.
TEST_F(ChaosTest, ClusterSurvivesRepeatedLeaderKillsWithoutLosingMoneyOrAtomicity) { Run(true); }

}  // namespace
}  // namespace treaty::integ
