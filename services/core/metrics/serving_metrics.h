// The standard metric families of every model service. The names and labels are the schema the
// dashboards and alerts are written against:
//
//   imginterp_requests_total{service,model,version,backend,code}          counter
//   imginterp_request_duration_seconds{service,model,version,backend}     histogram
//   (LatencyBuckets) imginterp_request_phase_seconds{service,model,version,backend,phase} histogram
//   (LatencyBuckets) imginterp_batch_size{service,model,version,backend} histogram
//   (BatchSizeBuckets) imginterp_in_flight_requests{service,model,version,backend}           gauge
//   imginterp_model_load_seconds{service,model,version,backend}           gauge
//
// (deploy/metrics.md documents the whole schema, the process and gateway families included.)
// `code` is the canonical status name ("OK", "INVALID_ARGUMENT"); `phase` is one of queue,
// preprocess, inference, postprocess. Labels stay bounded: never a request or job id.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace imginterp::metrics {

// Where a request spends its time, as the `phase` label.
enum class Phase { kQueue, kPreprocess, kInference, kPostprocess };

// The label value of `phase`: "queue", "preprocess", "inference" or "postprocess".
const char* PhaseName(Phase phase);

// Records into families registered on a registry it borrows. Label children are created on first
// use and cached, so recording is a map lookup plus an atomic update.
//
// Thread-safe. Neither copyable nor movable.
class ServingMetrics {
 public:
  // `registry` must outlive this object. `service` is the value of the `service` label (the
  // family, e.g. "classify"). Several ServingMetrics may share a registry.
  ServingMetrics(prometheus::Registry& registry, std::string service);
  ~ServingMetrics();

  ServingMetrics(const ServingMetrics&) = delete;
  ServingMetrics& operator=(const ServingMetrics&) = delete;

  // One finished request: counts it under its status code and observes its duration (seconds).
  void RecordRequest(const std::string& model, const std::string& version, absl::StatusCode code,
                     double seconds);
  // Time spent in one phase of a request, in seconds.
  void RecordPhase(const std::string& model, const std::string& version, Phase phase,
                   double seconds);
  // The size of one executed batch.
  void RecordBatch(const std::string& model, const std::string& version, int batch_size);
  // Adds `delta` (+1 on arrival, -1 on completion) to the requests being served.
  void AddInFlight(const std::string& model, const std::string& version, int delta);
  // The `backend` label of the model version's series ("torchscript", "native", ...): set it
  // when the version loads, before anything is recorded for it, since series keep the labels
  // they were created with.
  void SetModelBackend(const std::string& model, const std::string& version,
                       const std::string& backend);
  // How long loading (and warming up) the model version took, in seconds. Also creates the
  // version's series (requests with code OK included) at 0.
  void SetModelLoadSeconds(const std::string& model, const std::string& version, double seconds);

  // A family's own measurements (e.g. imginterp_generate_step_seconds), labelled {service, model,
  // version, backend} like the standard families. A name is registered on the registry at first
  // use, with `help` (and `buckets`) of that first use; a name already used for the other kind of
  // metric is ignored (a programming error that must not take down serving).
  void SetFamilyGauge(const std::string& name, const std::string& help, const std::string& model,
                      const std::string& version, double value);
  void ObserveFamilyHistogram(const std::string& name, const std::string& help,
                              const std::vector<double>& buckets, const std::string& model,
                              const std::string& version, double value);

  // Latency buckets shared by every histogram, in seconds: fit both 2 ms and 60 s models.
  static const std::vector<double>& LatencyBuckets();
  // Buckets of imginterp_batch_size: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64.
  static const std::vector<double>& BatchSizeBuckets();

 private:
  class Impl;
  const std::unique_ptr<Impl> impl_;
};

}  // namespace imginterp::metrics
