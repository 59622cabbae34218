// A coordinator leader cut off from the rest of its cluster while transfers are in flight. What
// the clients were told, every bank branch and the balances must all agree with the decisions the
// cluster made durable (ARCHITECTURE.md section 4: wherever a new leader may resume a prepare, an
// ABORT must be committed by the Raft majority before it is sent, replied or reported).
//
// The cut: the leader is frozen (SIGSTOP) for longer than an election and than the prepare
// timeout, then thawed (SIGCONT). Its peers elect a successor, which resumes the transactions the
// old leader left PREPARING. The old leader's connections to participants and clients stay open:
// what it sent just before the freeze is delivered, and on the thaw it handles the answers queued
// on its sockets and its expired timers before it hears of the new term, so it acts on its stale
// leadership as a leader behind a network partition does until it steps down. No root
// privileges are needed.
//
// One round: a bank is made slow, so transfers pile up PREPARING with their other branch already
// YES. Then the bank fails the leader's calls (kill -9, or fail mode): the leader's circuit
// breaker for it opens and the leader decides ABORT for those transfers, delivering each ABORT as
// it appends it; a few milliseconds later the leader is frozen, before some of those appends are
// committed. The bank is healthy again (restarted, or back to normal) before the successor
// serves, so the successor can commit what it resumes. The freeze outlasts the prepare timeout,
// so on the thaw every prepare deadline of the old leader has passed.
//
// Seeded: the seed is printed, and TREATY_PARTITION_SEED replays the same workload and schedule
// (process timing still varies between runs).
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/random.h"
#include "net/cluster_client.h"
#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"

namespace treaty::integ {
namespace {

constexpr int kNodes = 3;
constexpr int kBanks = 3;
constexpr int kAccountsPerBank = 4;
constexpr int64_t kInitialBalance = 1000;
// Client threads, each with one transfer in flight at a time (Submit with wait=true).
constexpr int kClients = 16;
constexpr int kRounds = 5;
// Prepare budget of every transaction. A successor elected within it still has budget left for
// what it resumes; the freeze outlasts it, so the old leader's deadlines have all passed when it
// is thawed.
constexpr uint32_t kPrepareTimeoutMs = 2500;
constexpr int64_t kFreezeMs = kPrepareTimeoutMs + 700;
// Raft timing of every node (treatyd's defaults): the successor serves ~0.6-1.5 s after the cut.
constexpr uint32_t kElectionTimeoutMs = 500;
// The leader is frozen 0..this long after the slow bank starts failing its calls: about the time
// its breaker takes to open and its first prepare retries to be refused (retry backoff: 20 ms).
constexpr int64_t kMaxFreezeAfterFaultMs = 30;
// A client waits this long for the answer to one submission, longer than a freeze: a client whose
// call waits on the frozen leader hears that leader's answer after the thaw.
constexpr int64_t kSubmitBudgetMs = 12000;
// After the thaw, time for the old leader to act, step down and rejoin as a follower.
constexpr int64_t kAfterThawMs = 1200;
// Time allowed, after the last round, for every transaction to finish and every branch to settle.
constexpr int64_t kSettleBudgetMs = 25000;
constexpr int64_t kBranchSettleBudgetMs = 10000;
// What a participant logs (as an error) when a coordinator sends a decision that contradicts the
// branch's recorded state (participant/worker.cpp).
constexpr char kProtocolViolation[] = "protocol violation";

// What a client was told: the decision, a refusal before anything was started (RESOURCE_EXHAUSTED,
// e.g. every instance of a bank behind an open circuit breaker), or nothing (no answer in time).
enum class Told { kNothing, kCommitted, kAborted, kRefused };

const char* ToldName(Told t) {
  switch (t) {
    case Told::kNothing:
      return "no answer";
    case Told::kCommitted:
      return "COMMITTED";
    case Told::kAborted:
      return "ABORTED";
    case Told::kRefused:
      return "refused";
  }
  return "?";
}

// One transfer a client submitted and what it was told.
struct Sent {
  std::string xid;
  Transfer transfer;
  int from_bank = 0;
  int to_bank = 0;
  Told told = Told::kNothing;
  std::string error;  // the last error, when told nothing
};

// Invariant violations grouped by the rule they break, in the order the rules were first broken.
class Violations {
 public:
  void Add(const std::string& rule, std::string example) {
    auto it =
        std::find_if(rules_.begin(), rules_.end(), [&](const Rule& r) { return r.rule == rule; });
    if (it == rules_.end()) it = rules_.insert(rules_.end(), Rule{rule, 0, {}});
    ++it->count;
    ++total_;
    if (it->examples.size() < kExamplesPerRule) it->examples.push_back(std::move(example));
  }
  size_t total() const { return total_; }
  // One paragraph per rule: "N x rule", then its first examples.
  std::string Report() const {
    std::string out;
    for (const Rule& r : rules_) {
      out += "\n  " + std::to_string(r.count) + " x " + r.rule + ", e.g.";
      for (const std::string& e : r.examples) out += "\n      " + e;
    }
    return out;
  }

