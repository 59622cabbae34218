// Sweeps of the deterministic simulation (tests/sim/world.h) over many seeds: a single node and a
// three-node cluster, each running 2PC transactions and sagas under faults.
//
// Replay one seed: TREATY_SIM_SEED=N (every sweep runs only seed N; a failing sweep prints the
// exact command). Longer or other runs: TREATY_SIM_SEEDS=K seeds per sweep, starting at
// TREATY_SIM_FIRST (default 1); TREATY_SIM_THREADS (default: the machine's cores);
// TREATY_SIM_DETAIL: how many failing seeds are detailed (default 3); TREATY_SIM_TRACE=1 with
// TREATY_SIM_SEED prints the run's events.
// A long run, e.g. ten million seeds of the cluster world:
//   TREATY_SIM_SEEDS=10000000 build/bin/sim_tests --gtest_filter='*Cluster*Faults*'
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/sim/world.h"

namespace treaty::sim {
namespace {

std::optional<uint64_t> EnvNumber(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  char* end = nullptr;
  const unsigned long long parsed = std::strtoull(value, &end, 10);
  if (*end != '\0') {
    ADD_FAILURE() << name << "=" << value << " is not a non-negative integer; ignored";
    return std::nullopt;
  }
  return parsed;
}

bool ReplayingOneSeed() { return EnvNumber("TREATY_SIM_SEED").has_value(); }

std::string TestName() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->test_suite_name()) + "." + info->name();
}

struct Sweep {
  WorldStats stats;
  uint64_t seeds = 0;
  std::map<uint64_t, std::vector<std::string>> failed;  // by seed
};

// Runs `default_count` seeds (or the environment's choice) on every core and reports the first
// failing seeds with their violations and a replay command, and the rate in seeds/s.
Sweep RunSweep(const WorldOptions& options, uint64_t default_count, bool expect_ok = true) {
  spdlog::set_level(spdlog::level::off);  // the drivers' logs would drown the report
  uint64_t first = EnvNumber("TREATY_SIM_FIRST").value_or(1);
  uint64_t count = EnvNumber("TREATY_SIM_SEEDS").value_or(default_count);
  if (auto seed = EnvNumber("TREATY_SIM_SEED")) {
    first = *seed;
    count = 1;
  }
  const uint64_t threads = std::max<uint64_t>(
      1,
      std::min<uint64_t>(count, EnvNumber("TREATY_SIM_THREADS")
                                    .value_or(std::max(1u, std::thread::hardware_concurrency()))));
  std::atomic<uint64_t> next{first};
  std::mutex mu;
  Sweep sweep;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      WorldStats stats;
      std::map<uint64_t, std::vector<std::string>> failed;
      WorldOptions run_options = options;
      run_options.trace = count == 1 && EnvNumber("TREATY_SIM_TRACE").value_or(0) != 0;
      for (uint64_t seed = next++; seed < first + count; seed = next++) {
        WorldResult result = World(seed, run_options).Run();
        stats += result.stats;
        if (!result.ok() && failed.size() < 100) failed[seed] = std::move(result.violations);
      }
      std::lock_guard lock(mu);
      sweep.stats += stats;
      sweep.failed.merge(failed);
    });
  }
  for (std::thread& w : workers) w.join();
  sweep.seeds = count;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string test_name = TestName();
  if (expect_ok) {
    const uint64_t detail = EnvNumber("TREATY_SIM_DETAIL").value_or(3);
    size_t detailed = 0;
    for (const auto& [seed, violations] : sweep.failed) {
      if (++detailed > detail) break;
      std::string lines;
      for (const std::string& v : violations) lines += "\n    " + v;
      ADD_FAILURE() << "seed " << seed << " violated invariants:" << lines
                    << "\n  replay: TREATY_SIM_SEED=" << seed
                    << " build/bin/sim_tests --gtest_filter=" << test_name;
    }
  }
  const WorldStats& s = sweep.stats;
  auto n = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf(
      "[  sim     ] %s: %llu seeds (%llu failed) in %.1f s = %.0f seeds/s on %llu threads; "
      "%llu events; 2PC %llu committed / %llu aborted; sagas %llu completed / %llu compensated "
      "/ %llu stuck; %llu resolves; %llu leader faults (%llu deposed kept running, %llu appends "
      "in flight), recovered %llu preparing / %llu decided / %llu sagas; %llu log failures; "
      "%llu dropped, %llu duplicated; %llu breaker refusals; %llu in-doubt queries; %llu barred "
      "actions, %llu null compensations; %llu client retries\n",
      test_name.c_str(), n(sweep.seeds), n(sweep.failed.size()), seconds,
      static_cast<double>(sweep.seeds) / std::max(seconds, 1e-9), n(threads), n(s.events),
      n(s.committed), n(s.aborted), n(s.completed), n(s.compensated), n(s.stuck), n(s.resolves),
      n(s.leader_faults), n(s.deposed_running), n(s.lost_in_flight), n(s.recovered_preparing),
      n(s.recovered_decided), n(s.recovered_sagas), n(s.log_failures), n(s.dropped_messages),
      n(s.duplicated_messages), n(s.breaker_refusals), n(s.in_doubt_queries), n(s.barred_actions),
      n(s.null_compensations), n(s.client_retries));
  if (expect_ok) {
    EXPECT_EQ(sweep.failed.size(), 0u) << sweep.failed.size() << " of " << sweep.seeds
                                       << " seeds failed (the first few are detailed above)";
  }
  return sweep;
}

