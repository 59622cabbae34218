// EventLog: appends, group commit, recovery after reopen, queries and meta.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::AppendAndWait;
using testing::AppendAsync;
using testing::Appended;
using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Options;
using testing::TempDir;
using testing::WriterHold;

std::unique_ptr<EventLog> OpenLog(const LogOptions& options) {
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
  EXPECT_TRUE(log.ok()) << "open " << options.dir << ": " << log.status().ToString();
  return log.ok() ? std::move(*log) : nullptr;
}

std::vector<uint64_t> LsnsOf(const std::vector<v1::LogRecord>& records) {
  std::vector<uint64_t> lsns;
  for (const v1::LogRecord& r : records) lsns.push_back(r.lsn());
  return lsns;
}

std::set<std::string> XidsOf(const std::vector<v1::TxnRecord>& records) {
  std::set<std::string> xids;
  for (const v1::TxnRecord& r : records) xids.insert(r.xid());
  return xids;
}

TEST(EventLogTest, LsnsAreDenseAndContinueAcrossReopen) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  {
    auto log = OpenLog(Options(dir));
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->last_lsn(), 0u) << "a new log is empty";
    Appended a = AppendAndWait(*log, {Begun("t1")});
    ASSERT_TRUE(a.status.ok()) << a.status.ToString();
    EXPECT_EQ(a.last_lsn, 1u);
    Appended b = AppendAndWait(*log, {Begun("t2"), Decided("t2", v1::COMMIT)});
    ASSERT_TRUE(b.status.ok()) << b.status.ToString();
    EXPECT_EQ(b.last_lsn, 3u) << "the callback reports the lsn of the Append's last event";
    EXPECT_EQ(log->last_lsn(), 3u);
  }
  auto log = OpenLog(Options(dir));
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_lsn(), 3u) << "the last lsn must be recovered on open";
  Appended c = AppendAndWait(*log, {Ended("t2")});
  ASSERT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_EQ(c.last_lsn, 4u) << "lsns continue after the recovered one";

  Result<std::vector<v1::LogRecord>> all = log->Read(0, 100);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(LsnsOf(*all), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ((*all)[0].event().xid(), "t1");
  EXPECT_TRUE((*all)[2].event().has_decided()) << "events keep their order within an Append";
  EXPECT_TRUE((*all)[3].event().has_ended());

  Result<std::vector<v1::LogRecord>> window = log->Read(2, 2);
  ASSERT_TRUE(window.ok()) << window.status().ToString();
  EXPECT_EQ(LsnsOf(*window), (std::vector<uint64_t>{2, 3})) << "Read(from, max) is a window";
}

TEST(EventLogTest, EndMovesTheRecordFromActiveToFinished) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, {Begun("t1"), Decided("t1", v1::COMMIT, "all yes")}).status.ok());
  Result<std::vector<v1::TxnRecord>> active = log->LoadActive();
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  EXPECT_EQ(XidsOf(*active), std::set<std::string>{"t1"});

  ASSERT_TRUE(AppendAndWait(*log, {Ended("t1")}).status.ok());
  active = log->LoadActive();
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  EXPECT_TRUE(active->empty()) << "a finished transaction must leave txns";
  Result<std::optional<v1::TxnRecord>> found = log->Find("t1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value()) << "a finished transaction must be found in outcomes";
  EXPECT_EQ((*found)->state(), v1::COMMITTED);
  EXPECT_EQ((*found)->reason(), "all yes");
  EXPECT_EQ((*found)->last_lsn(), 3u);
}

