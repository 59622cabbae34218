#include "coordinator/read_side.h"


#include <google/protobuf/util/json_util.h>
#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "common/text.h"
#include "coordinator/admin_http.h"
#include "coordinator/metrics.h"
#include "coordinator/transactions.h"
#include "net/proto_codec.h"
#include "net/rpc.h"
#include "readmodel/readmodel.h"
#include "saga/saga_core.h"
#include "treaty/v1/methods.h"
#include "treaty/v1/query.pb.h"

namespace treaty::coordinator {
namespace {

// Time kept back from a Watch caller's deadline so the empty answer arrives before it, ms.
constexpr int64_t kWatchDeadlineMarginMs = 500;

const Status& Disabled() {
  static const Status kDisabled = Status::FailedPrecondition(
      "the read model is off (treatyd --no-readmodel); only GetTransaction is served");
  return kDisabled;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return R"({"error":"cannot encode the answer as JSON"})";
  }
  return out;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

HttpReply JsonReply(const google::protobuf::Message& message) {
  return {200, ToJson(message) + "\n"};
}

HttpReply ErrorReply(const Status& status) {
  int code = 500;
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      code = 400;
      break;
    case StatusCode::kNotFound:
      code = 404;
      break;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnavailable:
      code = 503;
      break;
    default:
      break;
  }
  return {code, R"({"error":")" + JsonEscape(status.ToString()) + "\"}\n"};
}

// Reads a time parameter (Unix ms or RFC 3339) into *out; unset parameters leave it alone.
Status TimeParam(const HttpRequest& req, const char* name, int64_t* out) {
  auto it = req.params.find(name);
  if (it == req.params.end() || it->second.empty()) return Status::Ok();
  if (auto ms = ParseInt64(it->second)) {
    *out = *ms;
    return Status::Ok();
  }
  if (auto ms = ParseRfc3339Ms(it->second)) {
    *out = *ms;
    return Status::Ok();
  }
  return Status::InvalidArgument(std::string(name) + "=" + it->second +
                                 " is neither Unix milliseconds nor RFC 3339");
}

Result<v1::ListTransactionsRequest> ListRequestOf(const HttpRequest& req) {
  v1::ListTransactionsRequest list;
  v1::TxFilter* filter = list.mutable_filter();
  auto param = [&](const char* name) -> std::string {
    auto it = req.params.find(name);
    return it == req.params.end() ? "" : it->second;
  };
  if (std::string state = param("state"); !state.empty()) {
    std::transform(state.begin(), state.end(), state.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    v1::TxState parsed = v1::TX_STATE_UNSPECIFIED;
    if (!v1::TxState_Parse(state, &parsed) || parsed == v1::TX_STATE_UNSPECIFIED) {
      return Status::InvalidArgument("state=" + param("state") +
                                     " is not one of PREPARING, COMMITTING, ABORTING, COMMITTED, "
                                     "ABORTED");
    }
    filter->set_state(parsed);
  }
  filter->set_service(param("service"));
  filter->set_mode(param("mode"));
  int64_t since = 0, until = 0;
  TREATY_RETURN_IF_ERROR(TimeParam(req, "since", &since));
  TREATY_RETURN_IF_ERROR(TimeParam(req, "until", &until));
  filter->set_since_unix_ms(since);
  filter->set_until_unix_ms(until);
  if (std::string limit = param("limit"); !limit.empty()) {
    auto n = ParseInt64(limit);
    if (!n || *n < 0) return Status::InvalidArgument("limit=" + limit + " is not a count");
    list.set_limit(static_cast<uint32_t>(std::min<int64_t>(*n, readmodel::kMaxListLimit)));
  }
  list.set_page_token(param("page_token"));
  return list;
}

// A read model summary built from the log's record (an xid the projector has not reached yet).
v1::TxSummary SummaryFromRecord(const v1::TxnRecord& rec) {
  const v1::Transaction tx = TransactionFromRecord(rec);
  v1::TxSummary s;
  s.set_xid(tx.xid());
  s.set_mode("2pc");
  s.set_state(tx.state());
  *s.mutable_branches() = tx.branches();
  s.set_reason(tx.reason());
  s.set_created_unix_ms(tx.created_unix_ms());
  s.set_updated_unix_ms(tx.updated_unix_ms());
  s.set_prepare_timeout_ms(rec.prepare_timeout_ms());
  s.set_last_lsn(rec.last_lsn());
  return s;
}

// NOT_FOUND for an xid neither the read model nor the log has a record of: when the log still
// remembers it as used, saying when it finished; else that it is unknown.
Status NotFound(const log::EventLog& log, const std::string& xid) {
  auto used = log.FindUsedXid(xid);
  if (!used.ok()) return used.status();
  if (used->has_value()) {
    return Status::NotFound(DescribeUsedXid(xid, **used) +
                            "; its details are past their retention (--readmodel-retention)");
  }
  return Status::NotFound("no transaction with xid " + xid +
                          " (never submitted, not yet logged, or past its retention)");
}

}  // namespace