 private:
  static constexpr size_t kExamplesPerRule = 3;
  struct Rule {
    std::string rule;
    size_t count = 0;
    std::vector<std::string> examples;
  };
  std::vector<Rule> rules_;
  size_t total_ = 0;
};

class PartitionTest : public IntegrationTest {
 protected:
  void AddClusterAndBanks() {
    AddTreatydCluster(kNodes, {"--prepare-timeout-ms", std::to_string(kPrepareTimeoutMs),
                               "--election-timeout-ms", std::to_string(kElectionTimeoutMs)});
    banks_ = AddBanks(kBanks, kAccountsPerBank, kInitialBalance);
  }

  Node& Bank(int i) { return *banks_[static_cast<size_t>(i)]; }

  // Client `client`'s transfers until stop_: each between two different banks, amounts 1..50.
  // Runs on its own thread; the transfers it sent end up in sent_.
  void RunClient(int client, uint64_t seed, net::ClusterClient& cluster) {
    SeededRandom rng(seed * 7919 + static_cast<uint64_t>(client));
    for (int n = 0; !stop_; ++n) {
      Sent s;
      s.xid = "part-" + std::to_string(seed % 100000) + "-" + std::to_string(client) + "-" +
              std::to_string(n);
      s.from_bank = static_cast<int>(rng.Uniform(kBanks));
      s.to_bank = (s.from_bank + 1 + static_cast<int>(rng.Uniform(kBanks - 1))) % kBanks;
      s.transfer = {Bank(s.from_bank).name, BankAccount(rng.Uniform(kAccountsPerBank)),
                    Bank(s.to_bank).name, BankAccount(rng.Uniform(kAccountsPerBank)),
                    1 + static_cast<int64_t>(rng.Uniform(50))};
      auto resp = net::Decode<v1::SubmitResponse>(
          cluster.Call(v1::methods::kSubmit,
                       TransferRequest(s.xid, s.transfer, /*wait=*/true).SerializeAsString(),
                       kSubmitBudgetMs, /*idempotent=*/true));
      if (resp.ok()) {
        s.told = IsCommitState(resp->state()) ? Told::kCommitted : Told::kAborted;
      } else if (resp.status().code() == StatusCode::kResourceExhausted) {
        s.told = Told::kRefused;
      } else {
        s.error = resp.status().ToString();
      }
      std::lock_guard lock(sent_mu_);
      sent_.push_back(std::move(s));
    }
  }

