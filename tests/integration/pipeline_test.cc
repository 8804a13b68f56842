// Pipelines through the real gateway, NATS JetStream and edges workers.
#include <map>
#include <opencv2/core.hpp>
#include <thread>

#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "imginterp/v1/edges.grpc.pb.h"
#include "imginterp/v1/edges.pb.h"
#include "services/core/codec/image_codec.h"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

using std::chrono::seconds;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(stack_.StartNats().ok());
    auto edges = stack_.StartService("edges");
    ASSERT_TRUE(edges.ok()) << edges.status();
    edges_ = *edges;
    auto gateway = stack_.StartGateway();
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    stub_ = stack_.GatewayStub();
  }

  v1::JobRequest Job(const std::string& pipeline, const std::string& png) {
    v1::JobRequest job;
    job.set_pipeline(pipeline);
    job.mutable_image()->set_data(png);
    job.mutable_image()->set_media_type("image/png");
    return job;
  }

  v1::Job WaitTerminal(const std::string& job_id, seconds timeout = seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    v1::Job job;
    while (std::chrono::steady_clock::now() < deadline) {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(job_id);
      if (stub_->GetJob(&context, request, &job).ok()) {
        const auto state = job.record().state();
        if (state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
            state == v1::JOB_STATE_CANCELLED) {
          return job;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return job;
  }

  Stack stack_;
  Process* edges_ = nullptr;
  std::unique_ptr<v1::GatewayService::Stub> stub_;
};

TEST_F(PipelineTest, SyncRunReturnsEveryStageResultAsTypedResponse) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("priors", MakePng(160, 120, 1));
  v1::RunPipelineResponse response;
  grpc::Status status = stub_->RunPipeline(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(response.results_size(), 2);
  for (const auto& result : response.results()) {
    EXPECT_EQ(result.state(), v1::STAGE_STATE_SUCCEEDED) << result.stage();
    v1::EdgesResponse edges;
    ASSERT_TRUE(result.response().UnpackTo(&edges)) << result.response().type_url();
    EXPECT_EQ(edges.model().name(), result.stage());  // canny / sobel stages use those models
    auto map = codec::Decode(edges.map().image().data(), {});
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_EQ(map->rgb.cols, 160);
    EXPECT_EQ(map->rgb.rows, 120);
  }
}

TEST_F(PipelineTest, AsyncJobIsWatchedToCompletionAndItsLargeResultsDownloaded) {
  // Noise compresses badly: a 1400x1400 PNG is several MB, so the input and the sobel map travel
  // as chunked artifacts, not inline.
  cv::Mat noise(1400, 1400, CV_8UC3);
  cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(255));
  const std::string png = *codec::EncodePng(noise);
  ASSERT_GT(png.size(), 4u << 20);

  grpc::ClientContext submit_context;
  v1::SubmitJobRequest submit;
  *submit.mutable_job() = Job("priors", png);
  v1::SubmitJobResponse submitted;
  ASSERT_TRUE(stub_->SubmitJob(&submit_context, submit, &submitted).ok());
  ASSERT_TRUE(submitted.created());

  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + seconds(120));
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job_id());
  auto reader = stub_->WatchJob(&watch_context, watch);
  v1::Job job;
  uint64_t last_revision = 0;
  int updates = 0;
  bool saw_running = false;
  while (reader->Read(&job)) {
    EXPECT_GT(job.revision(), last_revision);
    last_revision = job.revision();
    ++updates;
    for (const auto& stage : job.record().stages()) {
      saw_running |= stage.state() == v1::STAGE_STATE_RUNNING;
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(job.record().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FLOAT_EQ(job.progress(), 1.0f);
  EXPECT_GE(updates, 3);
  EXPECT_TRUE(saw_running);

  grpc::ClientContext download_context;
  v1::DownloadResultRequest download;
  download.set_job_id(submitted.job_id());
  download.set_stage("sobel");
  auto chunks = stub_->DownloadResult(&download_context, download);
  v1::ResultChunk chunk;
  std::string bytes;
  int pieces = 0;
  int64_t total = 0;
  while (chunks->Read(&chunk)) {
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(bytes.size()));
    bytes += chunk.data();
    total = chunk.total_size();
    ++pieces;
  }
  ASSERT_TRUE(chunks->Finish().ok());
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), total);
  EXPECT_GT(pieces, 1);
  v1::EdgesResponse sobel;
  ASSERT_TRUE(sobel.ParseFromString(bytes));
  auto map = codec::Decode(sobel.map().image().data(), {});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->rgb.cols, 1400);
}

