#include "common/status.h"

#include <gtest/gtest.h>

#include "common/random.h"

namespace treaty {
namespace {

TEST(StatusTest, OkStatusPrintsOk) { EXPECT_EQ(Status::Ok().ToString(), "OK"); }

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = Status::Unavailable("connection refused");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.ToString(), "UNAVAILABLE: connection refused");
  EXPECT_EQ(s.WithPrefix("bank-a").ToString(), "UNAVAILABLE: bank-a: connection refused");
}

TEST(ResultTest, HoldsValueOrError) {
  Result<int> v = 7;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  Result<int> e = Status::NotFound("no such xid");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
}

TEST(RandomTest, SameSeedSameSequence) {
  SeededRandom a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Uniform(1000), b.Uniform(1000));
  EXPECT_EQ(NewXid(a).size(), 3u + 16u);
}

}  // namespace
}  // namespace treaty
