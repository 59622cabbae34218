#include "participant/barrier.h"

namespace treaty::participant {
namespace {

constexpr uint8_t kFormatVersion = 1;
// version + state + vote + prepared_unix_ms.
constexpr size_t kFixedBytes = 3 + 8;

void AppendU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void AppendU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

uint64_t ReadBigEndian(std::string_view bytes, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

void AppendField(std::string* out, std::string_view field) {
  AppendU32(out, static_cast<uint32_t>(field.size()));
  out->append(field);
}

// Reads one length-prefixed field from the front of *in. False if truncated.
bool ReadField(std::string_view* in, std::string* field) {
  if (in->size() < 4) return false;
  const uint64_t n = ReadBigEndian(*in, 4);
  in->remove_prefix(4);
  if (in->size() < n) return false;
  field->assign(in->substr(0, n));
  in->remove_prefix(n);
  return true;
}

}  // namespace

Status ValidateXid(std::string_view xid) {
  if (xid.empty()) return Status::InvalidArgument("xid is empty");
  if (xid.size() > kMaxXidBytes) {
    return Status::InvalidArgument("xid is longer than " + std::to_string(kMaxXidBytes) + " bytes");
  }
  if (xid.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("xid contains a NUL byte");
  }
  return Status::Ok();
}

bool XidFitsKey(std::string_view xid) {
  return !xid.empty() && xid.find('\0') == std::string_view::npos;
}

std::string BarrierPrefix(std::string_view xid) {
  std::string key(xid);
  key.push_back('\0');
  return key;
}

std::string BarrierKey(std::string_view xid, uint32_t branch_id) {
  std::string key = BarrierPrefix(xid);
  AppendU32(&key, branch_id);
  return key;
}

bool ParseBarrierKey(std::string_view key, std::string* xid, uint32_t* branch_id) {
  if (key.size() < 6 || key[key.size() - 5] != '\0') return false;
  xid->assign(key.substr(0, key.size() - 5));
  *branch_id = static_cast<uint32_t>(ReadBigEndian(key.substr(key.size() - 4), 4));
  return XidFitsKey(*xid);
}

std::string EncodeBarrier(const BarrierRecord& record) {
  std::string out;
  out.reserve(kFixedBytes + 12 + record.op.size() + record.payload.size() + record.reason.size());
  out.push_back(static_cast<char>(kFormatVersion));
  out.push_back(static_cast<char>(record.state));
  out.push_back(static_cast<char>(record.vote));
  AppendU64(&out, static_cast<uint64_t>(record.prepared_unix_ms));
  AppendField(&out, record.op);
  AppendField(&out, record.payload);
  AppendField(&out, record.reason);
  return out;
}

Result<BarrierRecord> DecodeBarrier(std::string_view bytes) {
  if (bytes.size() < kFixedBytes) return Status::Corruption("barrier record truncated");
  if (static_cast<uint8_t>(bytes[0]) != kFormatVersion) {
    return Status::Corruption("barrier record has unknown format version " +
                              std::to_string(static_cast<uint8_t>(bytes[0])));
  }
  const int state = static_cast<uint8_t>(bytes[1]);
  const int vote = static_cast<uint8_t>(bytes[2]);
  if (!v1::BranchState_IsValid(state) || state == v1::BRANCH_STATE_UNKNOWN) {
    return Status::Corruption("barrier record has invalid state " + std::to_string(state));
  }
  if (!v1::Vote_IsValid(vote)) {
    return Status::Corruption("barrier record has invalid vote " + std::to_string(vote));
  }
  BarrierRecord record;
  record.state = static_cast<v1::BranchState>(state);
  record.vote = static_cast<v1::Vote>(vote);
  record.prepared_unix_ms = static_cast<int64_t>(ReadBigEndian(bytes.substr(3), 8));
  std::string_view rest = bytes.substr(kFixedBytes);
  if (!ReadField(&rest, &record.op) || !ReadField(&rest, &record.payload) ||
      !ReadField(&rest, &record.reason) || !rest.empty()) {
    return Status::Corruption("barrier record has malformed fields");
  }
  return record;
}

const char* BranchStateName(v1::BranchState state) {
  switch (state) {
    case v1::BRANCH_PREPARED:
      return "PREPARED";
    case v1::BRANCH_COMMITTED:
      return "COMMITTED";
    case v1::BRANCH_ABORTED:
      return "ABORTED";
    case v1::BRANCH_READ_ONLY:
      return "READ_ONLY";
    default:
      return "UNKNOWN";
  }
}

}  // namespace treaty::participant
