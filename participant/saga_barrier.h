// Saga barrier records: what a participant recorded for the action and the compensation of each
// saga step, kept in the "saga" column family. Shared with tests/sim/ through barrier_rules.h, so
// it includes no RocksDB.
//
// Key:   xid + '\0' + step (4 bytes, big-endian) + kind (1 byte: 1 action, 2 compensation), so
//        every record of an xid shares the prefix xid + '\0' and sorts by (step, kind).
// Value: version byte (1), state byte (v1::StepActionState for an action record,
//        v1::StepCompensationState for a compensation record), then op and reason, each as a
//        4-byte big-endian length followed by the bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treaty::participant {

enum class StepKind : uint8_t { kAction = 1, kCompensation = 2 };

struct StepRecord {
  // A v1::StepActionState (kAction) or v1::StepCompensationState (kCompensation) value, never 0.
  int state = 0;
  // The action or compensation name the record was written for.
  std::string op;
  // The refusal reason of a refused action.
  std::string reason;
};

std::string StepKey(std::string_view xid, uint32_t step, StepKind kind);
// Splits a step key. False if key is not one.
bool ParseStepKey(std::string_view key, std::string* xid, uint32_t* step, StepKind* kind);

// REQUIRES: record.state is valid for kind.
std::string EncodeStep(const StepRecord& record);
// CORRUPTION if bytes are not a step record of kind of a known version.
Result<StepRecord> DecodeStep(std::string_view bytes, StepKind kind);

}  // namespace treaty::participant
