// Views: the queries over summaries and their indexes (Get, List, Changes, Attention). Each reads
// one RocksDB snapshot, so an answer never mixes two projection batches.

#include <fmt/format.h>

#include <algorithm>

#include "readmodel/fold.h"
#include "readmodel/keys.h"
#include "readmodel/views.h"

namespace treaty::readmodel::internal {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// A snapshot released on destruction, and read options that use it.
class Snapshot {
 public:
  explicit Snapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {
    options_.snapshot = snapshot_;
  }
  ~Snapshot() { db_->ReleaseSnapshot(snapshot_); }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions options_;
};

constexpr char kHex[] = "0123456789abcdef";

std::string ToHex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = -1, lo = -1;
    for (int d = 0; d < 16; ++d) {
      if (text[i] == kHex[d]) hi = d;
      if (text[i + 1] == kHex[d]) lo = d;
    }
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

bool HasService(const v1::TxSummary& s, std::string_view service) {
  return std::any_of(s.branches().begin(), s.branches().end(),
                     [&](const v1::BranchStatus& b) { return b.service() == service; });
}

bool Matches(const v1::TxFilter& filter, const v1::TxSummary& s) {
  if (filter.state() != v1::TX_STATE_UNSPECIFIED && s.state() != filter.state()) return false;
  if (!filter.mode().empty() && s.mode() != filter.mode()) return false;
  return filter.service().empty() || HasService(s, filter.service());
}

// Reads the summaries of xids (index hits) in one snapshot, in order.
Result<std::vector<v1::TxSummary>> Summaries(rocksdb::DB* db, const rocksdb::ReadOptions& read,
                                             const std::vector<std::string>& xids) {
  std::vector<v1::TxSummary> out;
  for (const std::string& xid : xids) {
    std::string bytes;
    const rocksdb::Status s = db->Get(read, SummaryKey(xid), &bytes);
    if (s.IsNotFound()) continue;  // cannot happen in a snapshot; tolerated
    if (!s.ok()) return FromRocks(s, "read a summary");
    v1::SummaryRecord rec;
    if (!ParseStored(bytes, &rec)) {
      return Status::Corruption(
          fmt::format("read model: the summary of xid={} is unparsable", xid));
    }
    out.push_back(std::move(*rec.mutable_summary()));
  }
  return out;
}

}  // namespace

Result<std::optional<v1::TxSummary>> Views::Get(std::string_view xid) const {
  Result<std::optional<v1::SummaryRecord>> rec = ReadRecord(rocksdb::ReadOptions(), xid);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return std::optional<v1::TxSummary>();
  return std::optional<v1::TxSummary>(std::move(*(*rec)->mutable_summary()));
}

Result<std::optional<v1::Transaction>> Views::GetTransaction(std::string_view xid,
                                                             const v1::Transaction* live) const {
  Snapshot snapshot(db_);
  Result<std::optional<v1::SummaryRecord>> rec = ReadRecord(snapshot.options(), xid);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return std::optional<v1::Transaction>();
  Result<std::optional<v1::Transaction>> saga = ReadSaga(snapshot.options(), *rec);
  if (!saga.ok()) return saga.status();
  return std::optional<v1::Transaction>(
      TransactionView((*rec)->summary(), saga->has_value() ? &**saga : nullptr, live));
}

Result<v1::ListTransactionsResponse> Views::List(const v1::ListTransactionsRequest& request) const {
  const v1::TxFilter& filter = request.filter();
  const size_t limit =
      request.limit() == 0 ? kDefaultListLimit : std::min<uint32_t>(request.limit(), kMaxListLimit);
  // The most selective index: service, else state, else everything by update time.
  std::string prefix;
  if (!filter.service().empty()) {
    prefix = ServicePrefix(filter.service());
  } else if (filter.state() != v1::TX_STATE_UNSPECIFIED) {
    prefix = StatePrefix(filter.state());
  } else {
    prefix = std::string(kUpdatedPrefix);
  }
  const std::string lower = prefix + BigEndian(filter.since_unix_ms());
  const std::string upper =
      filter.until_unix_ms() > 0 ? prefix + BigEndian(filter.until_unix_ms()) : PrefixEnd(prefix);

  Snapshot snapshot(db_);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot.options()));
  if (!request.page_token().empty()) {
    std::optional<std::string> token = FromHex(request.page_token());
    if (!token || token->compare(0, prefix.size(), prefix) != 0 ||
        token->size() < prefix.size() + 8) {
      return Status::InvalidArgument(
          "page_token does not belong to this filter; pass the next_page_token of a previous "
          "page with the same filter");
    }
    it->SeekForPrev(*token);
    if (it->Valid() && it->key().ToStringView() == *token) it->Prev();
  } else {
    it->SeekForPrev(upper);
    if (it->Valid() && it->key().compare(upper) >= 0) it->Prev();
  }

  std::vector<std::string> xids;
  std::string resume;  // index key to continue after (exclusive)
  size_t scanned = 0;
  auto in_range = [&] {
    return it->Valid() && it->key().starts_with(prefix) && it->key().compare(lower) >= 0;
  };
  for (; in_range(); it->Prev()) {
    if (xids.size() == limit || scanned == kMaxScanPerQuery) break;
    ++scanned;
    const std::string_view key = it->key().ToStringView();
    const std::string_view value = it->value().ToStringView();
    resume.assign(key);
    if (filter.state() != v1::TX_STATE_UNSPECIFIED && StateOfValue(value) != filter.state()) {
      continue;
    }
    if (!filter.mode().empty() && ModeOfValue(value) != filter.mode()) continue;
    xids.emplace_back(key.substr(prefix.size() + 8));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan an index");

  v1::ListTransactionsResponse response;
  if (in_range()) response.set_next_page_token(ToHex(resume));
  Result<std::vector<v1::TxSummary>> summaries = Summaries(db_, snapshot.options(), xids);
  if (!summaries.ok()) return summaries.status();
  for (v1::TxSummary& s : *summaries) *response.add_transactions() = std::move(s);
  Result<std::optional<std::string>> lsn = Read(snapshot.options(), kLsnKey);
  if (!lsn.ok()) return lsn.status();
  if (lsn->has_value() && (*lsn)->size() == 8) response.set_projected_lsn(ReadBigEndian(**lsn));
  return response;
}

