#include "gateway/gateway_metrics.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace imginterp::gateway {
namespace {

TEST(GatewayMetricsTest, DeclaredPipelinesStartAtZeroInEveryTerminalState) {
  prometheus::Registry registry;
  GatewayMetrics metrics(registry);
  metrics.DeclarePipelines({"priors", "generate"});
  v1::JobRecord record;
  record.set_pipeline("priors");
  record.set_state(v1::JOB_STATE_FAILED);
  metrics.JobFinished(record);

  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  for (const char* series : {
           "imginterp_gateway_jobs_total{pipeline=\"priors\",state=\"failed\"} 1",
           "imginterp_gateway_jobs_total{pipeline=\"priors\",state=\"succeeded\"} 0",
           "imginterp_gateway_jobs_total{pipeline=\"priors\",state=\"cancelled\"} 0",
           "imginterp_gateway_jobs_total{pipeline=\"generate\",state=\"succeeded\"} 0",
           "imginterp_gateway_jobs_total{pipeline=\"generate\",state=\"failed\"} 0",
           "imginterp_gateway_jobs_total{pipeline=\"generate\",state=\"cancelled\"} 0",
       }) {
    EXPECT_TRUE(absl::StrContains(text, series)) << series << "\n" << text;
  }
  EXPECT_FALSE(absl::StrContains(text, "state=\"running\"")) << "only terminal states";
}

}  // namespace
}  // namespace imginterp::gateway