Result<int64_t> ParseDurationMs(std::string_view text) {
  return treaty::ParseDurationMs(text, /*bare_number_is_ms=*/true);
}

struct ReadSide::Impl {
  Result<std::string> Get(const v1::GetTransactionRequest& req) const;
  HttpReply HttpList(const HttpRequest& req) const;
  HttpReply HttpGet(const HttpRequest& req) const;
  void Watch(v1::WatchRequest req, uint32_t deadline_ms, net::Responder respond);
  std::vector<prometheus::MetricFamily> Collect() const;
  // This node and how far its log is applied (cluster mode), for every read-model answer.
  v1::ServedBy ServedBy() const;

  ReadSideOptions options;
  log::EventLog& log;
  const Clock& clock;
  LiveView live;
  std::unique_ptr<readmodel::ReadModel> model;  // null when disabled
};

Result<std::string> ReadSide::Impl::Get(const v1::GetTransactionRequest& req) const {
  if (req.xid().empty()) return Status::InvalidArgument("GetTransaction needs an xid");
  const std::optional<v1::Transaction> held = live ? live(req.xid()) : std::nullopt;
  v1::GetTransactionResponse resp;
  // Sagas are answered from the live view or the log record, which carry their steps.
  const bool held_saga = held && held->mode() == saga::kSagaMode;
  if (model && !held_saga) {
    auto summary = model->Get(req.xid());
    if (!summary.ok()) return summary.status();
    if (summary->has_value() && (*summary)->mode() != saga::kSagaMode) {
      *resp.mutable_transaction() = readmodel::TransactionView(**summary, held ? &*held : nullptr);
      return resp.SerializeAsString();
    }
  }
  if (held) {
    *resp.mutable_transaction() = *held;
    return resp.SerializeAsString();
  }
  auto found = log.Find(req.xid());
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NotFound(log, req.xid());
  *resp.mutable_transaction() = TransactionFromRecord(**found);
  return resp.SerializeAsString();
}

v1::ServedBy ReadSide::Impl::ServedBy() const {
  const log::ClusterState state = log.cluster_state();
  v1::ServedBy out;
  out.set_node_id(state.node_id);
  out.set_role(std::string(log::ClusterRoleName(state.role)));
  out.set_applied_index(state.applied_index);
  out.set_commit_index(state.commit_index);
  return out;
}

void ReadSide::Impl::Watch(v1::WatchRequest req, uint32_t deadline_ms, net::Responder respond) {
  if (deadline_ms > 0) {
    const int64_t budget = std::max<int64_t>(0, int64_t{deadline_ms} - kWatchDeadlineMarginMs);
    const int64_t asked =
        req.timeout_ms() == 0 ? readmodel::kDefaultWatchTimeoutMs : req.timeout_ms();
    req.set_timeout_ms(static_cast<uint32_t>(std::max<int64_t>(1, std::min(asked, budget))));
  }
  model->Watch(req, [this, respond](Result<v1::WatchResponse> r) {
    if (!r.ok()) return respond(r.status());
    *r->mutable_served_by() = ServedBy();
    respond(r->SerializeAsString());
  });
}

