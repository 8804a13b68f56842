#include "gateway/pipeline_registry.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imginterp::gateway {
namespace {

using ::testing::HasSubstr;

constexpr char kEdgesRequest[] =
    "request { [type.googleapis.com/imginterp.v1.EdgesRequest] { model { name: \"canny\" } } }";

std::string Stage(const std::string& name, const std::string& family,
                  const std::string& extra = "") {
  return "stages { name: \"" + name + "\" family: \"" + family + "\" " + kEdgesRequest + " " +
         extra + " }";
}

std::string Pipeline(const std::string& name, const std::string& stages) {
  return "pipelines { name: \"" + name + "\" description: \"test\" " + stages + " }";
}

absl::Status ParseStatus(const std::string& text) {
  return PipelineRegistry::Parse(text, "test.pbtxt").status();
}

TEST(PipelineRegistryTest, LoadsTheDefaultPipelinesFile) {
  absl::StatusOr<std::unique_ptr<PipelineRegistry>> registry =
      PipelineRegistry::Load(IMGINTERP_TEST_PIPELINES_FILE);
  ASSERT_TRUE(registry.ok()) << registry.status();
  const v1::PipelineSpec* priors = (*registry)->Find("priors");
  ASSERT_NE(priors, nullptr);
  std::vector<std::string> families;
  for (const v1::StageSpec& stage : priors->stages()) {
    families.push_back(stage.family());
    EXPECT_TRUE(stage.depends_on().empty()) << stage.name() << " should run in parallel";
  }
  EXPECT_THAT(families, ::testing::UnorderedElementsAre("edges", "pose", "segment", "detect"));
  EXPECT_EQ(priors->stages(0).request().type_url(),
            "type.googleapis.com/imginterp.v1.EdgesRequest");
  EXPECT_NE((*registry)->Find("upscale"), nullptr);
}

TEST(PipelineRegistryTest, AcceptsADiamondOfDependencies) {
  const std::string text =
      Pipeline("diamond", Stage("a", "edges") + Stage("b", "edges", "depends_on: \"a\"") +
                              Stage("c", "edges", "depends_on: \"a\"") +
                              Stage("d", "edges", "depends_on: [\"b\", \"c\"]"));
  absl::StatusOr<std::unique_ptr<PipelineRegistry>> registry =
      PipelineRegistry::Parse(text, "test.pbtxt");
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ((*registry)->Find("diamond")->stages(3).depends_on_size(), 2);
}

TEST(PipelineRegistryTest, UnknownPipelineIsNotFoundAndListsTheAvailableOnes) {
  auto registry = PipelineRegistry::Parse(
      Pipeline("one", Stage("a", "edges")) + Pipeline("two", Stage("a", "edges")), "t");
  ASSERT_TRUE(registry.ok()) << registry.status();
  const absl::Status status = (*registry)->Get("three").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("'three'"));
  EXPECT_THAT(status.message(), HasSubstr("one, two"));
}

