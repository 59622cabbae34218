// Helpers to move protobuf messages through the byte-oriented RPC API.
#pragma once

#include <string>

#include "common/status.h"

namespace treaty::net {

// Parses a response payload (or passes an error through). INTERNAL if the bytes do not parse.
template <typename Message>
Result<Message> Decode(const Result<std::string>& payload) {
  if (!payload.ok()) return payload.status();
  Message m;
  if (!m.ParseFromString(*payload)) {
    return Status::Internal("malformed " + m.GetTypeName() + " in response");
  }
  return m;
}

// Parses a request payload. INVALID_ARGUMENT if the bytes do not parse.
template <typename Message>
Result<Message> DecodeRequest(const std::string& payload) {
  Message m;
  if (!m.ParseFromString(payload)) {
    return Status::InvalidArgument("malformed " + m.GetTypeName() + " request");
  }
  return m;
}

}  // namespace treaty::net
