// Reads the real reference files (tests/data/reference): every tensor of the tiny models opens,
// the weights files hold exactly the keys and shapes of the published layouts, and the tiny
// weights arranged as a diffusers pipeline folder load through DiffusersPipelineFolder.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "services/models/io/diffusers_folder.h"
#include "services/models/io/safetensors_file.h"
#include "services/models/io/sharded_safetensors.h"
#include "services/models/io/state_dict.h"
#include "tests/unit/models_io/test_util.h"

namespace imginterp::models {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteBytes;

const std::string kReferenceDir = IMGINTERP_REFERENCE_DIR;
const std::string kDiffusionDir = kReferenceDir + "/diffusion";

// The keys and shapes a TensorSource holds, as a key table.
std::vector<KeyEntry> KeysOf(const TensorSource& source) {
  std::vector<KeyEntry> keys;
  for (const std::string& name : source.Names()) {
    absl::StatusOr<TensorInfo> info = source.Info(name);
    EXPECT_TRUE(info.ok()) << info.status();
    if (info.ok()) keys.push_back({name, info->shape, ""});
  }
  return keys;
}

class TinyWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyWeights, HoldExactlyTheKeysAndShapesOfTheKeyTable) {
  const std::string model = GetParam();
  const std::string weights_path = model == "tiny_clip"
                                       ? kReferenceDir + "/clip/tiny_clip.weights.safetensors"
                                       : kDiffusionDir + "/tiny/" + model + ".weights.safetensors";
  const std::string keys_path = model == "tiny_clip"
                                    ? kReferenceDir + "/clip/keys/tiny_clip_keys.tsv"
                                    : kDiffusionDir + "/keys/" + model + "_keys.tsv";
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(weights_path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::vector<KeyEntry>> table = ReadKeyTable(keys_path);
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_FALSE(table->empty());
  absl::Status same = CompareKeys(*table, KeysOf(**file));
  EXPECT_TRUE(same.ok()) << same;
  for (const KeyEntry& entry : *table) {
    absl::StatusOr<at::Tensor> tensor = (*file)->Tensor(entry.key);
    ASSERT_TRUE(tensor.ok()) << tensor.status();
    EXPECT_EQ(tensor->sizes().vec(), entry.shape) << entry.key;
    EXPECT_EQ(tensor->scalar_type(), at::kFloat) << entry.key;
    EXPECT_TRUE(at::isfinite(*tensor).all().item<bool>()) << entry.key;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, TinyWeights,
                         ::testing::Values("tiny_unet", "tiny_controlnet", "tiny_vae",
                                           "tiny_text_encoder", "tiny_image_encoder", "tiny_clip"));

TEST(ReferenceFiles, EverySafetensorsFileOpensAndEveryTensorReads) {
  int files = 0;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(kReferenceDir)) {
    if (entry.path().extension() != ".safetensors") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(entry.path().string());
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_FALSE((*file)->Names().empty());
    for (const std::string& name : (*file)->Names()) {
      absl::StatusOr<at::Tensor> tensor = (*file)->Tensor(name);
      ASSERT_TRUE(tensor.ok()) << tensor.status();
      EXPECT_EQ(tensor->numel(), (*file)->Info(name)->Numel()) << name;
    }
  }
  EXPECT_GE(files, 13);
}

TEST(ReferenceFiles, IoFilesRecordTheirProvenanceInMetadata) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(kDiffusionDir + "/tiny/tiny_unet.io.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE((*file)->Metadata().empty());
  absl::StatusOr<at::Tensor> sample = (*file)->Tensor("out.sample");
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_THAT(sample->sizes().vec(), ElementsAre(2, 4, 16, 24));
}

// The tiny SD1.5 + ControlNet models laid out as a diffusers pipeline folder.
class DiffusersFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteBytes(dir_.File("model_index.json"), R"({
      "_class_name": "StableDiffusionControlNetPipeline",
      "_diffusers_version": "0.27.2",
      "controlnet": ["diffusers", "ControlNetModel"],
      "feature_extractor": [null, null],
      "image_encoder": [null, null],
      "requires_safety_checker": false,
      "safety_checker": [null, null],
      "scheduler": ["diffusers", "DDIMScheduler"],
      "text_encoder": ["transformers", "CLIPTextModel"],
      "tokenizer": ["transformers", "CLIPTokenizer"],
      "unet": ["diffusers", "UNet2DConditionModel"],
      "vae": ["diffusers", "AutoencoderKL"]
    })");
    Place("unet", "tiny_unet", "diffusion_pytorch_model.safetensors");
    Place("vae", "tiny_vae", "diffusion_pytorch_model.safetensors");
    Place("text_encoder", "tiny_text_encoder", "model.safetensors");
    fs::create_directories(dir_.path() / "scheduler");
    WriteBytes(dir_.File("scheduler/scheduler_config.json"), R"({
      "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
      "beta_end": 0.012, "num_train_timesteps": 1000, "set_alpha_to_one": false,
      "steps_offset": 1, "prediction_type": "epsilon"})");
    // The ControlNet is sharded in two, as large checkpoints are published.
    fs::create_directories(dir_.path() / "controlnet");
    fs::copy_file(kDiffusionDir + "/tiny/tiny_controlnet.config.json",
                  dir_.path() / "controlnet/config.json");
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> controlnet =
        SafetensorsFile::Open(kDiffusionDir + "/tiny/tiny_controlnet.weights.safetensors");
    ASSERT_TRUE(controlnet.ok()) << controlnet.status();
    std::map<std::string, at::Tensor> shards[2];
    std::string weight_map;
    for (const std::string& name : (*controlnet)->Names()) {
      const int shard = name.rfind("down_blocks", 0) == 0 ? 0 : 1;
      shards[shard][name] = *(*controlnet)->Tensor(name);
      weight_map += (weight_map.empty() ? "\"" : ",\"") + name + "\":\"" + ShardName(shard) + "\"";
    }
    for (int shard = 0; shard < 2; ++shard) {
      ASSERT_TRUE(
          WriteSafetensors(dir_.File("controlnet/" + ShardName(shard)), shards[shard]).ok());
    }
    WriteBytes(dir_.File("controlnet/diffusion_pytorch_model.safetensors.index.json"),
               "{\"metadata\":{},\"weight_map\":{" + weight_map + "}}");
  }

  static std::string ShardName(int shard) {
    return "diffusion_pytorch_model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
  }

  void Place(const std::string& component, const std::string& model,
             const std::string& weights_name) {
    fs::create_directories(dir_.path() / component);
    fs::copy_file(kDiffusionDir + "/tiny/" + model + ".config.json",
                  dir_.path() / component / "config.json");
    fs::copy_file(kDiffusionDir + "/tiny/" + model + ".weights.safetensors",
                  dir_.path() / component / weights_name);
  }

  std::unique_ptr<DiffusersPipelineFolder> OpenFolder() {
    absl::StatusOr<std::unique_ptr<DiffusersPipelineFolder>> folder =
        DiffusersPipelineFolder::Open(dir_.path().string());
    EXPECT_TRUE(folder.ok()) << folder.status();
    return folder.ok() ? std::move(*folder) : nullptr;
  }

  void ExpectKeysMatch(const TensorSource& source, const std::string& model) {
    absl::StatusOr<std::vector<KeyEntry>> table =
        ReadKeyTable(kDiffusionDir + "/keys/" + model + "_keys.tsv");
    ASSERT_TRUE(table.ok()) << table.status();
    absl::Status same = CompareKeys(*table, KeysOf(source));
    EXPECT_TRUE(same.ok()) << same;
  }

  TempDir dir_;
};