TEST(EventLogTest, LoadActiveAfterReopenListsExactlyTheUnfinished) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  {
    auto log = OpenLog(Options(dir));
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(AppendAndWait(*log, {Begun("preparing")}).status.ok());
    ASSERT_TRUE(
        AppendAndWait(*log, {Begun("committing"), Decided("committing", v1::COMMIT)}).status.ok());
    ASSERT_TRUE(
        AppendAndWait(*log, {Begun("aborting"), Decided("aborting", v1::ABORT)}).status.ok());
    ASSERT_TRUE(AppendAndWait(*log, {Begun("committed"), Decided("committed", v1::COMMIT),
                                     Ended("committed")})
                    .status.ok());
    ASSERT_TRUE(
        AppendAndWait(*log, {Decided("presumed", v1::ABORT), Ended("presumed")}).status.ok());
  }
  auto log = OpenLog(Options(dir));
  ASSERT_NE(log, nullptr);
  Result<std::vector<v1::TxnRecord>> active = log->LoadActive();
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  EXPECT_EQ(XidsOf(*active), (std::set<std::string>{"aborting", "committing", "preparing"}));
  for (const v1::TxnRecord& rec : *active) {
    if (rec.xid() == "committing") {
      EXPECT_EQ(rec.state(), v1::COMMITTING);
    }
    if (rec.xid() == "preparing") {
      EXPECT_EQ(rec.branches_size(), 2) << "branches must survive";
    }
  }
}

TEST(EventLogTest, FindSeesActiveAndFinishedAndNothingForUnknown) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, {Begun("active")}).status.ok());
  ASSERT_TRUE(AppendAndWait(*log, {Begun("done"), Decided("done", v1::ABORT, "NO"), Ended("done")})
                  .status.ok());

  Result<std::optional<v1::TxnRecord>> active = log->Find("active");
  ASSERT_TRUE(active.ok() && active->has_value()) << active.status().ToString();
  EXPECT_EQ((*active)->state(), v1::PREPARING);
  Result<std::optional<v1::TxnRecord>> done = log->Find("done");
  ASSERT_TRUE(done.ok() && done->has_value()) << done.status().ToString();
  EXPECT_EQ((*done)->state(), v1::ABORTED);
  Result<std::optional<v1::TxnRecord>> unknown = log->Find("never-logged");
  ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
  EXPECT_FALSE(unknown->has_value()) << "an unknown xid is nullopt, not an error";
}

TEST(EventLogTest, CommitAfterAbortIsRefusedAndWritesNothing) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, {Begun("t1"), Decided("t1", v1::ABORT, "timeout")}).status.ok());
  // The refused event comes second, so an Append that wrote partially would show t2.
  Appended refused = AppendAndWait(*log, {Begun("t2"), Decided("t1", v1::COMMIT)});
  EXPECT_EQ(refused.status.code(), StatusCode::kFailedPrecondition) << refused.status.ToString();
  EXPECT_NE(refused.status.message().find("already decided ABORT"), std::string::npos)
      << refused.status.message();
  EXPECT_EQ(log->last_lsn(), 2u) << "a refused Append consumes no lsn";

  Result<std::vector<v1::LogRecord>> events = log->Read(0, 100);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  EXPECT_EQ(events->size(), 2u) << "no event of the refused Append may be written";
  Result<std::optional<v1::TxnRecord>> t1 = log->Find("t1");
  ASSERT_TRUE(t1.ok() && t1->has_value());
  EXPECT_EQ((*t1)->state(), v1::ABORTING);
  Result<std::optional<v1::TxnRecord>> t2 = log->Find("t2");
  ASSERT_TRUE(t2.ok());
  EXPECT_FALSE(t2->has_value()) << "the refused Append's BEGIN must not be folded";
  EXPECT_EQ(AppendAndWait(*log, {Begun("t3")}).last_lsn, 3u) << "lsns stay dense after a refusal";
}

