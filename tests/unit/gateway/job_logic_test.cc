#include "gateway/job_logic.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "imginterp/v1/edges.pb.h"
#include "tests/unit/gateway/stage_of.h"

namespace imginterp::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

v1::StageRecord* AddStage(v1::JobRecord* record, const std::string& name, v1::StageState state,
                          std::vector<std::string> depends_on = {}) {
  v1::StageRecord* stage = record->add_stages();
  stage->set_name(name);
  stage->set_family("edges");
  stage->set_state(state);
  for (const std::string& dependency : depends_on) stage->add_depends_on(dependency);
  return stage;
}

// a -> b, a -> c, (b, c) -> d
v1::JobRecord Diamond(v1::StageState a, v1::StageState b, v1::StageState c, v1::StageState d) {
  v1::JobRecord record;
  record.set_job_id("job1");
  record.set_state(v1::JOB_STATE_QUEUED);
  AddStage(&record, "a", a);
  AddStage(&record, "b", b, {"a"});
  AddStage(&record, "c", c, {"a"});
  AddStage(&record, "d", d, {"b", "c"});
  return record;
}

using test_util::StageOf;

TEST(ComputeAdvanceTest, NewJobQueuesOnlyTheStagesWithoutDependencies) {
  const v1::JobRecord record = Diamond(v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING,
                                       v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_THAT(plan.stages_to_queue, ElementsAre("a"));
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(plan.changed);
}

TEST(ComputeAdvanceTest, ParallelStagesAreQueuedTogetherWhenTheirDependencySucceeds) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_THAT(plan.stages_to_queue, UnorderedElementsAre("b", "c"));
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_RUNNING);
}

TEST(ComputeAdvanceTest, AStageWaitsForAllOfItsDependencies) {
  const v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_SUCCEEDED,
                                       v1::STAGE_STATE_RUNNING, v1::STAGE_STATE_PENDING);
  EXPECT_THAT(ComputeAdvance(record).stages_to_queue, IsEmpty());
}

TEST(ComputeAdvanceTest, QueuedStagesAreNotQueuedAgain) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_QUEUED, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_THAT(plan.stages_to_queue, IsEmpty());
  EXPECT_FALSE(plan.changed);
}

TEST(ComputeAdvanceTest, JobIsRunningOnceAStageRuns) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_RUNNING, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(plan.changed);
  record.set_state(v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(ComputeAdvance(record).changed);
}

TEST(ComputeAdvanceTest, AllStagesSucceededMakesTheJobSucceed) {
  const v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_SUCCEEDED,
                                       v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_SUCCEEDED);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(plan.error.has_value());
}

TEST(ComputeAdvanceTest, AFailedStageFailsTheJobNamingStageFamilyAndCause) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_FAILED,
                                 v1::STAGE_STATE_RUNNING, v1::STAGE_STATE_PENDING);
  record.mutable_stages(1)->mutable_error()->set_code("INVALID_ARGUMENT");
  record.mutable_stages(1)->mutable_error()->set_message("image is not decodable");
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_FAILED);
  ASSERT_TRUE(plan.error.has_value());
  EXPECT_EQ(plan.error->code(), "INVALID_ARGUMENT");
  EXPECT_EQ(plan.error->message(), "stage 'b' (edges) failed: image is not decodable");
  EXPECT_THAT(plan.stages_to_cancel, UnorderedElementsAre("c", "d"));
  EXPECT_THAT(plan.stages_to_queue, IsEmpty());
}

TEST(ComputeAdvanceTest, CancelRequestedCancelsWaitingStagesAndLeavesRunningOnesToWorkers) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_RUNNING,
                                 v1::STAGE_STATE_QUEUED, v1::STAGE_STATE_PENDING);
  record.set_cancel_requested(true);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(plan.stages_to_cancel, UnorderedElementsAre("c", "d"));
}

TEST(ComputeAdvanceTest, TerminalJobsAreLeftAlone) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_FAILED, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  record.set_state(v1::JOB_STATE_CANCELLED);
  record.set_cancel_requested(true);
  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_FALSE(plan.changed);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_CANCELLED);
}

