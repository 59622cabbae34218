#include "log/store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>
#include <filesystem>
#include <system_error>

namespace treaty::log::internal {
namespace {

namespace fs = std::filesystem;

// Discards RocksDB's info log, so that probing a directory that may not be ours writes no LOG file
// into it.
class SilentLogger final : public rocksdb::Logger {
 public:
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel /*level*/, const char* /*format*/,
            va_list /*ap*/) override {}
};

// Column families of a Treaty log, in the order Store::Open opens them (default first).
const std::vector<std::string>& TreatyFamilies() {
  static const std::vector<std::string> kFamilies = {
      rocksdb::kDefaultColumnFamilyName, std::string(kEventsFamily), std::string(kTxnsFamily),
      std::string(kOutcomesFamily),      std::string(kMetaFamily),   std::string(kXidsFamily)};
  return kFamilies;
}

bool IsTreatyFamily(const std::string& name) {
  const auto& families = TreatyFamilies();
  return std::find(families.begin(), families.end(), name) != families.end();
}

Status NotTreaty(const std::string& dir, std::string_view why) {
  return Status::FailedPrecondition(
      fmt::format("{} is not a Treaty data directory ({}); point --data-dir at an empty or Treaty "
                  "directory",
                  dir, why));
}

Status OpenError(const std::string& dir, const rocksdb::Status& status) {
  if (status.IsCorruption()) {
    return Status::Corruption(fmt::format(
        "{}: RocksDB reports corruption: {}; restore the data directory from a replica or backup",
        dir, status.ToString()));
  }
  const std::string text = status.ToString();
  if (status.IsIOError() && text.find("lock") != std::string::npos) {
    return Status::Unavailable(fmt::format(
        "{} is locked: another treatyd may be using it; stop it or choose another --data-dir ({})",
        dir, text));
  }
  return Status::Unavailable(fmt::format("cannot open the log in {}: {}", dir, text));
}

// What a read-only look at an existing database found.
enum class Marker {
  kPresent,    // the schema marker is there and right
  kAdoptable,  // no marker, only Treaty's column families, all empty
};

Result<Marker> Classify(rocksdb::DB* db, const std::string& dir,
                        const std::vector<std::string>& families,
                        const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  const auto meta = std::find(families.begin(), families.end(), kMetaFamily);
  if (meta != families.end()) {
    std::string value;
    const rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), handles[static_cast<size_t>(meta - families.begin())],
                rocksdb::Slice(kSchemaKey.data(), kSchemaKey.size()), &value);
    if (s.ok()) {
      if (value == kSchemaValue) return Marker::kPresent;
      return NotTreaty(
          dir, fmt::format("its schema marker is \"{}\", expected \"{}\"", value, kSchemaValue));
    }
    if (!s.IsNotFound()) return FromRocks(s, fmt::format("cannot read the schema of {}", dir));
  }
  constexpr std::string_view kForeign =
      "it holds a RocksDB database without a Treaty schema marker";
  for (const std::string& name : families) {
    if (!IsTreatyFamily(name)) return NotTreaty(dir, kForeign);
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handle));
    it->SeekToFirst();
    if (!it->status().ok()) return FromRocks(it->status(), fmt::format("cannot read {}", dir));
    if (it->Valid()) return NotTreaty(dir, kForeign);
  }
  return Marker::kAdoptable;
}

// Opens the existing database in dir read-only (no lock, no files written) and classifies it.
Result<Marker> Probe(const std::string& dir, const std::vector<std::string>& families) {
  rocksdb::DBOptions options;
  options.info_log = std::make_shared<SilentLogger>();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, dir, descriptors, &handles, &db);
  if (!s.ok()) return OpenError(dir, s);
  Result<Marker> marker = Classify(db, dir, families, handles);
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db->Close().PermitUncheckedError();  // read-only: nothing to flush
  delete db;
  return marker;
}

}  // namespace