TEST(EventLogTest, RefusedAppendDoesNotDisturbTheOthersInItsBatch) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  std::future<Appended> first, refused, third;
  {
    WriterHold hold(*log, Begun("held"));
    first = AppendAsync(*log, {Begun("a")});
    refused = AppendAsync(*log, {Ended("unknown")});
    third = AppendAsync(*log, {Begun("a-again-is-fine-as-another-xid"), Decided("a", v1::COMMIT)});
  }
  const Appended a = first.get(), r = refused.get(), c = third.get();
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  EXPECT_EQ(a.last_lsn, 2u);
  EXPECT_EQ(r.status.code(), StatusCode::kFailedPrecondition) << r.status.ToString();
  EXPECT_EQ(r.last_lsn, 0u);
  ASSERT_TRUE(c.status.ok()) << "a decision may follow a BEGIN earlier in the same batch: "
                             << c.status.ToString();
  EXPECT_EQ(c.last_lsn, 4u) << "the refused Append must not leave a gap";
  EXPECT_EQ(log->Stats().batches, 2u) << "the three queued Appends should share one batch";
  Result<std::optional<v1::TxnRecord>> rec = log->Find("a");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->state(), v1::COMMITTING);
}

TEST(EventLogTest, QueuedAppendsShareBatchesBoundedByMaxEventsWithoutSplitting) {
  TempDir tmp;
  LogOptions options = Options(tmp.Sub("data"));
  options.max_batch_events = 4;
  auto log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  std::vector<std::future<Appended>> done;
  {
    WriterHold hold(*log, Begun("held"));
    // Expected batches after the held one: [3] [3,1] [5] (an Append bigger than the bound
    // goes alone, whole).
    for (size_t size : {3u, 3u, 1u, 5u}) {
      std::vector<v1::LogEvent> events;
      for (size_t i = 0; i < size; ++i)
        events.push_back(Begun("x" + std::to_string(done.size()) + "-" + std::to_string(i)));
      done.push_back(AppendAsync(*log, std::move(events)));
    }
  }
  std::vector<uint64_t> last;
  for (auto& f : done) {
    Appended a = f.get();
    ASSERT_TRUE(a.status.ok()) << a.status.ToString();
    last.push_back(a.last_lsn);
  }
  EXPECT_EQ(last, (std::vector<uint64_t>{4, 7, 8, 13})) << "lsns follow Append order, densely";
  const LogStats stats = log->Stats();
  EXPECT_EQ(stats.batches, 4u) << "held batch + [3] + [3,1] + [5]";
  EXPECT_EQ(stats.appends, 5u);
  EXPECT_EQ(stats.events, 13u);
}

TEST(EventLogTest, ConcurrentAppendsCompleteWithDistinctDenseLsnsThroughGroupCommit) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  std::mutex mu;
  std::vector<uint64_t> lsns;
  std::vector<std::string> errors;
  std::vector<std::vector<uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<Appended>> mine;
      for (int i = 0; i < kPerThread; ++i) {
        mine.push_back(
            AppendAsync(*log, {Begun("t" + std::to_string(t) + "-" + std::to_string(i))}));
      }
      for (auto& f : mine) {
        Appended a = f.get();
        per_thread[static_cast<size_t>(t)].push_back(a.last_lsn);
        std::lock_guard<std::mutex> lock(mu);
        if (!a.status.ok()) errors.push_back(a.status.ToString());
        lsns.push_back(a.last_lsn);
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(errors.empty()) << errors.size() << " appends failed, first: " << errors.front();
  std::sort(lsns.begin(), lsns.end());
  std::vector<uint64_t> expected(kThreads * kPerThread);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = i + 1;
  EXPECT_EQ(lsns, expected) << "every Append gets its own lsn, with no gaps";
  for (const auto& mine : per_thread) {
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()))
        << "one thread's Appends must get lsns in call order";
  }
  const LogStats stats = log->Stats();
  EXPECT_EQ(stats.appends, expected.size());
  EXPECT_EQ(stats.events, expected.size());
  EXPECT_LE(stats.batches, stats.appends);
  EXPECT_EQ(stats.syncs, stats.batches) << "each batch is exactly one synced write";
  EXPECT_GT(stats.sync_micros, 0u);
  std::printf("[ info     ] %zu appends in %llu batches\n", expected.size(),
              static_cast<unsigned long long>(stats.batches));
}

