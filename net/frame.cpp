#include "net/frame.h"

#include <algorithm>
#include <limits>

namespace treaty::net {

static_assert(static_cast<int>(StatusCode::kOk) == v1::CODE_OK);
static_assert(static_cast<int>(StatusCode::kInvalidArgument) == v1::CODE_INVALID_ARGUMENT);
static_assert(static_cast<int>(StatusCode::kNotFound) == v1::CODE_NOT_FOUND);
static_assert(static_cast<int>(StatusCode::kAlreadyExists) == v1::CODE_ALREADY_EXISTS);
static_assert(static_cast<int>(StatusCode::kFailedPrecondition) == v1::CODE_FAILED_PRECONDITION);
static_assert(static_cast<int>(StatusCode::kUnavailable) == v1::CODE_UNAVAILABLE);
static_assert(static_cast<int>(StatusCode::kDeadlineExceeded) == v1::CODE_DEADLINE_EXCEEDED);
static_assert(static_cast<int>(StatusCode::kResourceExhausted) == v1::CODE_RESOURCE_EXHAUSTED);
static_assert(static_cast<int>(StatusCode::kAborted) == v1::CODE_ABORTED);
static_assert(static_cast<int>(StatusCode::kCorruption) == v1::CODE_CORRUPTION);
static_assert(static_cast<int>(StatusCode::kInternal) == v1::CODE_INTERNAL);
static_assert(v1::Code_MAX == v1::CODE_INTERNAL,
              "a wire code was added: extend treaty::StatusCode");

void PutFrameHeader(size_t body_bytes, char* out) {
  const auto n = static_cast<uint32_t>(body_bytes);
  out[0] = static_cast<char>((n >> 24) & 0xff);
  out[1] = static_cast<char>((n >> 16) & 0xff);
  out[2] = static_cast<char>((n >> 8) & 0xff);
  out[3] = static_cast<char>(n & 0xff);
}

uint32_t GetFrameHeader(const char* in) {
  const auto* b = reinterpret_cast<const unsigned char*>(in);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

Status EncodeFrame(const v1::Envelope& envelope, size_t max_frame_bytes, std::string* frame) {
  const size_t body = envelope.ByteSizeLong();
  const size_t limit = std::min<size_t>(max_frame_bytes, std::numeric_limits<uint32_t>::max());
  if (body > limit) {
    return Status::InvalidArgument("frame of " + std::to_string(body) +
                                   " bytes exceeds the maximum frame size of " +
                                   std::to_string(limit) + " bytes");
  }
  frame->resize(kFrameHeaderBytes + body);
  PutFrameHeader(body, frame->data());
  if (!envelope.SerializeToArray(frame->data() + kFrameHeaderBytes, static_cast<int>(body))) {
    frame->clear();
    return Status::Internal("envelope failed to serialize");
  }
  return Status::Ok();
}

v1::Code ToWireCode(StatusCode code) { return static_cast<v1::Code>(static_cast<int>(code)); }

Status StatusFromEnvelope(const v1::Envelope& envelope) {
  const int code = envelope.code();
  if (code == v1::CODE_OK) return Status::Ok();
  if (code < 0 || code > v1::Code_MAX) {
    return Status::Internal("unknown status code " + std::to_string(code) + ": " +
                            envelope.message());
  }
  return Status(static_cast<StatusCode>(code), envelope.message());
}

}  // namespace treaty::net
