// JobManager and GatewayService against a real nats-server (tests/support). The test plays the
// worker with the jobbus TaskConsumer and JobStore directly: it tests the gateway, not a
// family service.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_service.h"
#include "gateway/job_logic.h"
#include "gateway/job_manager.h"
#include "gateway/pipeline_registry.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/core/jobbus/artifact_store.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/job_store.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/task_queue.h"
#include "services/core/rpc/grpc_server.h"
#include "tests/support/nats_server.h"
#include "tests/unit/gateway/stage_of.h"

namespace imginterp::gateway {
namespace {

using ::testing::HasSubstr;

constexpr char kPipelines[] = R"pb(
  pipelines {
    name: "two"
    stages {
      name: "first"
      family: "edges"
      request {
        [type.googleapis.com/imginterp.v1.EdgesRequest] { model { name: "canny" } }
      }
    }
    stages {
      name: "second"
      family: "edges"
      depends_on: "first"
      request {
        [type.googleapis.com/imginterp.v1.EdgesRequest] { model { name: "sobel" } }
      }
    }
  }
  pipelines {
    name: "lonely"
    stages {
      name: "orphan"
      family: "nobody"
      start_timeout_seconds: 1
      request {
        [type.googleapis.com/imginterp.v1.ClassifyRequest] { model { name: "x" } }
      }
    }
  }
)pb";

constexpr char kResultType[] = "type.googleapis.com/imginterp.v1.EdgesResponse";

v1::JobRequest Request(const std::string& pipeline, std::string image = "\x89PNG fake") {
  v1::JobRequest request;
  request.set_pipeline(pipeline);
  request.mutable_image()->set_data(std::move(image));
  request.mutable_image()->set_media_type("image/png");
  return request;
}

using test_util::StageOf;

class JobManagerNatsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = test_support::NatsServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    // Every test gets its own stream, subjects and buckets.
    static std::atomic<int> counter{0};
    const std::string id = absl::StrCat("g", ++counter);
    layout_.stream = absl::StrCat("TASKS_", id);
    layout_.subject_prefix = absl::StrCat(id, ".jobs");
    layout_.jobs_bucket = absl::StrCat(id, "_jobs");
    layout_.artifacts_bucket = absl::StrCat(id, "_artifacts");
    layout_.idempotency_bucket = absl::StrCat(id, "_idempotency");
    layout_.inline_limit_bytes = 1024;

    jobbus::ConnectionOptions options;
    options.url = server_->url();
    auto connection = jobbus::NatsConnection::Connect(options);
    ASSERT_TRUE(connection.ok()) << connection.status();
    connection_ = *std::move(connection);
    ASSERT_TRUE(jobbus::EnsureBus(*connection_, layout_).ok());
    jobs_kv_ = Open(layout_.jobs_bucket);
    artifacts_kv_ = Open(layout_.artifacts_bucket);
    idempotency_kv_ = Open(layout_.idempotency_bucket);
    ASSERT_TRUE(jobs_kv_ && artifacts_kv_ && idempotency_kv_);
    jobs_ = std::make_unique<jobbus::JobStore>(*jobs_kv_);
    artifacts_ = std::make_unique<jobbus::ArtifactStore>(*artifacts_kv_, 1024, 4096);
    publisher_ = std::make_unique<jobbus::TaskPublisher>(*connection_, layout_);
    auto pipelines = PipelineRegistry::Parse(kPipelines, "test pipelines");
    ASSERT_TRUE(pipelines.ok()) << pipelines.status();
    pipelines_ = *std::move(pipelines);
    metrics_ = std::make_unique<GatewayMetrics>(registry_);

