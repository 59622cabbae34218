// Watch: immediate answers, wake-ups by the projector thread, timeouts, filters and bounds.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "readmodel/readmodel.h"
#include "readmodel_test_util.h"

namespace treaty::readmodel {
namespace {

using testing::Begun;
using testing::Decided;
using testing::Ended;
using testing::Fixture;

constexpr auto kWakeBudget = std::chrono::seconds(5);

// A Watch whose answer can be awaited.
struct PendingWatch {
  std::shared_ptr<std::promise<Result<v1::WatchResponse>>> promise =
      std::make_shared<std::promise<Result<v1::WatchResponse>>>();
  std::future<Result<v1::WatchResponse>> future = promise->get_future();

  WatchDone Done() {
    return [p = promise](Result<v1::WatchResponse> r) { p->set_value(std::move(r)); };
  }
  bool Answered(std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
    return future.wait_for(wait) == std::future_status::ready;
  }
};

v1::WatchRequest FromNow(uint32_t timeout_ms = 60'000) {
  v1::WatchRequest req;
  req.set_from_now(true);
  req.set_timeout_ms(timeout_ms);
  return req;
}

TEST(WatchTest, AnswersAtOnceWhenChangesAfterTheLsnExist) {
  Fixture f;
  const uint64_t first = f.Append(Begun("tx-1", f.clock.UnixMs(), {"svc-a"}));
  f.Append(Begun("tx-2", f.clock.UnixMs(), {"svc-b"}));
  f.Append(Decided("tx-1", f.clock.UnixMs(), v1::ABORT));
  ASSERT_TRUE(f.model->CatchUp().ok());

  PendingWatch w;
  v1::WatchRequest req;
  req.set_after_lsn(first);  // tx-1 changed again at lsn 3, tx-2 at lsn 2
  f.model->Watch(req, w.Done());
  ASSERT_TRUE(w.Answered()) << "changes exist: no need to wait";
  auto r = w.future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->changes_size(), 2);
  EXPECT_EQ(r->changes(0).xid(), "tx-2") << "in lsn order";
  EXPECT_EQ(r->changes(1).xid(), "tx-1");
  EXPECT_EQ(r->changes(1).state(), v1::ABORTING) << "the current summary, not the old one";
  EXPECT_EQ(r->lsn(), 3u);
}

TEST(WatchTest, ProjectorThreadWakesAWatcherWhenAMatchingChangeIsProjected) {
  Fixture f;
  f.model->Start();
  PendingWatch committed_only;
  v1::WatchRequest req = FromNow();
  req.mutable_filter()->set_state(v1::COMMITTED);
  f.model->Watch(req, committed_only.Done());
  PendingWatch any;
  f.model->Watch(FromNow(), any.Done());
  EXPECT_FALSE(any.Answered(std::chrono::milliseconds(50))) << "nothing happened yet";

  f.Append(Begun("tx-1", f.clock.UnixMs(), {"svc-a"}));
  ASSERT_TRUE(any.Answered(kWakeBudget)) << "the projector must answer once tx-1 is projected";
  auto r = any.future.get();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->changes_size(), 1);
  EXPECT_EQ(r->changes(0).xid(), "tx-1");
  EXPECT_FALSE(committed_only.Answered(std::chrono::milliseconds(100)))
      << "a PREPARING change does not match a COMMITTED filter";

  f.Append(Decided("tx-1", f.clock.UnixMs(), v1::COMMIT, {v1::YES}));
  f.Append(Ended("tx-1", f.clock.UnixMs()));
  ASSERT_TRUE(committed_only.Answered(kWakeBudget));
  r = committed_only.future.get();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->changes_size(), 1);
  EXPECT_EQ(r->changes(0).state(), v1::COMMITTED);
  EXPECT_EQ(r->lsn(), 3u);
}

TEST(WatchTest, TimesOutWithNoChangesAndTheCurrentPosition) {
  Fixture f;
  f.Append(Begun("tx-1", f.clock.UnixMs(), {"svc-a"}));
  f.model->Start();
  ASSERT_TRUE(testing::WaitFor([&] { return f.model->ProjectorState().projected_lsn() == 1; }));
  PendingWatch w;
  f.model->Watch(FromNow(1000), w.Done());
  EXPECT_FALSE(w.Answered(std::chrono::milliseconds(100)));
  f.clock.AdvanceMs(1001);
  ASSERT_TRUE(w.Answered(kWakeBudget)) << "the timeout follows the injected clock";
  auto r = w.future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->changes_size(), 0);
  EXPECT_EQ(r->lsn(), 1u) << "the next call continues from the current position";
}

TEST(WatchTest, BoundedNumberOfWatchersAndStopAnswersThePendingOnes) {
  ReadModelOptions options;
  options.max_watchers = 2;
  Fixture f(options);
  f.model->Start();
  PendingWatch a, b, c;
  f.model->Watch(FromNow(), a.Done());
  f.model->Watch(FromNow(), b.Done());
  f.model->Watch(FromNow(), c.Done());
  ASSERT_TRUE(c.Answered());
  EXPECT_EQ(c.future.get().status().code(), StatusCode::kResourceExhausted);
  f.model->Stop();
  ASSERT_TRUE(a.Answered() && b.Answered()) << "Stop must answer every pending watch";
  EXPECT_EQ(a.future.get().status().code(), StatusCode::kUnavailable);
  PendingWatch late;
  f.model->Watch(FromNow(), late.Done());
  ASSERT_TRUE(late.Answered());
  EXPECT_EQ(late.future.get().status().code(), StatusCode::kUnavailable);
}

TEST(WatchTest, RequestedRebuildRunsOnTheProjectorThreadAndReportsCounts) {
  Fixture f;
  f.Append(Begun("tx-1", f.clock.UnixMs(), {"svc-a"}));
  f.Append(Decided("tx-1", f.clock.UnixMs(), v1::ABORT));
  std::promise<Result<v1::RebuildReadModelResponse>> done;
  f.model->RequestRebuild([&](Result<v1::RebuildReadModelResponse> r) { done.set_value(r); });
  auto not_started = done.get_future().get();
  EXPECT_EQ(not_started.status().code(), StatusCode::kFailedPrecondition)
      << "without the projector thread nobody would run it";

  f.model->Start();
  std::promise<Result<v1::RebuildReadModelResponse>> done2;
  auto result = done2.get_future();
  f.model->RequestRebuild([&](Result<v1::RebuildReadModelResponse> r) { done2.set_value(r); });
  ASSERT_EQ(result.wait_for(kWakeBudget), std::future_status::ready);
  auto r = result.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->events(), 2u);
  EXPECT_EQ(r->projected_lsn(), 2u);
  EXPECT_EQ(f.model->ProjectorState().rebuilds_total(), 1u);
}

}  // namespace
}  // namespace treaty::readmodel
