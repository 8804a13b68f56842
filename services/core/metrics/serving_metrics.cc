#include "services/core/metrics/serving_metrics.h"

#include <array>
#include <map>
#include <mutex>
#include <utility>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace imginterp::metrics {

namespace {

// absl::StatusCode runs from OK (0) to UNAUTHENTICATED (16).
constexpr int kStatusCodeCount = 17;
constexpr int kPhaseCount = 4;

// Codes outside the canonical range count as UNKNOWN, which keeps the `code` label bounded
// whatever integer is cast to a StatusCode.
absl::StatusCode Canonical(absl::StatusCode code) {
  const int index = static_cast<int>(code);
  return index >= 0 && index < kStatusCodeCount ? code : absl::StatusCode::kUnknown;
}

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kQueue:
      return "queue";
    case Phase::kPreprocess:
      return "preprocess";
    case Phase::kInference:
      return "inference";
    case Phase::kPostprocess:
      return "postprocess";
  }
  return "unknown";
}

const std::vector<double>& ServingMetrics::LatencyBuckets() {
  static const std::vector<double> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,      2.5,   5,    10,    30,   60,  120};
  return kBuckets;
}

const std::vector<double>& ServingMetrics::BatchSizeBuckets() {
  static const std::vector<double> kBuckets = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
  return kBuckets;
}

// The families, and per (model, version) the label children already created in them.
class ServingMetrics::Impl {
 public:
  Impl(prometheus::Registry& registry, std::string service)
      : registry_(registry),
        service_(std::move(service)),
        requests_(prometheus::BuildCounter()
                      .Name("imginterp_requests_total")
                      .Help("Requests finished by a model service, by model, version and status "
                            "code (OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...).")
                      .Register(registry)),
        duration_(prometheus::BuildHistogram()
                      .Name("imginterp_request_duration_seconds")
                      .Help("Time from a request's arrival at a model service to its answer, in "
                            "seconds, whatever its outcome.")
                      .Register(registry)),
        phase_(prometheus::BuildHistogram()
                   .Name("imginterp_request_phase_seconds")
                   .Help("Time a request spends in each phase (queue, preprocess, inference, "
                         "postprocess), in seconds; inference is the batch's time.")
                   .Register(registry)),
        batch_size_(prometheus::BuildHistogram()
                        .Name("imginterp_batch_size")
                        .Help("Number of requests run together in one model execution.")
                        .Register(registry)),
        in_flight_(prometheus::BuildGauge()
                       .Name("imginterp_in_flight_requests")
                       .Help("Requests accepted by a model service and not yet answered.")
                       .Register(registry)),
        load_seconds_(prometheus::BuildGauge()
                          .Name("imginterp_model_load_seconds")
                          .Help("Time it took to load and warm up the model version, in seconds.")
                          .Register(registry)) {}

  // The label children of one model version. Pointers into the families, which own the children
  // for as long as the registry lives; created lazily where the label set has many values.
  struct Children {
    std::array<prometheus::Counter*, kStatusCodeCount> requests{};
    prometheus::Histogram* duration = nullptr;
    std::array<prometheus::Histogram*, kPhaseCount> phase{};
    prometheus::Histogram* batch_size = nullptr;
    prometheus::Gauge* in_flight = nullptr;
    prometheus::Gauge* load_seconds = nullptr;
  };

  prometheus::Counter& RequestCounter(const std::string& model, const std::string& version,
                                      absl::StatusCode code) {
    code = Canonical(code);
    std::lock_guard<std::mutex> lock(mu_);
    prometheus::Counter*& counter =
        ChildrenLocked(model, version).requests.at(static_cast<size_t>(code));
    if (counter == nullptr) {
      prometheus::Labels labels = LabelsLocked(model, version);
      labels.emplace("code", absl::StatusCodeToString(code));
      counter = &requests_.Add(labels);
    }
    return *counter;
  }

  prometheus::Histogram& PhaseHistogram(const std::string& model, const std::string& version,
                                        Phase phase) {
    std::lock_guard<std::mutex> lock(mu_);
    prometheus::Histogram*& histogram =
        ChildrenLocked(model, version).phase.at(static_cast<size_t>(phase));
    if (histogram == nullptr) {
      prometheus::Labels labels = LabelsLocked(model, version);
      labels.emplace("phase", PhaseName(phase));
      histogram = &phase_.Add(labels, LatencyBuckets());
    }
    return *histogram;
  }

  prometheus::Gauge* FamilyGauge(const std::string& name, const std::string& help,
                                 const std::string& model, const std::string& version) {
    std::lock_guard<std::mutex> lock(mu_);
    if (family_histograms_.count(name) != 0) return nullptr;
    auto& family = family_gauges_[name];
    if (family.family == nullptr) {
      family.family = &prometheus::BuildGauge().Name(name).Help(help).Register(registry_);
    }
    prometheus::Gauge*& child = family.children[{model, version}];
    if (child == nullptr) {
      child = &family.family->Add(LabelsLocked(model, version));
    }
    return child;
  }

