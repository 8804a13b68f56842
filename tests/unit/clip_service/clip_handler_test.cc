#include "services/clip/clip_handler.h"

#include <torch/torch.h>

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <set>

#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "services/clip/clip_preprocessor.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/kserve_service.h"
#include "services/models/clip/clip_loader.h"
#include "services/models/clip/clip_tokenizer.h"
#include "tests/unit/clip_service/tiny_clip_store.h"

namespace imginterp::clip_service {
namespace {

using ::imginterp::clip_service::testing::MakePng;

class ClipHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TinyClipModelDir();
    ASSERT_TRUE(dir.ok()) << dir.status();
    model_dir_ = *dir;
    auto config = testing::TinyClipConfig();
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }

  service::ModelLoadInfo Info(std::map<std::string, std::string> parameters = {}) const {
    service::ModelLoadInfo info;
    info.name = config_.name();
    info.version = 1;
    info.config = config_;
    for (const auto& [key, value] : parameters) (*info.config.mutable_parameters())[key] = value;
    info.version_dir = model_dir_ + "/1";
    return info;
  }

  // An instance as the core makes it, warmed up.
  std::unique_ptr<ClipInstance> Instance(std::map<std::string, std::string> parameters = {}) {
    auto instance = handler_.CreateInstance(Info(std::move(parameters)), nullptr);
    EXPECT_TRUE(instance.ok()) << instance.status();
    if (!instance.ok()) return nullptr;
    EXPECT_TRUE((*instance)->Warmup().ok());
    return std::unique_ptr<ClipInstance>(dynamic_cast<ClipInstance*>(instance->release()));
  }

  static absl::Status Run(service::ModelInstance& instance,
                          const google::protobuf::Message& request,
                          google::protobuf::Message* response) {
    service::WorkItem item;
    item.request = &request;
    item.response = response;
    instance.RunBatch({&item});
    return item.status;
  }

  static std::vector<float> Values(const v1::Embedding& e) {
    return {e.values().begin(), e.values().end()};
  }
  static double Dot(const std::vector<float>& a, const std::vector<float>& b) {
    double sum = 0;
    for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
    return sum;
  }

  ClipHandler handler_;
  std::string model_dir_;
  v1::ModelConfig config_;
};

TEST_F(ClipHandlerTest, ScoreIsLogitScaleTimesCosineOfTheReturnedEmbeddings) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  v1::ScoreRequest request;
  request.add_images()->set_data(MakePng(30, 30, 1));
  request.add_images()->set_data(MakePng(64, 40, 2));
  request.add_texts("a photo of a cat");
  request.add_texts("a dog running on the beach");
  request.set_text("portrait of a woman");
  request.set_return_embeddings(true);
  v1::ScoreResponse response;
  ASSERT_TRUE(Run(*instance, request, &response).ok());
  ASSERT_EQ(response.num_images(), 2);
  ASSERT_EQ(response.num_texts(), 3);
  ASSERT_EQ(response.scores_size(), 6);
  ASSERT_EQ(response.cosines_size(), 6);
  ASSERT_EQ(response.image_embeddings_size(), 2);
  ASSERT_EQ(response.text_embeddings_size(), 3);
  for (const auto& e : response.image_embeddings()) {
    EXPECT_EQ(e.values_size(), 24);
    EXPECT_NEAR(Dot(Values(e), Values(e)), 1.0, 1e-5);
  }
  EXPECT_NEAR(response.logit_scale_exp(), instance->logit_scale_exp(), 0);
  for (int i = 0; i < 2; ++i) {
    for (int t = 0; t < 3; ++t) {
      const double cosine =
          Dot(Values(response.image_embeddings(i)), Values(response.text_embeddings(t)));
      EXPECT_NEAR(response.cosines(i * 3 + t), cosine, 1e-5);
      EXPECT_NEAR(response.scores(i * 3 + t), response.logit_scale_exp() * cosine,
                  1e-5 * response.logit_scale_exp());
    }
  }
  // Different images and texts give different scores (the matrix is not degenerate).
  std::set<float> distinct(response.scores().begin(), response.scores().end());
  EXPECT_EQ(distinct.size(), 6u);
}

