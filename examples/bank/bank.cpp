#include "examples/bank/bank.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "examples/common/values.h"

namespace treaty::bank {
namespace {

using participant::BranchContext;
using participant::LocalReader;
using participant::LocalTxn;
using participant::PrepareResult;
using Json = nlohmann::json;

// Most accounts one balances query returns. Bounds the response (well under the frame limit).
constexpr size_t kMaxAccounts = 100'000;
constexpr char kAccountPrefix[] = "acct/";

std::string AccountKey(std::string_view name) { return "acct/" + std::string(name); }
std::string HeldKey(std::string_view name) { return "held/" + std::string(name); }
std::string HoldKey(const BranchContext& ctx) {
  return "hold/" + ctx.xid + "/" + std::to_string(ctx.branch_id);
}
std::string CreditKey(const BranchContext& ctx) {
  return "credit/" + ctx.xid + "/" + std::to_string(ctx.branch_id);
}

using examples::ParseInt;
using examples::ValidName;

struct OpArgs {
  std::string account;
  int64_t amount = 0;
};

// INVALID_ARGUMENT with the reason if payload is not {"account": name, "amount": 1..kMaxAmount}.
Result<OpArgs> ParseOpArgs(const std::string& payload) {
  Json j;
  try {
    j = Json::parse(payload);
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(e.what());
  }
  if (!j.is_object()) return Status::InvalidArgument("payload is not a JSON object");
  auto account = j.find("account");
  auto amount = j.find("amount");
  if (account == j.end() || !account->is_string() ||
      !ValidName(account->get_ref<const std::string&>())) {
    return Status::InvalidArgument(
        "\"account\" must be a non-empty string without '/', ',' or '='");
  }
  if (amount == j.end() || !amount->is_number_integer() ||
      (amount->is_number_unsigned() && amount->get<uint64_t>() > uint64_t{kMaxAmount}) ||
      amount->get<int64_t>() < 1 || amount->get<int64_t>() > kMaxAmount) {
    return Status::InvalidArgument("\"amount\" must be an integer from 1 to " +
                                   std::to_string(kMaxAmount));
  }
  return OpArgs{account->get<std::string>(), amount->get<int64_t>()};
}

Result<std::optional<int64_t>> ReadInt(LocalReader& db, const std::string& key) {
  return examples::ReadInt(db, key, "bank");
}

Result<int64_t> ReadIntOr(LocalReader& db, const std::string& key, int64_t fallback) {
  return examples::ReadIntOr(db, key, fallback, "bank");
}

// Reads the amount recorded at key by a prepare. INTERNAL if it is missing: the barrier ran this
// branch's prepare, so its record must exist.
Result<int64_t> ReadRecorded(LocalReader& db, const std::string& key) {
  Result<std::optional<int64_t>> v = ReadInt(db, key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Status::Internal("bank record " + key + " is missing");
  return **v;
}

Result<PrepareResult> PrepareDebit(const BranchContext& ctx, LocalTxn& txn) {
  Result<OpArgs> args = ParseOpArgs(ctx.payload);
  if (!args.ok()) return PrepareResult::No("invalid payload: " + args.status().message());
  Result<std::optional<int64_t>> balance = ReadInt(txn, AccountKey(args->account));
  if (!balance.ok()) return balance.status();
  if (!balance->has_value()) return PrepareResult::No("unknown account: " + args->account);
  Result<int64_t> held = ReadIntOr(txn, HeldKey(args->account), 0);
  if (!held.ok()) return held.status();
  const int64_t available = **balance - *held;
  if (available < args->amount) {
    return PrepareResult::No("insufficient funds: " + args->account + " has " +
                             std::to_string(available) + ", needs " + std::to_string(args->amount));
  }
  txn.Put(HeldKey(args->account), std::to_string(*held + args->amount));
  txn.Put(HoldKey(ctx), std::to_string(args->amount));
  return PrepareResult::Yes();
}

// Releases a debit's reservation; with apply, also takes the amount from the balance.
Status FinishDebit(const BranchContext& ctx, LocalTxn& txn, bool apply) {
  Result<OpArgs> args = ParseOpArgs(ctx.payload);
  if (!args.ok()) return args.status();  // cannot happen: prepare voted YES on this payload
  Result<int64_t> amount = ReadRecorded(txn, HoldKey(ctx));
  if (!amount.ok()) return amount.status();
  Result<int64_t> held = ReadIntOr(txn, HeldKey(args->account), 0);
  if (!held.ok()) return held.status();
  if (apply) {
    Result<int64_t> balance = ReadIntOr(txn, AccountKey(args->account), 0);
    if (!balance.ok()) return balance.status();
    txn.Put(AccountKey(args->account), std::to_string(*balance - *amount));
  }
  txn.Put(HeldKey(args->account), std::to_string(*held - *amount));
  txn.Delete(HoldKey(ctx));
  return Status::Ok();
}

Result<PrepareResult> PrepareCredit(const BranchContext& ctx, LocalTxn& txn) {
  Result<OpArgs> args = ParseOpArgs(ctx.payload);
  if (!args.ok()) return PrepareResult::No("invalid payload: " + args.status().message());
  Result<std::optional<int64_t>> balance = ReadInt(txn, AccountKey(args->account));
  if (!balance.ok()) return balance.status();
  if (!balance->has_value()) return PrepareResult::No("unknown account: " + args->account);
  if (**balance > kMaxBalance - args->amount) {
    return PrepareResult::No("balance limit: " + args->account + " would exceed " +
                             std::to_string(kMaxBalance));
  }
  txn.Put(CreditKey(ctx), std::to_string(args->amount));
  return PrepareResult::Yes();
}

Status FinishCredit(const BranchContext& ctx, LocalTxn& txn, bool apply) {
  Result<OpArgs> args = ParseOpArgs(ctx.payload);
  if (!args.ok()) return args.status();
  Result<int64_t> amount = ReadRecorded(txn, CreditKey(ctx));
  if (!amount.ok()) return amount.status();
  if (apply) {
    Result<int64_t> balance = ReadIntOr(txn, AccountKey(args->account), 0);
    if (!balance.ok()) return balance.status();
    txn.Put(AccountKey(args->account), std::to_string(*balance + *amount));
  }
  txn.Delete(CreditKey(ctx));
  return Status::Ok();
}

Result<std::string> QueryBalances(const std::string&, LocalReader& db) {
  auto rows = db.Scan(kAccountPrefix, kMaxAccounts);
  if (!rows.ok()) return rows.status();
  Balances balances;
  for (const auto& [key, value] : *rows) {
    std::optional<int64_t> v = ParseInt(value);
    if (!v) return Status::Corruption("bank key " + key + " holds '" + value + "'");
    balances[key.substr(sizeof(kAccountPrefix) - 1)] = *v;
  }
  return BalancesJson(balances);
}

using participant::DecisionHandler;
using participant::OpHandlers;
using participant::PrepareHandler;

// handlers, each of them first passing through faults (if any).
OpHandlers WithFaults(OpHandlers handlers, const std::shared_ptr<FaultInjector>& faults) {
  if (!faults) return handlers;
  auto decision = [&faults](const char* stage, DecisionHandler inner) -> DecisionHandler {
    return [faults, stage, inner = std::move(inner)](const BranchContext& c, LocalTxn& t) {
      TREATY_RETURN_IF_ERROR(faults->BeforeHandler(stage, c.xid, c.branch_id));
      return inner ? inner(c, t) : Status::Ok();
    };
  };
  PrepareHandler prepare = [faults, inner = std::move(handlers.prepare)](
                               const BranchContext& c, LocalTxn& t) -> Result<PrepareResult> {
    TREATY_RETURN_IF_ERROR(faults->BeforeHandler("prepare", c.xid, c.branch_id));
    return inner(c, t);
  };
  return {std::move(prepare), decision("commit", std::move(handlers.commit)),
          decision("abort", std::move(handlers.abort))};
}

// The kSetFaultMethod control handler: applies the requested setting, answers the one in force.
Result<std::string> SetFault(FaultInjector& faults, const std::string& payload) {
  Result<FaultSetting> setting = ParseFaultSetting(payload);
  if (!setting.ok()) return setting.status();
  faults.Set(*setting);
  return FaultSettingJson(faults.setting());
}

}  // namespace

Result<Balances> ParseAccounts(std::string_view spec) {
  return examples::ParseNameValues(spec, {"account", "balance", "alice=100", kMaxBalance});
}

void InstallBank(participant::Participant& participant, Balances initial) {
  InstallBank(participant, std::move(initial), nullptr);
}

void InstallBank(participant::Participant& participant, Balances initial,
                 std::shared_ptr<FaultInjector> faults) {
  participant.RegisterOp(
      kDebitOp,
      WithFaults(
          {PrepareDebit,
           [](const BranchContext& c, LocalTxn& t) { return FinishDebit(c, t, /*apply=*/true); },
           [](const BranchContext& c, LocalTxn& t) { return FinishDebit(c, t, /*apply=*/false); }},
          faults));
  participant.RegisterOp(
      kCreditOp,
      WithFaults(
          {PrepareCredit,
           [](const BranchContext& c, LocalTxn& t) { return FinishCredit(c, t, /*apply=*/true); },
           [](const BranchContext& c, LocalTxn& t) { return FinishCredit(c, t, /*apply=*/false); }},
          faults));
  participant.RegisterQuery(kBalancesMethod, QueryBalances);
  if (faults) {
    participant.RegisterControl(kSetFaultMethod, [faults](const std::string& payload) {
      return SetFault(*faults, payload);
    });
  }
  participant.SetInitializer([initial = std::move(initial)](LocalTxn& txn) {
    for (const auto& [name, balance] : initial) txn.Put(AccountKey(name), std::to_string(balance));
    spdlog::info("bank: new data dir seeded with {} accounts", initial.size());
    return Status::Ok();
  });
}

std::string OpPayload(std::string_view account, int64_t amount) {
  return Json{{"account", account}, {"amount", amount}}.dump();
}

std::string BalancesJson(const Balances& balances) {
  Json j = Json::object();
  for (const auto& [name, balance] : balances) j[name] = balance;
  return j.dump();
}

Result<Balances> ParseBalancesJson(std::string_view text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(std::string("balances are not JSON: ") + e.what());
  }
  if (!j.is_object()) return Status::InvalidArgument("balances are not a JSON object");
  Balances out;
  for (const auto& [name, value] : j.items()) {
    if (!value.is_number_integer()) {
      return Status::InvalidArgument("balance of '" + name + "' is not an integer");
    }
    out[name] = value.get<int64_t>();
  }
  return out;
}

std::string BalancesTable(const Balances& balances) {
  size_t name_width = std::string_view("ACCOUNT").size();
  size_t value_width = std::string_view("BALANCE").size();
  for (const auto& [name, balance] : balances) {
    name_width = std::max(name_width, name.size());
    value_width = std::max(value_width, std::to_string(balance).size());
  }
  auto line = [&](const std::string& name, const std::string& value) {
    return name + std::string(name_width - name.size() + 2, ' ') +
           std::string(value_width - value.size(), ' ') + value + "\n";
  };
  std::string out = line("ACCOUNT", "BALANCE");
  for (const auto& [name, balance] : balances) out += line(name, std::to_string(balance));
  return out;
}

}  // namespace treaty::bank
