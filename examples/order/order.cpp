#include "examples/order/order.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "examples/common/values.h"

namespace treaty::order {
namespace {

using participant::ActionHandler;
using participant::CompensationHandler;
using participant::LocalReader;
using participant::LocalTxn;
using participant::StepContext;
using participant::StepResult;
using Json = nlohmann::json;

// Most items or shipments one state query returns. Bounds the response (well under the frame
// limit).
constexpr size_t kMaxStateRows = 100'000;
constexpr std::string_view kShipmentPrefix = "shipment/";

std::string StepKeySuffix(const StepContext& ctx) {
  return ctx.xid + "/" + std::to_string(ctx.step);
}

using examples::ParseInt;
using examples::ValidName;

Result<std::optional<int64_t>> ReadInt(LocalReader& db, const std::string& key) {
  return examples::ReadInt(db, key, "order");
}

Result<int64_t> ReadIntOr(LocalReader& db, const std::string& key, int64_t fallback) {
  return examples::ReadIntOr(db, key, fallback, "order");
}

// Adds delta to the integer at key (absent: 0).
Status AddInt(LocalTxn& txn, const std::string& key, int64_t delta) {
  Result<int64_t> v = ReadIntOr(txn, key, 0);
  if (!v.ok()) return v.status();
  txn.Put(key, std::to_string(*v + delta));
  return Status::Ok();
}

// The value an action recorded at key for its compensation. INTERNAL if missing: the barrier runs
// a compensation only after its action was DONE here, and the action wrote it.
Result<std::string> ReadRecorded(LocalReader& db, const std::string& key) {
  Result<std::optional<std::string>> raw = db.Get(key);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return Status::Internal("order record " + key + " is missing");
  return **raw;
}

// The payload as a JSON object, or the reason it is not one.
Result<Json> ParseObject(std::string_view payload) {
  try {
    Json j = Json::parse(payload);
    if (j.is_object()) return j;
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(e.what());
  }
  return Status::InvalidArgument("payload is not a JSON object");
}

// The string field `name` of j if it is a valid name.
std::optional<std::string> NameField(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string() || !ValidName(it->get_ref<const std::string&>())) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

// The integer field `name` of j if it is in [1, max].
std::optional<int64_t> CountField(const Json& j, const char* name, int64_t max) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return std::nullopt;
  }
  const int64_t v = it->get<int64_t>();
  if (v < 1 || v > max) return std::nullopt;
  return v;
}

StepResult InvalidPayload(const std::string& why) {
  return StepResult::Refused("invalid payload: " + why);
}

// ---- inventory ----

Result<StepResult> Reserve(const StepContext& ctx, LocalTxn& txn) {
  Result<Json> j = ParseObject(ctx.payload);
  if (!j.ok()) return InvalidPayload(j.status().message());
  std::optional<std::string> item = NameField(*j, "item");
  std::optional<int64_t> qty = CountField(*j, "qty", kMaxQuantity);
  if (!item || !qty) {
    return InvalidPayload(R"(expected {"item": name, "qty": 1..)" + std::to_string(kMaxQuantity) +
                          "}");
  }
  Result<std::optional<int64_t>> stock = ReadInt(txn, "stock/" + *item);
  if (!stock.ok()) return stock.status();
  if (!stock->has_value()) return StepResult::Refused("unknown item: " + *item);
  if (**stock < *qty) {
    return StepResult::Refused("insufficient stock: " + *item + " has " + std::to_string(**stock) +
                               ", needs " + std::to_string(*qty));
  }
  txn.Put("stock/" + *item, std::to_string(**stock - *qty));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "reserved/" + *item, *qty));
  txn.Put("reservation/" + StepKeySuffix(ctx), Json{{"item", *item}, {"qty", *qty}}.dump());
  return StepResult::Done();
}

Status Release(const StepContext& ctx, LocalTxn& txn) {
  const std::string key = "reservation/" + StepKeySuffix(ctx);
  Result<std::string> raw = ReadRecorded(txn, key);
  if (!raw.ok()) return raw.status();
  Result<Json> j = ParseObject(*raw);
  std::optional<std::string> item = j.ok() ? NameField(*j, "item") : std::nullopt;
  std::optional<int64_t> qty = j.ok() ? CountField(*j, "qty", kMaxQuantity) : std::nullopt;
  if (!item || !qty) return Status::Corruption("order record " + key + " holds '" + *raw + "'");
  TREATY_RETURN_IF_ERROR(AddInt(txn, "stock/" + *item, *qty));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "reserved/" + *item, -*qty));
  txn.Delete(key);
  return Status::Ok();
}

// ---- payment ----

Result<StepResult> Charge(const StepContext& ctx, LocalTxn& txn, int64_t credit_limit) {
  Result<Json> j = ParseObject(ctx.payload);
  if (!j.ok()) return InvalidPayload(j.status().message());
  std::optional<std::string> order = NameField(*j, "order");
  std::optional<int64_t> amount = CountField(*j, "amount", kMaxAmount);
  if (!order || !amount) {
    return InvalidPayload(R"(expected {"order": id, "amount": 1..)" + std::to_string(kMaxAmount) +
                          "}");
  }
  if (*amount > credit_limit) {
    return StepResult::Refused("amount " + std::to_string(*amount) + " exceeds the credit limit " +
                               std::to_string(credit_limit));
  }
  TREATY_RETURN_IF_ERROR(AddInt(txn, "charged", *amount));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "charges", 1));
  txn.Put("charge/" + StepKeySuffix(ctx), std::to_string(*amount));
  return StepResult::Done();
}

