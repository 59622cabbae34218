#include "tests/integration/cluster.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "net/cluster_client.h"
#include "net/leader.h"
#include "net/proto_codec.h"
#include "treaty/v1/methods.h"

namespace treaty::integ {
namespace {

namespace methods = v1::methods;
using ::testing::AssertionFailure;
using ::testing::AssertionResult;
using ::testing::AssertionSuccess;

std::string BranchPayload(const std::string& account, int64_t amount) {
  return nlohmann::json{{"account", account}, {"amount", amount}}.dump();
}

// The first account name of "alice=100,bob=50".
std::string FirstAccount(const std::string& accounts) {
  return accounts.substr(0, accounts.find('='));
}

std::string Tail(const Node& node) {
  return node.process == nullptr ? "(never started)\n" : node.process->LogTail(60);
}

}  // namespace

std::string BankAccount(uint64_t i) { return "acct" + std::to_string(i); }

std::string TransferFileJson(const Transfer& t) {
  nlohmann::json file = {{"branches",
                          {{{"service", t.from_service},
                            {"op", "debit"},
                            {"payload", {{"account", t.from_account}, {"amount", t.amount}}}},
                           {{"service", t.to_service},
                            {"op", "credit"},
                            {"payload", {{"account", t.to_account}, {"amount", t.amount}}}}}}};
  return file.dump(2);
}

v1::SubmitRequest TransferRequest(const std::string& xid, const Transfer& t, bool wait) {
  v1::SubmitRequest req;
  req.set_xid(xid);
  req.set_wait(wait);
  v1::Branch* debit = req.add_branches();
  debit->set_service(t.from_service);
  debit->set_op("debit");
  debit->set_payload(BranchPayload(t.from_account, t.amount));
  v1::Branch* credit = req.add_branches();
  credit->set_service(t.to_service);
  credit->set_op("credit");
  credit->set_payload(BranchPayload(t.to_account, t.amount));
  return req;
}

bool IsCommitState(v1::TxState s) { return s == v1::COMMITTING || s == v1::COMMITTED; }
bool IsAbortState(v1::TxState s) { return s == v1::ABORTING || s == v1::ABORTED; }

std::string JsonStringField(const std::string& json_text, const std::string& field) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  if (j.contains(field) && j[field].is_string()) return j[field].get<std::string>();
  if (j.contains("transaction") && j["transaction"].is_object()) {
    const auto& tx = j["transaction"];
    if (tx.contains(field) && tx[field].is_string()) return tx[field].get<std::string>();
  }
  return "";
}

Result<std::map<std::string, int64_t>> ParseBalances(const std::string& json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return Status::InvalidArgument("balances are not a JSON object: " + json_text);
  std::map<std::string, int64_t> out;
  for (const auto& [account, value] : j.items()) {
    if (!value.is_number_integer()) {
      return Status::InvalidArgument("balance of " + account + " is not an integer: " + json_text);
    }
    out[account] = value.get<int64_t>();
  }
  return out;
}

void IntegrationTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  tmp_ = std::make_unique<TempDir>(std::string(info->test_suite_name()) + "." + info->name());
  ASSERT_FALSE(tmp_->path().empty()) << "cannot create a temporary directory";
  rpc_ = std::make_unique<net::RpcClient>();
}

void IntegrationTest::TearDown() {
  const bool failed = HasFailure();
  const char* keep_env = std::getenv("TREATY_INTEG_KEEP");
  const bool keep = failed || (keep_env != nullptr && std::string(keep_env) == "1");
  if (failed) {
    for (const auto& node : nodes_) {
      std::fprintf(stderr, "---- last lines of %s's log (%s) ----\n%s", node->name.c_str(),
                   node->process ? node->process->log_path().c_str() : "-", Tail(*node).c_str());
    }
  }
  for (auto& node : nodes_) {
    if (node->process) node->process->Terminate(2000);
  }
  nodes_.clear();
  rpc_.reset();
  if (keep) {
    tmp_->Keep();
    std::fprintf(stderr, "---- %s: kept %s ----\n", failed ? "test failed" : "TREATY_INTEG_KEEP=1",
                 tmp_->path().c_str());
  }
  tmp_.reset();
}

