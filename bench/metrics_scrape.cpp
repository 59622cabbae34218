#include "bench/metrics_scrape.h"

#include <httplib.h>

#include <cstdlib>
#include <utility>

#include "net/rpc.h"

namespace treaty::bench {

Result<std::string> HttpGet(const std::string& address, const std::string& path,
                            int64_t timeout_ms) {
  std::string host;
  uint16_t port = 0;
  TREATY_RETURN_IF_ERROR(net::ParseAddress(address, &host, &port));
  httplib::Client client(host, port);
  const auto sec = static_cast<time_t>(timeout_ms / 1000);
  const auto usec = static_cast<time_t>((timeout_ms % 1000) * 1000);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  httplib::Result res = client.Get(path);
  if (!res) {
    return Status::Unavailable("GET http://" + address + path + ": " +
                               httplib::to_string(res.error()));
  }
  if (res->status != 200) {
    return Status::Unavailable("GET http://" + address + path + ": HTTP " +
                               std::to_string(res->status));
  }
  return std::move(res->body);
}

std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                std::string_view label) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#' || line.substr(0, name.size()) != name) continue;
    std::string_view rest = line.substr(name.size());
    std::string_view labels;
    if (!rest.empty() && rest[0] == '{') {
      size_t close = rest.find('}');
      if (close == std::string_view::npos) continue;
      labels = rest.substr(1, close - 1);
      rest = rest.substr(close + 1);
    }
    if (rest.empty() || rest[0] != ' ') continue;  // a longer metric name with this prefix
    if (!label.empty() && labels.find(label) == std::string_view::npos) continue;
    std::string value(rest.substr(1));
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

CoordinatorCounters CoordinatorCounters::Minus(const CoordinatorCounters& b) const {
  CoordinatorCounters d;
  d.tx_committed = tx_committed - b.tx_committed;
  d.tx_aborted = tx_aborted - b.tx_aborted;
  d.log_syncs = log_syncs - b.log_syncs;
  d.log_batches = log_batches - b.log_batches;
  d.log_events = log_events - b.log_events;
  d.log_sync_seconds = log_sync_seconds - b.log_sync_seconds;
  d.cpu_seconds = cpu_seconds - b.cpu_seconds;
  return d;
}

Result<CoordinatorCounters> ScrapeCoordinator(const std::string& admin_address) {
  auto text = HttpGet(admin_address, "/metrics", 5000);
  if (!text.ok()) return text.status();
  CoordinatorCounters c;
  struct Field {
    const char* name;
    const char* label;
    double* out;
  };
  const Field fields[] = {
      {"treaty_tx_total", "outcome=\"committed\"", &c.tx_committed},
      {"treaty_tx_total", "outcome=\"aborted\"", &c.tx_aborted},
      {"treaty_log_syncs_total", "", &c.log_syncs},
      {"treaty_log_batches_total", "", &c.log_batches},
      {"treaty_log_events_total", "", &c.log_events},
      {"treaty_log_sync_seconds_total", "", &c.log_sync_seconds},
      {"treaty_process_cpu_seconds_total", "", &c.cpu_seconds},
  };
  for (const Field& f : fields) {
    auto v = MetricSum(*text, f.name, f.label);
    if (!v) {
      // A labelled series appears with its first sample (e.g. nothing aborted yet): 0.
      if (*f.label != '\0') continue;
      return Status::Internal(std::string("metric ") + f.name + " missing from http://" +
                              admin_address + "/metrics");
    }
    *f.out = *v;
  }
  return c;
}

}  // namespace treaty::bench
