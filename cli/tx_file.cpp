#include "cli/tx_file.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

namespace treaty::cli {
namespace {

using nlohmann::json;

Status CheckKeys(const json& obj, std::initializer_list<std::string_view> allowed,
                 const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    bool ok = false;
    for (auto a : allowed) ok = ok || key == a;
    if (!ok) return Status::InvalidArgument("unknown field '" + key + "' in " + where);
  }
  return Status::Ok();
}

Result<std::string> RequiredString(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    return Status::InvalidArgument(where + " needs a \"" + key + "\" field");
  }
  if (!it->is_string() || it->get<std::string>().empty()) {
    return Status::InvalidArgument("\"" + std::string(key) + "\" in " + where +
                                   " must be a non-empty string");
  }
  return it->get<std::string>();
}

}  // namespace

Result<v1::SubmitRequest> ParseTwoPcJson(std::string_view json_text) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Parse again with exceptions on just to get the position in the message.
    try {
      [[maybe_unused]] auto again = json::parse(json_text);
    } catch (const json::parse_error& e) {
      return Status::InvalidArgument(std::string("malformed JSON: ") + e.what());
    }
    return Status::InvalidArgument("malformed JSON");
  }
  if (!doc.is_object()) return Status::InvalidArgument("the transaction must be a JSON object");
  TREATY_RETURN_IF_ERROR(
      CheckKeys(doc, {"xid", "branches", "prepare_timeout_ms"}, "the transaction"));
  v1::SubmitRequest req;
  if (auto it = doc.find("xid"); it != doc.end()) {
    if (!it->is_string()) return Status::InvalidArgument("\"xid\" must be a string");
    req.set_xid(it->get<std::string>());
  }
  if (auto it = doc.find("prepare_timeout_ms"); it != doc.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 ||
        it->get<uint64_t>() > 3'600'000) {
      return Status::InvalidArgument("\"prepare_timeout_ms\" must be an integer in 1..3600000");
    }
    req.set_prepare_timeout_ms(it->get<uint32_t>());
  }
  auto branches = doc.find("branches");
  if (branches == doc.end() || !branches->is_array()) {
    return Status::InvalidArgument("the transaction needs a \"branches\" array");
  }
  if (branches->empty()) return Status::InvalidArgument("\"branches\" is empty");
  if (branches->size() > kMaxBranches) {
    return Status::InvalidArgument("too many branches: " + std::to_string(branches->size()) +
                                   " (the limit is " + std::to_string(kMaxBranches) + ")");
  }
  int index = 0;
  for (const auto& b : *branches) {
    ++index;
    std::string where = "branch " + std::to_string(index);
    if (!b.is_object()) return Status::InvalidArgument(where + " must be a JSON object");
    TREATY_RETURN_IF_ERROR(CheckKeys(b, {"service", "op", "payload", "key"}, where));
    auto service = RequiredString(b, "service", where);
    if (!service.ok()) return service.status();
    auto op = RequiredString(b, "op", where);
    if (!op.ok()) return op.status();
    auto* branch = req.add_branches();
    branch->set_service(*service);
    branch->set_op(*op);
    if (auto p = b.find("payload"); p != b.end()) branch->set_payload(p->dump());
    if (auto k = b.find("key"); k != b.end()) {
      if (!k->is_string()) return Status::InvalidArgument("\"key\" in " + where + " must be a string");
      branch->set_routing_key(k->get<std::string>());
    }
  }
  return req;
}

Result<std::string> ReadTxFile(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::InvalidArgument("cannot open " + path);
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  if (text.size() > kMaxTxFileBytes) {
    return Status::InvalidArgument(path + " is larger than " + std::to_string(kMaxTxFileBytes) +
                                   " bytes");
  }
  return text;
}

Result<v1::SubmitRequest> LoadTwoPcFile(const std::string& path) {
  auto text = ReadTxFile(path);
  if (!text.ok()) return text.status();
  auto req = ParseTwoPcJson(*text);
  if (!req.ok()) return req.status().WithPrefix(path);
  return req;
}

}  // namespace treaty::cli
