// treatyd's cluster surface on a single node: the ClusterStatus RPC, /readyz, and the cluster
// flags' validation. (Multi-node tests need the Raft log.)
#include <string>
#include <vector>

#include "net/proto_codec.h"
#include "tests/integration/cluster.h"
#include "treaty/v1/methods.h"

namespace treaty::integ {
namespace {

class ClusterStatusTest : public IntegrationTest {};

TEST_F(ClusterStatusTest, SingleNodeReportsRoleSingleAndIsReady) {
  AddTreatyd();
  ASSERT_TRUE(StartAll());

  auto status = net::Decode<v1::ClusterStatusResponse>(
      rpc().Call(treatyd().address, v1::methods::kClusterStatus,
                 v1::ClusterStatusRequest().SerializeAsString(), kRpcDeadlineMs));
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->role(), "single");
  EXPECT_TRUE(status->serving());
  EXPECT_EQ(status->node_id(), 0u);
  EXPECT_EQ(status->nodes_size(), 0);
  EXPECT_EQ(status->leader_id(), 0u);

  auto ready = HttpGet(treatyd().admin_port, "/readyz", 5000);
  ASSERT_TRUE(ready.ok()) << ready.status().ToString();
  EXPECT_EQ(ready->status, 200) << ready->body;
  auto metrics = HttpGet(treatyd().admin_port, "/metrics", 5000);
  ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
  EXPECT_EQ(metrics->body.find("treaty_raft_"), std::string::npos)
      << "a single node reports no Raft gauges";
}

TEST_F(ClusterStatusTest, BadClusterFlagsExitWithUsageError) {
  auto bin = BinPath("treatyd");
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  const std::string data = tmp().Sub("bad-flags");
  const std::vector<std::vector<std::string>> cases = {
      {"--node-id", "1", "--peers", "1=127.0.0.1:9101"},  // no --raft
      {"--node-id", "2", "--raft", "127.0.0.1:9101", "--peers", "1=127.0.0.1:9101"},
      {"--node-id", "1", "--raft", "127.0.0.1:9101", "--peers", "1=127.0.0.1:9101,1=h:2"},
  };
  for (const auto& extra : cases) {
    std::vector<std::string> argv = {*bin, "--data-dir", data};
    argv.insert(argv.end(), extra.begin(), extra.end());
    CommandResult r = RunCommand(argv, 10000);
    EXPECT_EQ(r.exit_code, 2) << r.Describe();
    EXPECT_NE(r.err.find("treatyd:"), std::string::npos) << r.Describe();
  }
}

}  // namespace
}  // namespace treaty::integ
