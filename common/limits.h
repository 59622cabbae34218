// Limits that more than one component enforces, so that they agree: a value one side accepts is
// never refused by the other.
#pragma once

#include <cstddef>

namespace treaty {

// Longest xid, in bytes. The coordinator refuses a longer one at submission and a participant
// refuses a request that carries one, so every xid a participant stores was accepted by the
// coordinator. Bounds the log's and the barrier's key sizes and the log lines that carry `xid=`;
// a client-chosen xid is a short identifier.
inline constexpr size_t kMaxXidBytes = 128;

}  // namespace treaty