HttpReply ReadSide::Impl::HttpList(const HttpRequest& req) const {
  auto list = ListRequestOf(req);
  if (!list.ok()) return ErrorReply(list.status());
  auto page = model->List(*list);
  if (!page.ok()) return ErrorReply(page.status());
  *page->mutable_served_by() = ServedBy();
  return JsonReply(*page);
}

HttpReply ReadSide::Impl::HttpGet(const HttpRequest& req) const {
  const std::string xid = req.path.substr(std::string_view("/v1/transactions/").size());
  if (xid.empty()) return ErrorReply(Status::InvalidArgument("the path needs an xid"));
  auto summary = model->Get(xid);
  if (!summary.ok()) return ErrorReply(summary.status());
  if (summary->has_value()) return JsonReply(**summary);
  auto found = log.Find(xid);
  if (!found.ok()) return ErrorReply(found.status());
  if (!found->has_value()) return ErrorReply(NotFound(log, xid));
  return JsonReply(SummaryFromRecord(**found));
}

std::vector<prometheus::MetricFamily> ReadSide::Impl::Collect() const {
  const v1::ProjectorStatus s = model->ProjectorState();
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  return {
      SingleMetric("treaty_readmodel_lag_events", "Log events not projected yet", false,
                   d(s.lag_events())),
      SingleMetric("treaty_readmodel_lag_seconds", "Age of the oldest event not projected yet",
                   false, s.lag_seconds()),
      SingleMetric("treaty_readmodel_projected_lsn", "Lsn of the last projected event", false,
                   d(s.projected_lsn())),
      SingleMetric("treaty_readmodel_projected_events_total", "Events folded into the views", true,
                   d(s.projected_events_total())),
      SingleMetric("treaty_readmodel_rebuilds_total", "Completed rebuilds of the read model", true,
                   d(s.rebuilds_total())),
      SingleMetric("treaty_readmodel_rebuilding", "1 while a rebuild runs", false,
                   s.rebuilding() ? 1.0 : 0.0),
      SingleMetric("treaty_log_events_purged_total", "Event records deleted by retention", true,
                   d(s.events_purged_total())),
      SingleMetric("treaty_readmodel_summaries_expired_total",
                   "Summaries deleted by the read model's retention", true,
                   d(s.summaries_expired_total())),
  };
}

Result<std::unique_ptr<ReadSide>> ReadSide::Open(const ReadSideOptions& options,
                                                 const std::string& data_dir, log::EventLog& log,
                                                 const Clock& clock, LiveView live) {
  auto impl = std::unique_ptr<Impl>(new Impl{options, log, clock, std::move(live), nullptr});
  if (!options.enabled) {
    spdlog::warn("read model: off (--no-readmodel): no queries, no log retention");
    return std::unique_ptr<ReadSide>(new ReadSide(std::move(impl)));
  }
  readmodel::ReadModelOptions model_options;
  model_options.dir = data_dir + "/readmodel";
  model_options.event_retention_ms = options.event_retention_ms;
  model_options.summary_retention_ms = options.summary_retention_ms;
  model_options.xid_retention_ms = options.xid_retention_ms;
  model_options.retention_interval_ms = options.retention_interval_ms;
  model_options.stuck_after_ms = options.stuck_after_ms;
  model_options.max_watchers = options.max_watchers;
  auto model = readmodel::ReadModel::Open(model_options, log, clock);
  if (!model.ok()) return model.status();
  impl->model = std::move(*model);
  if (options.rebuild_at_start) {
    auto last_report = std::chrono::steady_clock::now();
    auto rebuilt = impl->model->Rebuild([&last_report](const readmodel::RebuildProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report < std::chrono::seconds(2)) return;
      last_report = now;
      spdlog::info("read model: rebuilding: {} events, log at lsn {}", p.events_done, p.target_lsn);
    });
    if (!rebuilt.ok()) return rebuilt.status().WithPrefix("--rebuild-readmodel");
  }
  return std::unique_ptr<ReadSide>(new ReadSide(std::move(impl)));
}

