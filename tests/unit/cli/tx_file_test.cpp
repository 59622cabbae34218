#include "cli/tx_file.h"

#include <gtest/gtest.h>

#include "cli/commands.h"

namespace treaty::cli {
namespace {

TEST(TxFileTest, ParsesBranchesAndKeepsPayloadAsCompactJson) {
  auto req = ParseTwoPcJson(R"({"xid":"t1","branches":[
      {"service":"bank-a","op":"debit","payload":{"account":"alice","amount":30}},
      {"service":"bank-b","op":"credit","payload":{"account":"bob","amount":30}}]})");
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->xid(), "t1");
  ASSERT_EQ(req->branches_size(), 2);
  EXPECT_EQ(req->branches(0).service(), "bank-a");
  EXPECT_EQ(req->branches(0).op(), "debit");
  EXPECT_EQ(req->branches(0).payload(), R"({"account":"alice","amount":30})");
}

void ExpectInvalid(std::string_view json, std::string_view fragment) {
  auto req = ParseTwoPcJson(json);
  ASSERT_FALSE(req.ok()) << "accepted: " << json;
  EXPECT_EQ(req.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(req.status().message().find(fragment), std::string::npos)
      << "message '" << req.status().message() << "' should mention '" << fragment << "'";
}

TEST(TxFileTest, MalformedJsonIsRejectedWithPosition) {
  ExpectInvalid(R"({"branches": [)", "malformed JSON");
}

TEST(TxFileTest, UnknownFieldsAreRejected) {
  ExpectInvalid(R"({"branches":[{"service":"a","op":"x"}],"bogus":1})", "unknown field 'bogus'");
  ExpectInvalid(R"({"branches":[{"service":"a","op":"x","amount":3}]})",
                "unknown field 'amount' in branch 1");
}

TEST(TxFileTest, EmptyOrMissingBranchesAreRejected) {
  ExpectInvalid(R"({"branches":[]})", "empty");
  ExpectInvalid(R"({})", "branches");
  ExpectInvalid(R"([1,2])", "JSON object");
}

TEST(TxFileTest, TooManyBranchesAreRejected) {
  std::string json = R"({"branches":[)";
  for (size_t i = 0; i <= kMaxBranches; ++i) {
    if (i) json += ",";
    json += R"({"service":"s","op":"o"})";
  }
  json += "]}";
  ExpectInvalid(json, "too many branches");
}

TEST(TxFileTest, BranchNeedsServiceAndOp) {
  ExpectInvalid(R"({"branches":[{"op":"x"}]})", "\"service\"");
  ExpectInvalid(R"({"branches":[{"service":"a","op":""}]})", "\"op\"");
}

TEST(TxFileTest, MissingFileIsAClearError) {
  auto req = LoadTwoPcFile("/nonexistent/tx.json");
  ASSERT_FALSE(req.ok());
  EXPECT_NE(req.status().message().find("cannot open"), std::string::npos);
}

TEST(CommandsTest, ExitCodesFollowStatus) {
  EXPECT_EQ(ExitCodeFor(Status::Unavailable("x")), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(Status::DeadlineExceeded("x")), kExitUnknown);
  EXPECT_EQ(ExitCodeFor(Status::NotFound("x")), kExitRejected);
  EXPECT_EQ(ExitCodeFor(Status::ResourceExhausted("x")), kExitBusy);
}

}  // namespace
}  // namespace treaty::cli
