// Finding the leader of a coordinator cluster. A node that is not the leader answers writes with
// UNAVAILABLE and a message that ends in "[leader=HOST:PORT]" when it knows the leader's client
// address; clients call the hinted address next, or else the next address of their list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treaty::net {

// UNAVAILABLE "node N is not the leader; ..." carrying leader_address (empty: unknown) as a hint.
Status NotLeader(uint64_t node_id, std::string_view leader_address);

// The leader address hinted in a NotLeader status; nullopt for any other status.
std::optional<std::string> LeaderHint(const Status& status);

// Splits "a:1,b:2" into addresses (whitespace around elements ignored); INVALID_ARGUMENT for an
// empty list or an empty element.
Result<std::vector<std::string>> ParseAddressList(std::string_view list);

}  // namespace treaty::net
