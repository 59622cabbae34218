// Bulkhead limits and the RAII permit (resilience/bulkhead.h).
#include "resilience/bulkhead.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace treaty::resilience {
namespace {

TEST(BulkheadTest, AdmitsUpToLimitThenRejectsAndCounts) {
  Bulkhead bulkhead(3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bulkhead.TryAcquire()) << "slot " << i;
  EXPECT_FALSE(bulkhead.TryAcquire()) << "a 4th call must be refused with 3 in flight";
  EXPECT_FALSE(bulkhead.TryAcquire());
  EXPECT_EQ(bulkhead.in_flight(), 3u);
  EXPECT_EQ(bulkhead.rejected(), 2u);
}

TEST(BulkheadTest, ReleaseFreesASlot) {
  Bulkhead bulkhead(1);
  ASSERT_TRUE(bulkhead.TryAcquire());
  ASSERT_FALSE(bulkhead.TryAcquire());
  bulkhead.Release();
  EXPECT_EQ(bulkhead.in_flight(), 0u);
  EXPECT_TRUE(bulkhead.TryAcquire()) << "the released slot is free again";
}

TEST(BulkheadTest, DefaultLimitIsNamedConstant) {
  Bulkhead bulkhead;
  EXPECT_EQ(bulkhead.max_in_flight(), kDefaultMaxInFlight);
}

TEST(BulkheadTest, ZeroLimitRefusesEverything) {
  Bulkhead bulkhead(0);
  EXPECT_FALSE(bulkhead.TryAcquire());
  EXPECT_FALSE(bulkhead.TryAcquirePermit());
  EXPECT_EQ(bulkhead.rejected(), 2u);
}

TEST(BulkheadTest, PermitReleasesItsSlotOnDestruction) {
  Bulkhead bulkhead(2);
  {
    Bulkhead::Permit a = bulkhead.TryAcquirePermit();
    Bulkhead::Permit b = bulkhead.TryAcquirePermit();
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    Bulkhead::Permit c = bulkhead.TryAcquirePermit();
    EXPECT_FALSE(c) << "no slot is left: the permit must be empty";
    EXPECT_EQ(bulkhead.in_flight(), 2u);
  }
  EXPECT_EQ(bulkhead.in_flight(), 0u) << "destroyed permits must give their slots back";
  EXPECT_EQ(bulkhead.rejected(), 1u);
}

TEST(BulkheadTest, MovedPermitReleasesExactlyOnce) {
  Bulkhead bulkhead(2);
  ASSERT_TRUE(bulkhead.TryAcquire());  // a slot held outside any permit
  {
    Bulkhead::Permit a = bulkhead.TryAcquirePermit();
    Bulkhead::Permit moved(std::move(a));
    EXPECT_FALSE(a) << "a moved-from permit holds nothing";  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(moved);
    std::vector<Bulkhead::Permit> held;
    held.push_back(std::move(moved));
    EXPECT_EQ(bulkhead.in_flight(), 2u);
  }
  EXPECT_EQ(bulkhead.in_flight(), 1u) << "the moved permit released twice or not at all";
}

TEST(BulkheadTest, MoveAssignReleasesTheOverwrittenSlot) {
  Bulkhead bulkhead(2);
  Bulkhead::Permit a = bulkhead.TryAcquirePermit();
  Bulkhead::Permit b = bulkhead.TryAcquirePermit();
  ASSERT_EQ(bulkhead.in_flight(), 2u);
  a = std::move(b);
  EXPECT_EQ(bulkhead.in_flight(), 1u) << "a's old slot must be released when a is overwritten";
  a.Release();
  EXPECT_EQ(bulkhead.in_flight(), 0u);
  a.Release();  // already released: no-op
  EXPECT_EQ(bulkhead.in_flight(), 0u);
}

}  // namespace
}  // namespace treaty::resilience
