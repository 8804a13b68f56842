#include "services/core/jobbus/task_queue.h"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>

#include "tests/unit/jobbus/bus_test_fixture.h"

namespace imginterp::jobbus {
namespace {

class TaskQueueTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    publisher_ = std::make_unique<TaskPublisher>(*connection_, layout_);
  }

  static v1::StageTask NewTask(const std::string& job_id, const std::string& stage = "edges") {
    v1::StageTask task;
    task.set_job_id(job_id);
    task.set_stage(stage);
    task.set_family("edges");
    task.mutable_image()->set_name("input");
    task.mutable_image()->set_inline_data("png-bytes");
    return task;
  }

  std::unique_ptr<TaskConsumer> NewConsumer(int64_t ack_wait_ms = 30000) {
    ConsumerOptions options;
    options.family = "edges";
    options.ack_wait_ms = ack_wait_ms;
    auto consumer = TaskConsumer::Create(*connection_, layout_, options);
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    return consumer.ok() ? *std::move(consumer) : nullptr;
  }

  std::unique_ptr<TaskPublisher> publisher_;
};

TEST_F(TaskQueueTest, PublishedTaskIsFetchedOnceAndNotRedeliveredAfterAck) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  auto batch = consumer->Fetch(10, 2000);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 1u);
  TaskDelivery& delivery = *(*batch)[0];
  EXPECT_EQ(delivery.task().job_id(), "job-1");
  EXPECT_EQ(delivery.task().image().inline_data(), "png-bytes");
  EXPECT_EQ(delivery.delivery_count(), 1u);
  ASSERT_TRUE(delivery.Ack().ok());
  EXPECT_TRUE(delivery.Nak(0).ok());  // Already settled: a no-op.
  auto after = consumer->Fetch(10, 300);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->empty());
}

TEST_F(TaskQueueTest, PublishingTheSameJobStageTwiceStoresOneTask) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1", "edges-2")).ok());
  auto batch = consumer->Fetch(10, 1000);
  ASSERT_TRUE(batch.ok()) << batch.status();
  size_t total = batch->size();
  // Fetch may return early with part of the batch; drain what is left.
  while (true) {
    auto more = consumer->Fetch(10, 300);
    ASSERT_TRUE(more.ok());
    if (more->empty()) break;
    total += more->size();
  }
  EXPECT_EQ(total, 2u);
}

TEST_F(TaskQueueTest, NakWithDelayRedeliversWithDeliveryCountTwo) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  auto first = consumer->Fetch(1, 2000);
  ASSERT_TRUE(first.ok() && first->size() == 1u);
  ASSERT_TRUE((*first)[0]->Nak(200).ok());
  auto second = consumer->Fetch(1, 5000);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0]->task().job_id(), "job-1");
  EXPECT_EQ((*second)[0]->delivery_count(), 2u);
  EXPECT_TRUE((*second)[0]->Ack().ok());
}

TEST_F(TaskQueueTest, UnackedTaskIsRedeliveredToASecondConsumerAfterTheFirstIsGone) {
  {
    auto consumer = NewConsumer(/*ack_wait_ms=*/1000);
    ASSERT_NE(consumer, nullptr);
    ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
    auto batch = consumer->Fetch(1, 2000);
    ASSERT_TRUE(batch.ok() && batch->size() == 1u);
    // Neither the delivery nor the consumer settles it: both are destroyed here.
  }
  auto replacement = NewConsumer(/*ack_wait_ms=*/1000);
  ASSERT_NE(replacement, nullptr);
  auto batch = replacement->Fetch(1, 10000);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 1u);
  EXPECT_EQ((*batch)[0]->task().job_id(), "job-1");
  EXPECT_EQ((*batch)[0]->delivery_count(), 2u);
}

TEST_F(TaskQueueTest, ConsumerBindsToAnExistingDurableWithADifferentAckWait) {
  auto first = NewConsumer(/*ack_wait_ms=*/30000);
  ASSERT_NE(first, nullptr);
  auto second = NewConsumer(/*ack_wait_ms=*/5000);
  ASSERT_NE(second, nullptr);
  // The durable now carries the newer AckWait.
  jsConsumerInfo* info = nullptr;
  ASSERT_EQ(js_GetConsumerInfo(&info, connection_->js(), layout_.stream.c_str(),
                               layout_.DurableFor("edges").c_str(), nullptr, nullptr),
            NATS_OK);
  EXPECT_EQ(info->Config->AckWait, 5000LL * 1000 * 1000);
  jsConsumerInfo_Destroy(info);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  auto batch = second->Fetch(1, 2000);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->size(), 1u);
}

