#include "tests/integration/prom_text.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>

namespace treaty::integ {
namespace {

const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok = std::isalpha(c) || c == '_' || c == ':' || (i > 0 && std::isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  return IsMetricName(s) && s.find(':') == std::string::npos;
}

// A sample value: a decimal float, +Inf, -Inf or NaN.
bool ParseValue(const std::string& token, double* out) {
  if (token == "+Inf" || token == "Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (token == "-Inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (token == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (token.empty()) return false;
  for (char c : token) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E')) {
      return false;
    }
  }
  char* end = nullptr;
  *out = std::strtod(token.c_str(), &end);
  return end == token.c_str() + token.size();
}

bool IsTimestamp(const std::string& token) {
  size_t i = token.empty() || token[0] != '-' ? 0 : 1;
  if (i == token.size()) return false;
  for (; i < token.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(token[i]))) return false;
  }
  return true;
}

std::string LabelKey(const std::string& name, const std::map<std::string, std::string>& labels,
                     const std::string& skip = "") {
  std::string key = name + "{";
  for (const auto& [k, v] : labels) {
    if (k != skip) key += k + "=\"" + v + "\",";
  }
  return key + "}";
}

// Parses `name{a="x",b="y"} value [timestamp]`. Returns an empty string or what is wrong.
std::string ParseSample(const std::string& line, PromSample* sample) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
  sample->name = line.substr(0, i);
  if (!IsMetricName(sample->name)) return "invalid metric name '" + sample->name + "'";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const size_t eq = line.find('=', i);
      if (eq == std::string::npos) return "label without '='";
      const std::string label = line.substr(i, eq - i);
      if (!IsLabelName(label)) return "invalid label name '" + label + "'";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value of " + label + " not quoted";
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) return "dangling escape in label " + label;
        const char e = line[i++];
        if (e == 'n') {
          value += '\n';
        } else if (e == '\\' || e == '"') {
          value += e;
        } else {
          return std::string("invalid escape \\") + e + " in label " + label;
        }
      }
      if (!closed) return "unterminated value of label " + label;
      if (!sample->labels.emplace(label, value).second) return "label " + label + " repeated";
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        return "expected ',' or '}' after label " + label;
      }
    }
  }
  std::istringstream rest(line.substr(i));
  std::string value;
  std::string timestamp;
  std::string extra;
  rest >> value >> timestamp >> extra;
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return "no space before the value";
  if (!ParseValue(value, &sample->value)) return "invalid value '" + value + "'";
  if (!timestamp.empty() && !IsTimestamp(timestamp)) return "invalid timestamp '" + timestamp + "'";
  if (!extra.empty()) return "trailing text '" + extra + "'";
  return "";
}

// The family a sample belongs to: its own name, or the name without the suffix its type allows.
PromFamily* FamilyOf(std::map<std::string, PromFamily>& families, const std::string& sample) {
  auto exact = families.find(sample);
  if (exact != families.end() && exact->second.type != "histogram") return &exact->second;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (sample.size() <= s.size() || sample.compare(sample.size() - s.size(), s.size(), s) != 0) {
      continue;
    }
    auto it = families.find(sample.substr(0, sample.size() - s.size()));
    if (it == families.end()) continue;
    const std::string& type = it->second.type;
    if (type == "histogram" || (type == "summary" && s != "_bucket")) return &it->second;
  }
  return nullptr;
}

