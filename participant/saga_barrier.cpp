#include "participant/saga_barrier.h"

#include "participant/barrier.h"
#include "treaty/v1/participant.pb.h"

namespace treaty::participant {
namespace {

constexpr uint8_t kFormatVersion = 1;
// xid terminator + step + kind.
constexpr size_t kKeySuffixBytes = 1 + 4 + 1;

void AppendU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t ReadU32(std::string_view bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

void AppendField(std::string* out, std::string_view field) {
  AppendU32(out, static_cast<uint32_t>(field.size()));
  out->append(field);
}

bool ReadField(std::string_view* in, std::string* field) {
  if (in->size() < 4) return false;
  const uint32_t n = ReadU32(*in);
  in->remove_prefix(4);
  if (in->size() < n) return false;
  field->assign(in->substr(0, n));
  in->remove_prefix(n);
  return true;
}

bool ValidState(int state, StepKind kind) {
  if (state == 0) return false;
  return kind == StepKind::kAction ? v1::StepActionState_IsValid(state)
                                   : v1::StepCompensationState_IsValid(state);
}

}  // namespace

std::string StepKey(std::string_view xid, uint32_t step, StepKind kind) {
  std::string key = BarrierPrefix(xid);
  AppendU32(&key, step);
  key.push_back(static_cast<char>(kind));
  return key;
}

bool ParseStepKey(std::string_view key, std::string* xid, uint32_t* step, StepKind* kind) {
  if (key.size() <= kKeySuffixBytes || key[key.size() - kKeySuffixBytes] != '\0') return false;
  const uint8_t k = static_cast<uint8_t>(key.back());
  if (k != static_cast<uint8_t>(StepKind::kAction) &&
      k != static_cast<uint8_t>(StepKind::kCompensation)) {
    return false;
  }
  xid->assign(key.substr(0, key.size() - kKeySuffixBytes));
  *step = ReadU32(key.substr(key.size() - 5, 4));
  *kind = static_cast<StepKind>(k);
  return XidFitsKey(*xid);
}

std::string EncodeStep(const StepRecord& record) {
  std::string out;
  out.reserve(2 + 8 + record.op.size() + record.reason.size());
  out.push_back(static_cast<char>(kFormatVersion));
  out.push_back(static_cast<char>(record.state));
  AppendField(&out, record.op);
  AppendField(&out, record.reason);
  return out;
}

Result<StepRecord> DecodeStep(std::string_view bytes, StepKind kind) {
  if (bytes.size() < 2) return Status::Corruption("saga step record truncated");
  if (static_cast<uint8_t>(bytes[0]) != kFormatVersion) {
    return Status::Corruption("saga step record has unknown format version " +
                              std::to_string(static_cast<uint8_t>(bytes[0])));
  }
  StepRecord record;
  record.state = static_cast<uint8_t>(bytes[1]);
  if (!ValidState(record.state, kind)) {
    return Status::Corruption("saga step record has invalid state " + std::to_string(record.state));
  }
  std::string_view rest = bytes.substr(2);
  if (!ReadField(&rest, &record.op) || !ReadField(&rest, &record.reason) || !rest.empty()) {
    return Status::Corruption("saga step record has malformed fields");
  }
  return record;
}

}  // namespace treaty::participant
