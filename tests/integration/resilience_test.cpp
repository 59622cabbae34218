// Resilience with real processes: circuit breakers against a failing participant, the prepare
// deadline against a hanging one, a killed instance among three, and load balancing across
// instances (weighted, consistent hash). Faults are injected with `bank-participant fault`.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/random.h"
#include "tests/integration/cluster.h"
#include "tests/integration/prom_text.h"

namespace treaty::integ {
namespace {

// One submission (wait=true) and what came back.
struct Answer {
  std::string xid;
  Status error;                 // non-OK: no SubmitResponse (refused, timed out, ...)
  v1::SubmitResponse response;  // meaningful when error.ok()
  int64_t elapsed_ms = 0;

  bool Committed() const { return error.ok() && IsCommitState(response.state()); }
  bool Aborted() const { return error.ok() && IsAbortState(response.state()); }
  std::string Describe() const {
    return xid + ": " + (error.ok() ? response.ShortDebugString() : error.ToString()) + " after " +
           std::to_string(elapsed_ms) + " ms";
  }
};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string Accounts(int n, int64_t balance) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += (i ? "," : "") + std::string("acct") + std::to_string(i) + "=" + std::to_string(balance);
  }
  return out;
}

class ResilienceTest : public IntegrationTest {
 protected:
  Answer SubmitTransfer(const std::string& xid, const Transfer& t,
                        const std::string& routing_key = "", int64_t deadline_ms = 10000) {
    v1::SubmitRequest req = TransferRequest(xid, t, /*wait=*/true);
    if (!routing_key.empty()) req.mutable_branches(0)->set_routing_key(routing_key);
    Answer a;
    a.xid = xid;
    const int64_t start = NowMs();
    auto r = Submit(req, deadline_ms);
    a.elapsed_ms = NowMs() - start;
    if (r.ok()) {
      a.response = *r;
    } else {
      a.error = r.status();
    }
    return a;
  }

  // The instance the coordinator chose for branch `branch` of xid; empty if unknown.
  std::string InstanceOf(const std::string& xid, uint32_t branch) {
    auto tx = GetTransaction(xid);
    if (!tx.ok() || tx->branches_size() <= static_cast<int>(branch)) return "";
    return tx->branches(static_cast<int>(branch)).instance();
  }

  Result<std::map<std::string, PromFamily>> ScrapeMetrics() {
    auto http = HttpGet(treatyd().admin_port, "/metrics", 5000);
    if (!http.ok()) return http.status();
    if (http->status != 200) {
      return Status::Unavailable("/metrics answered HTTP " + std::to_string(http->status));
    }
    return ParsePromText(http->body);
  }
};

