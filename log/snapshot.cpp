#include "log/snapshot.h"

#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <map>
#include <memory>

#include "log/event_log_impl.h"

namespace treaty::log::internal {

Result<std::string> EncodeSnapshot(const Store& store, uint64_t applied_index) {
  v1::RaftSnapshot snap;
  snap.set_applied_index(applied_index);
  for (rocksdb::ColumnFamilyHandle* family : store.state_families()) {
    v1::SnapshotFamily* out = snap.add_families();
    out->set_name(family->GetName());
    std::unique_ptr<rocksdb::Iterator> it(store.db()->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out->add_keys(it->key().ToString());
      out->add_values(it->value().ToString());
    }
    if (!it->status().ok()) return FromRocks(it->status(), "snapshot: cannot read the state");
  }
  std::string bytes;
  if (!snap.SerializeToString(&bytes)) return Status::Internal("snapshot too large to encode");
  spdlog::info("raft: snapshot at applied index {} ({} bytes)", applied_index, bytes.size());
  return bytes;
}

Result<uint64_t> RestoreSnapshot(const Store& store, const v1::RaftSnapshot& snap) {
  rocksdb::WriteBatch wb;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families;
  for (rocksdb::ColumnFamilyHandle* family : store.state_families()) {
    families.emplace(family->GetName(), family);
    std::unique_ptr<rocksdb::Iterator> it(store.db()->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (family == store.meta() && it->key().ToStringView() == kSchemaKey) continue;
      wb.Delete(family, it->key()).PermitUncheckedError();
    }
    if (!it->status().ok()) return FromRocks(it->status(), "restore: cannot read the state");
  }
  for (const v1::SnapshotFamily& f : snap.families()) {
    auto it = families.find(f.name());
    if (it == families.end() || f.keys_size() != f.values_size()) {
      return Status::Corruption(fmt::format("a Raft snapshot has a bad family \"{}\"", f.name()));
    }
    for (int i = 0; i < f.keys_size(); ++i) {
      wb.Put(it->second, f.keys(i), f.values(i)).PermitUncheckedError();
    }
  }
  wb.Put(store.meta(), std::string(kAppliedIndexKey), LsnKey(snap.applied_index()))
      .PermitUncheckedError();
  TREATY_RETURN_IF_ERROR(WriteSynced(store, &wb, "restore: cannot write the snapshot's state"));
  // The newest event is never purged, so the last events key is the log's last lsn.
  std::unique_ptr<rocksdb::Iterator> it(
      store.db()->NewIterator(rocksdb::ReadOptions(), store.events()));
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "restore: cannot read the events");
  return it->Valid() ? ParseLsnKey(it->key().ToStringView()).value_or(0) : uint64_t{0};
}

}  // namespace treaty::log::internal
