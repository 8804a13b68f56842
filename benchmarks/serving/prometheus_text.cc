#include "benchmarks/serving/prometheus_text.h"

#include <cstdlib>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace imginterp::bench {

MetricsSnapshot::MetricsSnapshot(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    size_t value_start;
    const size_t brace = line.find('{');
    const size_t space = line.find(' ');
    if (brace != std::string::npos && (space == std::string::npos || brace < space)) {
      // Label values may hold spaces but not an unescaped "} ": the closing
      // brace is the last.
      const size_t close = line.rfind('}');
      if (close == std::string::npos || close < brace) continue;
      sample.name = line.substr(0, brace);
      sample.labels = line.substr(brace + 1, close - brace - 1);
      value_start = close + 1;
    } else {
      if (space == std::string::npos) continue;
      sample.name = line.substr(0, space);
      value_start = space;
    }
    // The value, optionally followed by a timestamp.
    const char* begin = line.c_str() + value_start;
    char* end = nullptr;
    sample.value = std::strtod(begin, &end);
    if (end == begin) continue;
    samples_.push_back(std::move(sample));
  }
}

double MetricsSnapshot::Sum(const std::string& name,
                            const std::vector<std::string>& label_matchers) const {
  double sum = 0;
  for (const Sample& sample : samples_) {
    if (sample.name != name) continue;
    bool match = true;
    for (const std::string& matcher : label_matchers) {
      match = match && sample.labels.find(matcher) != std::string::npos;
    }
    if (match) sum += sample.value;
  }
  return sum;
}

ServerSplit SplitBetween(const MetricsSnapshot& before, const MetricsSnapshot& after,
                         const std::string& model) {
  const std::string model_label = absl::StrCat("model=\"", model, "\"");
  auto delta = [&](const std::string& name, const std::vector<std::string>& matchers) {
    return after.Sum(name, matchers) - before.Sum(name, matchers);
  };
  auto mean_ms = [&](const std::string& phase) {
    const std::vector<std::string> matchers = {model_label, absl::StrCat("phase=\"", phase, "\"")};
    const double count = delta("imginterp_request_phase_seconds_count", matchers);
    return count > 0 ? 1e3 * delta("imginterp_request_phase_seconds_sum", matchers) / count : 0;
  };
  ServerSplit split;
  split.requests =
      delta("imginterp_request_phase_seconds_count", {model_label, "phase=\"preprocess\""});
  split.queue_ms = mean_ms("queue");
  split.preprocess_ms = mean_ms("preprocess");
  split.inference_ms = mean_ms("inference");
  split.postprocess_ms = mean_ms("postprocess");
  split.batches = delta("imginterp_batch_size_count", {model_label});
  split.mean_batch_size =
      split.batches > 0 ? delta("imginterp_batch_size_sum", {model_label}) / split.batches : 0;
  return split;
}

}  // namespace imginterp::bench