    JobManagerOptions manager_options;
    manager_options.max_image_bytes = 64 * 1024;
    manager_options.tick_interval = absl::Milliseconds(50);
    manager_options.poll_interval = absl::Milliseconds(50);
    auto manager = JobManager::Create(manager_options, *pipelines_, *jobs_, *artifacts_,
                                      *idempotency_kv_, *publisher_, metrics_.get());
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
    ASSERT_TRUE(manager_->Start().ok());
  }

  void TearDown() override {
    if (worker_.joinable()) worker_.join();
    if (manager_) manager_->Stop();
  }

  std::unique_ptr<jobbus::KeyValue> Open(const std::string& bucket) {
    auto kv = jobbus::KeyValue::Open(*connection_, bucket);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? *std::move(kv) : nullptr;
  }

  // Plays one worker of family "edges": takes `count` tasks, marks each stage RUNNING, stores
  // "result of <stage>" as its result and marks it SUCCEEDED, as the real JobWorker does.
  void StartEdgesWorker(int count, const std::string& result_padding = "") {
    worker_ = std::thread([this, count, result_padding] {
      jobbus::ConsumerOptions options;
      options.family = "edges";
      auto consumer = jobbus::TaskConsumer::Create(*connection_, layout_, options);
      ASSERT_TRUE(consumer.ok()) << consumer.status();
      int handled = 0;
      for (int attempt = 0; attempt < 100 && handled < count; ++attempt) {
        auto deliveries = (*consumer)->Fetch(1, 200);
        ASSERT_TRUE(deliveries.ok()) << deliveries.status();
        for (auto& delivery : *deliveries) {
          const v1::StageTask task = delivery->task();
          const std::string stage_name = task.stage();
          auto started = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& record) {
            for (v1::StageRecord& stage : *record.mutable_stages()) {
              if (stage.name() != stage_name) continue;
              stage.set_state(v1::STAGE_STATE_RUNNING);
              stage.set_attempts(stage.attempts() + 1);
              ToTimestamp(absl::Now(), stage.mutable_started_at());
            }
            return absl::StatusOr<bool>(true);
          });
          ASSERT_TRUE(started.ok()) << started.status();
          auto image = artifacts_->Get(task.job_id(), task.image());
          ASSERT_TRUE(image.ok()) << image.status();
          seen_images_.push_back(*image);
          auto result = artifacts_->Put(task.job_id(), stage_name, kResultType,
                                        "result of " + stage_name + result_padding);
          ASSERT_TRUE(result.ok()) << result.status();
          auto finished = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& record) {
            for (v1::StageRecord& stage : *record.mutable_stages()) {
              if (stage.name() != stage_name) continue;
              stage.set_state(v1::STAGE_STATE_SUCCEEDED);
              stage.set_progress(1.0f);
              *stage.mutable_result() = *result;
              ToTimestamp(absl::Now(), stage.mutable_finished_at());
            }
            return absl::StatusOr<bool>(true);
          });
          ASSERT_TRUE(finished.ok()) << finished.status();
          ASSERT_TRUE(delivery->Ack().ok());
          ++handled;
        }
      }
      EXPECT_EQ(handled, count);
    });
  }

  // The metrics are observed by the thread whose write made the job terminal, which may be
  // just after a waiter saw that revision: wait (bounded) for the count to arrive.
  double EventualCounterValue(const std::string& name, const std::string& pipeline,
                              const std::string& state, double expected) {
    double value = 0;
    for (int i = 0; i < 200; ++i) {
      value = CounterValue(name, pipeline, state);
      if (value == expected) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return value;
  }

  double CounterValue(const std::string& name, const std::string& pipeline,
                      const std::string& state) {
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        bool pipeline_ok = false;
        bool state_ok = false;
        for (const auto& label : metric.label) {
          if (label.name == "pipeline" && label.value == pipeline) pipeline_ok = true;
          if (label.name == "state" && label.value == state) state_ok = true;
        }
        if (pipeline_ok && state_ok) return metric.counter.value;
      }
    }
    return 0;
  }

  static inline test_support::NatsServer* server_ = nullptr;
  jobbus::BusLayout layout_;
  std::unique_ptr<jobbus::NatsConnection> connection_;
  std::unique_ptr<jobbus::KeyValue> jobs_kv_;
  std::unique_ptr<jobbus::KeyValue> artifacts_kv_;
  std::unique_ptr<jobbus::KeyValue> idempotency_kv_;
  std::unique_ptr<jobbus::JobStore> jobs_;
  std::unique_ptr<jobbus::ArtifactStore> artifacts_;
  std::unique_ptr<jobbus::TaskPublisher> publisher_;
  std::unique_ptr<PipelineRegistry> pipelines_;
  prometheus::Registry registry_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<JobManager> manager_;
  std::thread worker_;
  std::vector<std::string> seen_images_;
};