std::string LsnKey(uint64_t lsn) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[static_cast<size_t>(i)] = static_cast<char>(lsn & 0xff);
    lsn >>= 8;
  }
  return key;
}

std::optional<uint64_t> ParseLsnKey(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  uint64_t lsn = 0;
  for (char c : key) lsn = (lsn << 8) | static_cast<unsigned char>(c);
  return lsn;
}

Status FromRocks(const rocksdb::Status& status, std::string_view context) {
  const std::string message = fmt::format("{}: {}", context, status.ToString());
  if (status.IsCorruption()) return Status::Corruption(message);
  return Status::Unavailable(message);
}

Status WriteSynced(const Store& store, rocksdb::WriteBatch* wb, std::string_view what) {
  if (wb->Count() == 0) return Status::Ok();
  rocksdb::WriteOptions sync;
  sync.sync = true;
  const rocksdb::Status s = store.db()->Write(sync, wb);
  if (!s.ok()) return FromRocks(s, fmt::format("{} in {}", what, store.dir()));
  return Status::Ok();
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  if (dir.empty()) return Status::InvalidArgument("the log needs a directory (--data-dir)");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Status::Unavailable(fmt::format("cannot inspect {}: {}", dir, ec.message()));
  }
  bool has_db = false;
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) return NotTreaty(dir, "it is not a directory");
    has_db = fs::exists(fs::path(dir) / "CURRENT", ec);
    if (ec) return Status::Unavailable(fmt::format("cannot inspect {}: {}", dir, ec.message()));
    if (!has_db) {
      const bool empty = fs::is_empty(dir, ec);
      if (ec) return Status::Unavailable(fmt::format("cannot list {}: {}", dir, ec.message()));
      if (!empty) return NotTreaty(dir, "it holds files but no RocksDB database");
    }
  } else if (fs::create_directories(dir, ec); ec) {
    return Status::Unavailable(fmt::format("cannot create {}: {}", dir, ec.message()));
  }

  std::vector<std::string> families = TreatyFamilies();
  bool write_marker = !has_db;
  if (has_db) {
    std::vector<std::string> existing;
    const rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &existing);
    if (!s.ok()) return OpenError(dir, s);
    Result<Marker> marker = Probe(dir, existing);
    if (!marker.ok()) return marker.status();
    write_marker = *marker == Marker::kAdoptable;
    // Column families someone else added (e.g. a read model) must be opened too.
    for (const std::string& name : existing) {
      if (!IsTreatyFamily(name)) families.push_back(name);
    }
  }

  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.keep_log_file_num = 4;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::unique_ptr<Store> store(new Store(dir));
  const rocksdb::Status s =
      rocksdb::DB::Open(options, dir, descriptors, &store->handles_, &store->db_);
  if (!s.ok()) return OpenError(dir, s);
  store->events_ = store->handles_[1];
  store->txns_ = store->handles_[2];
  store->outcomes_ = store->handles_[3];
  store->meta_ = store->handles_[4];
  store->xids_ = store->handles_[5];

  if (write_marker) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    const rocksdb::Status put =
        store->db_->Put(sync, store->meta_, rocksdb::Slice(kSchemaKey.data(), kSchemaKey.size()),
                        rocksdb::Slice(kSchemaValue.data(), kSchemaValue.size()));
    if (!put.ok()) {
      return FromRocks(put, fmt::format("cannot write the schema marker into {}", dir));
    }
  }
  if (has_db && write_marker) {
    spdlog::warn(
        "log: {} held an empty database without a schema marker (an interrupted first "
        "start?); marked it as a Treaty log",
        dir);
  }
  return store;
}

Store::~Store() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    const rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
    if (!s.ok()) spdlog::warn("log: {}: closing a column family: {}", dir_, s.ToString());
  }
  const rocksdb::Status s = db_->Close();
  if (!s.ok()) spdlog::warn("log: {}: close: {}", dir_, s.ToString());
  delete db_;
}

}  // namespace treaty::log::internal