TEST(ApplyAdvanceTest, QueuesStagesWithTheirQueueTimeAndFinishesTheJob) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_SUCCEEDED, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  ASSERT_TRUE(ApplyAdvance(ComputeAdvance(record), kNow, &record));
  EXPECT_EQ(StageOf(record, "b").state(), v1::STAGE_STATE_QUEUED);
  EXPECT_EQ(FromTimestamp(StageOf(record, "b").queued_at()), kNow);
  EXPECT_EQ(StageOf(record, "d").state(), v1::STAGE_STATE_PENDING);
  EXPECT_EQ(record.state(), v1::JOB_STATE_RUNNING);

  record.mutable_stages(1)->set_state(v1::STAGE_STATE_FAILED);
  ASSERT_TRUE(ApplyAdvance(ComputeAdvance(record), kNow + absl::Seconds(2), &record));
  EXPECT_EQ(record.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(StageOf(record, "c").state(), v1::STAGE_STATE_CANCELLED);
  EXPECT_EQ(StageOf(record, "d").state(), v1::STAGE_STATE_CANCELLED);
  EXPECT_EQ(FromTimestamp(record.finished_at()), kNow + absl::Seconds(2));
  EXPECT_THAT(record.error().message(), HasSubstr("stage 'b' (edges) failed"));
}

TEST(ApplyAdvanceTest, UnchangedPlanLeavesTheRecordUntouched) {
  v1::JobRecord record = Diamond(v1::STAGE_STATE_QUEUED, v1::STAGE_STATE_PENDING,
                                 v1::STAGE_STATE_PENDING, v1::STAGE_STATE_PENDING);
  const std::string before = record.SerializeAsString();
  EXPECT_FALSE(ApplyAdvance(ComputeAdvance(record), kNow, &record));
  EXPECT_EQ(record.SerializeAsString(), before);
}

TEST(StartTimeoutTest, FailsOnlyStagesQueuedLongerThanTheirTimeout) {
  v1::JobRecord record;
  record.set_state(v1::JOB_STATE_QUEUED);
  ToTimestamp(kNow - absl::Seconds(31),
              AddStage(&record, "old", v1::STAGE_STATE_QUEUED)->mutable_queued_at());
  ToTimestamp(kNow - absl::Seconds(5),
              AddStage(&record, "fresh", v1::STAGE_STATE_QUEUED)->mutable_queued_at());
  ToTimestamp(kNow - absl::Seconds(60),
              AddStage(&record, "started", v1::STAGE_STATE_RUNNING)->mutable_queued_at());
  ToTimestamp(kNow - absl::Seconds(3),
              AddStage(&record, "short", v1::STAGE_STATE_QUEUED)->mutable_queued_at());
  StartTimeouts timeouts;
  timeouts.default_timeout = absl::Seconds(30);
  timeouts.per_stage["short"] = absl::Seconds(1);

  EXPECT_THAT(FindUnstartedStages(record, kNow, timeouts), UnorderedElementsAre("old", "short"));
  ASSERT_TRUE(FailUnstartedStages(kNow, timeouts, &record));
  const v1::StageRecord& old = StageOf(record, "old");
  EXPECT_EQ(old.state(), v1::STAGE_STATE_FAILED);
  EXPECT_EQ(old.error().code(), "UNAVAILABLE");
  EXPECT_EQ(old.error().message(),
            "no worker of family 'edges' started stage 'old' within 30 s: is the "
            "imginterp-edges service running and connected to NATS?");
  EXPECT_THAT(StageOf(record, "short").error().message(), HasSubstr("within 1 s"));
  EXPECT_EQ(StageOf(record, "fresh").state(), v1::STAGE_STATE_QUEUED);
  EXPECT_EQ(StageOf(record, "started").state(), v1::STAGE_STATE_RUNNING);
  EXPECT_FALSE(FailUnstartedStages(kNow, timeouts, &record));

  const AdvancePlan plan = ComputeAdvance(record);
  EXPECT_EQ(plan.job_state, v1::JOB_STATE_FAILED);
  EXPECT_THAT(plan.error->message(), HasSubstr("stage 'old' (edges) failed: no worker"));
}

TEST(StartTimeoutTest, TerminalJobsHaveNoUnstartedStages) {
  v1::JobRecord record;
  record.set_state(v1::JOB_STATE_CANCELLED);
  ToTimestamp(kNow - absl::Hours(1),
              AddStage(&record, "a", v1::STAGE_STATE_QUEUED)->mutable_queued_at());
  EXPECT_THAT(FindUnstartedStages(record, kNow, StartTimeouts{}), IsEmpty());
}