TEST(EventLogTest, WithoutGroupCommitEveryAppendIsItsOwnBatch) {
  TempDir tmp;
  LogOptions options = Options(tmp.Sub("data"));
  options.group_commit = false;
  auto log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  std::vector<std::future<Appended>> done;
  {
    WriterHold hold(*log, Begun("held"));
    for (int i = 0; i < 20; ++i)
      done.push_back(AppendAsync(*log, {Begun("x" + std::to_string(i))}));
  }
  for (auto& f : done) ASSERT_TRUE(f.get().status.ok());
  const LogStats stats = log->Stats();
  EXPECT_EQ(stats.appends, 21u);
  EXPECT_EQ(stats.batches, 21u) << "group_commit=false must not merge queued Appends";
  EXPECT_EQ(stats.syncs, 21u);
}

TEST(EventLogTest, UnsyncedLogCountsBatchesButNoSyncs) {
  TempDir tmp;
  LogOptions options = Options(tmp.Sub("data"));
  options.sync = false;
  auto log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, {Begun("t1")}).status.ok());
  EXPECT_EQ(log->Stats().batches, 1u);
  EXPECT_EQ(log->Stats().syncs, 0u);
}

TEST(EventLogTest, DestructorCompletesQueuedAppendsAndRefusesLaterOnes) {
  constexpr int kAppends = 300;
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  std::vector<std::future<Appended>> done;
  int accepted_probes = 0;
  {
    auto log = OpenLog(Options(dir));
    ASSERT_NE(log, nullptr);
    EventLog* raw = log.get();
    WriterHold hold(*log, Begun("held"));
    for (int i = 0; i < kAppends; ++i) {
      done.push_back(AppendAsync(*log, {Begun("x" + std::to_string(i))}));
    }
    // While the writer is held, appends queue up. This thread probes until an Append is refused
    // on the spot (shutdown has begun), and only then lets the writer go: so the destructor
    // below starts with everything still queued.
    std::thread releaser([raw, &hold, &accepted_probes] {
      for (;;) {
        auto refused = std::make_shared<std::atomic<bool>>(false);
        raw->Append({Begun("probe-" + std::to_string(accepted_probes))},
                    [refused](Status s, uint64_t) {
                      if (s.code() == StatusCode::kUnavailable) refused->store(true);
                    });
        if (refused->load()) break;
        ++accepted_probes;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      hold.Release();
    });
    log.reset();
    releaser.join();
  }
  for (auto& f : done) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "the destructor returned before completing a queued Append";
    Appended a = f.get();
    ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  }
  auto log = OpenLog(Options(dir));
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_lsn(), static_cast<uint64_t>(1 + kAppends + accepted_probes))
      << "every Append queued before shutdown must be durable";
}

TEST(EventLogTest, CallbackMayAppendTheNextEvent) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  std::promise<Appended> decided;
  EventLog* raw = log.get();
  log->Append({Begun("t1")}, [raw, &decided](Status s, uint64_t) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    raw->Append({Decided("t1", v1::ABORT)}, [&decided](Status s2, uint64_t lsn) {
      decided.set_value({s2, lsn});
    });
  });
  Appended a = decided.get_future().get();
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  EXPECT_EQ(a.last_lsn, 2u);
}

TEST(EventLogTest, InvalidAppendsAreRefused) {
  TempDir tmp;
  auto log = OpenLog(Options(tmp.Sub("data")));
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(AppendAndWait(*log, {}).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendAndWait(*log, {Begun("")}).status.code(), StatusCode::kInvalidArgument);
  v1::LogEvent nothing;
  nothing.set_xid("t1");
  EXPECT_EQ(AppendAndWait(*log, {nothing}).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log->last_lsn(), 0u);
  EXPECT_EQ(log->Stats().batches, 0u) << "nothing to write means no write";
  log->Append({Begun("no-callback")}, nullptr);  // allowed: nobody wants to know
}

