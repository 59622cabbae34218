// ParseSagaJson: the JSON form of a saga (see definition.h). nlohmann/json stays in this file.
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "saga/definition.h"

namespace treaty::saga {
namespace {

using nlohmann::json;

Status CheckKeys(const json& obj, std::initializer_list<std::string_view> allowed,
                 const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) return Status::InvalidArgument("unknown field \"" + key + "\" in " + where);
  }
  return Status::Ok();
}

Result<std::string> RequiredString(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::InvalidArgument(where + " needs a \"" + key + "\" field");
  if (!it->is_string() || it->get<std::string>().empty()) {
    return Status::InvalidArgument("\"" + std::string(key) + "\" in " + where +
                                   " must be a non-empty string");
  }
  return it->get<std::string>();
}

// An optional unsigned integer field in [0, max]; absent leaves *out unchanged.
Status OptionalUint(const json& obj, const char* key, uint32_t max, const std::string& where,
                    uint32_t* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max) {
    return Status::InvalidArgument("\"" + std::string(key) + "\" in " + where +
                                   " must be an integer in 0.." + std::to_string(max));
  }
  *out = static_cast<uint32_t>(it->get<uint64_t>());
  return Status::Ok();
}

Status ParseRetry(const json& retry, const std::string& where, v1::StepRetry* out) {
  const std::string here = "\"retry\" of " + where;
  if (!retry.is_object()) return Status::InvalidArgument(here + " must be a JSON object");
  TREATY_RETURN_IF_ERROR(
      CheckKeys(retry, {"max_attempts", "initial_backoff_ms", "max_backoff_ms"}, here));
  uint32_t value = 0;
  TREATY_RETURN_IF_ERROR(OptionalUint(retry, "max_attempts", kMaxActionAttempts, here, &value));
  out->set_max_attempts(value);
  value = 0;
  TREATY_RETURN_IF_ERROR(OptionalUint(retry, "initial_backoff_ms", kMaxBackoffMs, here, &value));
  out->set_initial_backoff_ms(value);
  value = 0;
  TREATY_RETURN_IF_ERROR(OptionalUint(retry, "max_backoff_ms", kMaxBackoffMs, here, &value));
  out->set_max_backoff_ms(value);
  return Status::Ok();
}

Status ParseStep(const json& s, size_t index, v1::SagaStep* step) {
  std::string where = "step " + std::to_string(index + 1);
  if (!s.is_object()) return Status::InvalidArgument(where + " must be a JSON object");
  if (auto id = s.find("id"); id != s.end() && id->is_string()) {
    where += " (\"" + id->get<std::string>() + "\")";
  }
  TREATY_RETURN_IF_ERROR(CheckKeys(
      s,
      {"id", "service", "action", "compensation", "payload", "after", "timeout_ms", "retry", "key"},
      where));
  Result<std::string> id = RequiredString(s, "id", where);
  if (!id.ok()) return id.status();
  Result<std::string> service = RequiredString(s, "service", where);
  if (!service.ok()) return service.status();
  Result<std::string> action = RequiredString(s, "action", where);
  if (!action.ok()) return action.status();
  Result<std::string> compensation = RequiredString(s, "compensation", where);
  if (!compensation.ok()) return compensation.status();
  step->set_id(*id);
  step->set_service(*service);
  step->set_action(*action);
  step->set_compensation(*compensation);
  if (auto p = s.find("payload"); p != s.end()) step->set_payload(p->dump());
  if (auto after = s.find("after"); after != s.end()) {
    if (!after->is_array()) {
      return Status::InvalidArgument("\"after\" in " + where + " must be an array of step ids");
    }
    for (const json& dep : *after) {
      if (!dep.is_string()) {
        return Status::InvalidArgument("\"after\" in " + where + " must be an array of step ids");
      }
      step->add_after(dep.get<std::string>());
    }
  }
  uint32_t timeout_ms = 0;
  TREATY_RETURN_IF_ERROR(OptionalUint(s, "timeout_ms", kMaxTimeoutMs, where, &timeout_ms));
  step->set_timeout_ms(timeout_ms);
  if (auto retry = s.find("retry"); retry != s.end()) {
    TREATY_RETURN_IF_ERROR(ParseRetry(*retry, where, step->mutable_retry()));
  }
  if (auto key = s.find("key"); key != s.end()) {
    if (!key->is_string())
      return Status::InvalidArgument("\"key\" in " + where + " must be a string");
    step->set_routing_key(key->get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

Result<ParsedSaga> ParseSagaJson(std::string_view json_text) {
  if (json_text.size() > kMaxSagaJsonBytes) {
    return Status::InvalidArgument("the saga is " + std::to_string(json_text.size()) +
                                   " bytes of JSON, at most " + std::to_string(kMaxSagaJsonBytes) +
                                   " allowed");
  }
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Parse again with exceptions on only to get the position into the message.
    try {
      [[maybe_unused]] auto again = json::parse(json_text);
    } catch (const json::exception& e) {
      return Status::InvalidArgument(std::string("malformed JSON: ") + e.what());
    }
    return Status::InvalidArgument("malformed JSON");
  }
  if (!doc.is_object()) return Status::InvalidArgument("the saga must be a JSON object");
  TREATY_RETURN_IF_ERROR(CheckKeys(doc, {"xid", "max_compensation_attempts", "steps"}, "the saga"));
  ParsedSaga parsed;
  if (auto it = doc.find("xid"); it != doc.end()) {
    if (!it->is_string()) return Status::InvalidArgument("\"xid\" must be a string");
    parsed.xid = it->get<std::string>();
  }
  uint32_t max_compensation_attempts = 0;
  TREATY_RETURN_IF_ERROR(OptionalUint(doc, "max_compensation_attempts",
                                      kMaxCompensationAttemptsLimit, "the saga",
                                      &max_compensation_attempts));
  parsed.definition.set_max_compensation_attempts(max_compensation_attempts);
  auto steps = doc.find("steps");
  if (steps == doc.end() || !steps->is_array()) {
    return Status::InvalidArgument("the saga needs a \"steps\" array");
  }
  if (steps->empty()) return Status::InvalidArgument("\"steps\" is empty");
  if (steps->size() > kMaxSteps) {
    return Status::InvalidArgument("too many steps: " + std::to_string(steps->size()) +
                                   " (the limit is " + std::to_string(kMaxSteps) + ")");
  }
  size_t index = 0;
  for (const json& s : *steps) {
    TREATY_RETURN_IF_ERROR(ParseStep(s, index++, parsed.definition.add_steps()));
  }
  TREATY_RETURN_IF_ERROR(Validate(parsed.definition));
  return parsed;
}

}  // namespace treaty::saga