TEST_F(PipelineTest, DependentStageRunsAfterItsDependency) {
  grpc::ClientContext context;
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("chain", MakePng(64, 64, 2));
  v1::RunPipelineResponse response;
  ASSERT_TRUE(stub_->RunPipeline(&context, request, &response).ok());
  ASSERT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED);
  v1::Job job = WaitTerminal(response.job_id());
  const auto& stages = job.record().stages();
  ASSERT_EQ(stages.size(), 2);
  const auto& first = stages[0].name() == "first" ? stages[0] : stages[1];
  const auto& second = stages[0].name() == "first" ? stages[1] : stages[0];
  EXPECT_GE(google::protobuf::util::TimeUtil::TimestampToNanoseconds(second.queued_at()),
            google::protobuf::util::TimeUtil::TimestampToNanoseconds(first.finished_at()));
}

TEST_F(PipelineTest, ImageFromFeedsAnEarlierStagesMapToTheNextStage) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("feed", MakePng(96, 80, 3));
  v1::RunPipelineResponse response;
  ASSERT_TRUE(stub_->RunPipeline(&context, request, &response).ok());
  ASSERT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED) << response.error().message();
  std::map<std::string, v1::EdgesResponse> results;
  for (const auto& result : response.results()) {
    ASSERT_TRUE(result.response().UnpackTo(&results[result.stage()]));
  }
  // Sobel of the canny map, asked of the edges service directly, is what the second stage got.
  auto edges = v1::EdgesService::NewStub(Stack::Channel(edges_->address()));
  grpc::ClientContext direct_context;
  v1::EdgesRequest direct;
  direct.mutable_model()->set_name("sobel");
  *direct.mutable_image() = results["first"].map().image();
  v1::EdgesResponse expected;
  ASSERT_TRUE(edges->Detect(&direct_context, direct, &expected).ok());
  EXPECT_EQ(results["second"].map().image().data(), expected.map().image().data());
  // ... and not Sobel of the job's input.
  grpc::ClientContext input_context;
  *direct.mutable_image() = request.job().image();
  v1::EdgesResponse of_input;
  ASSERT_TRUE(edges->Detect(&input_context, direct, &of_input).ok());
  EXPECT_NE(results["second"].map().image().data(), of_input.map().image().data());
}

TEST_F(PipelineTest, InputsWireJobParametersAndEarlierResultsIntoStages) {
  auto edges = v1::EdgesService::NewStub(Stack::Channel(edges_->address()));
  const std::string png = MakePng(96, 80, 3);
  auto run = [&](std::map<std::string, std::string> parameters) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(60));
    v1::RunPipelineRequest request;
    *request.mutable_job() = Job("wired", png);
    request.mutable_job()->mutable_parameters()->insert(parameters.begin(), parameters.end());
    v1::RunPipelineResponse response;
    const grpc::Status status = stub_->RunPipeline(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED) << response.error().message();
    std::map<std::string, v1::EdgesResponse> results;
    for (const auto& result : response.results()) {
      EXPECT_TRUE(result.response().UnpackTo(&results[result.stage()]));
    }
    return results;
  };
  auto direct = [&](const std::string& model, const v1::Image& image, float low, float high) {
    grpc::ClientContext context;
    v1::EdgesRequest request;
    request.mutable_model()->set_name(model);
    *request.mutable_image() = image;
    if (low > 0) {
      request.mutable_canny()->set_low_threshold(low);
      request.mutable_canny()->set_high_threshold(high);
    }
    v1::EdgesResponse response;
    EXPECT_TRUE(edges->Detect(&context, request, &response).ok());
    return response.map().image().data();
  };
  v1::Image input;
  input.set_data(png);

  std::map<std::string, v1::EdgesResponse> low = run({{"low", "5"}, {"high", "20"}});
  std::map<std::string, v1::EdgesResponse> high = run({{"low", "200"}, {"high", "400"}});
  // The thresholds reached the first stage: each map is what canny with them gives directly.
  EXPECT_EQ(low["first"].map().image().data(), direct("canny", input, 5, 20));
  EXPECT_EQ(high["first"].map().image().data(), direct("canny", input, 200, 400));
  EXPECT_NE(low["first"].map().image().data(), high["first"].map().image().data());
  // The second stage ran on the first stage's map, not on the job's image.
  EXPECT_EQ(low["second"].map().image().data(), direct("sobel", low["first"].map().image(), 0, 0));
  EXPECT_NE(low["second"].map().image().data(), direct("sobel", input, 0, 0));
}

TEST_F(PipelineTest, JobParametersAreListedAndCheckedBeforeTheJobIsCreated) {
  {
    grpc::ClientContext context;
    v1::ListPipelinesResponse pipelines;
    ASSERT_TRUE(stub_->ListPipelines(&context, v1::ListPipelinesRequest(), &pipelines).ok());
    std::vector<std::string> listed;
    for (const v1::PipelineSpec& pipeline : pipelines.pipelines()) {
      if (pipeline.name() != "wired") continue;
      for (const v1::PipelineParameter& parameter : pipeline.parameters()) {
        listed.push_back(parameter.name() + (parameter.required() ? "!" : ""));
      }
    }
    EXPECT_EQ(listed, (std::vector<std::string>{"high", "low!"}));
  }
  struct Case {
    std::map<std::string, std::string> parameters;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {{{"high", "20"}}, "needs parameter 'low'"},
           {{{"low", "5"}, {"steps", "3"}}, "has no parameter 'steps'; its parameters: high, low"},
           {{{"low", "five"}}, "parameter 'low' for stage 'first'"},
       }) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_job() = Job("wired", MakePng(32, 32, 3));
    request.mutable_job()->mutable_parameters()->insert(c.parameters.begin(), c.parameters.end());
    v1::SubmitJobResponse response;
    const grpc::Status status = stub_->SubmitJob(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.expected;
    EXPECT_NE(status.error_message().find(c.expected), std::string::npos) << status.error_message();
    EXPECT_TRUE(response.job_id().empty());
  }
}