TEST_F(DiffusersFolderTest, ListsComponentsAndReadsConfigs) {
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  EXPECT_EQ(folder->PipelineClass(), "StableDiffusionControlNetPipeline");
  EXPECT_THAT(folder->ComponentNames(),
              ElementsAre("controlnet", "scheduler", "text_encoder", "tokenizer", "unet", "vae"));
  EXPECT_FALSE(folder->HasComponent("safety_checker"));
  absl::StatusOr<DiffusersPipelineFolder::ComponentSpec> text = folder->Component("text_encoder");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->library, "transformers");
  EXPECT_EQ(text->class_name, "CLIPTextModel");

  absl::StatusOr<nlohmann::json> unet = folder->Config("unet");
  ASSERT_TRUE(unet.ok()) << unet.status();
  EXPECT_EQ((*unet)["block_out_channels"], nlohmann::json({32, 64}));
  absl::StatusOr<nlohmann::json> scheduler = folder->SchedulerConfig();
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EXPECT_EQ((*scheduler)["steps_offset"], 1);
  EXPECT_EQ((*scheduler)["_class_name"], "DDIMScheduler");
}

TEST_F(DiffusersFolderTest, OpensSingleFileAndShardedWeightsOfEveryComponent) {
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  for (const auto& [component, model] :
       std::map<std::string, std::string>{{"unet", "tiny_unet"},
                                          {"vae", "tiny_vae"},
                                          {"text_encoder", "tiny_text_encoder"},
                                          {"controlnet", "tiny_controlnet"}}) {
    SCOPED_TRACE(component);
    absl::StatusOr<std::unique_ptr<TensorSource>> weights = folder->Weights(component);
    ASSERT_TRUE(weights.ok()) << weights.status();
    ExpectKeysMatch(**weights, model);
  }
  absl::StatusOr<std::unique_ptr<TensorSource>> controlnet = folder->Weights("controlnet");
  ASSERT_TRUE(controlnet.ok());
  EXPECT_NE(dynamic_cast<ShardedSafetensors*>(controlnet->get()), nullptr);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> original =
      SafetensorsFile::Open(kDiffusionDir + "/tiny/tiny_controlnet.weights.safetensors");
  ASSERT_TRUE(original.ok());
  for (const std::string& name : (*original)->Names()) {
    EXPECT_TRUE(at::equal(*(*controlnet)->Tensor(name), *(*original)->Tensor(name))) << name;
  }
}

