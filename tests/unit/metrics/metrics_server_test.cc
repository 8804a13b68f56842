#include "services/core/metrics/metrics_server.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "services/core/common/http_get.h"
#include "services/core/metrics/serving_metrics.h"

namespace imginterp::metrics {
namespace {

// The exporter's page, as Prometheus would fetch it.
absl::StatusOr<std::string> ScrapeMetrics(int port) {
  return common::HttpGet({"127.0.0.1", port, "/metrics"}, std::chrono::seconds(5));
}

TEST(MetricsServerTest, PortZeroPicksAFreePortAndServesTheRegistry) {
  auto server = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);

  prometheus::BuildCounter()
      .Name("imginterp_test_events_total")
      .Help("Events counted by the test.")
      .Register((*server)->registry())
      .Add({{"kind", "a"}})
      .Increment(3);

  auto body = ScrapeMetrics((*server)->port());
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(absl::StrContains(*body, "# HELP imginterp_test_events_total Events counted"))
      << *body;
  EXPECT_TRUE(absl::StrContains(*body, "imginterp_test_events_total{kind=\"a\"} 3")) << *body;
}

TEST(MetricsServerTest, ServesTheStandardServingFamilies) {
  auto server = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  {
    ServingMetrics metrics((*server)->registry(), "s");
    metrics.RecordRequest("m", "1", absl::StatusCode::kOk, 0.004);
    metrics.RecordRequest("m", "1", absl::StatusCode::kOk, 0.004);
    metrics.RecordBatch("m", "1", 2);
  }  // the families live in the registry, not in ServingMetrics

  auto body = ScrapeMetrics((*server)->port());
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(absl::StrContains(
      *body, "imginterp_requests_total{code=\"OK\",model=\"m\",service=\"s\",version=\"1\"} 2"))
      << *body;
  EXPECT_TRUE(
      absl::StrContains(*body,
                        "imginterp_request_duration_seconds_bucket{model=\"m\",service=\"s\","
                        "version=\"1\",le=\"0.005\"} 2"))
      << *body;
  EXPECT_TRUE(absl::StrContains(
      *body, "imginterp_batch_size_count{model=\"m\",service=\"s\",version=\"1\"} 1"))
      << *body;
}

TEST(MetricsServerTest, SecondServerOnATakenPortIsUnavailable) {
  auto first = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = "127.0.0.1:" + std::to_string((*first)->port());

  auto second = MetricsServer::Create(address);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "cannot listen on " + address))
      << second.status();
}

TEST(MetricsServerTest, EmptyBindAddressIsInvalid) {
  EXPECT_EQ(MetricsServer::Create("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, PortIsReleasedWhenTheServerIsDestroyed) {
  auto first = MetricsServer::Create("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = "127.0.0.1:" + std::to_string((*first)->port());
  first->reset();

  auto again = MetricsServer::Create(address);
  EXPECT_TRUE(again.ok()) << again.status();
}

}  // namespace
}  // namespace imginterp::metrics
