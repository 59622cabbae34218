// The integration-test fixture: a treatyd and bank participants as real processes on loopback,
// each with its data dir and log under the test's temporary directory, plus RPC and CLI helpers.
//
// On failure the temporary directory is kept (its path is printed) and the tail of every process
// log is printed; on success it is removed, unless the environment sets TREATY_INTEG_KEEP=1.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/cluster_client.h"
#include "net/rpc.h"
#include "tests/integration/harness.h"
#include "treaty/v1/coordinator.pb.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::integ {

// bank-participant's query method (examples/bank): empty request, JSON {"account": balance}.
inline constexpr char kBankBalances[] = "bank.Balances";

// Deadline of the fixture's RPCs unless a call says otherwise, milliseconds.
inline constexpr int64_t kRpcDeadlineMs = 5000;

// A process under test and the command line used for every (re)start.
struct Node {
  std::string name;         // "treatyd", "bank-a", ...
  uint16_t port = 0;        // RPC port
  std::string address;      // "127.0.0.1:<port>"
  uint16_t admin_port = 0;  // treatyd only
  std::string data_dir;
  std::string raft_address;    // cluster treatyd only
  std::string service;         // banks only: the service it serves (== name unless an instance)
  std::string probe_account;   // banks only: an account used by the registration probe
  bool order_service = false;  // an order-participant (examples/order)
  std::vector<std::string> argv;
  std::unique_ptr<Process> process;
};

// Money moved from one bank account to another: a debit branch (branch 0) and a credit branch
// (branch 1).
struct Transfer {
  std::string from_service;
  std::string from_account;
  std::string to_service;
  std::string to_account;
  int64_t amount = 0;
};

// "acct<i>": the name of account i of a bank configured by IntegrationTest::AddBanks.
std::string BankAccount(uint64_t i);

// The CLI's transaction file for a transfer: {"branches":[{"service":..,"op":"debit",..},..]}.
std::string TransferFileJson(const Transfer& t);

// A SubmitRequest for a transfer; branch payloads are the JSON the CLI would send.
v1::SubmitRequest TransferRequest(const std::string& xid, const Transfer& t, bool wait);

// Committed states as a client sees them (the decision is durable or fully delivered).
bool IsCommitState(v1::TxState s);
bool IsAbortState(v1::TxState s);

// A top-level string field of a JSON object text (also looked up under "transaction"); empty if
// the text is not JSON or has no such string field.
std::string JsonStringField(const std::string& json_text, const std::string& field);

// Parses {"account": integer, ...}. INVALID_ARGUMENT if the text is not such an object.
Result<std::map<std::string, int64_t>> ParseBalances(const std::string& json_text);

// What the accounts of some banks should hold after a run of transfers: every account starts with
// the same balance, and each transfer the cluster committed moves its amount. Compared with the
// banks by IntegrationTest::CheckBalances.
class Ledger {
 public:
  // Accounts BankAccount(0) .. BankAccount(accounts - 1) of every bank, each holding balance.
  Ledger(std::vector<Node*> banks, uint64_t accounts, int64_t balance);
  // A transfer the cluster committed.
  void Commit(const Transfer& t);
  const std::vector<Node*>& banks() const { return banks_; }
  // "bank-a/acct0" -> balance.
  const std::map<std::string, int64_t>& expected() const { return expected_; }
  // The sum of all balances (transfers conserve it).
  int64_t total() const { return total_; }

 private:
  std::vector<Node*> banks_;
  std::map<std::string, int64_t> expected_;
  int64_t total_ = 0;
};

// Where a transfer's branches are: the debit (branch 0) at one bank, the credit (branch 1) at
// another.
struct TransferBranches {
  std::string xid;
  const Node* debit_bank = nullptr;
  const Node* credit_bank = nullptr;
};