TEST_F(ClipHandlerTest, ScoreMatchesTheModelRunDirectlyOnNormalisedPixels) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  // A 30x30 image is at the model's size: preprocessing is only (x/255 - mean)/std.
  cv::Mat rgb(30, 30, CV_8UC3);
  cv::randu(rgb, 0, 256);
  v1::ScoreRequest request;
  request.add_images()->set_data(*codec::EncodePng(rgb));  // PNG is lossless
  request.add_texts("a cat sitting on a wooden table");
  request.add_texts("");
  request.set_return_embeddings(true);
  v1::ScoreResponse response;
  ASSERT_TRUE(Run(*instance, request, &response).ok());

  auto model = clip::LoadClipModelFromFolder(model_dir_ + "/1");
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->eval();
  auto tokenizer = clip::ClipTokenizer::FromFolder(model_dir_ + "/1");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  torch::NoGradGuard no_grad;
  const double mean[3] = {0.48145466, 0.4578275, 0.40821073};
  const double std[3] = {0.26862954, 0.26130258, 0.27577711};
  at::Tensor pixels = torch::empty({1, 3, 30, 30});
  auto p = pixels.accessor<float, 4>();
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 30; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        p[0][ch][y][x] =
            static_cast<float>((rgb.at<cv::Vec3b>(y, x)[ch] / 255.0 - mean[ch]) / std[ch]);
      }
    }
  }
  std::vector<int64_t> ids;
  std::vector<int64_t> mask;
  for (const auto& tokens : (*tokenizer)->EncodeBatch({"a cat sitting on a wooden table", ""})) {
    ids.insert(ids.end(), tokens.input_ids.begin(), tokens.input_ids.end());
    mask.insert(mask.end(), tokens.attention_mask.begin(), tokens.attention_mask.end());
  }
  const clip::ClipModelOutput direct = (*model)->forward(torch::tensor(ids).view({2, -1}), pixels,
                                                         torch::tensor(mask).view({2, -1}));
  // The same embedding as the model's on the normalised pixels.
  const at::Tensor image_embed = direct.image_embeds[0];
  for (int k = 0; k < 24; ++k) {
    EXPECT_NEAR(response.image_embeddings(0).values(k), image_embed[k].item<float>(), 1e-5);
  }
  EXPECT_NEAR(response.logit_scale_exp(), (*model)->logit_scale.exp().item<float>(), 1e-6);
  for (int t = 0; t < 2; ++t) {
    const float expected = direct.logits_per_image[0][t].item<float>();
    EXPECT_NEAR(response.scores(t), expected, 1e-4 * std::max(1.0f, std::abs(expected)));
  }
}

TEST_F(ClipHandlerTest, LargerNonSquareImageIsEmbeddedFromItsResizedCentreCrop) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  cv::Mat rgb(60, 96, CV_8UC3);
  cv::randu(rgb, 0, 256);
  v1::EmbedRequest request;
  request.add_images()->set_data(*codec::EncodePng(rgb));
  v1::EmbedResponse response;
  ASSERT_TRUE(Run(*instance, request, &response).ok());
  ASSERT_EQ(response.image_embeddings_size(), 1);
  EXPECT_EQ(response.dimension(), 24);

  auto config = ClipPreprocessorConfig::FromFile(model_dir_ + "/1/preprocessor_config.json");
  ASSERT_TRUE(config.ok());
  auto pixels = ClipPreprocessor(*config).Preprocess(rgb);
  ASSERT_TRUE(pixels.ok());
  ASSERT_EQ(pixels->sizes(), (std::vector<int64_t>{3, 30, 30}));
  auto model = clip::LoadClipModelFromFolder(model_dir_ + "/1");
  ASSERT_TRUE(model.ok());
  torch::NoGradGuard no_grad;
  const at::Tensor expected = clip::L2Normalize((*model)->GetImageFeatures(pixels->unsqueeze(0)));
  for (int k = 0; k < 24; ++k) {
    EXPECT_NEAR(response.image_embeddings(0).values(k), expected[0][k].item<float>(), 1e-5);
  }
}

