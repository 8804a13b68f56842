#include "gateway/consumer_lag_poller.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "gateway/gateway_metrics.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/task_queue.h"
#include "tests/support/nats_server.h"

namespace imginterp::gateway {
namespace {

// A real nats-server; the poller reads the consumer of a family with queued tasks and skips a
// family none of whose workers has created its consumer yet.
TEST(ConsumerLagPollerNatsTest, PublishesEachFamilysQueueDepthAsGauges) {
  auto server = test_support::NatsServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  jobbus::ConnectionOptions options;
  options.url = (*server)->url();
  auto connection = jobbus::NatsConnection::Connect(options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  jobbus::BusLayout layout;
  ASSERT_TRUE(jobbus::EnsureBus(**connection, layout).ok());

  jobbus::ConsumerOptions consumer_options;
  consumer_options.family = "edges";
  auto consumer = jobbus::TaskConsumer::Create(**connection, layout, consumer_options);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  jobbus::TaskPublisher publisher(**connection, layout);
  for (const char* job : {"job-1", "job-2"}) {
    v1::StageTask task;
    task.set_job_id(job);
    task.set_stage("edges");
    task.set_family("edges");
    ASSERT_TRUE(publisher.Publish(task).ok());
  }

  prometheus::Registry registry;
  GatewayMetrics metrics(registry);
  const auto scrape = [&] { return prometheus::TextSerializer().Serialize(registry.Collect()); };
  ConsumerLagPoller poller(**connection, layout, {"edges", "pose"}, metrics,
                           absl::Milliseconds(50));
  EXPECT_EQ(poller.PollOnce(), 1) << "pose has no consumer yet";
  std::string text = scrape();
  EXPECT_TRUE(
      absl::StrContains(text, "imginterp_bus_consumer_pending_messages{family=\"edges\"} 2"))
      << text;
  EXPECT_TRUE(
      absl::StrContains(text, "imginterp_bus_consumer_ack_pending_messages{family=\"edges\"} 0"))
      << text;
  EXPECT_FALSE(absl::StrContains(text, "family=\"pose\"")) << text;

  // The poller's own thread follows a delivery without being asked.
  auto batch = (*consumer)->Fetch(1, 2000);
  ASSERT_TRUE(batch.ok() && batch->size() == 1u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (
      !absl::StrContains(scrape(), "imginterp_bus_consumer_pending_messages{family=\"edges\"} 1") &&
      std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  text = scrape();
  EXPECT_TRUE(
      absl::StrContains(text, "imginterp_bus_consumer_pending_messages{family=\"edges\"} 1"))
      << text;
  EXPECT_TRUE(
      absl::StrContains(text, "imginterp_bus_consumer_ack_pending_messages{family=\"edges\"} 1"))
      << text;
  EXPECT_TRUE((*batch)[0]->Ack().ok());
}

}  // namespace
}  // namespace imginterp::gateway
