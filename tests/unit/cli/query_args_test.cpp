// Argument parsing of the read-model commands (treaty tx list / tx watch).

#include <gtest/gtest.h>

#include "cli/query_commands.h"

namespace treaty::cli {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

TEST(QueryArgsTest, DurationsNeedAUnit) {
  EXPECT_EQ(*ParseDurationArg("500ms"), 500);
  EXPECT_EQ(*ParseDurationArg("90s"), 90'000);
  EXPECT_EQ(*ParseDurationArg("10m"), 600'000);
  EXPECT_EQ(*ParseDurationArg("2h"), 7'200'000);
  EXPECT_EQ(*ParseDurationArg("7d"), 604'800'000);
  for (const char* bad : {"", "10", "m", "-5m", "10 m", "1.5h", "10x", "99999999999999999999d"}) {
    EXPECT_EQ(ParseDurationArg(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(QueryArgsTest, TimesAreRfc3339RelativeNowOrUnixMs) {
  EXPECT_EQ(*ParseTimeArg("1970-01-01T00:00:01Z", kNow), 1000);
  EXPECT_EQ(*ParseTimeArg("2026-01-02T15:04:05.25Z", kNow), 1'767'366'245'250);
  EXPECT_EQ(*ParseTimeArg("2026-01-02T17:04:05+02:00", kNow), 1'767'366'245'000)
      << "an offset east of UTC is subtracted";
  EXPECT_EQ(*ParseTimeArg("10m", kNow), kNow - 600'000) << "a duration means that long ago";
  EXPECT_EQ(*ParseTimeArg("now", kNow), kNow);
  EXPECT_EQ(*ParseTimeArg("1700000000000", kNow), 1'700'000'000'000);
  for (const char* bad : {"yesterday", "2026-13-01T00:00:00Z", "2026-01-02T15:04:05",
                          "2026-01-02 15:04:05Z", "2026-01-02T15:04:05.Z"}) {
    EXPECT_EQ(ParseTimeArg(bad, kNow).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(QueryArgsTest, StatesAreCaseInsensitiveNames) {
  EXPECT_EQ(*ParseStateArg("committed"), v1::COMMITTED);
  EXPECT_EQ(*ParseStateArg("ABORTING"), v1::ABORTING);
  EXPECT_EQ(ParseStateArg("done").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStateArg("tx_state_unspecified").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treaty::cli