Node& IntegrationTest::AddTreatyd(const std::vector<std::string>& extra_args) {
  auto node = std::make_unique<Node>();
  node->name = "treatyd";
  node->port = PickFreePort();
  node->address = LoopbackAddress(node->port);
  node->admin_port = PickFreePort();
  node->data_dir = tmp_->Sub("treatyd-data");
  auto bin = BinPath("treatyd");
  node->argv = {bin.ok() ? *bin : BinDir() + "/treatyd",
                "--data-dir",
                node->data_dir,
                "--listen",
                node->address,
                "--admin",
                LoopbackAddress(node->admin_port)};
  node->argv.insert(node->argv.end(), extra_args.begin(), extra_args.end());
  treatyd_ = node.get();
  coordinators_ = {treatyd_};
  nodes_.push_back(std::move(node));
  return *treatyd_;
}

std::vector<Node*> IntegrationTest::AddTreatydCluster(int n,
                                                      const std::vector<std::string>& extra_args) {
  std::vector<uint16_t> raft_ports;
  std::string peers;
  for (int i = 1; i <= n; ++i) {
    raft_ports.push_back(PickFreePort());
    peers += (i > 1 ? "," : "") + std::to_string(i) + "=" + LoopbackAddress(raft_ports.back());
  }
  auto bin = BinPath("treatyd");
  coordinators_.clear();
  for (int i = 1; i <= n; ++i) {
    auto node = std::make_unique<Node>();
    node->name = "treatyd-" + std::to_string(i);
    node->port = PickFreePort();
    node->address = LoopbackAddress(node->port);
    node->admin_port = PickFreePort();
    node->data_dir = tmp_->Sub(node->name + "-data");
    node->argv = {bin.ok() ? *bin : BinDir() + "/treatyd",
                  "--data-dir",
                  node->data_dir,
                  "--listen",
                  node->address,
                  "--admin",
                  LoopbackAddress(node->admin_port),
                  "--node-id",
                  std::to_string(i),
                  "--raft",
                  LoopbackAddress(raft_ports[static_cast<size_t>(i - 1)]),
                  "--peers",
                  peers};
    node->raft_address = LoopbackAddress(raft_ports[static_cast<size_t>(i - 1)]);
    node->argv.insert(node->argv.end(), extra_args.begin(), extra_args.end());
    coordinators_.push_back(node.get());
    nodes_.push_back(std::move(node));
  }
  treatyd_ = coordinators_.front();
  return coordinators_;
}

Node& IntegrationTest::AddTreatydJoiner(uint64_t id, const std::vector<std::string>& extra_args) {
  auto bin = BinPath("treatyd");
  auto node = std::make_unique<Node>();
  node->name = "treatyd-" + std::to_string(id);
  node->port = PickFreePort();
  node->address = LoopbackAddress(node->port);
  node->admin_port = PickFreePort();
  node->data_dir = tmp_->Sub(node->name + "-data");
  node->raft_address = LoopbackAddress(PickFreePort());
  node->argv = {bin.ok() ? *bin : BinDir() + "/treatyd",
                "--data-dir",
                node->data_dir,
                "--listen",
                node->address,
                "--admin",
                LoopbackAddress(node->admin_port),
                "--node-id",
                std::to_string(id),
                "--raft",
                node->raft_address,
                "--peers",
                std::to_string(id) + "=" + node->raft_address,
                "--join"};
  node->argv.insert(node->argv.end(), extra_args.begin(), extra_args.end());
  coordinators_.push_back(node.get());
  nodes_.push_back(std::move(node));
  return *nodes_.back();
}

std::string IntegrationTest::CoordinatorList() const {
  std::string list;
  for (const Node* c : coordinators_) list += (list.empty() ? "" : ",") + c->address;
  return list;
}

Result<v1::ClusterStatusResponse> IntegrationTest::ClusterStatusOf(const Node& node,
                                                                   int64_t deadline_ms) {
  return net::Decode<v1::ClusterStatusResponse>(
      rpc_->Call(node.address, methods::kClusterStatus,
                 v1::ClusterStatusRequest().SerializeAsString(), deadline_ms));
}

