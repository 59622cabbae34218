#include "participant/barrier.h"

#include <gtest/gtest.h>

namespace treaty::participant {
namespace {

TEST(BarrierRecordTest, EncodeDecodeRoundTripsEveryField) {
  BarrierRecord rec;
  rec.state = v1::BRANCH_PREPARED;
  rec.vote = v1::YES;
  rec.prepared_unix_ms = 1'700'000'000'123;
  rec.op = "debit";
  rec.payload = std::string("{\"a\":1}\0binary", 14);
  rec.reason = "why";
  Result<BarrierRecord> back = DecodeBarrier(EncodeBarrier(rec));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->state, rec.state);
  EXPECT_EQ(back->vote, rec.vote);
  EXPECT_EQ(back->prepared_unix_ms, rec.prepared_unix_ms);
  EXPECT_EQ(back->op, rec.op);
  EXPECT_EQ(back->payload, rec.payload) << "payload bytes (with NUL) must survive";
  EXPECT_EQ(back->reason, rec.reason);
}

TEST(BarrierRecordTest, DamagedRecordsDecodeAsCorruption) {
  BarrierRecord rec;
  rec.state = v1::BRANCH_ABORTED;
  const std::string good = EncodeBarrier(rec);
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_EQ(DecodeBarrier(good.substr(0, len)).status().code(), StatusCode::kCorruption)
        << "a record truncated to " << len << " bytes must be refused";
  }
  std::string bad_version = good;
  bad_version[0] = 9;
  EXPECT_EQ(DecodeBarrier(bad_version).status().code(), StatusCode::kCorruption);
  std::string bad_state = good;
  bad_state[1] = 77;
  EXPECT_EQ(DecodeBarrier(bad_state).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeBarrier(good + "x").status().code(), StatusCode::kCorruption)
      << "trailing bytes must be refused";
}

TEST(BarrierKeyTest, KeyParsesBackAndSharesTheXidPrefix) {
  const std::string key = BarrierKey("tx-1", 258);
  std::string xid;
  uint32_t branch = 0;
  ASSERT_TRUE(ParseBarrierKey(key, &xid, &branch));
  EXPECT_EQ(xid, "tx-1");
  EXPECT_EQ(branch, 258u);
  EXPECT_EQ(key.rfind(BarrierPrefix("tx-1"), 0), 0u);
  EXPECT_NE(BarrierKey("tx-1", 0).rfind(BarrierPrefix("tx-10"), 0), 0u)
      << "the prefix of tx-10 must not match branches of tx-1";
  EXPECT_LT(BarrierKey("tx-1", 1), BarrierKey("tx-1", 256)) << "branches sort by number";
}

TEST(BarrierKeyTest, XidValidationRejectsEmptyLongAndNul) {
  EXPECT_TRUE(ValidateXid("tx-abc").ok());
  EXPECT_TRUE(ValidateXid(std::string(kMaxXidBytes, 'x')).ok());
  EXPECT_EQ(ValidateXid("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateXid(std::string(kMaxXidBytes + 1, 'x')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateXid(std::string("a\0b", 3)).code(), StatusCode::kInvalidArgument);
}

TEST(BarrierKeyTest, KeyWithAnXidLongerThanTheRequestLimitStillParses) {
  const std::string long_xid(kMaxXidBytes + 72, 'x');
  std::string xid;
  uint32_t branch = 0;
  ASSERT_TRUE(ParseBarrierKey(BarrierKey(long_xid, 7), &xid, &branch))
      << "records stored while a participant accepted 256-byte xids must stay readable";
  EXPECT_EQ(xid, long_xid);
  EXPECT_EQ(branch, 7u);
}

}  // namespace
}  // namespace treaty::participant
