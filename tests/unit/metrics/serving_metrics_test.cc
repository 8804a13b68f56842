#include "services/core/metrics/serving_metrics.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace imginterp::metrics {
namespace {

// The service's metrics recorded into a registry of their own. The exposition text is produced
// in-process by the serializer the HTTP endpoint uses (metrics_server_test.cc covers the endpoint:
// every server shutdown costs civetweb about 2 s, too slow to pay in each test).
class ServingMetricsTest : public ::testing::Test {
 protected:
  // The text Prometheus would scrape right now.
  std::string Scrape() const { return prometheus::TextSerializer().Serialize(registry_.Collect()); }

  prometheus::Registry registry_;
  ServingMetrics metrics_{registry_, "s"};  // declared after registry_: destroyed before it
};

TEST_F(ServingMetricsTest, RequestsAreCountedByCanonicalStatusCode) {
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.01);
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.02);
  metrics_.RecordRequest("m", "1", absl::StatusCode::kInvalidArgument, 0.001);

  const std::string text = Scrape();
  EXPECT_TRUE(absl::StrContains(text, "# HELP imginterp_requests_total ")) << text;
  EXPECT_TRUE(absl::StrContains(text, "# TYPE imginterp_requests_total counter")) << text;
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"1\"} 2"))
      << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "imginterp_requests_total{code=\"INVALID_ARGUMENT\",model=\"m\","
                                "service=\"s\",version=\"1\"} 1"))
      << text;
}

TEST_F(ServingMetricsTest, CodesOutsideTheCanonicalRangeCountAsUnknown) {
  metrics_.RecordRequest("m", "1", static_cast<absl::StatusCode>(999), 0.01);
  EXPECT_TRUE(absl::StrContains(
      Scrape(),
      "imginterp_requests_total{code=\"UNKNOWN\",model=\"m\",service=\"s\",version=\"1\"} 1"));
}

TEST_F(ServingMetricsTest, RequestDurationIsAHistogramWithBucketsCountAndSum) {
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.003);
  metrics_.RecordRequest("m", "1", absl::StatusCode::kInternal, 0.3);

  const std::string text = Scrape();
  const std::string labels = "model=\"m\",service=\"s\",version=\"1\"";
  EXPECT_TRUE(absl::StrContains(text, "# TYPE imginterp_request_duration_seconds histogram"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, absl::StrCat("imginterp_request_duration_seconds_bucket{",
                                                   labels, ",le=\"0.0025\"} 0")))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("imginterp_request_duration_seconds_bucket{", labels, ",le=\"0.005\"} 1")))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("imginterp_request_duration_seconds_bucket{", labels, ",le=\"0.5\"} 2")))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("imginterp_request_duration_seconds_bucket{", labels, ",le=\"+Inf\"} 2")))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("imginterp_request_duration_seconds_count{", labels, "} 2")))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("imginterp_request_duration_seconds_sum{", labels, "} 0.303")))
      << text;
}

TEST_F(ServingMetricsTest, PhasesAreSeparateSeriesOfOneHistogram) {
  metrics_.RecordPhase("m", "1", Phase::kQueue, 0.002);
  metrics_.RecordPhase("m", "1", Phase::kInference, 1.5);
  metrics_.RecordPhase("m", "1", Phase::kInference, 1.5);

  const std::string text = Scrape();
  EXPECT_TRUE(absl::StrContains(text, "# HELP imginterp_request_phase_seconds ")) << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "imginterp_request_phase_seconds_count{model=\"m\","
                                "phase=\"inference\",service=\"s\",version=\"1\"} 2"))
      << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "imginterp_request_phase_seconds_count{model=\"m\","
                                "phase=\"queue\",service=\"s\",version=\"1\"} 1"))
      << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "imginterp_request_phase_seconds_bucket{model=\"m\","
                                "phase=\"inference\",service=\"s\",version=\"1\",le=\"1\"} 0"))
      << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "imginterp_request_phase_seconds_bucket{model=\"m\","
                                "phase=\"inference\",service=\"s\",version=\"1\",le=\"2.5\"} 2"))
      << text;
  EXPECT_FALSE(absl::StrContains(text, "phase=\"preprocess\"")) << "no series before first use";
}

TEST_F(ServingMetricsTest, BatchSizesUseBatchBuckets) {
  metrics_.RecordBatch("m", "1", 3);
  metrics_.RecordBatch("m", "1", 8);
  metrics_.RecordBatch("m", "1", 64);

  const std::string text = Scrape();
  const std::string prefix = "imginterp_batch_size_bucket{model=\"m\",service=\"s\",version=\"1\",";
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"2\"} 0")) << text;
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"3\"} 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"6\"} 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"8\"} 2")) << text;
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"48\"} 2")) << text;
  EXPECT_TRUE(absl::StrContains(text, prefix + "le=\"64\"} 3")) << text;
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_batch_size_sum{model=\"m\",service=\"s\",version=\"1\"} 75"))
      << text;
}

TEST_F(ServingMetricsTest, InFlightGaugeFollowsArrivalsAndCompletions) {
  metrics_.AddInFlight("m", "1", +1);
  metrics_.AddInFlight("m", "1", +1);
  metrics_.AddInFlight("m", "1", +1);
  metrics_.AddInFlight("m", "1", -1);
  EXPECT_TRUE(absl::StrContains(
      Scrape(), "imginterp_in_flight_requests{model=\"m\",service=\"s\",version=\"1\"} 2"));
}