TEST_F(ClipHandlerTest, RankOrdersCandidatesByCombinedScoreWithTheirIndices) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  v1::RankRequest request;
  for (int seed = 0; seed < 5; ++seed) {
    request.add_candidates()->set_data(MakePng(30 + 7 * seed, 30, seed + 10));
  }
  request.set_text("a surfer riding a large wave");
  *request.mutable_source_image() = request.candidates(3);
  v1::RankResponse response;
  ASSERT_TRUE(Run(*instance, request, &response).ok());
  ASSERT_EQ(response.ranked_size(), 5);

  // Recompute every similarity from the embeddings.
  v1::EmbedRequest embed;
  *embed.mutable_images() = request.candidates();
  embed.add_texts(request.text());
  v1::EmbedResponse embeddings;
  ASSERT_TRUE(Run(*instance, embed, &embeddings).ok());
  std::set<int> seen;
  for (int r = 0; r < 5; ++r) {
    const v1::RankedCandidate& c = response.ranked(r);
    ASSERT_GE(c.index(), 0);
    ASSERT_LT(c.index(), 5);
    seen.insert(c.index());
    const auto image = Values(embeddings.image_embeddings(c.index()));
    EXPECT_NEAR(c.text_cosine(), Dot(image, Values(embeddings.text_embeddings(0))), 1e-5);
    EXPECT_NEAR(c.text_score(), c.text_cosine() * response.logit_scale_exp(), 1e-4);
    EXPECT_NEAR(c.image_similarity(), Dot(image, Values(embeddings.image_embeddings(3))), 1e-5);
    // Default weights: the mean of the two cosines.
    EXPECT_NEAR(c.combined_score(), (c.text_cosine() + c.image_similarity()) / 2, 1e-6);
    if (r > 0) {
      EXPECT_GE(response.ranked(r - 1).combined_score(), c.combined_score());
    }
  }
  EXPECT_EQ(seen.size(), 5u);
  for (const auto& c : response.ranked()) {
    if (c.index() == 3) {
      EXPECT_NEAR(c.image_similarity(), 1.0, 1e-5);
    }
  }
}

TEST_F(ClipHandlerTest, RankWeightsAndTopKShapeTheAnswer) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  v1::RankRequest request;
  for (int seed = 0; seed < 4; ++seed) request.add_candidates()->set_data(MakePng(30, 30, seed));
  request.set_text("a robot walking through a city");
  *request.mutable_source_image() = request.candidates(0);
  request.set_text_weight(1);
  request.set_image_weight(0);
  v1::RankResponse by_text;
  ASSERT_TRUE(Run(*instance, request, &by_text).ok());
  ASSERT_EQ(by_text.ranked_size(), 4);
  for (int r = 0; r < 4; ++r) {
    EXPECT_FLOAT_EQ(by_text.ranked(r).combined_score(), by_text.ranked(r).text_cosine());
    if (r > 0) {
      EXPECT_GE(by_text.ranked(r - 1).text_cosine(), by_text.ranked(r).text_cosine());
    }
  }

  // Only a source image: ranked by image similarity, the source itself first.
  v1::RankRequest by_image_request;
  *by_image_request.mutable_candidates() = request.candidates();
  *by_image_request.mutable_source_image() = request.candidates(2);
  by_image_request.set_top_k(2);
  v1::RankResponse by_image;
  ASSERT_TRUE(Run(*instance, by_image_request, &by_image).ok());
  ASSERT_EQ(by_image.ranked_size(), 2);
  EXPECT_EQ(by_image.ranked(0).index(), 2);
  EXPECT_NEAR(by_image.ranked(0).image_similarity(), 1.0, 1e-5);
  EXPECT_EQ(by_image.ranked(0).text_cosine(), 0);
  EXPECT_FLOAT_EQ(by_image.ranked(1).combined_score(), by_image.ranked(1).image_similarity());
  EXPECT_FALSE(by_image.ranked(0).has_image()) << "images only when asked for";

  // return_images hands each ranked candidate's own image back, in ranked order.
  by_image_request.set_return_images(true);
  v1::RankResponse with_images;
  ASSERT_TRUE(Run(*instance, by_image_request, &with_images).ok());
  ASSERT_EQ(with_images.ranked_size(), 2);
  for (const v1::RankedCandidate& c : with_images.ranked()) {
    EXPECT_EQ(c.image().data(), request.candidates(c.index()).data());
  }
}