TEST_F(TaskQueueTest, TraceIdTravelsInTheHeader) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  v1::StageTask task = NewTask("job-1");
  task.set_trace_id("0123456789abcdef");
  ASSERT_TRUE(publisher_->Publish(task).ok());
  auto batch = consumer->Fetch(1, 2000);
  ASSERT_TRUE(batch.ok() && batch->size() == 1u);
  EXPECT_EQ((*batch)[0]->trace_id(), "0123456789abcdef");
}

TEST_F(TaskQueueTest, FetchWithNoTasksReturnsEmptyOnTimeout) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  auto batch = consumer->Fetch(5, 200);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(batch->empty());
}

TEST_F(TaskQueueTest, NonProtobufMessageIsTerminatedAndSkipped) {
  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  const std::string subject = layout_.SubjectFor("edges");
  const std::string garbage = "\xff\xff\xff not a StageTask";
  ASSERT_EQ(js_Publish(nullptr, connection_->js(), subject.c_str(), garbage.data(),
                       static_cast<int>(garbage.size()), nullptr, nullptr),
            NATS_OK);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  std::vector<std::string> jobs;
  for (int i = 0; i < 3; ++i) {
    auto batch = consumer->Fetch(10, 500);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (auto& delivery : *batch) {
      jobs.push_back(delivery->task().job_id());
      EXPECT_TRUE(delivery->Ack().ok());
    }
  }
  EXPECT_EQ(jobs, std::vector<std::string>{"job-1"});
}

TEST_F(TaskQueueTest, InvalidTasksAndOptionsAreRejected) {
  v1::StageTask task = NewTask("job-1");
  task.set_family("bad.family");
  EXPECT_EQ(publisher_->Publish(task).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(publisher_->Publish(NewTask("")).code(), absl::StatusCode::kInvalidArgument);
  ConsumerOptions options;
  options.family = "edges";
  options.ack_wait_ms = 0;
  EXPECT_EQ(TaskConsumer::Create(*connection_, layout_, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TaskQueueTest, InProgressKeepsATaskPastItsAckWait) {
  auto consumer = NewConsumer(/*ack_wait_ms=*/1500);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(publisher_->Publish(NewTask("job-1")).ok());
  auto batch = consumer->Fetch(1, 2000);
  ASSERT_TRUE(batch.ok() && batch->size() == 1u);
  // A heartbeat about every 300 ms for twice the AckWait: the server must not hand the task
  // out again meanwhile.
  auto other = NewConsumer(/*ack_wait_ms=*/1500);
  ASSERT_NE(other, nullptr);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE((*batch)[0]->InProgress().ok());
    auto stolen = other->Fetch(1, 300);
    ASSERT_TRUE(stolen.ok());
    EXPECT_TRUE(stolen->empty());
  }
  EXPECT_TRUE((*batch)[0]->Ack().ok());
}

TEST_F(TaskQueueTest, ConsumerLagCountsPendingAckPendingAndRedeliveredTasks) {
  auto missing = ReadConsumerLag(*connection_, layout_, "edges");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  auto consumer = NewConsumer();
  ASSERT_NE(consumer, nullptr);
  for (const char* job : {"job-1", "job-2", "job-3"}) {
    ASSERT_TRUE(publisher_->Publish(NewTask(job)).ok());
  }
  auto lag = ReadConsumerLag(*connection_, layout_, "edges");
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(lag->pending, 3u);
  EXPECT_EQ(lag->ack_pending, 0);
  EXPECT_EQ(lag->redelivered, 0);

  auto first = consumer->Fetch(1, 2000);
  ASSERT_TRUE(first.ok() && first->size() == 1u);
  lag = ReadConsumerLag(*connection_, layout_, "edges");
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(lag->pending, 2u);
  EXPECT_EQ(lag->ack_pending, 1);
  EXPECT_EQ(lag->redelivered, 0);

  // The nak'ed task goes back to the stream and comes again, in some order with the others.
  ASSERT_TRUE((*first)[0]->Nak(0).ok());
  std::vector<std::unique_ptr<TaskDelivery>> held;
  bool redelivered = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (held.size() < 3u && std::chrono::steady_clock::now() < deadline) {
    auto batch = consumer->Fetch(3, 1000);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (auto& delivery : *batch) {
      redelivered |= delivery->delivery_count() == 2u;
      held.push_back(std::move(delivery));
    }
  }
  ASSERT_EQ(held.size(), 3u);
  ASSERT_TRUE(redelivered);
  lag = ReadConsumerLag(*connection_, layout_, "edges");
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(lag->pending, 0u);
  EXPECT_EQ(lag->ack_pending, 3);
  EXPECT_EQ(lag->redelivered, 1);

  for (auto& delivery : held) ASSERT_TRUE(delivery->Ack().ok());
  lag = ReadConsumerLag(*connection_, layout_, "edges");
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(lag->pending, 0u);
  EXPECT_EQ(lag->ack_pending, 0);
  EXPECT_EQ(lag->redelivered, 0);
}

}  // namespace
}  // namespace imginterp::jobbus