TEST_F(ServingMetricsTest, ModelLoadSecondsIsTheLastValueSet) {
  metrics_.SetModelLoadSeconds("m", "2", 4.0);
  metrics_.SetModelLoadSeconds("m", "2", 1.25);
  const std::string text = Scrape();
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_model_load_seconds{model=\"m\",service=\"s\",version=\"2\"} 1.25"));
  // Loading creates the version's series at 0, so its first request shows in rate().
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"2\"} 0"))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_request_duration_seconds_count{model=\"m\",service=\"s\",version=\"2\"} 0"))
      << text;
}

TEST_F(ServingMetricsTest, ModelsAndVersionsAreSeparateSeries) {
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.01);
  metrics_.RecordRequest("m", "2", absl::StatusCode::kOk, 0.01);
  metrics_.RecordRequest("other", "1", absl::StatusCode::kOk, 0.01);
  const std::string text = Scrape();
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"1\"} 1"));
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"2\"} 1"));
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"other\",service=\"s\",version=\"1\"} 1"));
}

TEST_F(ServingMetricsTest, TwoServicesCanShareARegistry) {
  ServingMetrics gateway_side(registry_, "gateway");
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.01);
  gateway_side.RecordRequest("m", "1", absl::StatusCode::kOk, 0.01);
  const std::string text = Scrape();
  EXPECT_TRUE(absl::StrContains(
      text, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"1\"} 1"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"gateway\",version=\"1\"} 1"));
}

TEST_F(ServingMetricsTest, ConcurrentRecordingLosesNothing) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string model = "m" + std::to_string(t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        metrics_.RecordRequest(model, "1", absl::StatusCode::kOk, 0.01);
        metrics_.RecordPhase(model, "1", Phase::kPreprocess, 0.001);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string text = Scrape();
  for (const char* model : {"m0", "m1"}) {
    EXPECT_TRUE(
        absl::StrContains(text, absl::StrCat("imginterp_requests_total{code=\"OK\",model=\"", model,
                                             "\",service=\"s\",version=\"1\"} 2000")))
        << text;
  }
}

TEST_F(ServingMetricsTest, EverySeriesOfAModelVersionCarriesItsBackend) {
  metrics_.SetModelBackend("m", "1", "torchscript");
  metrics_.SetModelBackend("m", "2", "native");
  metrics_.RecordRequest("m", "1", absl::StatusCode::kOk, 0.01);
  metrics_.RecordRequest("m", "2", absl::StatusCode::kOk, 0.01);
  metrics_.RecordPhase("m", "1", Phase::kInference, 0.01);
  metrics_.RecordBatch("m", "2", 1);
  metrics_.SetFamilyGauge("imginterp_test_gauge", "A family's gauge.", "m", "2", 7);
  metrics_.ObserveFamilyHistogram("imginterp_test_seconds", "A family's histogram.", {1.0}, "m",
                                  "1", 0.5);
  metrics_.RecordRequest("missing", "0", absl::StatusCode::kNotFound, 0);

  const std::string text = Scrape();
  for (const char* series :
       {"imginterp_requests_total{backend=\"torchscript\",code=\"OK\",model=\"m\",service=\"s\","
        "version=\"1\"} 1",
        "imginterp_requests_total{backend=\"native\",code=\"OK\",model=\"m\",service=\"s\","
        "version=\"2\"} 1",
        "imginterp_request_duration_seconds_count{backend=\"native\",model=\"m\",service=\"s\","
        "version=\"2\"} 1",
        "imginterp_request_phase_seconds_count{backend=\"torchscript\",model=\"m\","
        "phase=\"inference\",service=\"s\",version=\"1\"} 1",
        "imginterp_batch_size_count{backend=\"native\",model=\"m\",service=\"s\",version=\"2\"} 1",
        "imginterp_test_gauge{backend=\"native\",model=\"m\",service=\"s\",version=\"2\"} 7",
        "imginterp_test_seconds_count{backend=\"torchscript\",model=\"m\",service=\"s\","
        "version=\"1\"} 1",
        // A version that never loaded has no backend to name.
        "imginterp_requests_total{code=\"NOT_FOUND\",model=\"missing\",service=\"s\","
        "version=\"0\"} 1"}) {
    EXPECT_TRUE(absl::StrContains(text, series)) << series << "\n" << text;
  }
}

TEST(ServingMetricsBucketsTest, LatencyBucketsSpanMillisecondsToMinutes) {
  const std::vector<double>& buckets = ServingMetrics::LatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));
  EXPECT_LE(buckets.front(), 0.002);  // a 2 ms model lands in a finite bucket of its own
  EXPECT_GE(buckets.back(), 60.0);    // so does a 60 s one
  EXPECT_EQ(buckets, (std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1, 2.5, 5, 10, 30, 60, 120}));
}

TEST(ServingMetricsBucketsTest, PhaseNamesAreTheLabelValues) {
  EXPECT_STREQ(PhaseName(Phase::kQueue), "queue");
  EXPECT_STREQ(PhaseName(Phase::kPreprocess), "preprocess");
  EXPECT_STREQ(PhaseName(Phase::kInference), "inference");
  EXPECT_STREQ(PhaseName(Phase::kPostprocess), "postprocess");
}

}  // namespace
}  // namespace imginterp::metrics
