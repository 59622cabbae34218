// EventLog::Open on new, Treaty, foreign, locked and damaged directories; lazy detection of
// unparsable records.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "log/log.h"
#include "log_test_util.h"

namespace treaty::log {
namespace {

using testing::AppendAndWait;
using testing::Begun;
using testing::Decided;
using testing::Garbage;
using testing::LsnKey;
using testing::Options;
using testing::RawDb;
using testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::vector<std::string> FamiliesOf(const std::string& dir) {
  std::vector<std::string> families;
  rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &families).PermitUncheckedError();
  std::sort(families.begin(), families.end());
  return families;
}

// Creates a Treaty log in dir holding one transaction, "t1", in PREPARING.
void MakeLog(const std::string& dir) {
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE(AppendAndWait(**log, {Begun("t1")}).status.ok());
}

TEST(OpenTest, MissingDirectoryIsCreatedAndMarked) {
  TempDir tmp;
  const std::string dir = tmp.Sub("a/b/data");
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Result<std::optional<std::string>> schema = (*log)->GetMeta("schema");
  ASSERT_TRUE(schema.ok() && schema->has_value()) << "a new log must carry the schema marker";
  EXPECT_EQ(**schema, "treaty-log-v1");
}

TEST(OpenTest, EmptyExistingDirectoryIsAccepted) {
  TempDir tmp;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(tmp.path()));
  EXPECT_TRUE(log.ok()) << log.status().ToString();
}

TEST(OpenTest, ForeignRocksDbIsRefusedAndLeftUntouched) {
  TempDir tmp;
  const std::string dir = tmp.Sub("other-app");
  {
    RawDb raw(dir, {});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    ASSERT_EQ(raw.Put("default", "user/1", "alice"), "OK");
  }
  const std::vector<std::string> before = FamiliesOf(dir);
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_EQ(log.status().code(), StatusCode::kFailedPrecondition) << log.status().ToString();
  EXPECT_TRUE(Contains(log.status().message(), dir + " is not a Treaty data directory"))
      << log.status().message();
  EXPECT_TRUE(Contains(log.status().message(), "point --data-dir at an empty or Treaty directory"))
      << log.status().message();
  EXPECT_EQ(FamiliesOf(dir), before) << "a refused database must not get our column families";
}

TEST(OpenTest, DatabaseWithAnotherSchemaIsRefusedNamingIt) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  {
    RawDb raw(dir, {"meta"});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    ASSERT_EQ(raw.Put("meta", "schema", "treaty-log-v0"), "OK");
  }
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_EQ(log.status().code(), StatusCode::kFailedPrecondition) << log.status().ToString();
  EXPECT_TRUE(Contains(log.status().message(), "treaty-log-v0")) << log.status().message();
}

TEST(OpenTest, EmptyUnmarkedDatabaseWithOnlyTreatyFamiliesIsAdopted) {
  // What a crash between creating the database and writing its marker leaves behind.
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  {
    RawDb raw(dir, {"events", "txns", "outcomes", "meta"});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
  }
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Result<std::optional<std::string>> schema = (*log)->GetMeta("schema");
  ASSERT_TRUE(schema.ok() && schema->has_value()) << "an adopted database must get the marker";
}

TEST(OpenTest, DirectoryWithFilesButNoDatabaseIsRefused) {
  TempDir tmp;
  WriteFile(tmp.Sub("notes.txt"), "hello");
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(tmp.path()));
  ASSERT_EQ(log.status().code(), StatusCode::kFailedPrecondition) << log.status().ToString();
  EXPECT_TRUE(Contains(log.status().message(), "not a Treaty data directory"))
      << log.status().message();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()),
                          std::filesystem::directory_iterator()),
            1)
      << "nothing may be created in a refused directory";
}

TEST(OpenTest, PathThatIsAFileIsRefused) {
  TempDir tmp;
  WriteFile(tmp.Sub("file"), "x");
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(tmp.Sub("file")));
  EXPECT_EQ(log.status().code(), StatusCode::kFailedPrecondition) << log.status().ToString();
}

TEST(OpenTest, EmptyDirOptionIsInvalid) {
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(""));
  EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument) << log.status().ToString();
}

TEST(OpenTest, SecondOpenOfAnOpenLogIsUnavailableUntilTheFirstCloses) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  Result<std::unique_ptr<EventLog>> first = EventLog::Open(Options(dir));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<std::unique_ptr<EventLog>> second = EventLog::Open(Options(dir));
  ASSERT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
  EXPECT_TRUE(Contains(second.status().message(), "another treatyd may be using it"))
      << second.status().message();
  first->reset();
  Result<std::unique_ptr<EventLog>> third = EventLog::Open(Options(dir));
  EXPECT_TRUE(third.ok()) << "closing must release the lock: " << third.status().ToString();
}

TEST(OpenTest, DamagedCurrentFileIsCorruption) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  MakeLog(dir);
  WriteFile(dir + "/CURRENT", "MANIFEST-000001");  // no trailing newline
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  EXPECT_EQ(log.status().code(), StatusCode::kCorruption) << log.status().ToString();
}

TEST(OpenTest, UnparsableEventIsCorruptionNamingItsLsn) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  MakeLog(dir);
  {
    RawDb raw(dir, {});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    ASSERT_EQ(raw.Put("events", LsnKey(2), Garbage()), "OK");
  }
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << "records are checked when read, not on open: "
                        << log.status().ToString();
  EXPECT_EQ((*log)->last_lsn(), 2u);
  Result<std::vector<v1::LogRecord>> records = (*log)->Read(1, 10);
  ASSERT_EQ(records.status().code(), StatusCode::kCorruption) << records.status().ToString();
  EXPECT_TRUE(Contains(records.status().message(), "lsn=2")) << records.status().message();
  Result<std::vector<v1::LogRecord>> first = (*log)->Read(1, 1);
  EXPECT_TRUE(first.ok()) << "records before the damaged one stay readable";
}

TEST(OpenTest, UnparsableTxnRecordIsCorruptionNamingItsXid) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  MakeLog(dir);
  {
    RawDb raw(dir, {});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    ASSERT_EQ(raw.Put("txns", "t1", Garbage()), "OK");
  }
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Result<std::vector<v1::TxnRecord>> active = (*log)->LoadActive();
  ASSERT_EQ(active.status().code(), StatusCode::kCorruption) << active.status().ToString();
  EXPECT_TRUE(Contains(active.status().message(), "xid=t1")) << active.status().message();
  Result<std::optional<v1::TxnRecord>> found = (*log)->Find("t1");
  EXPECT_EQ(found.status().code(), StatusCode::kCorruption) << found.status().ToString();
  testing::Appended a = AppendAndWait(**log, {Decided("t1", v1::ABORT)});
  EXPECT_EQ(a.status.code(), StatusCode::kCorruption)
      << "an event for a damaged record must not be folded over it: " << a.status.ToString();
  EXPECT_TRUE(AppendAndWait(**log, {Begun("t2")}).status.ok()) << "other xids are unaffected";
}

TEST(OpenTest, ColumnFamiliesAddedByOthersAreKeptOpen) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  MakeLog(dir);
  {
    RawDb raw(dir, {"readmodel"});
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    ASSERT_EQ(raw.Put("readmodel", "view", "v"), "OK");
  }
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(Options(dir));
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->last_lsn(), 1u);
}

}  // namespace
}  // namespace treaty::log