WorldOptions Cluster() {
  WorldOptions o;
  o.nodes = 3;
  o.max_leader_faults = 3;
  return o;
}

// The CI run: 100,000 seeds of each world, plus 20,000 crowded cluster seeds (over 200,000 runs
// of Treaty's own coordinator code in all, about a minute on two cores).
TEST(SimTest, SingleNodeUnderNetworkDiskAndCrashFaults) {
  Sweep sweep = RunSweep(WorldOptions{}, 100000);
  if (ReplayingOneSeed()) return;
  const WorldStats& s = sweep.stats;
  EXPECT_GT(s.committed, 1000u) << "too few commits: the fault mix is too harsh";
  EXPECT_GT(s.aborted, 1000u);
  EXPECT_GT(s.completed, 1000u);
  EXPECT_GT(s.compensated, 1000u);
  EXPECT_GT(s.stuck, 50u) << "STUCK sagas (and their resolution) not exercised";
  EXPECT_GT(s.leader_faults, 1000u);
  EXPECT_GT(s.recovered_preparing, 100u);
  EXPECT_GT(s.recovered_decided, 100u);
  EXPECT_GT(s.log_failures, 100u);
  EXPECT_GT(s.breaker_refusals, 100u);
  EXPECT_GT(s.barred_actions, 10u);
  EXPECT_GT(s.null_compensations, 50u);
}

TEST(SimTest, ClusterUnderFailoversDeposedLeadersAndSkewedClocks) {
  Sweep sweep = RunSweep(Cluster(), 100000);
  if (ReplayingOneSeed()) return;
  const WorldStats& s = sweep.stats;
  EXPECT_GT(s.committed, 1000u);
  EXPECT_GT(s.aborted, 1000u);
  EXPECT_GT(s.compensated, 1000u);
  EXPECT_GT(s.deposed_running, 1000u) << "deposed leaders that keep running not exercised";
  EXPECT_GT(s.recovered_preparing, 1000u) << "resumed prepares not exercised";
  EXPECT_GT(s.in_doubt_queries, 1000u);
}

// Many transactions and sagas at once in the cluster, so that faults meet more of them in flight.
TEST(SimTest, CrowdedClusterUnderFailovers) {
  WorldOptions options = Cluster();
  options.transactions = 24;
  options.sagas = 12;
  options.max_leader_faults = 4;
  options.fault_phase_ms = 3000;
  Sweep sweep = RunSweep(options, 20000);
  if (ReplayingOneSeed()) return;
  EXPECT_GT(sweep.stats.deposed_running, 1000u);
  EXPECT_GT(sweep.stats.recovered_preparing, 10000u);
}

