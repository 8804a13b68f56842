#include "benchmarks/load/loadgen/prometheus_text.h"

#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace imginterp::loadgen {
namespace {

constexpr char kPhaseFamily[] = "imginterp_request_phase_seconds";
constexpr char kDurationFamily[] = "imginterp_request_duration_seconds";
constexpr char kBatchFamily[] = "imginterp_batch_size";
constexpr const char* kIdentifyingLabels[] = {"service", "model", "version", "backend"};

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }

// A cursor over one line; every Parse* advances past what it read.
class LineParser {
 public:
  explicit LineParser(absl::string_view line) : rest_(line) {}

  void SkipSpaces() {
    while (!rest_.empty() && (rest_[0] == ' ' || rest_[0] == '\t')) rest_.remove_prefix(1);
  }
  bool Consume(char c) {
    if (rest_.empty() || rest_[0] != c) return false;
    rest_.remove_prefix(1);
    return true;
  }
  bool Peek(char c) const { return !rest_.empty() && rest_[0] == c; }

  absl::StatusOr<std::string> ParseName(const char* what) {
    size_t n = 0;
    if (rest_.empty() || !IsNameStart(rest_[0])) {
      return absl::InvalidArgumentError(absl::StrCat("expected a ", what, " name"));
    }
    while (n < rest_.size() && IsNameChar(rest_[n])) ++n;
    std::string name(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return name;
  }

  absl::StatusOr<std::string> ParseQuoted() {
    if (!Consume('"')) return absl::InvalidArgumentError("expected '\"' before a label value");
    std::string value;
    while (!rest_.empty()) {
      const char c = rest_[0];
      rest_.remove_prefix(1);
      if (c == '"') return value;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (rest_.empty()) break;
      const char escaped = rest_[0];
      rest_.remove_prefix(1);
      value.push_back(escaped == 'n' ? '\n' : escaped);
    }
    return absl::InvalidArgumentError("unterminated label value");
  }

  absl::StatusOr<double> ParseValue() {
    SkipSpaces();
    const size_t end = rest_.find_first_of(" \t");
    const std::string token(rest_.substr(0, end));
    rest_.remove_prefix(token.size());
    char* parsed_end = nullptr;
    // strtod reads "+Inf", "-Inf" and "NaN" as the format writes them.
    const double value = std::strtod(token.c_str(), &parsed_end);
    if (token.empty() || parsed_end != token.c_str() + token.size()) {
      return absl::InvalidArgumentError(absl::StrCat("'", token, "' is not a sample value"));
    }
    return value;
  }

  absl::string_view rest() const { return rest_; }

 private:
  absl::string_view rest_;
};

absl::StatusOr<MetricSample> ParseSample(absl::string_view line) {
  LineParser parser(line);
  MetricSample sample;
  absl::StatusOr<std::string> name = parser.ParseName("metric");
  if (!name.ok()) return name.status();
  sample.name = *std::move(name);
  if (parser.Consume('{')) {
    while (true) {
      parser.SkipSpaces();
      if (parser.Consume('}')) break;
      absl::StatusOr<std::string> label = parser.ParseName("label");
      if (!label.ok()) return label.status();
      parser.SkipSpaces();
      if (!parser.Consume('=')) return absl::InvalidArgumentError("expected '=' after a label");
      parser.SkipSpaces();
      absl::StatusOr<std::string> value = parser.ParseQuoted();
      if (!value.ok()) return value.status();
      sample.labels[*std::move(label)] = *std::move(value);
      parser.SkipSpaces();
      if (parser.Consume(',')) continue;
      if (!parser.Peek('}')) return absl::InvalidArgumentError("expected ',' or '}' in labels");
    }
  }
  absl::StatusOr<double> value = parser.ParseValue();
  if (!value.ok()) return value.status();
  sample.value = *value;
  // What may follow is an integer timestamp in milliseconds, which a delta does not need.
  return sample;
}

bool Matches(const MetricSample& sample, const LabelFilter& filter) {
  for (const auto& [label, value] : filter) {
    auto it = sample.labels.find(label);
    if (it == sample.labels.end() || it->second != value) return false;
  }
  return true;
}

LabelFilter With(LabelFilter filter, const std::string& label, const std::string& value) {
  filter[label] = value;
  return filter;
}

}  // namespace