TEST(JobProgressTest, IsTheMeanOfStageProgressWithSucceededStagesCountingOne) {
  v1::JobRecord record;
  AddStage(&record, "a", v1::STAGE_STATE_SUCCEEDED)->set_progress(0.2f);
  AddStage(&record, "b", v1::STAGE_STATE_RUNNING)->set_progress(0.5f);
  AddStage(&record, "c", v1::STAGE_STATE_PENDING);
  AddStage(&record, "d", v1::STAGE_STATE_RUNNING)->set_progress(0.5f);
  EXPECT_FLOAT_EQ(JobProgress(record), 0.5f);
}

TEST(JobProgressTest, IsZeroWithoutStagesAndClampsStageValues) {
  v1::JobRecord record;
  EXPECT_FLOAT_EQ(JobProgress(record), 0.0f);
  AddStage(&record, "a", v1::STAGE_STATE_RUNNING)->set_progress(7.0f);
  EXPECT_FLOAT_EQ(JobProgress(record), 1.0f);
}

TEST(WithoutPayloadsTest, DropsInlineBytesButKeepsTheReference) {
  v1::JobRecord record;
  record.mutable_input_image()->set_name("input");
  record.mutable_input_image()->set_size(3);
  record.mutable_input_image()->set_inline_data("abc");
  AddStage(&record, "a", v1::STAGE_STATE_PENDING);
  const v1::JobRecord stripped = WithoutPayloads(record);
  EXPECT_EQ(stripped.input_image().name(), "input");
  EXPECT_EQ(stripped.input_image().size(), 3);
  EXPECT_TRUE(stripped.input_image().inline_data().empty());
  EXPECT_FALSE(stripped.stages(0).has_result());
}

TEST(TimestampTest, RoundTripsAndTreatsUnsetAsUnknown) {
  google::protobuf::Timestamp timestamp;
  EXPECT_EQ(FromTimestamp(timestamp), absl::InfinitePast());
  const absl::Time time = kNow + absl::Milliseconds(1500);
  ToTimestamp(time, &timestamp);
  EXPECT_EQ(FromTimestamp(timestamp), time);
  google::protobuf::Timestamp later;
  ToTimestamp(time + absl::Seconds(2), &later);
  EXPECT_DOUBLE_EQ(SecondsBetween(timestamp, later), 2.0);
  EXPECT_DOUBLE_EQ(SecondsBetween(google::protobuf::Timestamp(), later), 0.0);
}

TEST(ImageFromTest, SplitsTheStageFromTheFieldPath) {
  absl::StatusOr<InputSource> source = ParseImageFrom("canny.map.image");
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(source->stage, "canny");
  EXPECT_EQ(source->field_path, "map.image");
}