TEST_F(JobManagerNatsTest, SubmitCreatesTheRecordAndPublishesOnlyTheReadyStage) {
  auto submitted = manager_->Submit(Request("two"), "", "trace-1");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_TRUE(submitted->created);
  EXPECT_EQ(submitted->job_id.size(), 32u);

  auto job = manager_->Get(submitted->job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::JobRecord& record = job->record;
  EXPECT_EQ(record.pipeline(), "two");
  EXPECT_EQ(record.trace_id(), "trace-1");
  EXPECT_EQ(record.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(record.input_image().name(), "input");
  EXPECT_EQ(record.input_image().content_type(), "image/png");
  ASSERT_EQ(record.stages_size(), 2);
  EXPECT_EQ(StageOf(record, "first").state(), v1::STAGE_STATE_QUEUED);
  EXPECT_TRUE(StageOf(record, "first").has_queued_at());
  EXPECT_EQ(StageOf(record, "second").state(), v1::STAGE_STATE_PENDING);
  EXPECT_EQ(StageOf(record, "second").depends_on(0), "first");
  EXPECT_EQ(StageOf(record, "second").request().type_url(),
            "type.googleapis.com/imginterp.v1.EdgesRequest");

  jobbus::ConsumerOptions options;
  options.family = "edges";
  auto consumer = jobbus::TaskConsumer::Create(*connection_, layout_, options);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto deliveries = (*consumer)->Fetch(10, 2000);
  ASSERT_TRUE(deliveries.ok()) << deliveries.status();
  ASSERT_EQ(deliveries->size(), 1u);
  const v1::StageTask& task = (*deliveries)[0]->task();
  EXPECT_EQ(task.job_id(), submitted->job_id);
  EXPECT_EQ(task.stage(), "first");
  EXPECT_EQ(task.trace_id(), "trace-1");
  EXPECT_EQ(task.image().SerializeAsString(), record.input_image().SerializeAsString());
}

TEST_F(JobManagerNatsTest, RejectsUnknownPipelinesEmptyAndOversizedImages) {
  const absl::Status unknown = manager_->Submit(Request("nope"), "", "t").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("'nope'"));
  EXPECT_THAT(unknown.message(), HasSubstr("two, lonely"));

  const absl::Status empty = manager_->Submit(Request("two", ""), "", "t").status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.message(), HasSubstr("job.image.data is empty"));

  const absl::Status big =
      manager_->Submit(Request("two", std::string(64 * 1024 + 1, 'x')), "", "t").status();
  EXPECT_EQ(big.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.message(), HasSubstr("65537"));
  EXPECT_THAT(big.message(), HasSubstr("65536"));
}

TEST_F(JobManagerNatsTest, SameIdempotencyKeyTwiceRunsOneJob) {
  auto first = manager_->Submit(Request("two"), "client-key-1", "t");
  auto second = manager_->Submit(Request("two"), "client-key-1", "t");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(first->created);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(first->job_id, second->job_id);
  auto jobs = manager_->List({}, 0);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->size(), 1u);
}

TEST_F(JobManagerNatsTest, DeleteRemovesTheJobAndFreesItsIdempotencyKey) {
  auto first = manager_->Submit(Request("two"), "client-key-2", "t");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(manager_->Delete(first->job_id).ok());
  const absl::Status gone = manager_->Get(first->job_id).status();
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  auto again = manager_->Submit(Request("two"), "client-key-2", "t");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->created);
  EXPECT_NE(again->job_id, first->job_id);
}

