// common/text.h: integers, durations and RFC 3339 times as people type them.
#include "common/text.h"

#include <gtest/gtest.h>

namespace treaty {
namespace {

TEST(TextTest, ParseInt64TakesTheWholeTextOnly) {
  EXPECT_EQ(ParseInt64("42"), 42);
  EXPECT_EQ(ParseInt64("-7"), -7);
  for (const char* bad : {"", "-", "4x", " 4", "99999999999999999999"}) {
    EXPECT_FALSE(ParseInt64(bad).has_value()) << bad;
  }
}

TEST(TextTest, DurationsNeedAUnitUnlessBareNumbersAreMilliseconds) {
  EXPECT_EQ(*ParseDurationMs("90s", false), 90'000);
  EXPECT_EQ(*ParseDurationMs("7d", false), 604'800'000);
  EXPECT_FALSE(ParseDurationMs("250", false).ok());
  EXPECT_EQ(*ParseDurationMs("250", true), 250);
  EXPECT_EQ(*ParseDurationMs("0", true), 0);
  for (const char* bad : {"", "s", "-5s", "5w", "9999999999999999999d", "1.5h"}) {
    auto r = ParseDurationMs(bad, true);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("examples"), std::string::npos) << r.status().message();
  }
}

TEST(TextTest, Rfc3339TimesWithFractionsAndOffsets) {
  EXPECT_EQ(ParseRfc3339Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339Ms("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(ParseRfc3339Ms("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(ParseRfc3339Ms("2026-01-02T15:04:05.123Z"), 1767366245123);
  for (const char* bad : {"", "2026-01-02", "2026-13-02T00:00:00Z", "2026-01-02T00:00:00",
                          "2026-01-02T00:00:00+0100", "2026-01-02T00:00:00.Z"}) {
    EXPECT_FALSE(ParseRfc3339Ms(bad).has_value()) << bad;
  }
}

TEST(TextTest, DurationsAreFormattedInTheLargestExactUnit) {
  EXPECT_EQ(FormatDurationMs(0), "0");
  EXPECT_EQ(FormatDurationMs(30 * 86'400'000LL), "30d");
  EXPECT_EQ(FormatDurationMs(36 * 3'600'000LL), "36h");
  EXPECT_EQ(FormatDurationMs(90'000), "90s");
  EXPECT_EQ(FormatDurationMs(1500), "1500ms");
  for (int64_t ms : {int64_t{1}, int64_t{61'000}, int64_t{7} * 86'400'000}) {
    EXPECT_EQ(*ParseDurationMs(FormatDurationMs(ms), false), ms) << ms;
  }
}

TEST(TextTest, Rfc3339FormattingRoundTrips) {
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(1767366245123), "2026-01-02T15:04:05.123Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(ParseRfc3339Ms(FormatRfc3339Ms(1767366245007)), 1767366245007);
}

}  // namespace
}  // namespace treaty
