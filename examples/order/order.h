// The order saga's three example services, built on libtreaty-participant: the business logic of
// the order-participant example, as a library so tests can run it without the binary.
//
// Saga steps (action / compensation), payloads JSON:
//   inventory  reserve {"item":"widget","qty":2}  / release: takes qty from the item's stock into
//              its reserved count; REFUSED "insufficient stock: widget has 1, needs 2",
//              "unknown item: gizmo", "invalid payload: ...". release puts it back.
//   payment    charge {"order":"o-1","amount":150} / refund: adds amount to the charged total;
//              REFUSED "amount 1500 exceeds the credit limit 1000", "invalid payload: ...".
//              refund takes it back out and counts it as refunded.
//   shipping   schedule {"order":"o-1"} / cancel: schedules a shipment of the order; REFUSED
//              "order o-1 already has a shipment", "invalid payload: ...". cancel removes it.
// A compensation undoes exactly what its action recorded (it reads the action's own record, not
// the payload). The participant's saga barrier makes each action and compensation take effect at
// most once per step, and a compensation only after its action.
// Keys (the participant's service key space):
//   inventory  stock/<item>, reserved/<item>  counts; reservation/<xid>/<step>  {"item","qty"}
//   payment    charged, refunded (totals), charges, refunds (counts); charge/<xid>/<step>  amount
//   shipping   shipment/<order>  "<xid>/<step>"; scheduled/<xid>/<step>  order; cancelled (count)
// Query method kStateMethod (empty request) returns the service's state as JSON (OrderState).
// Fault injection (fault.h): any action can be made to refuse, any operation to fail.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "examples/order/fault.h"
#include "participant/participant.h"

namespace treaty::order {

inline constexpr char kStateMethod[] = "order.State";
inline constexpr int64_t kDefaultCreditLimit = 1000;
// Largest qty of one reservation and largest stock of an item.
inline constexpr int64_t kMaxQuantity = 1'000'000'000;
// Largest amount of one charge and largest credit limit. Keeps totals far from int64 overflow.
inline constexpr int64_t kMaxAmount = 1'000'000'000'000;

enum class Service { kInventory, kPayment, kShipping };

// "inventory", "payment", "shipping".
const char* ServiceName(Service service);
// INVALID_ARGUMENT for another name.
Result<Service> ParseService(std::string_view name);

// The saga step a service runs.
struct StepNames {
  std::string action;
  std::string compensation;
};
StepNames StepsOf(Service service);

// Item -> count.
using Stock = std::map<std::string, int64_t>;
// Parses "widget=10,gadget=5" (names non-empty without '/', ',' or '='; counts in
// [0, kMaxQuantity]). INVALID_ARGUMENT naming the bad item.
Result<Stock> ParseStock(std::string_view spec);

struct OrderOptions {
  Service service = Service::kInventory;
  // Inventory: the stock seeded when the data dir is new (a restart keeps the stored stock).
  Stock stock;
  // Payment: a charge above this amount is refused. In [1, kMaxAmount].
  int64_t credit_limit = kDefaultCreditLimit;
};

// Faults for service's operations, all in mode none.
std::shared_ptr<OrderFaults> MakeFaults(Service service);

// Registers the service's saga step (every handler first consulting faults), the kStateMethod
// query, the kSetFaultMethod control, and (inventory) an initializer seeding the stock.
// REQUIRES: before participant.Start(); faults made by MakeFaults(options.service).
// INVALID_ARGUMENT (nothing registered) for a credit limit out of range.
Status InstallOrderService(participant::Participant& participant, OrderOptions options,
                           std::shared_ptr<OrderFaults> faults);

// What kStateMethod reports. Fields of other services stay empty / zero.
struct OrderState {
  std::string service;
  Stock stock;                         // inventory: available per item
  Stock reserved;                      // inventory: reserved per item
  int64_t charged = 0;                 // payment: total of live charges
  int64_t charges = 0;                 // payment: live charges
  int64_t refunded = 0;                // payment: total refunded
  int64_t refunds = 0;                 // payment: refunds
  std::vector<std::string> shipments;  // shipping: orders with a shipment, sorted
  int64_t cancelled = 0;               // shipping: shipments cancelled
};

// The kStateMethod response, both ways: only the service's own fields, e.g.
// {"service":"payment","charged":150,"charges":1,"refunded":0,"refunds":0}.
// ParseOrderStateJson: INVALID_ARGUMENT if text is not such an object.
std::string OrderStateJson(const OrderState& state);
Result<OrderState> ParseOrderStateJson(std::string_view text);

// Step payloads.
std::string ReservePayload(std::string_view item, int64_t qty);
std::string ChargePayload(std::string_view order, int64_t amount);
std::string SchedulePayload(std::string_view order);

}  // namespace treaty::order