TEST(PipelineRegistryTest, RejectsADuplicateStageNamingIt) {
  const absl::Status status =
      ParseStatus(Pipeline("p", Stage("canny", "edges") + Stage("canny", "edges")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("test.pbtxt"));
  EXPECT_THAT(status.message(), HasSubstr("pipeline 'p'"));
  EXPECT_THAT(status.message(), HasSubstr("stage 'canny'"));
  EXPECT_THAT(status.message(), HasSubstr("duplicate"));
}

TEST(PipelineRegistryTest, RejectsADuplicatePipeline) {
  const absl::Status status =
      ParseStatus(Pipeline("p", Stage("a", "edges")) + Pipeline("p", Stage("a", "edges")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pipeline 'p' is defined twice"));
}

TEST(PipelineRegistryTest, RejectsAnUnknownDependencyNamingIt) {
  const absl::Status status = ParseStatus(
      Pipeline("p", Stage("a", "edges") + Stage("b", "edges", "depends_on: \"ghost\"")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("stage 'b'"));
  EXPECT_THAT(status.message(), HasSubstr("'ghost'"));
}

TEST(PipelineRegistryTest, RejectsACycleShowingItsPath) {
  const absl::Status status = ParseStatus(Pipeline(
      "p", Stage("a", "edges", "depends_on: \"c\"") + Stage("b", "edges", "depends_on: \"a\"") +
               Stage("c", "edges", "depends_on: \"b\"")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("cycle"));
  EXPECT_THAT(status.message(), HasSubstr("a -> c -> b -> a"));
}

TEST(PipelineRegistryTest, RejectsASelfDependency) {
  const absl::Status status = ParseStatus(Pipeline("p", Stage("a", "edges", "depends_on: \"a\"")));
  EXPECT_THAT(status.message(), HasSubstr("cycle"));
}

TEST(PipelineRegistryTest, RejectsAFamilyThatIsNotASubjectToken) {
  const absl::Status status = ParseStatus(Pipeline("p", Stage("a", "Edges.v2")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("family 'Edges.v2'"));
  EXPECT_THAT(status.message(), HasSubstr("[a-z0-9_-]+"));
}

TEST(PipelineRegistryTest, RejectsAStageNameThatIsNotAToken) {
  const absl::Status status = ParseStatus(Pipeline("p", Stage("my stage", "edges")));
  EXPECT_THAT(status.message(), HasSubstr("stage 'my stage'"));
}

TEST(PipelineRegistryTest, RejectsAnUnknownRequestType) {
  const std::string text =
      "pipelines { name: \"p\" stages { name: \"a\" family: \"edges\" request { "
      "[type.googleapis.com/imginterp.v1.NoSuchRequest] { } } } }";
  const absl::Status status = ParseStatus(text);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("test.pbtxt"));
  EXPECT_THAT(status.message(), HasSubstr("NoSuchRequest"));
}

TEST(PipelineRegistryTest, RejectsARequestTypeWithoutAnImageField) {
  const std::string text =
      "pipelines { name: \"p\" stages { name: \"a\" family: \"edges\" request { "
      "[type.googleapis.com/imginterp.v1.ModelId] { name: \"canny\" } } } }";
  const absl::Status status = ParseStatus(text);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("stage 'a'"));
  EXPECT_THAT(status.message(), HasSubstr("imginterp.v1.ModelId"));
  EXPECT_THAT(status.message(), HasSubstr("'image'"));
}

TEST(PipelineRegistryTest, RejectsAStageWithoutRequest) {
  const absl::Status status =
      ParseStatus("pipelines { name: \"p\" stages { name: \"a\" family: \"edges\" } }");
  EXPECT_THAT(status.message(), HasSubstr("has no request"));
}

TEST(PipelineRegistryTest, RejectsAPipelineWithoutStages) {
  const absl::Status status = ParseStatus("pipelines { name: \"empty\" }");
  EXPECT_THAT(status.message(), HasSubstr("pipeline 'empty' has no stages"));
}

TEST(PipelineRegistryTest, ReportsTextSyntaxErrorsWithTheirLine) {
  const absl::Status status = ParseStatus("pipelines {\n  name: \"p\"\n  bogus: 1\n}\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
}

TEST(PipelineRegistryTest, MissingFileIsNotFoundNamingThePath) {
  const absl::Status status = PipelineRegistry::Load("/nonexistent/pipelines.pbtxt").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/pipelines.pbtxt"));
}

TEST(PipelineRegistryTest, AcceptsImageFromAStageItDependsOn) {
  const std::string text =
      Pipeline("chain", Stage("a", "edges") +
                            Stage("b", "edges", "depends_on: \"a\" image_from: \"a.map.image\""));
  EXPECT_TRUE(ParseStatus(text).ok()) << ParseStatus(text);
}

TEST(PipelineRegistryTest, RejectsImageFromAStageNotInDependsOn) {
  const absl::Status status = ParseStatus(
      Pipeline("chain", Stage("a", "edges") + Stage("b", "edges", "image_from: \"a.map.image\"")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("stage 'b'"));
  EXPECT_THAT(status.message(), HasSubstr("depends_on"));
}

TEST(PipelineRegistryTest, RejectsImageFromWithoutAFieldPath) {
  const absl::Status status = ParseStatus(Pipeline(
      "chain", Stage("a", "edges") + Stage("b", "edges", "depends_on: \"a\" image_from: \"a\"")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("image_from"));
}

TEST(PipelineRegistryTest, AcceptsInputsFromTheJobAndEarlierStages) {
  const std::string text = Pipeline(
      "wired",
      Stage("a", "edges",
            "inputs { from: \"job.image\" to: \"image\" } "
            "inputs { from: \"job.parameters.low\" to: \"canny.low_threshold\" required: true }") +
          Stage("b", "edges", "depends_on: \"a\" inputs { from: \"a.map.image\" to: \"image\" }"));
  absl::StatusOr<std::unique_ptr<PipelineRegistry>> registry =
      PipelineRegistry::Parse(text, "test.pbtxt");
  ASSERT_TRUE(registry.ok()) << registry.status();
  const v1::PipelineSpec& wired = *(*registry)->Find("wired");
  EXPECT_THAT(PipelineRegistry::Parameters(wired), ::testing::ElementsAre(std::pair{"low", true}));
  EXPECT_TRUE(PipelineRegistry::UsesJobImage(wired));
}

TEST(PipelineRegistryTest, AStageWithoutTheJobImageMakesItOptional) {
  const std::string text = Pipeline(
      "text-only",
      Stage("a", "edges", "inputs { from: \"job.parameters.low\" to: \"canny.low_threshold\" }"));
  absl::StatusOr<std::unique_ptr<PipelineRegistry>> registry =
      PipelineRegistry::Parse(text, "test.pbtxt");
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_FALSE(PipelineRegistry::UsesJobImage(*(*registry)->Find("text-only")));
}

TEST(PipelineRegistryTest, RejectsInputsThatCannotBeWired) {
  struct Case {
    std::string stages;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {Stage("a", "edges") + Stage("b", "edges", "inputs { from: \"a.map.image\" to: \"image\" }"),
       "which must also be listed in depends_on"},
      {Stage("a", "edges", "inputs { from: \"job.image\" to: \"canny\" }"),
       "'canny' is not an imginterp.v1.Image field"},
      {Stage("a", "edges", "inputs { from: \"job.parameters.x\" to: \"canny\" }"),
       "'canny' is a message, not a scalar"},
      {Stage("a", "edges", "inputs { from: \"job.parameters.x\" to: \"nope\" }"),
       "no field 'nope'"},
      {Stage("a", "edges", "inputs { from: \"job.image\" to: \"image\" required: true }"),
       "only job parameters can be required"},
      {Stage("a", "edges",
             "inputs { from: \"job.parameters.x\" to: \"canny.low_threshold\" } "
             "inputs { from: \"job.parameters.x\" to: \"canny.high_threshold\" }"),
       "parameter 'x' is used twice"},
      {Stage("a", "edges") + Stage("b", "edges",
                                   "depends_on: \"a\" image_from: \"a.map.image\" "
                                   "inputs { from: \"job.image\" to: \"image\" }"),
       "has both image_from and inputs"},
      {Stage("job", "edges"), "'job' is reserved"},
      {Stage("a", "edges", "inputs { from: \"job.picture\" to: \"image\" }"),
       "from the job, only job.image and job.parameters.<key> exist"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ParseStatus(Pipeline("bad", c.stages));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.stages;
    EXPECT_THAT(status.message(), HasSubstr(c.expected)) << c.stages;
  }
}

}  // namespace
}  // namespace imginterp::gateway