TEST_F(ResilienceTest, BreakerOpensOnAFailingInstanceFailsFastAndClosesAfterRecovery) {
  constexpr int64_t kPrepareTimeoutMs = 3000;
  AddTreatyd({"--breaker-failures", "3", "--breaker-reset-ms", "1000", "--prepare-timeout-ms",
              std::to_string(kPrepareTimeoutMs)});
  Node& bank_a = AddBank("bank-a", "alice=1000");
  Node& bank_b = AddBank("bank-b", "bob=1000");
  ASSERT_TRUE(StartAll());
  const Transfer t{"bank-a", "alice", "bank-b", "bob", 1};
  std::vector<Answer> answers;
  int next = 0;
  auto submit = [&] {
    answers.push_back(SubmitTransfer("brk-" + std::to_string(next++), t));
    return answers.back();
  };

  ASSERT_TRUE(SetFault(bank_b, "fail"));
  // PREPARE fails (UNAVAILABLE) and is retried; the third failure opens the breaker and the next
  // retry is refused, which aborts the transaction long before its prepare deadline.
  const Answer first = submit();
  ASSERT_TRUE(first.Aborted()) << "a transfer to a failing bank must abort: " << first.Describe();
  EXPECT_TRUE(Contains(first.response.reason(), "circuit breaker open"))
      << "the abort should come from the open breaker (fail fast): " << first.Describe();
  EXPECT_LT(first.elapsed_ms, kPrepareTimeoutMs)
      << "with the breaker open the transaction must not wait for its prepare deadline";
  auto open = InstanceInfoOf("bank-b", bank_b.address);
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  EXPECT_EQ(open->breaker(), "open")
      << "ListServices right after the abort: " << open->ShortDebugString();
  EXPECT_GE(open->rejected(), 1u) << "the refused retry should count as rejected";

  // More submissions while bank-b keeps failing: refused up front (no usable instance) or
  // aborted by the breaker, never committed, and never held until the prepare deadline.
  for (int i = 0; i < 4; ++i) {
    const Answer a = submit();
    EXPECT_FALSE(a.Committed()) << "committed while bank-b fails: " << a.Describe();
    EXPECT_LT(a.elapsed_ms, kPrepareTimeoutMs) << "not failing fast: " << a.Describe();
    const std::string why = a.error.ok() ? a.response.reason() : a.error.ToString();
    EXPECT_TRUE(Contains(why, "circuit breaker")) << "unexpected failure: " << a.Describe();
  }

  // Recovery: after the reset timeout a probe goes through, succeeds and closes the breaker.
  ASSERT_TRUE(SetFault(bank_b, "none"));
  const int64_t recovered_ms = NowMs();
  bool committed = WaitUntil([&] { return submit().Committed(); }, 10000, 100);
  ASSERT_TRUE(committed) << "no commit within 10 s after bank-b recovered; last: "
                         << answers.back().Describe();
  std::printf("breaker: first commit %" PRId64 " ms after recovery\n", NowMs() - recovered_ms);
  std::string last_state;
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto info = InstanceInfoOf("bank-b", bank_b.address);
        last_state = info.ok() ? info->breaker() : info.status().ToString();
        return last_state == "closed";
      },
      5000))
      << "breaker of bank-b should close after a successful probe; it is " << last_state;
  for (int i = 0; i < 5; ++i) {
    const Answer a = submit();
    EXPECT_TRUE(a.Committed()) << "after recovery every transfer should commit: " << a.Describe();
  }

  // Every accepted xid is decided; refused ones were never started; money is conserved.
  int64_t committed_count = 0;
  for (const Answer& a : answers) {
    if (!a.error.ok()) {
      auto tx = GetTransaction(a.xid);
      EXPECT_FALSE(tx.ok()) << "a refused submission started a transaction: " << a.Describe();
      continue;
    }
    auto tx = WaitFinished(a.xid, 15000);
    ASSERT_TRUE(tx.ok()) << a.xid << ": " << tx.status().ToString();
    EXPECT_TRUE(tx->state() == v1::COMMITTED || tx->state() == v1::ABORTED)
        << "undecided or unfinished: " << tx->ShortDebugString();
    EXPECT_EQ(tx->state() == v1::COMMITTED, a.Committed())
        << "the client was told otherwise: " << a.Describe() << " vs " << tx->ShortDebugString();
    committed_count += tx->state() == v1::COMMITTED;
  }
  auto a_bal = Balances(bank_a);
  auto b_bal = Balances(bank_b);
  ASSERT_TRUE(a_bal.ok() && b_bal.ok());
  EXPECT_EQ((*a_bal)["alice"], 1000 - committed_count) << "bank-a moved money it should not have";
  EXPECT_EQ((*b_bal)["bob"], 1000 + committed_count) << "bank-b moved money it should not have";

  auto metrics = ScrapeMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
  for (const char* to : {"open", "closed"}) {
    auto n =
        PromValue(*metrics, "treaty_breaker_transitions_total", "treaty_breaker_transitions_total",
                  {{"instance", bank_b.address}, {"to", to}});
    ASSERT_TRUE(n.has_value()) << "no treaty_breaker_transitions_total{instance=\""
                               << bank_b.address << "\",to=\"" << to << "\"}";
    EXPECT_GE(*n, 1) << "breaker transitions to " << to;
  }
}