TEST(ImageFromTest, RejectsAStageWithoutAFieldAndEmptyParts) {
  EXPECT_EQ(ParseImageFrom("canny").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseImageFrom("canny..image").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseImageFrom("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImageFromTest, ExtractsTheImageBytesAtTheFieldPath) {
  v1::EdgesResponse response;
  response.mutable_map()->mutable_image()->set_data("png bytes");
  absl::StatusOr<std::vector<std::string>> images = ExtractImages(
      "type.googleapis.com/imginterp.v1.EdgesResponse", response.SerializeAsString(), "map.image");
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_THAT(*images, ElementsAre("png bytes"));
}

TEST(ImageFromTest, NamesTheFieldThatIsMissingOrNotAnImage) {
  v1::EdgesResponse response;
  response.mutable_map()->mutable_image()->set_data("png bytes");
  const std::string type = "type.googleapis.com/imginterp.v1.EdgesResponse";
  absl::Status missing = ExtractImages(type, response.SerializeAsString(), "maps").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("'maps'"));
  absl::Status not_image = ExtractImages(type, response.SerializeAsString(), "map").status();
  EXPECT_EQ(not_image.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_image.message(), HasSubstr("imginterp.v1.PriorMap"));
  absl::Status unknown =
      ExtractImages("type.googleapis.com/imginterp.v1.Nope", "", "image").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImageFromTest, AnEmptyImageIsAFailedPrecondition) {
  v1::EdgesResponse response;
  response.mutable_map()->set_method("canny");
  EXPECT_EQ(ExtractImages("type.googleapis.com/imginterp.v1.EdgesResponse",
                          response.SerializeAsString(), "map.image")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(InputSourceTest, ParsesTheThreeForms) {
  absl::StatusOr<InputSource> image = ParseInputSource("job.image");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->kind, InputSource::Kind::kJobImage);

  absl::StatusOr<InputSource> parameter = ParseInputSource("job.parameters.prompt");
  ASSERT_TRUE(parameter.ok()) << parameter.status();
  EXPECT_EQ(parameter->kind, InputSource::Kind::kJobParameter);
  EXPECT_EQ(parameter->parameter, "prompt");

  absl::StatusOr<InputSource> result = ParseInputSource("rank.ranked.0.image");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, InputSource::Kind::kStageResult);
  EXPECT_EQ(result->stage, "rank");
  EXPECT_EQ(result->field_path, "ranked.0.image");

  for (const char* bad : {"", "canny", "job.parameters.", "job.parameters.a.b", "job.input",
                          "canny.", ".map", "canny.map..image"}) {
    EXPECT_EQ(ParseInputSource(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseImageFrom("job.image").status().message(), HasSubstr("earlier stage"));
}

// A pipeline of an edges stage reading two job parameters and a second stage reading the first
// one's map.
v1::PipelineSpec ParameterPipeline() {
  v1::PipelineSpec pipeline;
  pipeline.set_name("tuned");
  v1::StageSpec* first = pipeline.add_stages();
  first->set_name("first");
  first->set_family("edges");
  v1::EdgesRequest request;
  request.mutable_model()->set_name("canny");
  request.mutable_canny()->set_low_threshold(10);
  first->mutable_request()->PackFrom(request);
  v1::StageInput* image = first->add_inputs();
  image->set_from("job.image");
  image->set_to("image");
  v1::StageInput* low = first->add_inputs();
  low->set_from("job.parameters.low");
  low->set_to("canny.low_threshold");
  low->set_required(true);
  v1::StageInput* high = first->add_inputs();
  high->set_from("job.parameters.high");
  high->set_to("canny.high_threshold");
  v1::StageSpec* second = pipeline.add_stages();
  second->set_name("second");
  second->set_family("edges");
  second->mutable_request()->PackFrom(request);
  second->add_depends_on("first");
  v1::StageInput* map = second->add_inputs();
  map->set_from("first.map.image");
  map->set_to("image");
  return pipeline;
}

TEST(BuildStageRecordsTest, AppliesParametersAndKeepsImageInputs) {
  google::protobuf::Map<std::string, std::string> parameters;
  parameters["low"] = "42";
  absl::StatusOr<std::vector<v1::StageRecord>> stages =
      BuildStageRecords(ParameterPipeline(), parameters);
  ASSERT_TRUE(stages.ok()) << stages.status();
  ASSERT_EQ(stages->size(), 2u);
  v1::EdgesRequest first;
  ASSERT_TRUE((*stages)[0].request().UnpackTo(&first));
  EXPECT_EQ(first.canny().low_threshold(), 42);
  EXPECT_EQ(first.model().name(), "canny") << "the pipeline's own fields stay";
  ASSERT_EQ((*stages)[0].inputs_size(), 1) << "parameters are applied, images kept";
  EXPECT_EQ((*stages)[0].inputs(0).from(), "job.image");
  EXPECT_EQ((*stages)[0].state(), v1::STAGE_STATE_PENDING);
  v1::EdgesRequest second;
  ASSERT_TRUE((*stages)[1].request().UnpackTo(&second));
  EXPECT_EQ(second.canny().low_threshold(), 10) << "parameters go only where they are wired";
  ASSERT_EQ((*stages)[1].inputs_size(), 1);
  EXPECT_THAT((*stages)[1].depends_on(), ElementsAre("first"));
}

TEST(BuildStageRecordsTest, RefusesUnknownMissingAndBadParameters) {
  google::protobuf::Map<std::string, std::string> parameters;
  absl::Status missing = BuildStageRecords(ParameterPipeline(), parameters).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("pipeline 'tuned' needs parameter 'low'"));

  parameters["low"] = "12";
  parameters["seed"] = "1";
  absl::Status unknown = BuildStageRecords(ParameterPipeline(), parameters).status();
  EXPECT_THAT(unknown.message(), HasSubstr("has no parameter 'seed'; its parameters: high, low"));

  parameters.erase("seed");
  parameters["high"] = "lots";
  absl::Status bad = BuildStageRecords(ParameterPipeline(), parameters).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("parameter 'high' for stage 'first'"));
  EXPECT_THAT(bad.message(), HasSubstr("not 'lots'"));
}

}  // namespace
}  // namespace imginterp::gateway
