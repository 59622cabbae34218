// Private to net/: frame encoding and the Status <-> wire code mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "treaty/v1/envelope.pb.h"

namespace treaty::net {

// Bytes of the big-endian length prefix in front of every Envelope.
inline constexpr size_t kFrameHeaderBytes = 4;

// Writes the length prefix of a body of body_bytes. REQUIRES: body_bytes <= UINT32_MAX.
void PutFrameHeader(size_t body_bytes, char* out);

// Reads a length prefix. REQUIRES: in points at kFrameHeaderBytes readable bytes.
uint32_t GetFrameHeader(const char* in);

// Serializes envelope as one frame (prefix + body) into *frame. INVALID_ARGUMENT (naming both
// sizes) if the body would exceed max_frame_bytes; *frame is left unchanged then.
Status EncodeFrame(const v1::Envelope& envelope, size_t max_frame_bytes, std::string* frame);

// The wire code for a status code (the numbering is the same on both sides).
v1::Code ToWireCode(StatusCode code);

// The Status a response envelope carries: OK, or its code and message. A code this build does not
// know becomes INTERNAL with a message that names the number.
Status StatusFromEnvelope(const v1::Envelope& envelope);

}  // namespace treaty::net
