#include <charconv>
#include <string>
#include <string_view>

#include "net/rpc.h"

namespace treaty::net {

Status ParseAddress(std::string_view address, std::string* host, uint16_t* port) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("address '" + std::string(address) + "': " + std::string(why) +
                                   " (expected host:port, e.g. 127.0.0.1:7000 or [::1]:7000)");
  };
  if (address.empty()) return bad("empty");

  std::string_view host_part;
  std::string_view port_part;
  if (address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos) return bad("unterminated '['");
    host_part = address.substr(1, close - 1);
    std::string_view rest = address.substr(close + 1);
    if (rest.empty()) return bad("missing port");
    if (rest.front() != ':') return bad("expected ':' after ']'");
    port_part = rest.substr(1);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host_part = address.substr(0, colon);
    port_part = address.substr(colon + 1);
    if (host_part.find(':') != std::string_view::npos) {
      return bad("an IPv6 host must be written in brackets");
    }
  }
  if (host_part.empty()) return bad("empty host");
  if (port_part.empty()) return bad("missing port");

  uint32_t value = 0;
  const char* end = port_part.data() + port_part.size();
  auto [ptr, ec] = std::from_chars(port_part.data(), end, value);
  if (ec == std::errc::result_out_of_range) return bad("port out of range 0-65535");
  if (ec != std::errc() || ptr != end) return bad("port is not a number");
  if (value > 65535) return bad("port out of range 0-65535");

  *host = std::string(host_part);
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

}  // namespace treaty::net