// What the banks recorded for the branches of transfers (IntegrationTest::WaitBranchesDecided).
struct BranchReport {
  // {debit, credit} per transfer, parallel to the input; the last states read.
  std::vector<std::pair<v1::BranchState, v1::BranchState>> states;
  std::string error;     // why a bank could not be inspected, or empty
  std::string in_doubt;  // a transfer with a branch still PREPARED at the end, or empty
};

// The cluster's final word on a transaction (IntegrationTest::WaitAllFinished).
enum class FinalState {
  kPending,     // not finished within the budget
  kCommitted,   // COMMITTED
  kAborted,     // ABORTED
  kUnknownXid,  // never logged, or forgotten: presumed abort
};
struct FinalOutcome {
  FinalState state = FinalState::kPending;
  std::string last_seen;  // kPending: the last answer to GetTransaction (a record or an error)
};

class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Configures (does not start) treatyd with a fresh data dir, a free RPC port and a free admin
  // port. extra_args are appended to its command line. Becomes the fixture's coordinator.
  Node& AddTreatyd(const std::vector<std::string>& extra_args = {});

  // Configures (does not start) a coordinator cluster of n treatyd nodes ("treatyd-1", ...), each
  // with its data dir, client, admin and Raft ports, bootstrapped with the same --peers. The
  // fixture's coordinator calls then find the leader (hint, rotation, retry with backoff), and
  // participants and the CLI get the list of every node's address.
  std::vector<Node*> AddTreatydCluster(int n, const std::vector<std::string>& extra_args = {});
  // Configures (does not start) one more cluster node "treatyd-<id>" that joins the cluster of
  // AddTreatydCluster (--join: empty data dir, no bootstrap; `treaty cluster add-node` adds it).
  // It joins coordinators() too.
  Node& AddTreatydJoiner(uint64_t id, const std::vector<std::string>& extra_args = {});
  // The coordinator addresses, comma-separated (one address without a cluster).
  std::string CoordinatorList() const;
  const std::vector<Node*>& coordinators() const { return coordinators_; }
  // The serving leader among the running cluster nodes other than `except` (asks each its
  // ClusterStatus), waiting up to timeout_ms; nullptr if none serves by then. `except` is a node
  // that must not be asked, e.g. a frozen one (it would answer only after its thaw).
  Node* WaitLeader(int64_t timeout_ms = 15000, const Node* except = nullptr);
  Result<v1::ClusterStatusResponse> ClusterStatusOf(const Node& node, int64_t deadline_ms = 1000);
  // Calls the coordinator (the cluster's leader, found as clients do) until deadline_ms passes.
  Result<std::string> CallCoordinator(std::string_view method, const std::string& payload,
                                      int64_t deadline_ms = kRpcDeadlineMs);

  // Configures (does not start) a bank participant. accounts: "alice=100,bob=50". coordinator:
  // the address(es) it registers with; empty means the fixture's coordinator(s).
  Node& AddBank(const std::string& service, const std::string& accounts,
                const std::string& coordinator = "");

  // Configures (does not start) n bank participants "bank-a", "bank-b", ..., each holding the
  // accounts BankAccount(0) .. BankAccount(accounts - 1) with balance each. REQUIRES: n <= 26.
  std::vector<Node*> AddBanks(int n, uint64_t accounts, int64_t balance);

  // Configures (does not start) one of several instances of a bank service: its own name (log
  // file, data dir), port and accounts; weight > 0 adds --weight. StartAll waits until the
  // coordinator lists this instance as live.
  Node& AddBankInstance(const std::string& service, const std::string& instance,
                        const std::string& accounts, uint32_t weight = 0);

  // Configures (does not start) an order-participant (examples/order) serving service
  // (inventory, payment or shipping) and registering with the fixture's treatyd. extra_args are
  // appended (e.g. {"--stock", "widget=10"}). StartAll waits until treatyd lists it as live.
  Node& AddOrderService(const std::string& service,
                        const std::vector<std::string>& extra_args = {});

  // Spawns the node's process and waits until its port accepts connections. Fails (with the log
  // tail) if the process exits or the port does not open within 15 s.
  ::testing::AssertionResult Start(Node& node);

  // Starts every configured node that is not running, then waits until every bank is registered.
  ::testing::AssertionResult StartAll();

  // Waits until treatyd accepts transactions for the bank's service: a probe transaction (a
  // credit of 0) gets an answer instead of a rejection.
  ::testing::AssertionResult WaitRegistered(const Node& bank, int64_t timeout_ms = 15000);

  // Waits until ListServices shows the bank's address as a live instance of its service.
  ::testing::AssertionResult WaitInstanceLive(const Node& bank, int64_t timeout_ms = 15000);

  // ---- RPC (net::RpcClient) ----
  Result<v1::SubmitResponse> Submit(const v1::SubmitRequest& request,
                                    int64_t deadline_ms = kRpcDeadlineMs);
  Result<v1::Transaction> GetTransaction(const std::string& xid);
  // Waits until the transaction is COMMITTED or ABORTED; returns its last known record (or the
  // last error) after timeout_ms.
  Result<v1::Transaction> WaitFinished(const std::string& xid, int64_t timeout_ms);
  // The final outcome of every xid (parallel to xids): asks the coordinator for each unfinished
  // one every 500 ms until all are COMMITTED, ABORTED or unknown to it, or budget_ms passes.
  std::vector<FinalOutcome> WaitAllFinished(const std::vector<std::string>& xids,
                                            int64_t budget_ms);
  Result<std::map<std::string, int64_t>> Balances(const Node& bank);
  // Reads the balances of the ledger's banks (bank.Balances) and returns one line per
  // difference: first the sum of all balances if money was created or destroyed, then every
  // account that holds another balance than the ledger's or a negative one, and every bank that
  // cannot be read. Empty when the banks agree with the ledger.
  std::vector<std::string> CheckBalances(const Ledger& ledger);
  Result<v1::InspectResponse> Inspect(const Node& bank, const std::string& xid);
  Result<v1::ListServicesResponse> ListServices();
  // The coordinator's view of one instance; NOT_FOUND if it does not list it.
  Result<v1::InstanceInfo> InstanceInfoOf(const std::string& service, const std::string& address);
  // The branch's state at the bank; BRANCH_STATE_UNKNOWN if the bank recorded nothing for it.
  Result<v1::BranchState> BranchStateAt(const Node& bank, const std::string& xid,
                                        uint32_t branch_id);
  // Inspects both branches of every transfer every 500 ms until none is PREPARED any more (an
  // in-doubt branch asks the cluster for the outcome) or timeout_ms passes.
  BranchReport WaitBranchesDecided(const std::vector<TransferBranches>& transfers,
                                   int64_t timeout_ms);

  // Runs `bank-participant fault --listen <bank> --mode <mode> [--delay-ms N]` (examples/bank):
  // none, fail, hang or slow; delay_ms < 0 keeps the mode's default wait.
  ::testing::AssertionResult SetFault(const Node& bank, const std::string& mode,
                                      int64_t delay_ms = -1);

  // ---- CLI ----
  // Runs `treaty --coordinator <treatyd> args...`.
  CommandResult Treaty(const std::vector<std::string>& args, int64_t timeout_ms = 30000);
  // Writes a file into the temporary directory; returns its path.
  std::string WriteTempFile(const std::string& name, const std::string& content);

  TempDir& tmp() { return *tmp_; }
  net::RpcClient& rpc() { return *rpc_; }
  Node& treatyd() { return *treatyd_; }

 private:
  std::unique_ptr<TempDir> tmp_;
  std::unique_ptr<net::RpcClient> rpc_;
  std::vector<std::unique_ptr<Node>> nodes_;
  Node* treatyd_ = nullptr;
  std::vector<Node*> coordinators_;                     // every treatyd (one without a cluster)
  std::unique_ptr<net::ClusterClient> cluster_client_;  // cluster: finds the leader
};

}  // namespace treaty::integ