  prometheus::Histogram* FamilyHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& buckets,
                                         const std::string& model, const std::string& version) {
    std::lock_guard<std::mutex> lock(mu_);
    if (family_gauges_.count(name) != 0) return nullptr;
    auto& family = family_histograms_[name];
    if (family.family == nullptr) {
      family.family = &prometheus::BuildHistogram().Name(name).Help(help).Register(registry_);
      family.buckets = buckets;
    }
    prometheus::Histogram*& child = family.children[{model, version}];
    if (child == nullptr) {
      child = &family.family->Add(LabelsLocked(model, version), family.buckets);
    }
    return child;
  }

  void SetBackend(const std::string& model, const std::string& version, std::string backend) {
    std::lock_guard<std::mutex> lock(mu_);
    backends_[{model, version}] = std::move(backend);
  }

  // The children that need no extra label, all made when the model version is first seen.
  Children& ModelChildren(const std::string& model, const std::string& version) {
    std::lock_guard<std::mutex> lock(mu_);
    return ChildrenLocked(model, version);
  }

 private:
  // {service, model, version, backend}: the labels every per-model series carries. A version
  // whose backend was never set (e.g. a request for a model that does not exist) has none.
  prometheus::Labels LabelsLocked(const std::string& model, const std::string& version) const {
    prometheus::Labels labels = {{"service", service_}, {"model", model}, {"version", version}};
    const auto backend = backends_.find({model, version});
    if (backend != backends_.end() && !backend->second.empty()) {
      labels.emplace("backend", backend->second);
    }
    return labels;
  }

  Children& ChildrenLocked(const std::string& model, const std::string& version) {
    auto [it, inserted] = children_.try_emplace(std::make_pair(model, version));
    Children& children = it->second;
    if (inserted) {
      const prometheus::Labels labels = LabelsLocked(model, version);
      children.duration = &duration_.Add(labels, LatencyBuckets());
      children.batch_size = &batch_size_.Add(labels, BatchSizeBuckets());
      children.in_flight = &in_flight_.Add(labels);
      children.load_seconds = &load_seconds_.Add(labels);
    }
    return children;
  }

  // A family-defined metric family and its children per (model, version).
  template <typename Metric>
  struct FamilyMetric {
    prometheus::Family<Metric>* family = nullptr;
    std::vector<double> buckets;
    std::map<std::pair<std::string, std::string>, Metric*> children;
  };

  prometheus::Registry& registry_;
  const std::string service_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& phase_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Gauge>& load_seconds_;

  std::mutex mu_;
  // std::map: references to its values stay valid while other entries are added.
  std::map<std::pair<std::string, std::string>, Children> children_;
  std::map<std::pair<std::string, std::string>, std::string> backends_;           // guarded by mu_
  std::map<std::string, FamilyMetric<prometheus::Gauge>> family_gauges_;          // guarded by mu_
  std::map<std::string, FamilyMetric<prometheus::Histogram>> family_histograms_;  // guarded by mu_
};

ServingMetrics::ServingMetrics(prometheus::Registry& registry, std::string service)
    : impl_(std::make_unique<Impl>(registry, std::move(service))) {}

ServingMetrics::~ServingMetrics() = default;

void ServingMetrics::RecordRequest(const std::string& model, const std::string& version,
                                   absl::StatusCode code, double seconds) {
  impl_->RequestCounter(model, version, code).Increment();
  impl_->ModelChildren(model, version).duration->Observe(seconds);
}

void ServingMetrics::RecordPhase(const std::string& model, const std::string& version, Phase phase,
                                 double seconds) {
  impl_->PhaseHistogram(model, version, phase).Observe(seconds);
}

void ServingMetrics::RecordBatch(const std::string& model, const std::string& version,
                                 int batch_size) {
  impl_->ModelChildren(model, version).batch_size->Observe(batch_size);
}

void ServingMetrics::AddInFlight(const std::string& model, const std::string& version, int delta) {
  impl_->ModelChildren(model, version).in_flight->Increment(delta);
}

void ServingMetrics::SetModelBackend(const std::string& model, const std::string& version,
                                     const std::string& backend) {
  impl_->SetBackend(model, version, backend);
}

void ServingMetrics::SetModelLoadSeconds(const std::string& model, const std::string& version,
                                         double seconds) {
  impl_->ModelChildren(model, version).load_seconds->Set(seconds);
  // The OK series exists from the start, so the first request shows in rate().
  impl_->RequestCounter(model, version, absl::StatusCode::kOk);
}

void ServingMetrics::SetFamilyGauge(const std::string& name, const std::string& help,
                                    const std::string& model, const std::string& version,
                                    double value) {
  if (prometheus::Gauge* gauge = impl_->FamilyGauge(name, help, model, version)) gauge->Set(value);
}

void ServingMetrics::ObserveFamilyHistogram(const std::string& name, const std::string& help,
                                            const std::vector<double>& buckets,
                                            const std::string& model, const std::string& version,
                                            double value) {
  if (prometheus::Histogram* histogram =
          impl_->FamilyHistogram(name, help, buckets, model, version)) {
    histogram->Observe(value);
  }
}

}  // namespace imginterp::metrics