TEST_F(DiffusersFolderTest, MissingComponentFolderIsNamed) {
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  absl::StatusOr<std::unique_ptr<TensorSource>> tokenizer = folder->Weights("tokenizer");
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(),
              AllOf(HasSubstr("'tokenizer'"), HasSubstr("folder"), HasSubstr("does not exist")));
  absl::StatusOr<nlohmann::json> unknown = folder->Config("safety_checker");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), AllOf(HasSubstr("'safety_checker'"), HasSubstr("unet")));
}

TEST_F(DiffusersFolderTest, MissingWeightsNameEveryFileLookedFor) {
  fs::remove(dir_.path() / "vae" / "diffusion_pytorch_model.safetensors");
  WriteBytes(dir_.File("vae/diffusion_pytorch_model.bin"), "pickle");
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  absl::StatusOr<std::unique_ptr<TensorSource>> weights = folder->Weights("vae");
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(
      weights.status().message(),
      AllOf(HasSubstr("diffusion_pytorch_model.safetensors"), HasSubstr("model.safetensors"),
            HasSubstr("diffusion_pytorch_model.safetensors.index.json"),
            HasSubstr("diffusion_pytorch_model.bin"), HasSubstr("not supported")));
}

TEST_F(DiffusersFolderTest, VariantWeightsArePreferredWhenAsked) {
  fs::copy_file(kDiffusionDir + "/tiny/tiny_vae.weights.safetensors",
                dir_.path() / "unet" / "diffusion_pytorch_model.fp16.safetensors");
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  absl::StatusOr<std::unique_ptr<TensorSource>> weights = folder->Weights("unet", "fp16");
  ASSERT_TRUE(weights.ok()) << weights.status();
  ExpectKeysMatch(**weights, "tiny_vae");
}

TEST_F(DiffusersFolderTest, ShardIndexPointingToAMissingShardFails) {
  fs::remove(dir_.path() / "controlnet" / ShardName(1));
  std::unique_ptr<DiffusersPipelineFolder> folder = OpenFolder();
  ASSERT_NE(folder, nullptr);
  absl::StatusOr<std::unique_ptr<TensorSource>> weights = folder->Weights("controlnet");
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(weights.status().message(), HasSubstr(ShardName(1)));
}

TEST(DiffusersPipelineFolder, FolderWithoutModelIndexIsNotAPipeline) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<DiffusersPipelineFolder>> folder =
      DiffusersPipelineFolder::Open(dir.path().string());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(folder.status().message(), HasSubstr("model_index.json"));
  EXPECT_EQ(DiffusersPipelineFolder::Open(dir.File("absent")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DiffusersPipelineFolder, ModelIndexThatIsNotJsonIsInvalid) {
  TempDir dir;
  WriteBytes(dir.File("model_index.json"), "{\"unet\": [\"diffusers\",");
  absl::StatusOr<std::unique_ptr<DiffusersPipelineFolder>> folder =
      DiffusersPipelineFolder::Open(dir.path().string());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(folder.status().message(), HasSubstr("not valid JSON"));
}

TEST(OpenModelFolderWeights, ReadsATransformersModelFolder) {
  TempDir dir;
  fs::copy_file(kReferenceDir + "/clip/tiny_clip.weights.safetensors",
                dir.path() / "model.safetensors");
  absl::StatusOr<std::unique_ptr<TensorSource>> weights =
      OpenModelFolderWeights(dir.path().string());
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE((*weights)->Contains("logit_scale"));
  EXPECT_TRUE((*weights)->Info("logit_scale")->shape.empty());
}

}  // namespace
}  // namespace imginterp::models