TEST_F(PipelineTest, ImageFromAFieldThatIsNotAnImageFailsTheStageNamingIt) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("bad-feed", MakePng(64, 64, 4));
  v1::RunPipelineResponse response;
  ASSERT_TRUE(stub_->RunPipeline(&context, request, &response).ok());
  EXPECT_EQ(response.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(response.error().message().find("first.map"), std::string::npos)
      << response.error().message();
  EXPECT_NE(response.error().message().find("not an imginterp.v1.Image"), std::string::npos)
      << response.error().message();
}

TEST_F(PipelineTest, SameIdempotencyKeyTwiceMakesOneJob) {
  std::string ids[2];
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_job() = Job("priors", MakePng(64, 48, 3));
    request.set_idempotency_key("client-order-42");
    v1::SubmitJobResponse response;
    ASSERT_TRUE(stub_->SubmitJob(&context, request, &response).ok());
    EXPECT_EQ(response.created(), i == 0);
    ids[i] = response.job_id();
  }
  EXPECT_EQ(ids[0], ids[1]);
  WaitTerminal(ids[0]);
  grpc::ClientContext context;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);
}

TEST_F(PipelineTest, StageWithoutWorkerFailsAfterItsTimeoutNamingTheFamily) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(30));
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("orphan", MakePng(32, 32, 4));
  v1::RunPipelineResponse response;
  ASSERT_TRUE(stub_->RunPipeline(&context, request, &response).ok());
  EXPECT_EQ(response.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(response.error().message().find("nobody"), std::string::npos)
      << response.error().message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).state(), v1::STAGE_STATE_FAILED);
  EXPECT_EQ(response.results(0).error().code(), "UNAVAILABLE");
}

TEST_F(PipelineTest, BadJobRequestsGetClearStatuses) {
  struct Case {
    std::string pipeline;
    std::string image;
    grpc::StatusCode code;
    std::string mentions;
  };
  const Case cases[] = {
      {"no-such-pipeline", MakePng(8, 8, 0), grpc::StatusCode::NOT_FOUND, "no-such-pipeline"},
      {"priors", "", grpc::StatusCode::INVALID_ARGUMENT, "empty"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_job() = Job(c.pipeline, c.image);
    v1::SubmitJobResponse response;
    grpc::Status status = stub_->SubmitJob(&context, request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.pipeline;
    EXPECT_NE(status.error_message().find(c.mentions), std::string::npos) << status.error_message();
  }
  // An image the workers cannot decode fails the job with the worker's message, and the
  // workers go on serving.
  grpc::ClientContext context;
  v1::RunPipelineRequest request;
  *request.mutable_job() = Job("priors", "<html>not an image</html>");
  v1::RunPipelineResponse response;
  ASSERT_TRUE(stub_->RunPipeline(&context, request, &response).ok());
  EXPECT_EQ(response.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(response.error().message().find("image"), std::string::npos);
  grpc::ClientContext again;
  v1::RunPipelineRequest good;
  *good.mutable_job() = Job("priors", MakePng(40, 30, 5));
  ASSERT_TRUE(stub_->RunPipeline(&again, good, &response).ok());
  EXPECT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(PipelineTest, CancelledJobEndsCancelledAndDeleteRemovesIt) {
  grpc::ClientContext submit_context;
  v1::SubmitJobRequest submit;
  *submit.mutable_job() = Job("orphan", MakePng(32, 32, 6));
  v1::SubmitJobResponse submitted;
  ASSERT_TRUE(stub_->SubmitJob(&submit_context, submit, &submitted).ok());
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(submitted.job_id());
  v1::CancelJobResponse cancelled;
  ASSERT_TRUE(stub_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  v1::Job job = WaitTerminal(submitted.job_id(), seconds(10));
  EXPECT_EQ(job.record().state(), v1::JOB_STATE_CANCELLED);

  grpc::ClientContext delete_context;
  v1::DeleteJobRequest del;
  del.set_job_id(submitted.job_id());
  v1::DeleteJobResponse deleted;
  ASSERT_TRUE(stub_->DeleteJob(&delete_context, del, &deleted).ok());
  grpc::ClientContext get_context;
  v1::GetJobRequest get;
  get.set_job_id(submitted.job_id());
  EXPECT_EQ(stub_->GetJob(&get_context, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace imginterp::integration