  // One round of the scenario (see the top of the file). Returns an empty string, or why the
  // round could not be run.
  std::string RunRound(int round, SeededRandom& rng) {
    Node* leader = WaitLeader(10000);
    if (leader == nullptr) return "no serving leader before the round";
    Node& slow = Bank(static_cast<int>(rng.Uniform(kBanks)));
    const int64_t delay_ms = 20 + static_cast<int64_t>(rng.Uniform(41));
    const int64_t pile_up_ms = 500 + static_cast<int64_t>(rng.Uniform(700));
    const bool kill = rng.Chance(0.5);
    const int64_t freeze_after_ms = static_cast<int64_t>(rng.Uniform(kMaxFreezeAfterFaultMs + 1));
    if (::testing::AssertionResult r = SetFault(slow, "slow", delay_ms); !r) return r.message();
    SleepMs(pile_up_ms);

    // The bank fails the leader's calls: its circuit breaker opens and it starts deciding ABORT;
    // the freeze cuts it off while some of those decisions are delivered but not yet committed.
    if (kill) {
      slow.process->Kill9();
    } else if (::testing::AssertionResult r = SetFault(slow, "fail"); !r) {
      return r.message();
    }
    SleepMs(freeze_after_ms);
    const int64_t frozen_at = NowMs();
    leader->process->Freeze();
    const ::testing::AssertionResult healed = kill ? Start(slow) : SetFault(slow, "none");
    Node* successor = healed ? WaitLeader(kFreezeMs, leader) : nullptr;
    const int64_t successor_ms = NowMs() - frozen_at;
    if (NowMs() < frozen_at + kFreezeMs) SleepMs(frozen_at + kFreezeMs - NowMs());
    leader->process->Thaw();
    std::printf("partition round %d: %s slow (%" PRId64 " ms) for %" PRId64
                " ms, then %s; %s frozen %" PRId64 " ms later, for %" PRId64
                " ms; successor %s after %" PRId64 " ms\n",
                round, slow.name.c_str(), delay_ms, pile_up_ms, kill ? "kill -9" : "fail mode",
                leader->name.c_str(), freeze_after_ms, NowMs() - frozen_at,
                successor ? successor->name.c_str() : "(none)", successor_ms);
    std::fflush(stdout);
    if (!healed) return healed.message();
    if (successor == nullptr) {
      return "no other node served while " + leader->name + " was frozen for " +
             std::to_string(kFreezeMs) + " ms";
    }
    SleepMs(kAfterThawMs);
    return "";
  }

  // Every invariant violation, grouped by the rule it breaks.
  Violations CheckOutcomes(
      const std::vector<FinalOutcome>& finals,
      const std::vector<std::pair<v1::BranchState, v1::BranchState>>& branches) {
    Violations v;
    Ledger ledger(banks_, kAccountsPerBank, kInitialBalance);
    for (size_t k = 0; k < sent_.size(); ++k) {
      const Sent& s = sent_[k];
      const auto [debit, credit] = branches[k];
      const std::string where = s.xid + " (" + s.transfer.from_service + " -> " +
                                s.transfer.to_service + ", debit " + v1::BranchState_Name(debit) +
                                ", credit " + v1::BranchState_Name(credit) + ")";
      const int n = (debit == v1::BRANCH_COMMITTED) + (credit == v1::BRANCH_COMMITTED);
      const bool in_doubt = debit == v1::BRANCH_PREPARED || credit == v1::BRANCH_PREPARED;
      const bool split = n == 1 && (debit == v1::BRANCH_ABORTED || credit == v1::BRANCH_ABORTED);
      if (in_doubt) v.Add("a branch is still PREPARED (in doubt) after the decision", where);
      if (split) v.Add("one branch committed while the other aborted", where);
      if (finals[k].state == FinalState::kPending) {
        v.Add("a transaction never finished at the cluster",
              where + "; last seen " + finals[k].last_seen);
        continue;
      }
      const bool committed = finals[k].state == FinalState::kCommitted;
      if (committed && s.told == Told::kAborted) {
        v.Add("the client was told ABORTED, but the cluster committed the transfer", where);
      } else if (committed && s.told == Told::kRefused) {
        v.Add("the client's submission was refused, but the cluster committed the transfer", where);
      } else if (!committed && s.told == Told::kCommitted) {
        v.Add("the client was told COMMITTED, but the cluster aborted the transfer", where);
      }
      if (!in_doubt && !split && committed && n != 2) {
        v.Add("the cluster committed the transfer, but not every branch committed", where);
      } else if (!in_doubt && !split && !committed && n != 0) {
        v.Add("the cluster aborted the transfer (or never logged it), but a branch committed",
              where);
      }
      if (committed) ledger.Commit(s.transfer);
    }
    for (std::string& line : CheckBalances(ledger)) {
      v.Add("the banks' balances differ from the transfers the cluster committed", std::move(line));
    }
    for (const Node* bank : banks_) {
      FileMatches m = LinesContaining(bank->process->log_path(), kProtocolViolation, 1);
      if (m.count == 0) continue;
      v.Add("a bank received a decision that contradicts its branch (logged a protocol violation)",
            bank->name + " logged " + std::to_string(m.count) + ", the first: " + m.first.front());
    }
    return v;
  }