TEST_F(ResilienceTest, HangingParticipantAbortsAtThePrepareDeadlineAndReleasesPreparedBranches) {
  constexpr int64_t kPrepareTimeoutMs = 800;
  constexpr int kHung = 4;
  // Breakers off: every transaction meets the hang itself and ends at its prepare deadline.
  AddTreatyd({"--prepare-timeout-ms", std::to_string(kPrepareTimeoutMs), "--breaker-failures", "0",
              "--breaker-failure-rate", "2"});
  Node& bank_a = AddBank("bank-a", "alice=100");
  Node& bank_b = AddBank("bank-b", "bob=0");
  ASSERT_TRUE(StartAll());
  ASSERT_TRUE(SetFault(bank_b, "hang"));

  // Four transfers of 25 reserve alice's whole balance at bank-a while bank-b hangs.
  std::vector<Answer> hung(kHung);
  std::vector<std::thread> clients;
  for (int i = 0; i < kHung; ++i) {
    clients.emplace_back([&, i] {
      hung[static_cast<size_t>(i)] =
          SubmitTransfer("hang-" + std::to_string(i), {"bank-a", "alice", "bank-b", "bob", 25});
    });
  }
  for (auto& c : clients) c.join();
  for (const Answer& a : hung) {
    ASSERT_TRUE(a.Aborted()) << "a transfer to a hanging bank must abort: " << a.Describe();
    EXPECT_TRUE(Contains(a.response.reason(), "prepare timed out")) << a.Describe();
    EXPECT_GE(a.elapsed_ms, kPrepareTimeoutMs - 100) << "aborted before the deadline";
    EXPECT_LT(a.elapsed_ms, kPrepareTimeoutMs + 4000) << "not aborted at the deadline";
    auto tx = GetTransaction(a.xid);
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    EXPECT_TRUE(IsAbortState(tx->state()))
        << "undecided while bank-b hangs: " << tx->ShortDebugString();
  }
  // bank-a voted YES and gets its ABORT at once, though bank-b still hangs.
  std::string prepared;
  EXPECT_TRUE(WaitUntil(
      [&] {
        prepared.clear();
        for (const Answer& a : hung) {
          auto s = BranchStateAt(bank_a, a.xid, 0);
          if (!s.ok() || *s != v1::BRANCH_ABORTED) prepared += " " + a.xid;
        }
        return prepared.empty();
      },
      5000))
      << "debit branches at bank-a not aborted while bank-b hangs:" << prepared;

  ASSERT_TRUE(SetFault(bank_b, "none"));
  for (const Answer& a : hung) {
    auto tx = WaitFinished(a.xid, 15000);
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    EXPECT_EQ(tx->state(), v1::ABORTED)
        << "abort not delivered after bank-b recovered: " << tx->ShortDebugString();
    auto credit = BranchStateAt(bank_b, a.xid, 1);
    ASSERT_TRUE(credit.ok()) << credit.status().ToString();
    EXPECT_TRUE(*credit == v1::BRANCH_ABORTED || *credit == v1::BRANCH_STATE_UNKNOWN)
        << a.xid << " credit at bank-b is " << v1::BranchState_Name(*credit);
  }
  // Moving alice's whole balance commits only if none of it is still reserved.
  const Answer all = SubmitTransfer("hang-after", {"bank-a", "alice", "bank-b", "bob", 100});
  EXPECT_TRUE(all.Committed()) << "commits should resume with nothing reserved: " << all.Describe();
  auto a_bal = Balances(bank_a);
  auto b_bal = Balances(bank_b);
  ASSERT_TRUE(a_bal.ok() && b_bal.ok());
  EXPECT_EQ((*a_bal)["alice"] + (*b_bal)["bob"], 100) << "money was created or destroyed";
  EXPECT_EQ((*b_bal)["bob"], all.Committed() ? 100 : 0) << "an aborted transfer moved money";
}

