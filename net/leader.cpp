#include "net/leader.h"

#include <fmt/format.h>

namespace treaty::net {
namespace {
constexpr std::string_view kHintOpen = "[leader=";
}  // namespace

Status NotLeader(uint64_t node_id, std::string_view leader_address) {
  if (leader_address.empty()) {
    return Status::Unavailable(fmt::format(
        "node {} is not the leader and knows no leader yet (election in progress?); retry",
        node_id));
  }
  return Status::Unavailable(fmt::format("node {} is not the leader; retry at the leader {}{}]",
                                         node_id, kHintOpen, leader_address));
}

std::optional<std::string> LeaderHint(const Status& status) {
  if (status.code() != StatusCode::kUnavailable) return std::nullopt;
  const std::string& m = status.message();
  const size_t open = m.rfind(kHintOpen);
  if (open == std::string::npos) return std::nullopt;
  const size_t start = open + kHintOpen.size();
  const size_t close = m.find(']', start);
  if (close == std::string::npos || close == start) return std::nullopt;
  return m.substr(start, close - start);
}

Result<std::vector<std::string>> ParseAddressList(std::string_view list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t comma = list.find(',', pos);
    std::string_view item =
        list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty()) {
      return Status::InvalidArgument(fmt::format(
          "address list \"{}\" has an empty element; expected host:port[,host:port...]", list));
    }
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace treaty::net