absl::StatusOr<LabelFilter> ParseLabelList(absl::string_view text) {
  LabelFilter filter;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", entry, "' is not name=value (in the list '", text, "')"));
    }
    const std::string name(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    if (!filter.emplace(name, std::string(absl::StripAsciiWhitespace(entry.substr(eq + 1))))
             .second) {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", name, "' is given twice in '", text, "'"));
    }
  }
  return filter;
}

std::string FormatLabels(const std::map<std::string, std::string>& labels) {
  return absl::StrJoin(labels, ",", [](std::string* out, const auto& entry) {
    absl::StrAppend(out, entry.first, "=\"", entry.second, "\"");
  });
}

absl::StatusOr<MetricsPage> MetricsPage::Parse(absl::string_view text) {
  MetricsPage page;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<MetricSample> sample = ParseSample(line);
    if (!sample.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("metrics page line ", line_number, " ('", line,
                                                     "'): ", sample.status().message()));
    }
    page.samples_.push_back(*std::move(sample));
  }
  return page;
}

double MetricsPage::Sum(absl::string_view name, const LabelFilter& filter) const {
  double sum = 0;
  for (const MetricSample& sample : samples_) {
    if (sample.name == name && Matches(sample, filter)) sum += sample.value;
  }
  return sum;
}

bool MetricsPage::Has(absl::string_view name, const LabelFilter& filter) const {
  for (const MetricSample& sample : samples_) {
    if (sample.name == name && Matches(sample, filter)) return true;
  }
  return false;
}

absl::StatusOr<MetricsPage> ScrapeMetricsPage(const common::HttpUrl& url,
                                              std::chrono::milliseconds timeout) {
  absl::StatusOr<std::string> text = common::HttpGet(url, timeout);
  if (!text.ok()) return text.status();
  return MetricsPage::Parse(*text);
}

absl::StatusOr<ServerSplit> SplitBetween(const MetricsPage& before, const MetricsPage& after,
                                         const LabelFilter& filter) {
  const std::string phase_count = absl::StrCat(kPhaseFamily, "_count");
  ServerSplit split;
  for (const MetricSample& sample : after.samples()) {
    if (sample.name != phase_count || !Matches(sample, filter)) continue;
    auto phase = sample.labels.find("phase");
    if (phase != sample.labels.end()) split.phases[phase->second];
    for (const char* label : kIdentifyingLabels) {
      auto it = sample.labels.find(label);
      if (it != sample.labels.end()) split.label_values[label].insert(it->second);
    }
  }
  if (split.phases.empty()) {
    std::set<std::string> seen;
    for (const MetricSample& sample : after.samples()) {
      if (sample.name == phase_count) {
        std::map<std::string, std::string> labels = sample.labels;
        labels.erase("phase");
        seen.insert(absl::StrCat("{", FormatLabels(labels), "}"));
      }
    }
    return absl::NotFoundError(absl::StrCat(
        "no ", kPhaseFamily, " series with labels {", FormatLabels(filter),
        "} on the metrics page; series present: ",
        seen.empty() ? "none (is this a model service's /metrics?)" : absl::StrJoin(seen, " ")));
  }

  auto delta = [&](const std::string& name, const LabelFilter& labels) -> absl::StatusOr<double> {
    const double change = after.Sum(name, labels) - before.Sum(name, labels);
    if (change < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, "{", FormatLabels(labels),
                       "} went down between the scrapes: the service restarted during the run"));
    }
    return change;
  };
  auto histogram = [&](const std::string& family,
                       const LabelFilter& labels) -> absl::StatusOr<HistogramDelta> {
    HistogramDelta result;
    absl::StatusOr<double> count = delta(absl::StrCat(family, "_count"), labels);
    if (!count.ok()) return count.status();
    absl::StatusOr<double> sum = delta(absl::StrCat(family, "_sum"), labels);
    if (!sum.ok()) return sum.status();
    result.count = *count;
    result.sum = *sum;
    return result;
  };

  for (auto& [phase, phase_delta] : split.phases) {
    absl::StatusOr<HistogramDelta> measured = histogram(kPhaseFamily, With(filter, "phase", phase));
    if (!measured.ok()) return measured.status();
    phase_delta = *measured;
  }
  absl::StatusOr<HistogramDelta> requests = histogram(kDurationFamily, filter);
  if (!requests.ok()) return requests.status();
  split.requests = *requests;
  absl::StatusOr<HistogramDelta> batch_size = histogram(kBatchFamily, filter);
  if (!batch_size.ok()) return batch_size.status();
  split.batch_size = *batch_size;
  return split;
}

}  // namespace imginterp::loadgen