// A transfer submitted by the instance test's workload.
struct Submitted {
  std::string xid;
  Transfer transfer;
  int64_t at_ms = 0;  // when it was submitted
  Answer answer;
};

TEST_F(ResilienceTest, KilledInstanceLeavesTheRotationAndTransactionsKeepCommitting) {
  constexpr int64_t kLeaseMs = 4000;
  constexpr int kAccounts = 4;
  constexpr int64_t kBalance = 1'000'000;
  constexpr int kWorkers = 4;
  AddTreatyd({"--lease-ms", std::to_string(kLeaseMs), "--breaker-failures", "3",
              "--breaker-reset-ms", "1000", "--prepare-timeout-ms", "2000"});
  std::vector<Node*> banks;
  for (int i = 1; i <= 3; ++i) {
    banks.push_back(
        &AddBankInstance("bank-a", "bank-a-" + std::to_string(i), Accounts(kAccounts, kBalance)));
  }
  banks.push_back(&AddBank("bank-b", Accounts(kAccounts, kBalance)));
  Node& victim = *banks[1];
  ASSERT_TRUE(StartAll());
  const uint64_t seed = EntropySeed();
  std::printf("instances: seed=%" PRIu64 "\n", seed);

  std::atomic<bool> stop{false};
  std::vector<std::vector<Submitted>> done(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      SeededRandom rng(seed + static_cast<uint64_t>(w));
      for (int n = 0; !stop; ++n) {
        Submitted s;
        s.xid = "inst-" + std::to_string(w) + "-" + std::to_string(n);
        s.transfer = {"bank-a", "acct" + std::to_string(rng.Uniform(kAccounts)), "bank-b",
                      "acct" + std::to_string(rng.Uniform(kAccounts)),
                      1 + static_cast<int64_t>(rng.Uniform(5))};
        s.at_ms = NowMs();
        s.answer = SubmitTransfer(s.xid, s.transfer, "", 5000);
        done[static_cast<size_t>(w)].push_back(std::move(s));
        SleepMs(15);
      }
    });
  }
  // Processes are spawned from this (the test's main) thread; see Process.
  SleepMs(2000);
  const int64_t kill_ms = NowMs();
  victim.process->Kill9();
  SleepMs(2 * kLeaseMs + 3000);
  const int64_t restart_ms = NowMs();
  ::testing::AssertionResult restarted = Start(victim);
  if (restarted) restarted = WaitInstanceLive(victim);
  SleepMs(2000);
  stop = true;
  for (auto& t : workers) t.join();
  ASSERT_TRUE(restarted) << "the killed instance did not come back";

  std::vector<Submitted> all;
  for (auto& d : done) all.insert(all.end(), d.begin(), d.end());
  // After two leases the dead instance is out of the rotation: (nearly) everything commits.
  int in_window = 0;
  int committed_in_window = 0;
  int before_kill = 0;
  int committed_before_kill = 0;
  int transition = 0;
  int committed_in_transition = 0;
  for (const Submitted& s : all) {
    if (s.at_ms < kill_ms) {
      ++before_kill;
      committed_before_kill += s.answer.Committed();
    } else if (s.at_ms < kill_ms + 2 * kLeaseMs) {
      ++transition;
      committed_in_transition += s.answer.Committed();
    } else if (s.at_ms >= kill_ms + 2 * kLeaseMs && s.at_ms < restart_ms) {
      ++in_window;
      committed_in_window += s.answer.Committed();
    }
  }
  std::printf(
      "instances: %zu transfers committed: before the kill %d/%d, in the 2 leases after "
      "it %d/%d, from then to the restart %d/%d\n",
      all.size(), committed_before_kill, before_kill, committed_in_transition, transition,
      committed_in_window, in_window);
  ASSERT_GT(in_window, 20) << "the workload hardly ran in the measured window";
  EXPECT_GE(committed_in_window, in_window * 95 / 100)
      << "with one of three bank-a instances dead for over two leases, transfers should commit";

  // Settle: every transaction decided and finished at the coordinator.
  std::map<std::string, v1::Transaction> finals;
  std::string unsettled;
  WaitUntil(
      [&] {
        unsettled.clear();
        for (const Submitted& s : all) {
          if (finals.count(s.xid) != 0) continue;
          auto tx = GetTransaction(s.xid);
          if (tx.ok() && (tx->state() == v1::COMMITTED || tx->state() == v1::ABORTED)) {
            finals[s.xid] = *tx;
          } else if (!tx.ok() && tx.status().code() == StatusCode::kNotFound &&
                     !s.answer.error.ok()) {
            finals[s.xid] = v1::Transaction();  // never started (presumed abort)
          } else if (unsettled.size() < 600) {
            unsettled +=
                "\n  " + s.xid + ": " + (tx.ok() ? tx->ShortDebugString() : tx.status().ToString());
          }
        }
        return unsettled.empty();
      },
      30000, 500);
  ASSERT_EQ(unsettled, "") << "transactions still unfinished";

  // Every branch agrees with the decision at the instance named for it, and money adds up.
  std::map<std::string, Node*> by_address;
  for (Node* n : banks) by_address[n->address] = n;
  std::map<std::string, int64_t> expected;  // "<address>/<account>" -> balance
  for (Node* n : banks) {
    for (int i = 0; i < kAccounts; ++i)
      expected[n->address + "/acct" + std::to_string(i)] = kBalance;
  }
  std::vector<std::string> violations;
  for (const Submitted& s : all) {
    const v1::Transaction& tx = finals[s.xid];
    if (tx.xid().empty()) continue;
    const bool committed = tx.state() == v1::COMMITTED;
    if (s.answer.error.ok() && s.answer.Committed() != committed) {
      violations.push_back(s.xid + ": the client was told " + s.answer.Describe());
    }
    for (const auto& b : tx.branches()) {
      auto node = by_address.find(b.instance());
      if (node == by_address.end()) {
        violations.push_back(s.xid + ": branch on unknown instance '" + b.instance() + "'");
        continue;
      }
      auto state = BranchStateAt(*node->second, s.xid, b.branch_id());
      if (!state.ok()) {
        violations.push_back(s.xid + ": " + state.status().ToString());
        continue;
      }
      const bool ok = committed
                          ? *state == v1::BRANCH_COMMITTED
                          : *state == v1::BRANCH_ABORTED || *state == v1::BRANCH_STATE_UNKNOWN;
      if (!ok) {
        violations.push_back(s.xid + " (" + v1::TxState_Name(tx.state()) + "): branch " +
                             std::to_string(b.branch_id()) + " is " + v1::BranchState_Name(*state) +
                             " at " + node->second->name);
      }
      if (!committed) continue;
      const bool debit = b.branch_id() == 0;
      const std::string& account = debit ? s.transfer.from_account : s.transfer.to_account;
      expected[b.instance() + "/" + account] += debit ? -s.transfer.amount : s.transfer.amount;
    }
  }
  int64_t total = 0;
  for (Node* n : banks) {
    auto balances = Balances(*n);
    ASSERT_TRUE(balances.ok()) << balances.status().ToString();
    for (const auto& [account, value] : *balances) {
      total += value;
      const int64_t want = expected[n->address + "/" + account];
      if (value != want) {
        violations.push_back(n->name + "/" + account + " is " + std::to_string(value) +
                             ", its committed branches say " + std::to_string(want));
      }
    }
  }
  EXPECT_EQ(total, int64_t{4} * kAccounts * kBalance) << "money was created or destroyed";
  std::string report;
  for (size_t i = 0; i < violations.size() && i < 20; ++i) report += "\n  " + violations[i];
  EXPECT_TRUE(violations.empty()) << violations.size() << " violations (seed " << seed
                                  << "):" << report;
}