TEST(SimTest, SameSeedReplaysTheSameRun) {
  for (const WorldOptions& options : {WorldOptions{}, Cluster()}) {
    const WorldResult a = World(4242, options).Run();
    const WorldResult b = World(4242, options).Run();
    const WorldResult c = World(4243, options).Run();
    EXPECT_EQ(a.trace_hash, b.trace_hash) << "a seed must reproduce its run exactly";
    EXPECT_EQ(a.stats.events, b.stats.events);
    EXPECT_NE(a.trace_hash, c.trace_hash) << "different seeds should give different runs";
  }
}

TEST(SimTest, WithoutFaultsOrRefusalsEverythingCommitsAndCompletes) {
  WorldOptions options;
  options.drop_request = options.drop_response = options.duplicate_request = 0;
  options.slow_request = 0;
  options.max_leader_faults = 0;
  options.max_participant_outages = 0;
  options.log_failure = 0;
  options.operator_abort = 0;
  options.handlers = HandlerMix{0, 0, 0, 0, 0, 0, 0, 0};
  Sweep sweep = RunSweep(options, 200);
  EXPECT_EQ(sweep.stats.aborted, 0u);
  EXPECT_EQ(sweep.stats.compensated, 0u);
  EXPECT_EQ(sweep.stats.committed, sweep.seeds * static_cast<uint64_t>(options.transactions));
  EXPECT_EQ(sweep.stats.completed, sweep.seeds * static_cast<uint64_t>(options.sagas));
}

// Seeds at which the simulation found atomicity holes before they were fixed (each line: the
// seed, its world, what it showed). They must stay clean.
struct RecordedSeed {
  uint64_t seed;
  bool cluster;
  const char* shows;
};
constexpr RecordedSeed kRecordedSeeds[] = {
    // Sequence B: a paused leader resumes, its prepare deadline fires and it sends an unlogged
    // ABORT (and tells the client ABORTED) for a transfer the new leader committed.
    {79, true, "a deposed leader's unlogged ABORT of a committed transaction"},
    {104, true, "a deposed leader's unlogged ABORT of a committed transaction"},
    // Sequence A, as the client sees it: the leader decides ABORT (deadline) and replies before
    // the ABORT is durable; it is cut off; the next leader resumes the prepare and commits.
    {119, true, "the client was told ABORT but COMMIT became durable"},
    // The mark-compensated race: an operator marks a step compensated (undone by hand) while its
    // compensation is held back by an open breaker; the held compensation runs later: twice.
    {50906, false, "a step compensated by hand and then again by a held compensation"},
};

TEST(SimTest, RecordedSeedsOfFixedHolesStayClean) {
  for (const RecordedSeed& r : kRecordedSeeds) {
    WorldOptions options = r.cluster ? Cluster() : WorldOptions{};
    const WorldResult result = World(r.seed, options).Run();
    std::string lines;
    for (const std::string& v : result.violations) lines += "\n    " + v;
    EXPECT_TRUE(result.ok()) << "seed " << r.seed << " (" << r.shows << ") is back:" << lines;
  }
}

// The checker itself: a disk that loses synced writes on a crash must be caught.
TEST(SimTest, CheckerCatchesADiskThatLosesSyncedWrites) {
  if (ReplayingOneSeed()) GTEST_SKIP() << "self-test of the checker; not a replay target";
  WorldOptions options;
  options.lying_disk = true;
  options.max_leader_faults = 4;
  Sweep sweep = RunSweep(options, 300, /*expect_ok=*/false);
  EXPECT_GT(sweep.failed.size(), 0u) << "lost durable events went unnoticed";
}

}  // namespace
}  // namespace treaty::sim
