// Bad input from users and from the network: rejected with a clear message, and nothing stops
// serving because of it.
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

namespace treaty::integ {
namespace {

// CLI exit codes (cli/): 1 bad file / other error, 5 rejected by the coordinator, 6 coordinator
// unreachable.
constexpr int kExitOtherError = 1;
constexpr int kExitRejected = 5;
constexpr int kExitUnreachable = 6;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool Mentions(const CommandResult& r, const std::string& word) {
  return Lower(r.out + r.err).find(Lower(word)) != std::string::npos;
}

class BadInputTest : public IntegrationTest {
 protected:
  void StartCluster() {
    AddTreatyd();
    bank_a_ = &AddBank("bank-a", "alice=100");
    bank_b_ = &AddBank("bank-b", "bob=50");
    ASSERT_TRUE(StartAll());
  }

  // A transfer still commits end to end (treatyd and both banks serve).
  void ExpectTransferCommits(const std::string& xid) {
    auto resp = Submit(TransferRequest(xid, {"bank-a", "alice", "bank-b", "bob", 1}, true));
    ASSERT_TRUE(resp.ok()) << "treatyd stopped serving: " << resp.status().ToString();
    EXPECT_TRUE(IsCommitState(resp->state())) << resp->DebugString();
  }

  Node* bank_a_ = nullptr;
  Node* bank_b_ = nullptr;
};

struct BadFileCase {
  std::string name;
  std::string content;
  std::vector<int> allowed_exit_codes;
  std::string expected_word;  // the message must mention it (case-insensitive)
};

TEST_F(BadInputTest, CliRejectsBadTransactionFilesWithClearMessages) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const std::string good_branch =
      R"({"service":"bank-a","op":"debit","payload":{"account":"alice","amount":1}})";
  const std::vector<BadFileCase> cases = {
      {"malformed JSON", R"({"branches": [)", {kExitOtherError}, "json"},
      {"unknown field",
       R"({"branches":[)" + good_branch + R"(],"bogus_field":1})",
       {kExitOtherError},
       "bogus_field"},
      {"empty branch list", R"({"branches":[]})", {kExitOtherError, kExitRejected}, "branch"},
      {"unknown service",
       R"({"branches":[{"service":"no-such-bank","op":"credit",)"
       R"("payload":{"account":"x","amount":1}}]})",
       {kExitRejected},
       "no-such-bank"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string file = WriteTempFile("bad-" + std::to_string(n++) + ".json", c.content);
    CommandResult r = Treaty({"submit", "2pc", "-f", file, "--wait"});
    EXPECT_NE(std::find(c.allowed_exit_codes.begin(), c.allowed_exit_codes.end(), r.exit_code),
              c.allowed_exit_codes.end())
        << "unexpected exit code for " << c.name << "\n"
        << r.Describe();
    EXPECT_TRUE(Mentions(r, c.expected_word))
        << "the message for " << c.name << " should mention '" << c.expected_word << "'\n"
        << r.Describe();
  }
  CommandResult missing = Treaty({"submit", "2pc", "-f", tmp().Sub("does-not-exist.json")});
  EXPECT_EQ(missing.exit_code, kExitOtherError) << missing.Describe();
  EXPECT_TRUE(Mentions(missing, "does-not-exist.json")) << missing.Describe();

  ASSERT_TRUE(treatyd().process->Running()) << "treatyd died on bad input";
  ExpectTransferCommits("tx-after-bad-files");
}

TEST_F(BadInputTest, CliReportsAnUnreachableCoordinator) {
  auto bin = BinPath("treaty");
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  std::string file =
      WriteTempFile("t.json", TransferFileJson({"bank-a", "alice", "bank-b", "bob", 1}));
  const std::string nobody = LoopbackAddress(PickFreePort());  // nothing listens there
  CommandResult r =
      RunCommand({*bin, "--coordinator", nobody, "submit", "2pc", "-f", file, "--wait"}, 30000);
  EXPECT_EQ(r.exit_code, kExitUnreachable) << r.Describe();
  EXPECT_TRUE(Mentions(r, nobody)) << "the message should name the address\n" << r.Describe();
}

TEST_F(BadInputTest, EmptyBranchListIsRejectedOverRpc) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  v1::SubmitRequest empty;
  empty.set_xid("tx-empty");
  empty.set_wait(true);
  auto resp = Submit(empty);
  ASSERT_FALSE(resp.ok()) << "a transaction without branches was accepted: " << resp->DebugString();
  EXPECT_EQ(resp.status().code(), StatusCode::kInvalidArgument) << resp.status().ToString();
  ExpectTransferCommits("tx-after-empty");
}

TEST_F(BadInputTest, GarbageAndOversizedFramesCloseTheConnectionButServersKeepServing) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  struct Garbage {
    std::string name;
    std::string bytes;
  };
  const std::vector<Garbage> garbage = {
      // "GET " read as a length is ~1.2 GB, far above the 4 MiB frame limit.
      {"an HTTP request", "GET / HTTP/1.1\r\nHost: treaty\r\n\r\n"},
      {"an oversized length prefix", std::string("\x7f\xff\xff\xff", 4) + "payload"},
      {"a frame that is not an Envelope",
       std::string("\x00\x00\x00\x08", 4) + std::string(8, '\xff')},
  };
  for (const Node* node : std::vector<const Node*>{&treatyd(), bank_b_}) {
    for (const auto& g : garbage) {
      SCOPED_TRACE(node->name + " <- " + g.name);
      EXPECT_TRUE(SendRawAndExpectClose(node->port, g.bytes, 3000))
          << node->name << " did not close the connection after " << g.name;
    }
  }
  EXPECT_TRUE(treatyd().process->Running()) << "treatyd died on garbage input";
  EXPECT_TRUE(bank_b_->process->Running()) << "bank-b died on garbage input";
  ExpectTransferCommits("tx-after-garbage");
  auto inspect = Inspect(*bank_b_, "tx-after-garbage");
  ASSERT_TRUE(inspect.ok()) << "bank-b stopped serving: " << inspect.status().ToString();
}