ReadSide::ReadSide(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ReadSide::~ReadSide() { Stop(); }

void ReadSide::Attach(net::RpcServer& server, Metrics& metrics) {
  Impl* impl = impl_.get();
  // Decodes Req and answers with fn(req) (a Result<std::string>), or FAILED_PRECONDITION when
  // the read model is off.
  auto serve = [&server, impl](const char* method, auto decode_and_answer) {
    server.Register(method, [impl, decode_and_answer](std::string payload, uint32_t deadline_ms,
                                                      net::Responder respond) {
      decode_and_answer(impl, payload, deadline_ms, std::move(respond));
    });
  };
  serve(v1::methods::kGetTransaction,
        [](Impl* self, const std::string& payload, uint32_t, net::Responder respond) {
          auto req = net::DecodeRequest<v1::GetTransactionRequest>(payload);
          if (!req.ok()) return respond(req.status());
          respond(self->Get(*req));
        });
  serve(v1::methods::kListTransactions,
        [](Impl* self, const std::string& payload, uint32_t, net::Responder respond) {
          if (!self->model) return respond(Disabled());
          auto req = net::DecodeRequest<v1::ListTransactionsRequest>(payload);
          if (!req.ok()) return respond(req.status());
          auto page = self->model->List(*req);
          if (!page.ok()) return respond(page.status());
          *page->mutable_served_by() = self->ServedBy();
          respond(page->SerializeAsString());
        });
  serve(v1::methods::kStats,
        [](Impl* self, const std::string& payload, uint32_t, net::Responder respond) {
          if (!self->model) return respond(Disabled());
          auto req = net::DecodeRequest<v1::StatsRequest>(payload);
          if (!req.ok()) return respond(req.status());
          auto stats = self->model->Stats();
          if (!stats.ok()) return respond(stats.status());
          *stats->mutable_served_by() = self->ServedBy();
          respond(stats->SerializeAsString());
        });
  serve(v1::methods::kWatch,
        [](Impl* self, const std::string& payload, uint32_t deadline_ms, net::Responder respond) {
          if (!self->model) return respond(Disabled());
          auto req = net::DecodeRequest<v1::WatchRequest>(payload);
          if (!req.ok()) return respond(req.status());
          self->Watch(std::move(*req), deadline_ms, std::move(respond));
        });
  serve(v1::methods::kRebuildReadModel,
        [](Impl* self, const std::string& payload, uint32_t, net::Responder respond) {
          if (!self->model) return respond(Disabled());
          auto req = net::DecodeRequest<v1::RebuildReadModelRequest>(payload);
          if (!req.ok()) return respond(req.status());
          self->model->RequestRebuild([respond](Result<v1::RebuildReadModelResponse> r) {
            if (!r.ok()) return respond(r.status());
            respond(r->SerializeAsString());
          });
        });
  if (impl->model) metrics.AddCollector([impl] { return impl->Collect(); });
}

void ReadSide::Start(AdminServer* admin) {
  if (!impl_->model) return;
  if (admin != nullptr) {
    Impl* impl = impl_.get();
    admin->AddRoute("/v1/transactions", [impl](const HttpRequest& r) { return impl->HttpList(r); });
    admin->AddRoute("/v1/transactions/", [impl](const HttpRequest& r) { return impl->HttpGet(r); });
    admin->AddRoute("/v1/stats", [impl](const HttpRequest&) {
      auto stats = impl->model->Stats();
      if (stats.ok()) *stats->mutable_served_by() = impl->ServedBy();
      return stats.ok() ? JsonReply(*stats) : ErrorReply(stats.status());
    });
    admin->AddRoute("/v1/attention", [impl](const HttpRequest& r) {
      int64_t limit = 100;
      if (auto it = r.params.find("limit"); it != r.params.end()) {
        auto n = ParseInt64(it->second);
        if (!n || *n < 0) return ErrorReply(Status::InvalidArgument("limit is not a count"));
        limit = *n;
      }
      auto items = impl->model->Attention(impl->clock.UnixMs(), static_cast<size_t>(limit));
      return items.ok() ? JsonReply(*items) : ErrorReply(items.status());
    });
  }
  impl_->model->Start();
}

void ReadSide::Stop() {
  if (impl_->model) impl_->model->Stop();
}

}  // namespace treaty::coordinator
