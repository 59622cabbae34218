// What both drivers do with a submission before the core sees it. Private to driver/.
#pragma once

#include <optional>
#include <utility>

#include "driver/ports.h"

namespace treaty::driver::internal {

// The answer to a submission for an xid the core does not hold, or nullopt to hand it to the
// core: a log error, the answer for a logged xid (reply_for_logged: a finished transaction is
// never run twice), or admit's refusal of a new transaction. Reply is twopc::Reply or saga::Reply.
template <typename Reply, typename Input, typename ForLogged, typename Admit>
std::optional<Reply> BeforeCore(const LogPort& log, bool held, Input& in,
                                const ForLogged& reply_for_logged, const Admit& admit) {
  if (held) return std::nullopt;
  Result<std::optional<v1::TxnRecord>> found = log.Find(in.xid);
  if (!found.ok()) return Reply{in.client, in.xid, found.status(), {}, ""};
  if (found->has_value()) return reply_for_logged(in, **found);
  if (Status s = admit(in); !s.ok()) return Reply{in.client, in.xid, std::move(s), {}, ""};
  return std::nullopt;
}

}  // namespace treaty::driver::internal