TEST(EventLogTest, InjectedWriteFaultFailsTheWholeBatchAndLsnsStayDense) {
  TempDir tmp;
  LogOptions options = Options(tmp.Sub("data"));
  options.fail_every_n_batches = 2;
  auto log = OpenLog(options);
  ASSERT_NE(log, nullptr);
  std::future<Appended> a, b;
  {
    WriterHold hold(*log, Begun("held"));  // batch 1
    a = AppendAsync(*log, {Begun("a")});   // a and b form batch 2, which fails
    b = AppendAsync(*log, {Begun("b")});
  }
  const Appended ra = a.get(), rb = b.get();
  EXPECT_EQ(ra.status.code(), StatusCode::kUnavailable) << ra.status.ToString();
  EXPECT_EQ(rb.status.code(), StatusCode::kUnavailable) << rb.status.ToString();
  EXPECT_NE(ra.status.message().find("injected fault"), std::string::npos) << ra.status.message();
  EXPECT_EQ(log->last_lsn(), 1u) << "a failed write must not advance the lsn";

  Appended retry = AppendAndWait(*log, {Begun("a")});  // batch 3
  ASSERT_TRUE(retry.status.ok()) << "an injected fault must not poison the log: "
                                 << retry.status.ToString();
  EXPECT_EQ(retry.last_lsn, 2u);
  Result<std::optional<v1::TxnRecord>> b_rec = log->Find("b");
  ASSERT_TRUE(b_rec.ok());
  EXPECT_FALSE(b_rec->has_value()) << "nothing of the failed batch may be visible";
}

TEST(EventLogTest, FaultEnvironmentVariableTurnsOnTheFaultPoint) {
  TempDir tmp;
  ASSERT_EQ(setenv("TREATY_FAULT_LOG_FAIL_EVERY", "1", 1), 0);
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(tmp.Sub("data")));
  unsetenv("TREATY_FAULT_LOG_FAIL_EVERY");
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Appended a = AppendAndWait(**log, {Begun("t1")});
  EXPECT_EQ(a.status.code(), StatusCode::kUnavailable) << a.status.ToString();
}

TEST(EventLogTest, BadFaultEnvironmentVariableIsRefused) {
  TempDir tmp;
  ASSERT_EQ(setenv("TREATY_FAULT_LOG_FAIL_EVERY", "often", 1), 0);
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(tmp.Sub("data")));
  unsetenv("TREATY_FAULT_LOG_FAIL_EVERY");
  EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument) << log.status().ToString();
}

TEST(EventLogTest, MetaEntriesArePutReadAndScannedByPrefix) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  {
    auto log = OpenLog(Options(dir));
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->PutMeta("service/bank-a", "10.0.0.1:7001").ok());
    ASSERT_TRUE(log->PutMeta("service/bank-b", "10.0.0.2:7001").ok());
    ASSERT_TRUE(log->PutMeta("servicez", "not a service").ok());
    ASSERT_TRUE(log->PutMeta("applied", "17").ok());
  }
  auto log = OpenLog(Options(dir));
  ASSERT_NE(log, nullptr);
  Result<std::optional<std::string>> got = log->GetMeta("applied");
  ASSERT_TRUE(got.ok() && got->has_value()) << "PutMeta must be durable";
  EXPECT_EQ(**got, "17");
  Result<std::optional<std::string>> missing = log->GetMeta("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  Result<std::optional<std::string>> schema = log->GetMeta("schema");
  ASSERT_TRUE(schema.ok() && schema->has_value());
  EXPECT_EQ(**schema, "treaty-log-v1");

  auto services = log->ScanMeta("service/");
  ASSERT_TRUE(services.ok()) << services.status().ToString();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"service/bank-a", "10.0.0.1:7001"}, {"service/bank-b", "10.0.0.2:7001"}};
  EXPECT_EQ(*services, expected) << "only keys with the prefix, in key order";
}

}  // namespace
}  // namespace treaty::log
