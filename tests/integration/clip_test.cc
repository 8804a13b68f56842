// The clip service as a user runs it: imginterp-clip serving the tiny CLIP model laid out by
// deploy/models/make_tiny_set.py, called over gRPC (typed ClipService and KServe v2).
#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "imginterp/v1/clip.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"
#include "tests/integration/stack.h"
#include "tests/support/process.h"

namespace imginterp::integration {
namespace {

double Dot(const v1::Embedding& a, const v1::Embedding& b) {
  double sum = 0;
  for (int i = 0; i < a.values_size(); ++i) sum += static_cast<double>(a.values(i)) * b.values(i);
  return sum;
}

class ClipServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = new std::string(test_support::MakeTempDir("clip-it-store"));
    const std::string command =
        absl::StrCat("python3 ", IMGINTERP_MAKE_TINY_SET, " --store ", *store_, " > /dev/null");
    make_status_ = std::system(command.c_str());
  }
  static void TearDownTestSuite() {
    test_support::RemoveTree(*store_);
    delete store_;
  }

  void SetUp() override {
    ASSERT_EQ(make_status_, 0) << "make_tiny_set.py failed";
    auto process = stack_.StartService("clip", {"--model_repository=" + *store_ + "/clip"});
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *process;
    stub_ = v1::ClipService::NewStub(Stack::Channel(process_->address()));
  }

  static grpc::Status Call(const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return rpc(&context);
  }

  static std::string* store_;
  static int make_status_;
  Stack stack_;
  Process* process_ = nullptr;
  std::unique_ptr<v1::ClipService::Stub> stub_;
};

std::string* ClipServiceTest::store_ = nullptr;
int ClipServiceTest::make_status_ = -1;

TEST_F(ClipServiceTest, ScoreReturnsScaledCosinesAndCachesImagesAcrossCalls) {
  v1::ListModelsResponse models;
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) {
                return stub_->ListModels(c, v1::ListModelsRequest(), &models);
              }).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).name(), "tiny-clip");
  EXPECT_EQ(models.models(0).state(), v1::MODEL_STATE_READY);

  v1::ScoreRequest request;
  request.add_images()->set_data(MakePng(30, 30, 1));
  request.add_images()->set_data(MakePng(80, 50, 2));
  request.add_texts("a photo of a cat");
  request.add_texts("a dog running on the beach");
  request.set_return_embeddings(true);
  v1::ScoreResponse response;
  const grpc::Status status =
      Call([&](grpc::ClientContext* c) { return stub_->Score(c, request, &response); });
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Stack::Tail(*process_);
  EXPECT_EQ(response.model().name(), "tiny-clip");
  EXPECT_EQ(response.model().version(), 1);
  ASSERT_EQ(response.num_images(), 2);
  ASSERT_EQ(response.num_texts(), 2);
  ASSERT_EQ(response.image_embeddings_size(), 2);
  ASSERT_EQ(response.text_embeddings_size(), 2);
  EXPECT_GT(response.logit_scale_exp(), 0);
  for (int i = 0; i < 2; ++i) {
    for (int t = 0; t < 2; ++t) {
      const double cosine = Dot(response.image_embeddings(i), response.text_embeddings(t));
      EXPECT_NEAR(response.scores(i * 2 + t), response.logit_scale_exp() * cosine,
                  1e-5 * response.logit_scale_exp());
    }
  }
  EXPECT_EQ(response.image_cache_hits(), 0);

  v1::ScoreResponse again;
  ASSERT_TRUE(Call([&](grpc::ClientContext* c) { return stub_->Score(c, request, &again); }).ok());
  EXPECT_EQ(again.image_cache_hits(), 2);
  for (int k = 0; k < response.scores_size(); ++k) EXPECT_EQ(again.scores(k), response.scores(k));

  v1::ScoreRequest empty;
  empty.add_texts("no images");
  v1::ScoreResponse unused;
  const grpc::Status refused =
      Call([&](grpc::ClientContext* c) { return stub_->Score(c, empty, &unused); });
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("no images"), std::string::npos);
}

TEST_F(ClipServiceTest, RankPutsTheSourceImageFirstAndMapsIndicesBack) {
  v1::RankRequest request;
  for (int seed = 0; seed < 4; ++seed) {
    request.add_candidates()->set_data(MakePng(40 + 5 * seed, 36, seed + 20));
  }
  *request.mutable_source_image() = request.candidates(2);
  request.set_text("a surfer riding a wave");
  request.set_text_weight(0.25f);
  request.set_image_weight(4);
  v1::RankResponse response;
  const grpc::Status status =
      Call([&](grpc::ClientContext* c) { return stub_->Rank(c, request, &response); });
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Stack::Tail(*process_);
  ASSERT_EQ(response.ranked_size(), 4);
  std::set<int> indices;
  for (int r = 0; r < 4; ++r) {
    const v1::RankedCandidate& c = response.ranked(r);
    indices.insert(c.index());
    EXPECT_NEAR(c.combined_score(), (0.25 * c.text_cosine() + 4 * c.image_similarity()) / 4.25,
                1e-5);
    if (r > 0) {
      EXPECT_GE(response.ranked(r - 1).combined_score(), c.combined_score());
    }
  }
  EXPECT_EQ(indices, (std::set<int>{0, 1, 2, 3}));
  for (const v1::RankedCandidate& c : response.ranked()) {
    if (c.index() == 2) {
      EXPECT_NEAR(c.image_similarity(), 1.0, 1e-5);
    }
  }

  // Against the source image alone its own candidate comes first.
  request.clear_text();
  request.set_top_k(1);
  v1::RankResponse by_image;
  ASSERT_TRUE(
      Call([&](grpc::ClientContext* c) { return stub_->Rank(c, request, &by_image); }).ok());
  ASSERT_EQ(by_image.ranked_size(), 1);
  EXPECT_EQ(by_image.ranked(0).index(), 2);
  EXPECT_NEAR(by_image.ranked(0).combined_score(), 1.0, 1e-5);
}

TEST_F(ClipServiceTest, KServeModelInferScoresOneImageAgainstTheTextParameter) {
  auto kserve = inference::GRPCInferenceService::NewStub(Stack::Channel(process_->address()));
  inference::ModelInferRequest request;
  request.set_model_name("tiny-clip");
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("BYTES");
  input->add_shape(1);
  input->mutable_contents()->add_bytes_contents(MakePng(30, 30, 5));
  (*request.mutable_parameters())["text"].set_string_param("a cat");
  inference::ModelInferResponse response;
  const grpc::Status status =
      Call([&](grpc::ClientContext* c) { return kserve->ModelInfer(c, request, &response); });
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "tiny-clip");
  ASSERT_GE(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "scores");
  ASSERT_EQ(response.outputs(0).contents().fp32_contents_size(), 1);
  ASSERT_EQ(response.outputs(1).contents().fp32_contents_size(), 1);
  EXPECT_NEAR(response.outputs(0).contents().fp32_contents(0),
              response.parameters().at("logit_scale_exp").double_param() *
                  response.outputs(1).contents().fp32_contents(0),
              1e-4);
}

}  // namespace
}  // namespace imginterp::integration
