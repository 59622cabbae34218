// What a run of transfers left behind, as the tests check it: the cluster's final outcome of
// every xid, the banks' branch states and balances (declared in cluster.h).
#include <numeric>
#include <utility>

#include "tests/integration/cluster.h"

namespace treaty::integ {

Ledger::Ledger(std::vector<Node*> banks, uint64_t accounts, int64_t balance)
    : banks_(std::move(banks)) {
  for (const Node* bank : banks_) {
    for (uint64_t a = 0; a < accounts; ++a) {
      expected_[bank->name + "/" + BankAccount(a)] = balance;
      total_ += balance;
    }
  }
}

void Ledger::Commit(const Transfer& t) {
  expected_[t.from_service + "/" + t.from_account] -= t.amount;
  expected_[t.to_service + "/" + t.to_account] += t.amount;
}

std::vector<std::string> IntegrationTest::CheckBalances(const Ledger& ledger) {
  std::vector<std::string> accounts;
  int64_t total = 0;
  for (const Node* bank : ledger.banks()) {
    auto balances = Balances(*bank);
    if (!balances.ok()) {
      accounts.push_back(bank->name + ": " + balances.status().ToString());
      continue;
    }
    for (const auto& [account, value] : *balances) {
      const std::string key = bank->name + "/" + account;
      total += value;
      auto it = ledger.expected().find(key);
      const int64_t expected = it == ledger.expected().end() ? 0 : it->second;
      if (value < 0) accounts.push_back(key + " is negative: " + std::to_string(value));
      if (value != expected) {
        accounts.push_back(key + " is " + std::to_string(value) +
                           ", the transfers the cluster committed make it " +
                           std::to_string(expected));
      }
    }
  }
  std::vector<std::string> out;
  if (total != ledger.total()) {
    out.push_back(std::string("money was ") + (total > ledger.total() ? "created" : "destroyed") +
                  ": the banks hold " + std::to_string(total) + " in total, they started with " +
                  std::to_string(ledger.total()));
  }
  out.insert(out.end(), accounts.begin(), accounts.end());
  return out;
}

std::vector<FinalOutcome> IntegrationTest::WaitAllFinished(const std::vector<std::string>& xids,
                                                           int64_t budget_ms) {
  std::vector<FinalOutcome> out(xids.size());
  std::vector<size_t> pending(xids.size());
  std::iota(pending.begin(), pending.end(), size_t{0});
  const int64_t deadline = NowMs() + budget_ms;
  while (true) {
    std::vector<size_t> still;
    for (size_t k : pending) {
      auto tx = GetTransaction(xids[k]);
      FinalOutcome& o = out[k];
      if (tx.ok() && tx->state() == v1::COMMITTED) {
        o.state = FinalState::kCommitted;
      } else if (tx.ok() && tx->state() == v1::ABORTED) {
        o.state = FinalState::kAborted;
      } else if (!tx.ok() && tx.status().code() == StatusCode::kNotFound) {
        o.state = FinalState::kUnknownXid;
      } else {
        o.last_seen = tx.ok() ? tx->ShortDebugString() : tx.status().ToString();
        still.push_back(k);
      }
    }
    pending.swap(still);
    if (pending.empty() || NowMs() >= deadline) return out;
    SleepMs(500);
  }
}

BranchReport IntegrationTest::WaitBranchesDecided(const std::vector<TransferBranches>& transfers,
                                                  int64_t timeout_ms) {
  BranchReport report;
  report.states.resize(transfers.size());
  WaitUntil(
      [&] {
        report.error.clear();
        report.in_doubt.clear();
        for (size_t k = 0; k < transfers.size(); ++k) {
          const TransferBranches& t = transfers[k];
          auto debit = BranchStateAt(*t.debit_bank, t.xid, 0);
          auto credit = BranchStateAt(*t.credit_bank, t.xid, 1);
          if (!debit.ok() || !credit.ok()) {
            report.error = "Inspect " + t.xid +
                           " failed: " + (debit.ok() ? credit.status() : debit.status()).ToString();
            return false;
          }
          report.states[k] = {*debit, *credit};
          if (report.in_doubt.empty() &&
              (*debit == v1::BRANCH_PREPARED || *credit == v1::BRANCH_PREPARED)) {
            report.in_doubt = t.xid;
          }
        }
        return report.in_doubt.empty();
      },
      timeout_ms, 500);
  return report;
}

}  // namespace treaty::integ