TEST_F(ClipHandlerTest, RepeatedImageIsServedFromTheEmbeddingCache) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  v1::ScoreRequest request;
  request.add_images()->set_data(MakePng(40, 30, 7));
  request.add_texts("a bowl of fruit");
  request.set_return_embeddings(true);
  v1::ScoreResponse first;
  ASSERT_TRUE(Run(*instance, request, &first).ok());
  const ClipCacheStats after_first = instance->cache_stats();
  EXPECT_EQ(after_first.image_hits, 0);
  EXPECT_EQ(after_first.image_misses, 1);
  EXPECT_EQ(first.image_cache_hits(), 0);

  v1::ScoreResponse second;
  ASSERT_TRUE(Run(*instance, request, &second).ok());
  const ClipCacheStats after_second = instance->cache_stats();
  EXPECT_EQ(after_second.image_hits, 1);
  EXPECT_EQ(after_second.image_misses, 1);
  EXPECT_EQ(after_second.text_hits, 1);
  EXPECT_EQ(second.image_cache_hits(), 1);
  EXPECT_EQ(Values(second.image_embeddings(0)), Values(first.image_embeddings(0)));
  EXPECT_EQ(second.scores(0), first.scores(0));

  // Another model version (instance) has its own cache.
  auto other = Instance();
  v1::ScoreResponse fresh;
  ASSERT_TRUE(Run(*other, request, &fresh).ok());
  EXPECT_EQ(fresh.image_cache_hits(), 0);
  EXPECT_EQ(Values(fresh.image_embeddings(0)), Values(first.image_embeddings(0)));
}

TEST_F(ClipHandlerTest, CacheCapacityComesFromTheConfigAndEvictsLeastRecentlyUsed) {
  auto instance = Instance({{"embedding_cache_size", "1"}});
  ASSERT_NE(instance, nullptr);
  auto score = [&](const std::string& png) {
    v1::ScoreRequest request;
    request.add_images()->set_data(png);
    request.add_texts("x");
    v1::ScoreResponse response;
    EXPECT_TRUE(Run(*instance, request, &response).ok());
    return response.image_cache_hits();
  };
  const std::string a = MakePng(30, 30, 1);
  const std::string b = MakePng(30, 30, 2);
  EXPECT_EQ(score(a), 0);
  EXPECT_EQ(score(a), 1);
  EXPECT_EQ(score(b), 0);  // evicts a
  EXPECT_EQ(score(a), 0);
  EXPECT_EQ(instance->cache_stats().image_misses, 3);
}

TEST_F(ClipHandlerTest, SameImageTwiceInOneRequestIsEncodedOnce) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  v1::ScoreRequest request;
  const std::string png = MakePng(33, 30, 4);
  request.add_images()->set_data(png);
  request.add_images()->set_data(MakePng(33, 30, 5));
  request.add_images()->set_data(png);
  request.add_texts("a");
  v1::ScoreResponse response;
  ASSERT_TRUE(Run(*instance, request, &response).ok());
  EXPECT_EQ(instance->cache_stats().image_misses, 2);
  EXPECT_EQ(response.scores(0), response.scores(2));
  EXPECT_NE(response.scores(0), response.scores(1));
}

TEST_F(ClipHandlerTest, BadRequestsAreRefusedWithActionableMessages) {
  auto instance = Instance({{"max_images", "2"}, {"max_texts", "2"}});
  ASSERT_NE(instance, nullptr);
  const std::string png = MakePng(30, 30, 1);
  auto expect_invalid = [&](const google::protobuf::Message& request,
                            google::protobuf::Message* response, const std::string& mentions) {
    const absl::Status status = Run(*instance, request, response);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find(mentions), std::string::npos) << status;
  };
  v1::ScoreResponse score_response;
  {
    v1::ScoreRequest no_images;
    no_images.add_texts("a");
    expect_invalid(no_images, &score_response, "no images");
  }
  {
    v1::ScoreRequest no_texts;
    no_texts.add_images()->set_data(png);
    expect_invalid(no_texts, &score_response, "no texts");
  }
  {
    v1::ScoreRequest undecodable;
    undecodable.add_images()->set_data(png);
    undecodable.add_images()->set_data("this is not an image");
    undecodable.add_texts("a");
    expect_invalid(undecodable, &score_response, "images[1]");
  }
  {
    v1::ScoreRequest too_many;
    for (int i = 0; i < 3; ++i) too_many.add_images()->set_data(MakePng(30, 30, i));
    too_many.add_texts("a");
    expect_invalid(too_many, &score_response, "max_images");
  }
  {
    v1::ScoreRequest too_many_texts;
    too_many_texts.add_images()->set_data(png);
    too_many_texts.add_texts("a");
    too_many_texts.add_texts("b");
    too_many_texts.set_text("c");
    expect_invalid(too_many_texts, &score_response, "max_texts");
  }
  v1::RankResponse rank_response;
  {
    v1::RankRequest no_reference;
    no_reference.add_candidates()->set_data(png);
    expect_invalid(no_reference, &rank_response, "source_image");
  }
  {
    v1::RankRequest no_candidates;
    no_candidates.set_text("a");
    expect_invalid(no_candidates, &rank_response, "no candidates");
  }
  {
    v1::RankRequest too_many;
    for (int i = 0; i < 3; ++i) too_many.add_candidates()->set_data(png);
    too_many.set_text("a");
    expect_invalid(too_many, &rank_response, "max_images");
  }
  {
    v1::RankRequest negative;
    negative.add_candidates()->set_data(png);
    negative.set_text("a");
    negative.set_image_weight(-1);
    expect_invalid(negative, &rank_response, "image_weight");
  }
  {
    v1::RankRequest bad_source;
    bad_source.add_candidates()->set_data(png);
    bad_source.mutable_source_image()->set_data("garbage bytes");
    expect_invalid(bad_source, &rank_response, "source_image");
  }
  v1::EmbedResponse embed_response;
  expect_invalid(v1::EmbedRequest(), &embed_response, "empty");
  // A request type the family does not run.
  v1::ModelConfig not_a_request;
  expect_invalid(not_a_request, &embed_response, "ScoreRequest");
  // Nothing was cached or counted for refused requests except the decodable images.
  EXPECT_EQ(instance->cache_stats().text_misses, 0);
}

