#include "participant/saga_barrier.h"

#include <gtest/gtest.h>

#include "participant/barrier.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant {
namespace {

TEST(StepRecordTest, EncodeDecodeRoundTripsEveryField) {
  StepRecord rec;
  rec.state = v1::STEP_ACTION_REFUSED;
  rec.op = "charge";
  rec.reason = std::string("over\0limit", 10);
  Result<StepRecord> back = DecodeStep(EncodeStep(rec), StepKind::kAction);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->state, rec.state);
  EXPECT_EQ(back->op, rec.op);
  EXPECT_EQ(back->reason, rec.reason) << "reason bytes (with NUL) must survive";
}

TEST(StepRecordTest, DamagedOrMisplacedRecordsDecodeAsCorruption) {
  StepRecord rec;
  rec.state = v1::STEP_COMPENSATION_SKIPPED;
  rec.op = "refund";
  const std::string good = EncodeStep(rec);
  ASSERT_TRUE(DecodeStep(good, StepKind::kCompensation).ok());
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_EQ(DecodeStep(good.substr(0, len), StepKind::kCompensation).status().code(),
              StatusCode::kCorruption)
        << "a record truncated to " << len << " bytes must be refused";
  }
  EXPECT_EQ(DecodeStep(good, StepKind::kAction).status().code(), StatusCode::kCorruption)
      << "state 3 is no action state";
  std::string bad_version = good;
  bad_version[0] = 7;
  EXPECT_EQ(DecodeStep(bad_version, StepKind::kCompensation).status().code(),
            StatusCode::kCorruption);
  std::string zero_state = good;
  zero_state[1] = 0;
  EXPECT_EQ(DecodeStep(zero_state, StepKind::kCompensation).status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(DecodeStep(good + "x", StepKind::kCompensation).status().code(),
            StatusCode::kCorruption);
}

TEST(StepKeyTest, KeyParsesBackSortsByStepThenKindAndSharesTheXidPrefix) {
  const std::string key = StepKey("tx-1", 258, StepKind::kCompensation);
  std::string xid;
  uint32_t step = 0;
  StepKind kind = StepKind::kAction;
  ASSERT_TRUE(ParseStepKey(key, &xid, &step, &kind));
  EXPECT_EQ(xid, "tx-1");
  EXPECT_EQ(step, 258u);
  EXPECT_EQ(kind, StepKind::kCompensation);
  EXPECT_EQ(key.rfind(BarrierPrefix("tx-1"), 0), 0u);
  EXPECT_NE(StepKey("tx-1", 0, StepKind::kAction).rfind(BarrierPrefix("tx-10"), 0), 0u);
  EXPECT_LT(StepKey("tx-1", 1, StepKind::kAction), StepKey("tx-1", 1, StepKind::kCompensation));
  EXPECT_LT(StepKey("tx-1", 1, StepKind::kCompensation), StepKey("tx-1", 256, StepKind::kAction));
  EXPECT_FALSE(ParseStepKey(BarrierKey("tx-1", 3), &xid, &step, &kind))
      << "a 2PC barrier key is no step key";
  std::string bad_kind = key;
  bad_kind.back() = 9;
  EXPECT_FALSE(ParseStepKey(bad_kind, &xid, &step, &kind));
}

}  // namespace
}  // namespace treaty::participant