TEST_F(ResilienceTest, WeightedBalancingSplitsNewBranchesByInstanceWeight) {
  constexpr int kTransfers = 120;
  AddTreatyd({"--lb-service", "bank-a=weighted"});
  Node& heavy = AddBankInstance("bank-a", "bank-a-heavy", "acct0=1000", 3);
  Node& light = AddBankInstance("bank-a", "bank-a-light", "acct0=1000", 1);
  AddBank("bank-b", "acct0=0");
  ASSERT_TRUE(StartAll());
  auto heavy_info = InstanceInfoOf("bank-a", heavy.address);
  ASSERT_TRUE(heavy_info.ok()) << heavy_info.status().ToString();
  EXPECT_EQ(heavy_info->weight(), 3u) << "--weight 3 not registered";

  std::map<std::string, int> branches;  // instance -> debit branches placed there
  for (int i = 0; i < kTransfers; ++i) {
    const Answer a =
        SubmitTransfer("w-" + std::to_string(i), {"bank-a", "acct0", "bank-b", "acct0", 1});
    ASSERT_TRUE(a.Committed()) << a.Describe();
    ++branches[InstanceOf(a.xid, 0)];
  }
  const double heavy_share = static_cast<double>(branches[heavy.address]) / kTransfers;
  std::printf("weighted: heavy %d, light %d of %d\n", branches[heavy.address],
              branches[light.address], kTransfers);
  EXPECT_NEAR(heavy_share, 0.75, 0.08) << "weights 3:1 should give the heavy instance ~75%";
  EXPECT_EQ(branches[heavy.address] + branches[light.address], kTransfers)
      << "branches placed on an instance that is not bank-a's";
  // The balances agree: each instance lost exactly one unit per debit branch placed there.
  for (const Node* n : {&heavy, &light}) {
    auto b = Balances(*n);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ((*b)["acct0"], 1000 - branches[n->address])
        << n->name << "'s balance disagrees with the instance the coordinator recorded";
  }
}