TEST_F(ClipHandlerTest, CreateInstanceRefusesBadConfigurations) {
  service::ModelLoadInfo no_folder = Info();
  no_folder.version_dir.clear();
  EXPECT_EQ(handler_.CreateInstance(no_folder, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bad_parameter = handler_.CreateInstance(Info({{"embedding_cache_size", "lots"}}), nullptr);
  EXPECT_EQ(bad_parameter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_parameter.status().message().find("embedding_cache_size"), std::string::npos);
  service::ModelLoadInfo missing = Info();
  missing.version_dir = model_dir_ + "/does-not-exist";
  EXPECT_FALSE(handler_.CreateInstance(missing, nullptr).ok());
}

TEST_F(ClipHandlerTest, KServeRequestScoresItsImageAgainstTheTextParameter) {
  auto instance = Instance();
  ASSERT_NE(instance, nullptr);
  inference::ModelInferRequest in;
  in.set_model_name("tiny-clip");
  auto* input = in.add_inputs();
  input->set_name("image");
  input->set_datatype("BYTES");
  input->add_shape(1);
  input->mutable_contents()->add_bytes_contents(MakePng(30, 30, 3));
  (*in.mutable_parameters())["text"].set_string_param("a dog on the beach");
  (*in.mutable_parameters())["return_embeddings"].set_bool_param(true);
  std::unique_ptr<google::protobuf::Message> typed(handler_.request_prototype().New());
  ASSERT_TRUE(service::KServeToTypedRequest(in, typed.get()).ok());
  std::unique_ptr<google::protobuf::Message> response(handler_.response_prototype().New());
  ASSERT_TRUE(Run(*instance, *typed, response.get()).ok());

  inference::ModelInferResponse out;
  ASSERT_TRUE(handler_.ToKServe(*response, &out).ok());
  const auto& score = static_cast<const v1::ScoreResponse&>(*response);
  ASSERT_EQ(out.outputs_size(), 4);
  EXPECT_EQ(out.outputs(0).name(), "scores");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(0).shape().begin(), out.outputs(0).shape().end()),
            (std::vector<int64_t>{1, 1}));
  ASSERT_EQ(out.outputs(0).contents().fp32_contents_size(), 1);
  EXPECT_EQ(out.outputs(0).contents().fp32_contents(0), score.scores(0));
  EXPECT_EQ(out.outputs(1).name(), "cosines");
  EXPECT_EQ(out.outputs(2).name(), "image_embeddings");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(2).shape().begin(), out.outputs(2).shape().end()),
            (std::vector<int64_t>{1, 24}));
  EXPECT_NEAR(out.parameters().at("logit_scale_exp").double_param(), score.logit_scale_exp(), 1e-6);

  inference::ModelMetadataResponse metadata;
  handler_.DescribeKServeOutputs(&metadata);
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "scores");
}

}  // namespace
}  // namespace imginterp::clip_service