TEST_F(JobManagerNatsTest, StageWithoutWorkerFailsAfterItsStartTimeoutNamingTheFamily) {
  auto submitted = manager_->Submit(Request("lonely"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto finished =
      manager_->WaitForTerminal(submitted->job_id, absl::Now() + absl::Seconds(20), nullptr);
  ASSERT_TRUE(finished.ok()) << finished.status();
  const v1::JobRecord& record = finished->record;
  EXPECT_EQ(record.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(record.error().code(), "UNAVAILABLE");
  EXPECT_THAT(record.error().message(), HasSubstr("stage 'orphan' (nobody) failed"));
  EXPECT_THAT(record.error().message(),
              HasSubstr("no worker of family 'nobody' started stage 'orphan' within 1 s"));
  EXPECT_THAT(record.error().message(), HasSubstr("imginterp-nobody service"));
  EXPECT_EQ(StageOf(record, "orphan").state(), v1::STAGE_STATE_FAILED);
  EXPECT_EQ(EventualCounterValue("imginterp_gateway_jobs_total", "lonely", "failed", 1.0), 1.0);
}

TEST_F(JobManagerNatsTest, CancelCancelsTheJobAndItsWaitingStages) {
  auto submitted = manager_->Submit(Request("two"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto cancelled = manager_->Cancel(submitted->job_id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->record.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(cancelled->record.cancel_requested());
  EXPECT_EQ(StageOf(cancelled->record, "first").state(), v1::STAGE_STATE_CANCELLED);
  EXPECT_EQ(StageOf(cancelled->record, "second").state(), v1::STAGE_STATE_CANCELLED);

  auto again = manager_->Cancel(submitted->job_id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->revision, cancelled->revision);
}

TEST_F(JobManagerNatsTest, WaitingPastTheDeadlineNamesTheJobThatKeepsRunning) {
  auto submitted = manager_->Submit(Request("two"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const absl::Status status =
      manager_->WaitForTerminal(submitted->job_id, absl::Now() + absl::Milliseconds(300), nullptr)
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr(submitted->job_id));
  auto job = manager_->Get(submitted->job_id);
  ASSERT_TRUE(job.ok());
  EXPECT_FALSE(IsTerminal(job->record.state()));
}

TEST_F(JobManagerNatsTest, DependentStageRunsAfterItsDependencyAndTheJobSucceeds) {
  StartEdgesWorker(2);
  auto submitted = manager_->Submit(Request("two"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto finished =
      manager_->WaitForTerminal(submitted->job_id, absl::Now() + absl::Seconds(20), nullptr);
  ASSERT_TRUE(finished.ok()) << finished.status();
  worker_.join();
  const v1::JobRecord& record = finished->record;
  EXPECT_EQ(record.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FLOAT_EQ(JobProgress(record), 1.0f);
  EXPECT_GE(FromTimestamp(StageOf(record, "second").queued_at()),
            FromTimestamp(StageOf(record, "first").finished_at()));
  ASSERT_EQ(seen_images_.size(), 2u);
  EXPECT_EQ(seen_images_[0], "\x89PNG fake");

  auto result = manager_->FetchResult(submitted->job_id, "second");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->content_type, kResultType);
  EXPECT_EQ(result->data, "result of second");
  EXPECT_EQ(EventualCounterValue("imginterp_gateway_jobs_total", "two", "succeeded", 1.0), 1.0);
}

TEST_F(JobManagerNatsTest, ResultsOfUnfinishedStagesAreAFailedPrecondition) {
  auto submitted = manager_->Submit(Request("two"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const absl::Status status = manager_->FetchResult(submitted->job_id, "second").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("stage 'second'"));
  EXPECT_EQ(manager_->FetchResult(submitted->job_id, "third").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(JobManagerNatsTest, ANewManagerRepublishesQueuedStagesOfUnfinishedJobs) {
  auto submitted = manager_->Submit(Request("two"), "", "t");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  // Drain the first publication, as if the task had been lost with a crashed worker.
  {
    jobbus::ConsumerOptions options;
    options.family = "edges";
    auto consumer = jobbus::TaskConsumer::Create(*connection_, layout_, options);
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    auto deliveries = (*consumer)->Fetch(1, 2000);
    ASSERT_TRUE(deliveries.ok() && deliveries->size() == 1u);
    ASSERT_TRUE((*deliveries)[0]->Term().ok());
  }
  manager_->Stop();
  // A restarted gateway. It publishes to a fresh stream: on the old one the duplicate window
  // would drop the re-publish of a task it already stored, which is the point in production
  // but would hide whether recovery published at all.
  jobbus::BusLayout layout = layout_;
  layout.stream = layout_.stream + "_R";
  layout.subject_prefix = layout_.subject_prefix + "r";
  ASSERT_TRUE(jobbus::EnsureBus(*connection_, layout).ok());
  jobbus::TaskPublisher publisher(*connection_, layout);
  auto restarted = JobManager::Create(JobManagerOptions{}, *pipelines_, *jobs_, *artifacts_,
                                      *idempotency_kv_, publisher, nullptr);
  ASSERT_TRUE(restarted.ok());
  ASSERT_TRUE((*restarted)->Start().ok());
  jobbus::ConsumerOptions options;
  options.family = "edges";
  auto consumer = jobbus::TaskConsumer::Create(*connection_, layout, options);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto deliveries = (*consumer)->Fetch(1, 2000);
  ASSERT_TRUE(deliveries.ok()) << deliveries.status();
  ASSERT_EQ(deliveries->size(), 1u);
  EXPECT_EQ((*deliveries)[0]->task().job_id(), submitted->job_id);
  EXPECT_EQ((*deliveries)[0]->task().stage(), "first");
  (*restarted)->Stop();
}

// The gRPC surface end to end over a loopback port.
TEST_F(JobManagerNatsTest, GrpcRunPipelineReturnsTypedResultsAndDownloadStreamsChunks) {
  GatewayServiceOptions service_options;
  service_options.download_chunk_bytes = 1000;
  GatewayService service(service_options, *manager_, *pipelines_);
  rpc::GrpcServerOptions server_options;
  server_options.address = "127.0.0.1:0";
  auto server = rpc::GrpcServer::Start(server_options, {&service});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::GatewayService::NewStub(channel);

  StartEdgesWorker(2, std::string(2500, '.'));
  v1::RunPipelineRequest run;
  *run.mutable_job() = Request("two");
  v1::RunPipelineResponse response;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    context.AddMetadata("x-trace-id", "caller-trace");
    const grpc::Status status = stub->RunPipeline(&context, run, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  worker_.join();
  EXPECT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).stage(), "first");
  EXPECT_EQ(response.results(0).response().type_url(), kResultType);
  EXPECT_EQ(response.results(0).response().value(), "result of first" + std::string(2500, '.'));

  {
    grpc::ClientContext context;
    v1::GetJobRequest get;
    get.set_job_id(response.job_id());
    v1::Job job;
    ASSERT_TRUE(stub->GetJob(&context, get, &job).ok());
    EXPECT_EQ(job.record().trace_id(), "caller-trace");
    EXPECT_FLOAT_EQ(job.progress(), 1.0f);
    EXPECT_GT(job.revision(), 0u);
    EXPECT_TRUE(job.record().input_image().inline_data().empty());
  }
  {
    grpc::ClientContext context;
    v1::DownloadResultRequest download;
    download.set_job_id(response.job_id());
    download.set_stage("second");
    auto reader = stub->DownloadResult(&context, download);
    v1::ResultChunk chunk;
    std::string data;
    int chunks = 0;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.offset(), static_cast<int64_t>(data.size()));
      EXPECT_EQ(chunk.content_type(), kResultType);
      data += chunk.data();
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(chunks, 3);
    EXPECT_EQ(data, "result of second" + std::string(2500, '.'));
  }
  {
    grpc::ClientContext context;
    v1::WatchJobRequest watch;
    watch.set_job_id(response.job_id());
    auto reader = stub->WatchJob(&context, watch);
    v1::Job job;
    std::vector<v1::JobState> states;
    while (reader->Read(&job)) states.push_back(job.record().state());
    ASSERT_TRUE(reader->Finish().ok());
    ASSERT_FALSE(states.empty());
    EXPECT_EQ(states.back(), v1::JOB_STATE_SUCCEEDED);
  }
  {
    grpc::ClientContext context;
    v1::GetJobRequest get;
    get.set_job_id("0123456789abcdef0123456789abcdef");
    v1::Job job;
    const grpc::Status status = stub->GetJob(&context, get, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("0123456789abcdef0123456789abcdef"));
  }
  {
    grpc::ClientContext context;
    v1::ListPipelinesResponse pipelines;
    ASSERT_TRUE(stub->ListPipelines(&context, v1::ListPipelinesRequest(), &pipelines).ok());
    EXPECT_EQ(pipelines.pipelines_size(), 2);
  }
  (*server)->Shutdown(std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace imginterp::gateway
