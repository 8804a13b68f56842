// The bus keeps jobs, artifacts and tasks across a nats-server restart (file storage), and a
// connection reconnects on its own.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/job_store.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/task_queue.h"
#include "tests/support/nats_server.h"

namespace imginterp::jobbus {
namespace {

TEST(DurabilityTest, JobsAndTasksSurviveAServerRestart) {
  auto server = test_support::NatsServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  ConnectionOptions options;
  options.url = (*server)->url();
  options.reconnect_wait_ms = 100;
  auto connection = NatsConnection::Connect(options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  BusLayout layout;
  ASSERT_TRUE(EnsureBus(**connection, layout).ok());
  {
    auto kv = KeyValue::Open(**connection, layout.jobs_bucket);
    ASSERT_TRUE(kv.ok());
    v1::JobRecord record;
    record.set_job_id("job-1");
    record.set_state(v1::JOB_STATE_RUNNING);
    ASSERT_TRUE(JobStore(**kv).Create(record).ok());
    v1::StageTask task;
    task.set_job_id("job-1");
    task.set_stage("edges");
    task.set_family("edges");
    ASSERT_TRUE(TaskPublisher(**connection, layout).Publish(task).ok());
  }

  ASSERT_TRUE((*server)->Restart().ok());
  // Wait (bounded) for the client to reconnect; the assertions below do not depend on timing.
  for (int i = 0; i < 100 && !(*connection)->IsConnected(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE((*connection)->IsConnected());

  auto kv = KeyValue::Open(**connection, layout.jobs_bucket);
  ASSERT_TRUE(kv.ok()) << kv.status();
  auto record = JobStore(**kv).Get("job-1");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->record.state(), v1::JOB_STATE_RUNNING);
  ConsumerOptions consumer_options;
  consumer_options.family = "edges";
  auto consumer = TaskConsumer::Create(**connection, layout, consumer_options);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto batch = (*consumer)->Fetch(1, 5000);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 1u);
  EXPECT_EQ((*batch)[0]->task().job_id(), "job-1");
}

}  // namespace
}  // namespace imginterp::jobbus