// treatyd started on data_dir must exit non-zero and name the directory.
void ExpectTreatydRefuses(const std::string& data_dir, const std::string& what) {
  auto bin = BinPath("treatyd");
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  CommandResult r = RunCommand(
      {*bin, "--data-dir", data_dir, "--listen", LoopbackAddress(PickFreePort())}, 15000);
  EXPECT_FALSE(r.timed_out) << "treatyd kept running on " << what << "\n" << r.Describe();
  EXPECT_NE(r.exit_code, 0) << "treatyd accepted " << what << "\n" << r.Describe();
  EXPECT_LT(r.exit_code, 128) << "treatyd crashed on " << what << " instead of exiting\n"
                              << r.Describe();
  EXPECT_TRUE(Mentions(r, data_dir)) << "treatyd's message should name the directory\n"
                                     << r.Describe();
}

TEST_F(BadInputTest, TreatydRefusesADatabaseThatIsNotATreatyLog) {
  const std::string dir = tmp().Sub("foreign-rocksdb");
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "someone-else", "data").ok());
  ASSERT_TRUE(db->Close().ok());
  db.reset();
  ExpectTreatydRefuses(dir, "a foreign RocksDB database");
}

TEST_F(BadInputTest, TreatydRefusesAGarbageDataDir) {
  const std::string dir = tmp().Sub("garbage-dir");
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteFile(dir + "/CURRENT", "MANIFEST-000042\n").ok());
  ASSERT_TRUE(WriteFile(dir + "/MANIFEST-000042", std::string(4096, '\x5a')).ok());
  ASSERT_TRUE(WriteFile(dir + "/IDENTITY", "not-a-treaty-log").ok());
  ExpectTreatydRefuses(dir, "a directory of garbage files");

  const std::string file = tmp().Sub("a-plain-file");
  ASSERT_TRUE(WriteFile(file, "hello").ok());
  ExpectTreatydRefuses(file, "a data dir that is a regular file");
}

}  // namespace
}  // namespace treaty::integ
