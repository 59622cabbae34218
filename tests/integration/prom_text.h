// A strict reader of the Prometheus text exposition format (version 0.0.4), for tests that scrape
// treatyd's /metrics: it rejects what a Prometheus server would reject, and a few things it would
// tolerate but a well-behaved exporter never writes (samples without a TYPE, a family split over
// non-adjacent lines, a histogram whose buckets do not add up).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace treaty::integ {

struct PromSample {
  std::string name;  // e.g. "treaty_tx_duration_seconds_bucket"
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromFamily {
  std::string name;  // as in its TYPE line
  std::string type;  // counter, gauge, histogram, summary or untyped
  std::string help;
  std::vector<PromSample> samples;
};

// Family name -> family. INVALID_ARGUMENT naming the line number and the rule broken:
//   - every line is empty, "# HELP name text", "# TYPE name type", another "# " comment, or a
//     sample `name{label="value",...} value [timestamp]` with valid names, escapes and numbers;
//   - each family has exactly one HELP and one TYPE line, both before its first sample;
//   - every sample belongs to a family declared by TYPE (histograms: name_bucket/_sum/_count,
//     summaries: name, name_sum, name_count), and a family's samples are not interleaved with
//     another family's;
//   - no two samples have the same name and labels; counters are >= 0;
//   - histogram buckets carry "le", are cumulative (non-decreasing in le), end with le="+Inf",
//     and the +Inf bucket equals _count.
Result<std::map<std::string, PromFamily>> ParsePromText(const std::string& text);

// The value of the sample named sample_name in the family whose labels include every pair in
// labels; nullopt if there is none (or several match).
std::optional<double> PromValue(const std::map<std::string, PromFamily>& families,
                                const std::string& family, const std::string& sample_name,
                                const std::map<std::string, std::string>& labels = {});

}  // namespace treaty::integ