Node* IntegrationTest::WaitLeader(int64_t timeout_ms, const Node* except) {
  Node* leader = nullptr;
  WaitUntil(
      [&] {
        for (Node* c : coordinators_) {
          if (c == except || !c->process || !c->process->Running()) continue;
          auto status = ClusterStatusOf(*c, 500);
          if (status.ok() && status->serving()) {
            leader = c;
            return true;
          }
        }
        return false;
      },
      timeout_ms, 50);
  return leader;
}

Result<std::string> IntegrationTest::CallCoordinator(std::string_view method,
                                                     const std::string& payload,
                                                     int64_t deadline_ms) {
  if (coordinators_.size() <= 1) {
    return rpc_->Call(treatyd_->address, method, payload, deadline_ms);
  }
  if (!cluster_client_) {
    std::vector<std::string> addresses;
    for (const Node* c : coordinators_) addresses.push_back(c->address);
    net::ClusterClientOptions options;
    options.attempt_timeout_ms = 2000;  // a hung or killed node does not eat the whole budget
    cluster_client_ = std::make_unique<net::ClusterClient>(std::move(addresses), options);
  }
  // The fixture only sends calls that are safe to repeat (Submit with its xid, queries).
  return cluster_client_->Call(method, payload, deadline_ms, /*idempotent=*/true);
}

Node& IntegrationTest::AddBank(const std::string& service, const std::string& accounts,
                               const std::string& coordinator) {
  auto node = std::make_unique<Node>();
  node->name = service;
  node->service = service;
  node->port = PickFreePort();
  node->address = LoopbackAddress(node->port);
  node->data_dir = tmp_->Sub(service + "-data");
  node->probe_account = FirstAccount(accounts);
  std::string coord = coordinator;
  if (coord.empty() && treatyd_ != nullptr) coord = CoordinatorList();
  auto bin = BinPath("bank-participant");
  node->argv = {bin.ok() ? *bin : BinDir() + "/bank-participant",
                "--service",
                service,
                "--listen",
                node->address,
                "--coordinator",
                coord,
                "--data-dir",
                node->data_dir,
                "--accounts",
                accounts};
  nodes_.push_back(std::move(node));
  return *nodes_.back();
}

std::vector<Node*> IntegrationTest::AddBanks(int n, uint64_t accounts, int64_t balance) {
  std::string list;
  for (uint64_t a = 0; a < accounts; ++a) {
    list += (a ? "," : "") + BankAccount(a) + "=" + std::to_string(balance);
  }
  std::vector<Node*> banks;
  for (int b = 0; b < n; ++b) {
    banks.push_back(&AddBank(std::string("bank-") + static_cast<char>('a' + b), list));
  }
  return banks;
}

Node& IntegrationTest::AddBankInstance(const std::string& service, const std::string& instance,
                                       const std::string& accounts, uint32_t weight) {
  Node& node = AddBank(service, accounts);
  node.name = instance;
  node.data_dir = tmp_->Sub(instance + "-data");
  for (size_t i = 0; i + 1 < node.argv.size(); ++i) {
    if (node.argv[i] == "--data-dir") node.argv[i + 1] = node.data_dir;
  }
  if (weight > 0) node.argv.insert(node.argv.end(), {"--weight", std::to_string(weight)});
  return node;
}

Node& IntegrationTest::AddOrderService(const std::string& service,
                                       const std::vector<std::string>& extra_args) {
  auto node = std::make_unique<Node>();
  node->name = service;
  node->service = service;
  node->order_service = true;
  node->port = PickFreePort();
  node->address = LoopbackAddress(node->port);
  node->data_dir = tmp_->Sub(service + "-data");
  auto bin = BinPath("order-participant");
  node->argv = {bin.ok() ? *bin : BinDir() + "/order-participant",
                "--service",
                service,
                "--listen",
                node->address,
                "--coordinator",
                treatyd_ != nullptr ? CoordinatorList() : "",
                "--data-dir",
                node->data_dir};
  node->argv.insert(node->argv.end(), extra_args.begin(), extra_args.end());
  nodes_.push_back(std::move(node));
  return *nodes_.back();
}

