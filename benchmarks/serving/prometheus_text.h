// Reading a Prometheus text exposition (a service's /metrics page) for the
// benchmark report.
#pragma once

#include <string>
#include <vector>

namespace imginterp::bench {

// One scraped page. Immutable after construction, so thread-safe.
class MetricsSnapshot {
 public:
  MetricsSnapshot() = default;
  // Parses the text format; comment lines and lines that do not parse are
  // skipped.
  explicit MetricsSnapshot(const std::string& text);

  // Sum of the samples named exactly `name` whose label set contains every
  // `label_matchers` entry verbatim (e.g. `phase="queue"`); 0 when none match.
  double Sum(const std::string& name, const std::vector<std::string>& label_matchers = {}) const;

  bool empty() const { return samples_.empty(); }

 private:
  struct Sample {
    std::string name;
    std::string labels;  // the text between the braces, "" when there are none
    double value = 0;
  };
  std::vector<Sample> samples_;
};

// What a model service spent per request while a scenario ran: the difference
// of two scrapes of imginterp_request_phase_seconds and imginterp_batch_size
// for one model.
struct ServerSplit {
  double requests = 0;  // requests that went through the executor (preprocess count)
  double queue_ms = 0;
  double preprocess_ms = 0;
  double inference_ms = 0;
  double postprocess_ms = 0;
  double batches = 0;
  double mean_batch_size = 0;
};

// Means over the requests between `before` and `after` (zero where the count
// did not move).
ServerSplit SplitBetween(const MetricsSnapshot& before, const MetricsSnapshot& after,
                         const std::string& model);

}  // namespace imginterp::bench