Status Refund(const StepContext& ctx, LocalTxn& txn) {
  const std::string key = "charge/" + StepKeySuffix(ctx);
  Result<std::string> raw = ReadRecorded(txn, key);
  if (!raw.ok()) return raw.status();
  std::optional<int64_t> amount = ParseInt(*raw);
  if (!amount) return Status::Corruption("order record " + key + " holds '" + *raw + "'");
  TREATY_RETURN_IF_ERROR(AddInt(txn, "charged", -*amount));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "charges", -1));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "refunded", *amount));
  TREATY_RETURN_IF_ERROR(AddInt(txn, "refunds", 1));
  txn.Delete(key);
  return Status::Ok();
}

// ---- shipping ----

Result<StepResult> Schedule(const StepContext& ctx, LocalTxn& txn) {
  Result<Json> j = ParseObject(ctx.payload);
  if (!j.ok()) return InvalidPayload(j.status().message());
  std::optional<std::string> order = NameField(*j, "order");
  if (!order) return InvalidPayload(R"(expected {"order": id})");
  const std::string shipment = std::string(kShipmentPrefix) + *order;
  Result<std::optional<std::string>> existing = txn.Get(shipment);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return StepResult::Refused("order " + *order + " already has a shipment");
  }
  txn.Put(shipment, StepKeySuffix(ctx));
  txn.Put("scheduled/" + StepKeySuffix(ctx), *order);
  return StepResult::Done();
}

Status Cancel(const StepContext& ctx, LocalTxn& txn) {
  const std::string key = "scheduled/" + StepKeySuffix(ctx);
  Result<std::string> order = ReadRecorded(txn, key);
  if (!order.ok()) return order.status();
  txn.Delete(std::string(kShipmentPrefix) + *order);
  txn.Delete(key);
  return AddInt(txn, "cancelled", 1);
}

// ---- state ----

// Every counter stored under prefix, by the rest of its key.
Result<Stock> ScanCounts(LocalReader& db, const std::string& prefix) {
  auto rows = db.Scan(prefix, kMaxStateRows);
  if (!rows.ok()) return rows.status();
  Stock out;
  for (const auto& [key, value] : *rows) {
    std::optional<int64_t> v = ParseInt(value);
    if (!v) return Status::Corruption("order key " + key + " holds '" + value + "'");
    out[key.substr(prefix.size())] = *v;
  }
  return out;
}

Result<OrderState> ReadState(Service service, LocalReader& db) {
  OrderState state;
  state.service = ServiceName(service);
  switch (service) {
    case Service::kInventory: {
      Result<Stock> stock = ScanCounts(db, "stock/");
      if (!stock.ok()) return stock.status();
      Result<Stock> reserved = ScanCounts(db, "reserved/");
      if (!reserved.ok()) return reserved.status();
      state.stock = std::move(*stock);
      state.reserved = std::move(*reserved);
      break;
    }
    case Service::kPayment:
      for (auto [key, field] :
           {std::pair{"charged", &state.charged}, std::pair{"charges", &state.charges},
            std::pair{"refunded", &state.refunded}, std::pair{"refunds", &state.refunds}}) {
        Result<int64_t> v = ReadIntOr(db, key, 0);
        if (!v.ok()) return v.status();
        *field = *v;
      }
      break;
    case Service::kShipping: {
      auto rows = db.Scan(kShipmentPrefix, kMaxStateRows);
      if (!rows.ok()) return rows.status();
      for (const auto& row : *rows)
        state.shipments.push_back(row.first.substr(kShipmentPrefix.size()));
      Result<int64_t> cancelled = ReadIntOr(db, "cancelled", 0);
      if (!cancelled.ok()) return cancelled.status();
      state.cancelled = *cancelled;
      break;
    }
  }
  return state;
}

// handler, first passing through faults.
ActionHandler WithFaults(ActionHandler inner, std::shared_ptr<OrderFaults> faults) {
  return [inner = std::move(inner), faults = std::move(faults)](
             const StepContext& ctx, LocalTxn& txn) -> Result<StepResult> {
    Result<std::optional<std::string>> fault = faults->Before(ctx.op, ctx.xid, ctx.step);
    if (!fault.ok()) return fault.status();
    if (fault->has_value()) return StepResult::Refused(**fault);
    return inner(ctx, txn);
  };
}

CompensationHandler WithFaults(CompensationHandler inner, std::shared_ptr<OrderFaults> faults) {
  return [inner = std::move(inner), faults = std::move(faults)](const StepContext& ctx,
                                                                LocalTxn& txn) -> Status {
    // OrderFaults::Set refuses mode refuse for a compensation, so only fail can come back.
    TREATY_RETURN_IF_ERROR(faults->Before(ctx.op, ctx.xid, ctx.step).status());
    return inner(ctx, txn);
  };
}

}  // namespace