AssertionResult IntegrationTest::Start(Node& node) {
  if (::access(node.argv[0].c_str(), X_OK) != 0) {
    return AssertionFailure() << node.argv[0] << " is missing: build the treatyd, treaty and "
                              << "bank-participant targets first";
  }
  if (node.process && node.process->Running()) {
    return AssertionFailure() << node.name << " is already running";
  }
  auto spawned = Process::Spawn(node.argv, tmp_->Sub(node.name + ".log"));
  if (!spawned.ok()) return AssertionFailure() << spawned.status().ToString();
  node.process = std::move(spawned).value();
  Process& p = *node.process;
  const uint16_t port = node.port;
  bool up = WaitUntil(
      [&] {
        if (!p.Running()) return true;
        return WaitForPort(port, 0);
      },
      15000, 20);
  if (!p.Running()) {
    return AssertionFailure() << node.name << " exited during start-up:\n" << p.LogTail(40);
  }
  if (!up) {
    return AssertionFailure() << node.name << " did not open port " << port << " within 15 s:\n"
                              << p.LogTail(40);
  }
  return AssertionSuccess();
}

AssertionResult IntegrationTest::StartAll() {
  for (auto& node : nodes_) {
    if (node->process && node->process->Running()) continue;
    if (AssertionResult r = Start(*node); !r) return r;
  }
  for (auto& node : nodes_) {
    if (std::find(coordinators_.begin(), coordinators_.end(), node.get()) != coordinators_.end()) {
      continue;
    }
    if (node->order_service) {
      if (AssertionResult r = WaitInstanceLive(*node); !r) return r;
      continue;
    }
    if (AssertionResult r = WaitRegistered(*node); !r) return r;
    if (node->name == node->service) continue;
    if (AssertionResult r = WaitInstanceLive(*node); !r) return r;
  }
  return AssertionSuccess();
}

AssertionResult IntegrationTest::WaitRegistered(const Node& bank, int64_t timeout_ms) {
  v1::SubmitRequest probe;
  probe.set_wait(true);
  v1::Branch* b = probe.add_branches();
  const std::string& service = bank.service.empty() ? bank.name : bank.service;
  b->set_service(service);
  b->set_op("credit");
  b->set_payload(BranchPayload(bank.probe_account, 0));
  Status last;
  int attempt = 0;
  bool ok = WaitUntil(
      [&] {
        probe.set_xid("probe-" + bank.name + "-" + std::to_string(NowMs()) + "-" +
                      std::to_string(attempt++));
        auto r = Submit(probe, 3000);
        if (r.ok()) return true;
        last = r.status();
        return false;
      },
      timeout_ms, 100);
  if (ok) return AssertionSuccess();
  return AssertionFailure() << "treatyd did not accept transactions for " << bank.name << " within "
                            << timeout_ms << " ms; last error: " << last.ToString();
}

AssertionResult IntegrationTest::WaitInstanceLive(const Node& bank, int64_t timeout_ms) {
  const std::string& service = bank.service.empty() ? bank.name : bank.service;
  std::string last;
  bool live = WaitUntil(
      [&] {
        auto info = InstanceInfoOf(service, bank.address);
        if (info.ok() && info->live()) return true;
        last = info.ok() ? info->ShortDebugString() : info.status().ToString();
        return false;
      },
      timeout_ms, 100);
  if (live) return AssertionSuccess();
  return AssertionFailure() << "treatyd did not list " << bank.name << " (" << bank.address
                            << ") as a live instance of " << service << " within " << timeout_ms
                            << " ms; last seen: " << last;
}

Result<v1::SubmitResponse> IntegrationTest::Submit(const v1::SubmitRequest& request,
                                                   int64_t deadline_ms) {
  return net::Decode<v1::SubmitResponse>(
      CallCoordinator(methods::kSubmit, request.SerializeAsString(), deadline_ms));
}