// Empty, or what is wrong with the histogram's buckets.
std::string CheckHistogram(const PromFamily& f) {
  struct Series {
    double last_le = -std::numeric_limits<double>::infinity();
    double last_count = 0;
    bool saw_inf = false;
  };
  std::map<std::string, Series> series;  // labels without "le" -> buckets so far
  std::map<std::string, double> counts;
  std::set<std::string> sums;
  for (const auto& s : f.samples) {
    if (s.name == f.name + "_count") counts[LabelKey("", s.labels)] = s.value;
    if (s.name == f.name + "_sum") sums.insert(LabelKey("", s.labels));
    if (s.name != f.name + "_bucket") continue;
    auto le = s.labels.find("le");
    double bound = 0;
    if (le == s.labels.end() || !ParseValue(le->second, &bound)) {
      return s.name + " without a numeric le label";
    }
    Series& ser = series[LabelKey("", s.labels, "le")];
    if (ser.saw_inf || bound <= ser.last_le) return s.name + " buckets not in increasing le order";
    if (s.value < ser.last_count) return s.name + " buckets not cumulative at le=" + le->second;
    ser.last_le = bound;
    ser.last_count = s.value;
    ser.saw_inf = std::isinf(bound);
  }
  if (series.empty()) return f.name + " has no buckets";
  for (const auto& [key, ser] : series) {
    if (!ser.saw_inf) return f.name + key + " has no le=\"+Inf\" bucket";
    auto count = counts.find(key);
    if (count == counts.end()) return f.name + key + " has no _count";
    if (count->second != ser.last_count) return f.name + key + ": +Inf bucket != _count";
    if (sums.count(key) == 0) return f.name + key + " has no _sum";
  }
  return "";
}

}  // namespace

Result<std::map<std::string, PromFamily>> ParsePromText(const std::string& text) {
  std::map<std::string, PromFamily> families;
  std::set<std::string> helped;
  std::set<std::string> with_samples;  // families whose samples started
  std::set<std::string> seen_samples;  // LabelKey of every sample
  std::string current;                 // family of the previous sample
  std::istringstream in(text);
  std::string line;
  int number = 0;
  auto fail = [&](const std::string& why) {
    return Status::InvalidArgument("metrics line " + std::to_string(number) + ": " + why + ": '" +
                                   line + "'");
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash;
      std::string keyword;
      std::string name;
      words >> hash >> keyword >> name;
      if (hash != "#") return fail("a comment must start with '# '");
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!IsMetricName(name)) return fail("invalid metric name in " + keyword);
      if (with_samples.count(name) != 0) return fail(keyword + " after the family's samples");
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (keyword == "HELP") {
        if (!helped.insert(name).second) return fail("second HELP for " + name);
        families[name].name = name;
        families[name].help = rest;
      } else {
        if (kTypes.count(rest) == 0) return fail("unknown type '" + rest + "'");
        if (!families[name].type.empty()) return fail("second TYPE for " + name);
        families[name].name = name;
        families[name].type = rest;
      }
      continue;
    }
    PromSample sample;
    if (std::string why = ParseSample(line, &sample); !why.empty()) return fail(why);
    PromFamily* family = FamilyOf(families, sample.name);
    if (family == nullptr || family->type.empty()) return fail("sample without a TYPE line");
    if (family->name != current) {
      if (with_samples.count(family->name) != 0) {
        return fail("samples of " + family->name + " are not adjacent");
      }
      current = family->name;
      with_samples.insert(current);
    }
    if (!seen_samples.insert(LabelKey(sample.name, sample.labels)).second) {
      return fail("duplicate sample");
    }
    if (family->type == "counter" && !(sample.value >= 0)) return fail("negative counter");
    family->samples.push_back(std::move(sample));
  }
  for (const auto& [name, f] : families) {
    if (f.type.empty()) return Status::InvalidArgument("metrics: HELP without TYPE for " + name);
    if (helped.count(name) == 0) {
      return Status::InvalidArgument("metrics: TYPE without HELP for " + name);
    }
    if (f.type != "histogram") continue;
    if (std::string why = CheckHistogram(f); !why.empty()) {
      return Status::InvalidArgument("metrics: " + why);
    }
  }
  return families;
}

std::optional<double> PromValue(const std::map<std::string, PromFamily>& families,
                                const std::string& family, const std::string& sample_name,
                                const std::map<std::string, std::string>& labels) {
  auto it = families.find(family);
  if (it == families.end()) return std::nullopt;
  std::optional<double> found;
  for (const auto& s : it->second.samples) {
    if (s.name != sample_name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto l = s.labels.find(k);
      match = match && l != s.labels.end() && l->second == v;
    }
    if (!match) continue;
    if (found) return std::nullopt;
    found = s.value;
  }
  return found;
}

}  // namespace treaty::integ