  std::vector<Node*> banks_;
  std::atomic<bool> stop_{false};
  std::mutex sent_mu_;
  std::vector<Sent> sent_;  // guarded by sent_mu_ while clients run
};

// Whatever the cut-off leader still does must not contradict what its successor decides: every
// transfer is all-or-nothing on both banks, exactly as the cluster's durable decision says, each
// client is told that decision (or nothing), and no bank receives a decision that contradicts its
// branch.
TEST_F(PartitionTest, CutOffLeaderNeitherContradictsItsSuccessorNorMisinformsClients) {
  const uint64_t seed = SeedFromEnv("TREATY_PARTITION_SEED");
  std::printf("partition seed=%" PRIu64 " (replay with TREATY_PARTITION_SEED=%" PRIu64 ")\n", seed,
              seed);
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  AddClusterAndBanks();
  ASSERT_TRUE(StartAll());

  std::vector<std::string> addresses;
  for (const Node* c : coordinators()) addresses.push_back(c->address);
  net::ClusterClient cluster(addresses);  // one attempt may use the whole budget of a call
  const int64_t start_ms = NowMs();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([this, c, seed, &cluster] { RunClient(c, seed, cluster); });
  }
  SeededRandom rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::string round_failure;
  for (int round = 1; round <= kRounds && round_failure.empty(); ++round) {
    round_failure = RunRound(round, rng);
  }
  stop_ = true;
  for (auto& t : clients) t.join();
  ASSERT_EQ(round_failure, "") << "the scenario could not run (seed " << seed << ")";
  const double run_s = static_cast<double>(NowMs() - start_ms) / 1000.0;
  for (Node* bank : banks_) ASSERT_TRUE(SetFault(*bank, "none"));

  std::vector<std::string> xids;
  for (const Sent& s : sent_) xids.push_back(s.xid);
  const std::vector<FinalOutcome> finals = WaitAllFinished(xids, kSettleBudgetMs);
  std::vector<TransferBranches> transfers;
  for (const Sent& s : sent_) transfers.push_back({s.xid, &Bank(s.from_bank), &Bank(s.to_bank)});
  const BranchReport branches = WaitBranchesDecided(transfers, kBranchSettleBudgetMs);
  ASSERT_EQ(branches.error, "") << "cannot read the banks' branch states (seed " << seed << ")";
  const Violations violations = CheckOutcomes(finals, branches.states);

  std::map<Told, int> told;
  int committed = 0;
  std::string unanswered;  // the first error a client got instead of an answer
  for (size_t k = 0; k < sent_.size(); ++k) {
    ++told[sent_[k].told];
    committed += finals[k].state == FinalState::kCommitted;
    if (unanswered.empty()) unanswered = sent_[k].error;
  }
  std::printf("partition seed=%" PRIu64
              ": %zu transfers in %.1f s over %d rounds; clients told %d %s, %d %s, %d %s, %d %s; "
              "%d committed by the cluster; %zu violations\n",
              seed, sent_.size(), run_s, kRounds, told[Told::kCommitted],
              ToldName(Told::kCommitted), told[Told::kAborted], ToldName(Told::kAborted),
              told[Told::kRefused], ToldName(Told::kRefused), told[Told::kNothing],
              ToldName(Told::kNothing), committed, violations.total());
  if (!unanswered.empty())
    std::printf("partition: a client got no answer: %s\n", unanswered.c_str());
  EXPECT_EQ(violations.total(), 0u)
      << "invariant violations after the leader was cut off (seed " << seed
      << ", replay with TREATY_PARTITION_SEED=" << seed << "):" << violations.Report();
  EXPECT_GT(committed, 0) << "nothing committed at all: the workload did not run";
}

}  // namespace
}  // namespace treaty::integ