const char* ServiceName(Service service) {
  switch (service) {
    case Service::kInventory:
      return "inventory";
    case Service::kPayment:
      return "payment";
    case Service::kShipping:
      return "shipping";
  }
  return "unknown";
}

Result<Service> ParseService(std::string_view name) {
  for (Service s : {Service::kInventory, Service::kPayment, Service::kShipping}) {
    if (name == ServiceName(s)) return s;
  }
  return Status::InvalidArgument("unknown service '" + std::string(name) +
                                 "': expected inventory, payment or shipping");
}

StepNames StepsOf(Service service) {
  switch (service) {
    case Service::kInventory:
      return {"reserve", "release"};
    case Service::kPayment:
      return {"charge", "refund"};
    case Service::kShipping:
      return {"schedule", "cancel"};
  }
  return {};
}

Result<Stock> ParseStock(std::string_view spec) {
  return examples::ParseNameValues(spec, {"stock item", "count", "widget=10", kMaxQuantity});
}

std::shared_ptr<OrderFaults> MakeFaults(Service service) {
  StepNames names = StepsOf(service);
  return std::make_shared<OrderFaults>(std::vector<std::string>{names.action},
                                       std::vector<std::string>{names.compensation});
}

Status InstallOrderService(participant::Participant& participant, OrderOptions options,
                           std::shared_ptr<OrderFaults> faults) {
  if (options.credit_limit < 1 || options.credit_limit > kMaxAmount) {
    return Status::InvalidArgument("credit limit must be from 1 to " + std::to_string(kMaxAmount));
  }
  ActionHandler run;
  CompensationHandler undo;
  switch (options.service) {
    case Service::kInventory:
      run = Reserve;
      undo = Release;
      break;
    case Service::kPayment:
      run = [limit = options.credit_limit](const StepContext& ctx, LocalTxn& txn) {
        return Charge(ctx, txn, limit);
      };
      undo = Refund;
      break;
    case Service::kShipping:
      run = Schedule;
      undo = Cancel;
      break;
  }
  StepNames names = StepsOf(options.service);
  participant.RegisterSagaStep(names.action, names.compensation, WithFaults(std::move(run), faults),
                               WithFaults(std::move(undo), faults));
  participant.RegisterQuery(
      kStateMethod,
      [service = options.service](const std::string&, LocalReader& db) -> Result<std::string> {
        Result<OrderState> state = ReadState(service, db);
        if (!state.ok()) return state.status();
        return OrderStateJson(*state);
      });
  participant.RegisterControl(kSetFaultMethod, [faults](const std::string& payload) {
    return faults->HandleControl(payload);
  });
  if (options.service == Service::kInventory) {
    participant.SetInitializer([stock = std::move(options.stock)](LocalTxn& txn) {
      for (const auto& [item, count] : stock) txn.Put("stock/" + item, std::to_string(count));
      spdlog::info("order: new inventory data dir seeded with {} items", stock.size());
      return Status::Ok();
    });
  }
  return Status::Ok();
}

std::string OrderStateJson(const OrderState& state) {
  Json j = {{"service", state.service}};
  if (state.service == ServiceName(Service::kInventory)) {
    j["stock"] = state.stock;
    j["reserved"] = state.reserved;
  } else if (state.service == ServiceName(Service::kPayment)) {
    j["charged"] = state.charged;
    j["charges"] = state.charges;
    j["refunded"] = state.refunded;
    j["refunds"] = state.refunds;
  } else if (state.service == ServiceName(Service::kShipping)) {
    j["shipments"] = state.shipments;
    j["cancelled"] = state.cancelled;
  }
  return j.dump();
}

Result<OrderState> ParseOrderStateJson(std::string_view text) {
  OrderState state;
  try {
    Json j = Json::parse(text);
    if (!j.is_object() || !j.contains("service") || !j["service"].is_string()) {
      return Status::InvalidArgument("order state is not a JSON object with a \"service\"");
    }
    state.service = j["service"].get<std::string>();
    if (j.contains("stock")) state.stock = j["stock"].get<Stock>();
    if (j.contains("reserved")) state.reserved = j["reserved"].get<Stock>();
    state.charged = j.value("charged", int64_t{0});
    state.charges = j.value("charges", int64_t{0});
    state.refunded = j.value("refunded", int64_t{0});
    state.refunds = j.value("refunds", int64_t{0});
    if (j.contains("shipments")) state.shipments = j["shipments"].get<std::vector<std::string>>();
    state.cancelled = j.value("cancelled", int64_t{0});
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(std::string("order state is malformed: ") + e.what());
  }
  return state;
}

std::string ReservePayload(std::string_view item, int64_t qty) {
  return Json{{"item", item}, {"qty", qty}}.dump();
}

std::string ChargePayload(std::string_view order, int64_t amount) {
  return Json{{"order", order}, {"amount", amount}}.dump();
}

std::string SchedulePayload(std::string_view order) { return Json{{"order", order}}.dump(); }

}  // namespace treaty::order
