// Scraping a service's /metrics page (Prometheus text exposition format 0.0.4) and turning two
// scrapes into the server-side split of a measured window: mean seconds per request in each
// phase of imginterp_request_phase_seconds (deploy/metrics.md), from the deltas of the
// histogram's _sum and _count.
//
// MetricsPage is immutable after Parse: thread-safe. The free functions are stateless.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/core/common/http_get.h"

namespace imginterp::loadgen {

// Label name -> required value. A sample matches when it has every listed label with exactly
// that value (other labels are free).
using LabelFilter = std::map<std::string, std::string>;

// "service=edges,model=canny" -> {service: edges, model: canny}. Empty text is an empty filter.
// INVALID_ARGUMENT for an entry without '=' or with an empty name, or a name given twice.
absl::StatusOr<LabelFilter> ParseLabelList(absl::string_view text);

// "service=\"edges\",model=\"canny\"" (for messages).
std::string FormatLabels(const std::map<std::string, std::string>& labels);

struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

class MetricsPage {
 public:
  MetricsPage() = default;

  // Parses every sample line; comments (# HELP, # TYPE) and blank lines are skipped. Label
  // values are unescaped (\\, \", \n). INVALID_ARGUMENT naming the line for a line that is not
  // a sample.
  static absl::StatusOr<MetricsPage> Parse(absl::string_view text);

  const std::vector<MetricSample>& samples() const { return samples_; }

  // Sum of the samples named exactly `name` that match `filter`; 0 when none does.
  double Sum(absl::string_view name, const LabelFilter& filter) const;
  // True when at least one sample named `name` matches `filter`.
  bool Has(absl::string_view name, const LabelFilter& filter) const;

 private:
  std::vector<MetricSample> samples_;
};

// GETs and parses the page at `url`: HttpGet's errors (UNAVAILABLE, FAILED_PRECONDITION), or
// Parse's INVALID_ARGUMENT for a page that is not in the text format.
absl::StatusOr<MetricsPage> ScrapeMetricsPage(const common::HttpUrl& url,
                                              std::chrono::milliseconds timeout);

// The request phases the services report, in the order a request goes through them.
inline constexpr const char* kPhases[] = {"queue", "preprocess", "inference", "postprocess"};

// The change of one histogram's _count and _sum between two scrapes.
struct HistogramDelta {
  double count = 0;  // observations in the window
  double sum = 0;    // their total, in the histogram's unit
  double mean() const { return count > 0 ? sum / count : 0; }
};

// What the service reported for the requests it finished between two scrapes.
struct ServerSplit {
  // Every phase seen on the page for the filtered series, by phase label; seconds.
  std::map<std::string, HistogramDelta> phases;
  // imginterp_request_duration_seconds: arrival to answer, all outcomes; seconds.
  HistogramDelta requests;
  // imginterp_batch_size: count = model executions, mean = requests per execution.
  HistogramDelta batch_size;
  // Values of the identifying labels (service, model, version, backend) on the matching phase
  // series, so a report can tell which server and backend answered.
  std::map<std::string, std::set<std::string>> label_values;
};

// The split between `before` and `after` for the series matching `filter`. NOT_FOUND (listing
// the label sets present) when no imginterp_request_phase_seconds series matches on `after`;
// FAILED_PRECONDITION when a count went down (the service restarted between the scrapes).
absl::StatusOr<ServerSplit> SplitBetween(const MetricsPage& before, const MetricsPage& after,
                                         const LabelFilter& filter);

}  // namespace imginterp::loadgen