TEST_F(ResilienceTest, ConsistentHashSendsEveryBranchWithTheSameKeyToTheSameInstance) {
  constexpr int kKeys = 12;
  constexpr int kRounds = 4;
  AddTreatyd({"--lb-service", "bank-a=consistent-hash"});
  std::vector<Node*> instances;
  for (int i = 1; i <= 3; ++i) {
    instances.push_back(
        &AddBankInstance("bank-a", "bank-a-" + std::to_string(i), Accounts(kKeys, 1000)));
  }
  AddBank("bank-b", Accounts(kKeys, 0));
  ASSERT_TRUE(StartAll());

  std::map<std::string, std::set<std::string>> placed;  // key -> instances used
  for (int round = 0; round < kRounds; ++round) {
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "acct" + std::to_string(k);
      const Answer a = SubmitTransfer("ch-" + std::to_string(round) + "-" + key,
                                      {"bank-a", key, "bank-b", key, 1}, /*routing_key=*/key);
      ASSERT_TRUE(a.Committed()) << a.Describe();
      placed[key].insert(InstanceOf(a.xid, 0));
    }
  }
  std::set<std::string> used;
  for (const auto& [key, where] : placed) {
    EXPECT_EQ(where.size(), 1u) << "branches with key " << key << " went to " << where.size()
                                << " instances";
    used.insert(where.begin(), where.end());
  }
  EXPECT_GE(used.size(), 2u) << kKeys << " keys should spread over more than one instance";
  // Each key's account moved only on its instance.
  for (const Node* n : instances) {
    auto b = Balances(*n);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    for (const auto& [key, where] : placed) {
      const bool here = where.count(n->address) != 0;
      EXPECT_EQ((*b)[key], here ? 1000 - kRounds : 1000) << key << " at " << n->name;
    }
  }
}

}  // namespace
}  // namespace treaty::integ