Result<v1::Transaction> IntegrationTest::GetTransaction(const std::string& xid) {
  v1::GetTransactionRequest req;
  req.set_xid(xid);
  auto resp = net::Decode<v1::GetTransactionResponse>(
      CallCoordinator(methods::kGetTransaction, req.SerializeAsString(), kRpcDeadlineMs));
  if (!resp.ok()) return resp.status();
  return resp->transaction();
}

Result<v1::Transaction> IntegrationTest::WaitFinished(const std::string& xid, int64_t timeout_ms) {
  Result<v1::Transaction> last = Status::DeadlineExceeded("not queried yet");
  WaitUntil(
      [&] {
        last = GetTransaction(xid);
        return last.ok() && (last->state() == v1::COMMITTED || last->state() == v1::ABORTED);
      },
      timeout_ms, 100);
  return last;
}

Result<v1::ListServicesResponse> IntegrationTest::ListServices() {
  return net::Decode<v1::ListServicesResponse>(CallCoordinator(
      methods::kListServices, v1::ListServicesRequest().SerializeAsString(), kRpcDeadlineMs));
}

Result<v1::InstanceInfo> IntegrationTest::InstanceInfoOf(const std::string& service,
                                                         const std::string& address) {
  auto list = ListServices();
  if (!list.ok()) return list.status();
  for (const auto& s : list->services()) {
    if (s.name() != service) continue;
    for (const auto& i : s.instances()) {
      if (i.address() == address) return i;
    }
  }
  return Status::NotFound("treatyd lists no instance " + address + " of service " + service);
}

Result<std::map<std::string, int64_t>> IntegrationTest::Balances(const Node& bank) {
  auto resp = rpc_->Call(bank.address, kBankBalances, "", kRpcDeadlineMs);
  if (!resp.ok()) return resp.status().WithPrefix(bank.name + " " + kBankBalances);
  return ParseBalances(*resp);
}

Result<v1::InspectResponse> IntegrationTest::Inspect(const Node& bank, const std::string& xid) {
  v1::InspectRequest req;
  req.set_xid(xid);
  return net::Decode<v1::InspectResponse>(
      rpc_->Call(bank.address, methods::kInspect, req.SerializeAsString(), kRpcDeadlineMs));
}

Result<v1::BranchState> IntegrationTest::BranchStateAt(const Node& bank, const std::string& xid,
                                                       uint32_t branch_id) {
  auto resp = Inspect(bank, xid);
  if (!resp.ok()) return resp.status();
  for (const auto& b : resp->branches()) {
    if (b.branch_id() == branch_id) return b.state();
  }
  return v1::BRANCH_STATE_UNKNOWN;
}

AssertionResult IntegrationTest::SetFault(const Node& bank, const std::string& mode,
                                          int64_t delay_ms) {
  auto bin = BinPath("bank-participant");
  if (!bin.ok()) return AssertionFailure() << bin.status().ToString();
  std::vector<std::string> argv = {*bin, "fault", "--listen", bank.address, "--mode", mode};
  if (delay_ms >= 0) argv.insert(argv.end(), {"--delay-ms", std::to_string(delay_ms)});
  CommandResult r = RunCommand(argv, 10000);
  if (r.exit_code != 0 || r.out.find("\"mode\":\"" + mode + "\"") == std::string::npos) {
    return AssertionFailure() << "bank-participant fault --mode " << mode << " on " << bank.name
                              << " failed: " << r.Describe();
  }
  return AssertionSuccess();
}

CommandResult IntegrationTest::Treaty(const std::vector<std::string>& args, int64_t timeout_ms) {
  auto bin = BinPath("treaty");
  std::vector<std::string> argv = {bin.ok() ? *bin : BinDir() + "/treaty", "--coordinator",
                                   CoordinatorList()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout_ms);
}

std::string IntegrationTest::WriteTempFile(const std::string& name, const std::string& content) {
  std::string path = tmp_->Sub(name);
  EXPECT_TRUE(WriteFile(path, content).ok()) << "cannot write " << path;
  return path;
}

}  // namespace treaty::integ