Result<v1::WatchResponse> Views::Changes(const v1::TxFilter& filter, uint64_t after_lsn) const {
  Snapshot snapshot(db_);
  Result<std::optional<std::string>> lsn = Read(snapshot.options(), kLsnKey);
  if (!lsn.ok()) return lsn.status();
  const uint64_t projected = lsn->has_value() && (*lsn)->size() == 8 ? ReadBigEndian(**lsn) : 0;

  v1::WatchResponse response;
  uint64_t position = std::max(after_lsn, projected);
  if (after_lsn >= projected) {  // nothing newer (also keeps after_lsn + 1 from overflowing)
    response.set_lsn(position);
    return response;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot.options()));
  size_t scanned = 0;
  std::vector<std::string> xids;
  for (it->Seek(LsnIndexKey(after_lsn + 1, ""));
       it->Valid() && it->key().starts_with(ToSlice(kLsnIndexPrefix)); it->Next()) {
    if (scanned == kMaxScanPerQuery || xids.size() == kMaxWatchChanges) {
      break;  // position stays at the last key examined
    }
    ++scanned;
    std::optional<TimedKey> key = ParseTimedKey(it->key().ToStringView(), kLsnIndexPrefix.size());
    if (!key) continue;
    position = key->time;
    xids.emplace_back(key->xid);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan the lsn index");
  const bool exhausted = !it->Valid() || !it->key().starts_with(ToSlice(kLsnIndexPrefix));
  if (exhausted) position = std::max(after_lsn, projected);

  Result<std::vector<v1::TxSummary>> summaries = Summaries(db_, snapshot.options(), xids);
  if (!summaries.ok()) return summaries.status();
  for (v1::TxSummary& s : *summaries) {
    if (Matches(filter, s)) *response.add_changes() = std::move(s);
  }
  response.set_lsn(position);
  return response;
}

Result<v1::AttentionResponse> Views::Attention(int64_t now_unix_ms, int64_t stuck_after_ms,
                                               size_t limit) const {
  limit = std::min(limit, kMaxAttentionItems);
  Snapshot snapshot(db_);
  struct Hit {
    int64_t since_ms;  // when the condition began
    std::string kind;
    std::string xid;
  };
  std::vector<Hit> hits;
  size_t scanned = 0;
  // Oldest first within each state; a state's scan stops at the first entry too young.
  for (v1::TxState state : {v1::PREPARING, v1::COMMITTING, v1::ABORTING}) {
    const std::string prefix = StatePrefix(state);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot.options()));
    for (it->Seek(prefix);
         it->Valid() && it->key().starts_with(prefix) && scanned < kMaxScanPerQuery; it->Next()) {
      ++scanned;
      std::optional<TimedKey> key = ParseTimedKey(it->key().ToStringView(), prefix.size());
      if (!key) continue;
      const auto updated = static_cast<int64_t>(key->time);
      // Sagas need attention only when STUCK (the k/ scan below): a RUNNING saga has no prepare
      // timeout and a COMPENSATING one retries until it succeeds or becomes STUCK.
      const bool saga = ModeOfValue(it->value().ToStringView()) == kModeSaga;
      if (state != v1::PREPARING) {
        // The decision is the last event before END, so updated is the decision time.
        if (updated > now_unix_ms - stuck_after_ms) break;
        if (saga) continue;
        hits.push_back({updated, "stuck-in-delivery", std::string(key->xid)});
        continue;
      }
      if (updated >= now_unix_ms) break;
      if (saga) continue;
      Result<std::optional<v1::SummaryRecord>> rec = ReadRecord(snapshot.options(), key->xid);
      if (!rec.ok()) return rec.status();
      if (!rec->has_value()) continue;
      const v1::TxSummary& s = (*rec)->summary();
      const int64_t deadline = s.created_unix_ms() + s.prepare_timeout_ms();
      if (deadline < now_unix_ms) hits.push_back({deadline, "prepare-overdue", s.xid()});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan a state index");
  }
  {
    // STUCK sagas at once, whatever their age (an operator must resolve them).
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot.options()));
    const std::string prefix(kStuckPrefix);
    for (it->Seek(prefix);
         it->Valid() && it->key().starts_with(prefix) && scanned < kMaxScanPerQuery; it->Next()) {
      ++scanned;
      std::optional<TimedKey> key = ParseTimedKey(it->key().ToStringView(), prefix.size());
      if (!key) continue;
      hits.push_back({static_cast<int64_t>(key->time), "saga-stuck", std::string(key->xid)});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan the stuck sagas");
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.since_ms != b.since_ms ? a.since_ms < b.since_ms : a.xid < b.xid;
  });
  if (hits.size() > limit) hits.resize(limit);

  v1::AttentionResponse response;
  for (const Hit& hit : hits) {
    Result<std::optional<v1::SummaryRecord>> rec = ReadRecord(snapshot.options(), hit.xid);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) continue;
    v1::AttentionItem* item = response.add_items();
    *item->mutable_summary() = std::move(*(*rec)->mutable_summary());
    item->set_kind(hit.kind);
    item->set_overdue_ms(std::max<int64_t>(0, now_unix_ms - hit.since_ms));
  }
  return response;
}

}  // namespace treaty::readmodel::internal
