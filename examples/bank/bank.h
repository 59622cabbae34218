// A bank-account participant service, built on libtreaty-participant: the business logic of the
// bank-participant example, as a library so tests can run it without the binary.
//
// Operations (payload JSON {"account":"alice","amount":30}, amount an integer in
// [1, kMaxAmount]):
//   debit   prepare: reserves amount from the account's available balance (balance - held);
//                    NO "insufficient funds: alice has 20, needs 30" if it does not fit,
//                    NO "unknown account: carol", NO "invalid payload: ..." for bad input.
//           commit:  balance -= amount and the reservation is released.
//           abort:   the reservation is released.
//   credit  prepare: validates and records the pending credit (NO as above, or "balance limit").
//           commit:  balance += amount.   abort: the pending credit is dropped.
// Keys (the participant's service key space):
//   acct/<name>              committed balance (decimal)
//   held/<name>              sum of the amounts reserved by prepared debits (decimal)
//   hold/<xid>/<branch>      amount reserved by one prepared debit
//   credit/<xid>/<branch>    amount of one prepared credit
// Money is conserved: only commits move it, and a debit and a credit of one transfer carry the
// same amount.
// Query method kBalancesMethod (empty request) returns the committed balances as a JSON object,
// e.g. {"alice":70,"bob":80}.
// Fault injection (fault.h): with a FaultInjector, the handlers above can be made to fail, hang
// or slow down on command through the control method kSetFaultMethod.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "examples/bank/fault.h"
#include "participant/participant.h"

namespace treaty::bank {

inline constexpr char kBalancesMethod[] = "bank.Balances";
inline constexpr char kDebitOp[] = "debit";
inline constexpr char kCreditOp[] = "credit";
// Largest amount of one operation. Keeps every sum of amounts far from int64 overflow.
inline constexpr int64_t kMaxAmount = 1'000'000'000'000;
// Largest balance a credit may produce.
inline constexpr int64_t kMaxBalance = 1'000'000'000'000'000'000;

// Account name -> balance.
using Balances = std::map<std::string, int64_t>;

// Parses "alice=100,bob=50" (names non-empty without '/', ',' or '='; balances integers in
// [0, kMaxBalance]). INVALID_ARGUMENT naming the bad item.
Result<Balances> ParseAccounts(std::string_view spec);

// Registers the debit and credit ops, the balances query and an initializer that seeds
// `initial` when the participant's data dir is new. REQUIRES: before participant.Start().
void InstallBank(participant::Participant& participant, Balances initial);

// As above, and every debit / credit prepare, commit and abort handler first consults `faults`
// (FaultInjector::BeforeHandler); registers the control method kSetFaultMethod, which sets it.
// faults must not be null. Call faults->Shutdown() before participant.Stop(): Stop waits for the
// worker, which a hang would hold for up to its delay.
void InstallBank(participant::Participant& participant, Balances initial,
                 std::shared_ptr<FaultInjector> faults);

// The payload of a debit or credit: {"account":"<account>","amount":<amount>}.
std::string OpPayload(std::string_view account, int64_t amount);

// The kBalancesMethod response format, both ways. ParseBalancesJson: INVALID_ARGUMENT if text is
// not a JSON object of integers.
std::string BalancesJson(const Balances& balances);
Result<Balances> ParseBalancesJson(std::string_view text);
// Two aligned columns with an ACCOUNT / BALANCE header, one line per account.
std::string BalancesTable(const Balances& balances);

}  // namespace treaty::bank
