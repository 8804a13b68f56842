#include "services/models/io/state_dict.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "services/models/io/tensor_source.h"
#include "tests/unit/models_io/test_util.h"

namespace imginterp::models {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;
using ::testing::UnorderedElementsAre;
using testing::WriteBytes;

// conv_in.{weight,bias} [4,2,3,3] [4]; layers.{0,1}.{weight,bias}; buffer position_ids [1,5].
struct TinyNet : torch::nn::Module {
  TinyNet() {
    conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 4, 3)));
    layers = register_module(
        "layers", torch::nn::ModuleList(torch::nn::Linear(4, 4), torch::nn::Linear(4, 2)));
    position_ids = register_buffer("position_ids", torch::arange(5).unsqueeze(0));
  }
  torch::nn::Conv2d conv_in{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::Tensor position_ids;
};

// A checkpoint for TinyNet with fresh random values (and the given dtype for floating tensors).
std::map<std::string, at::Tensor> TinyCheckpoint(at::ScalarType dtype = at::kFloat) {
  return {{"conv_in.weight", torch::randn({4, 2, 3, 3}).to(dtype)},
          {"conv_in.bias", torch::randn({4}).to(dtype)},
          {"layers.0.weight", torch::randn({4, 4}).to(dtype)},
          {"layers.0.bias", torch::randn({4}).to(dtype)},
          {"layers.1.weight", torch::randn({2, 4}).to(dtype)},
          {"layers.1.bias", torch::randn({2}).to(dtype)},
          {"position_ids", torch::arange(10, 15).unsqueeze(0)}};
}

std::map<std::string, at::Tensor> StateOf(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> state;
  for (const auto& item : module.named_parameters()) state[item.key()] = item.value().clone();
  for (const auto& item : module.named_buffers()) state[item.key()] = item.value().clone();
  return state;
}

void ExpectUnchanged(const torch::nn::Module& module,
                     const std::map<std::string, at::Tensor>& before) {
  for (const auto& [key, value] : StateOf(module)) {
    EXPECT_TRUE(at::equal(value, before.at(key))) << key << " changed after a failed load";
  }
}

TEST(LoadStateDict, CopiesEveryParameterAndBufferConvertingDtype) {
  TinyNet net;
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint(at::kHalf);
  LoadReport report;
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint), {}, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.loaded, 7);
  for (const auto& [key, value] : StateOf(net)) {
    EXPECT_EQ(value.scalar_type(), key == "position_ids" ? at::kLong : at::kFloat) << key;
    EXPECT_TRUE(at::equal(value, checkpoint.at(key).to(value.scalar_type()))) << key;
  }
}

TEST(LoadStateDict, MissingKeysAreListedAndNothingIsCopied) {
  TinyNet net;
  const auto before = StateOf(net);
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint.erase("layers.1.bias");
  checkpoint.erase("conv_in.weight");
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint, "ckpt.safetensors"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("ckpt.safetensors"), HasSubstr("2 missing key(s)"),
                                      HasSubstr("conv_in.weight"), HasSubstr("layers.1.bias")));
  ExpectUnchanged(net, before);
}

TEST(LoadStateDict, LongKeyListsShowTenAndTheCount) {
  struct Wide : torch::nn::Module {
    Wide() {
      for (int i = 0; i < 15; ++i) {
        register_module("l" + std::to_string(i), torch::nn::Linear(2, 2));
      }
    }
  } wide;
  absl::Status status = LoadStateDict(wide, MapTensorSource({}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("30 missing key(s)"), HasSubstr("and 20 more")));
}

TEST(LoadStateDict, UnexpectedKeysAreListed) {
  TinyNet net;
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint["extra.weight"] = torch::ones({1});
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("1 unexpected key(s)"), HasSubstr("extra.weight"),
                                      Not(HasSubstr("missing"))));
}

TEST(LoadStateDict, ShapeMismatchNamesTheKeyAndBothShapesEvenWhenNotStrict) {
  TinyNet net;
  const auto before = StateOf(net);
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint["layers.1.weight"] = torch::randn({3, 4});
  LoadOptions options;
  options.strict = false;
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("'layers.1.weight'"),
                                      HasSubstr("checkpoint [3, 4]"), HasSubstr("module [2, 4]")));
  ExpectUnchanged(net, before);
}

TEST(LoadStateDict, IgnoredPatternsAreNeitherLoadedNorReported) {
  TinyNet net;
  const at::Tensor position_ids_before = net.position_ids.clone();
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint["text_model.embeddings.position_ids"] = torch::arange(77);
  checkpoint.erase("position_ids");
  LoadOptions options;
  options.ignore = {"*position_ids"};
  LoadReport report;
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint), options, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.loaded, 6);
  EXPECT_THAT(report.ignored,
              UnorderedElementsAre("text_model.embeddings.position_ids", "position_ids"));
  EXPECT_TRUE(at::equal(net.position_ids, position_ids_before));
}

TEST(LoadStateDict, NonStrictReportsMissingAndUnexpectedAndLoadsTheRest) {
  TinyNet net;
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint.erase("conv_in.bias");
  checkpoint["other"] = torch::ones({1});
  LoadOptions options;
  options.strict = false;
  LoadReport report;
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint), options, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.loaded, 6);
  EXPECT_THAT(report.missing, ElementsAre("conv_in.bias"));
  EXPECT_THAT(report.unexpected, ElementsAre("other"));
  EXPECT_TRUE(
      at::equal(net.layers[0]->named_parameters()["weight"], checkpoint.at("layers.0.weight")));
}

TEST(LoadStateDict, SourcePrefixSelectsAndStripsASubtree) {
  TinyNet net;
  std::map<std::string, at::Tensor> prefixed;
  for (auto& [key, value] : TinyCheckpoint()) prefixed["unet." + key] = value;
  prefixed["vae.decoder.conv_in.weight"] = torch::ones({1});
  LoadOptions options;
  options.source_prefix = "unet.";
  LoadReport report;
  absl::Status status = LoadStateDict(net, MapTensorSource(prefixed), options, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.loaded, 7);
  EXPECT_TRUE(at::equal(net.conv_in->weight, prefixed.at("unet.conv_in.weight")));
}

TEST(LoadStateDict, TwoKeysRenamedToOneModuleKeyIsAnError) {
  TinyNet net;
  std::map<std::string, at::Tensor> checkpoint = TinyCheckpoint();
  checkpoint["conv_in.bias_old"] = torch::ones({4});
  LoadOptions options;
  options.rename = [](std::string_view key) {
    return key == "conv_in.bias_old" ? std::string("conv_in.bias") : std::string(key);
  };
  absl::Status status = LoadStateDict(net, MapTensorSource(checkpoint), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("given twice"), HasSubstr("conv_in.bias_old")));
}

TEST(LegacyVaeAttentionRename, MapsQueryKeyValueProjAttnOfAttentionBlocks) {
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.mid_block.attentions.0.query.weight"),
            "decoder.mid_block.attentions.0.to_q.weight");
  EXPECT_EQ(LegacyVaeAttentionRename("encoder.mid_block.attentions.0.key.bias"),
            "encoder.mid_block.attentions.0.to_k.bias");
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.mid_block.attentions.0.value.weight"),
            "decoder.mid_block.attentions.0.to_v.weight");
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.mid_block.attentions.0.proj_attn.bias"),
            "decoder.mid_block.attentions.0.to_out.0.bias");
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.mid_block.attentions.0.group_norm.weight"),
            "decoder.mid_block.attentions.0.group_norm.weight");
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.mid_block.attentions.0.to_q.weight"),
            "decoder.mid_block.attentions.0.to_q.weight");
  EXPECT_EQ(LegacyVaeAttentionRename("decoder.up_blocks.0.resnets.0.conv1.weight"),
            "decoder.up_blocks.0.resnets.0.conv1.weight");
  EXPECT_EQ(LegacyVaeAttentionRename("text.key.weight"), "text.key.weight");
}

struct VaeAttention : torch::nn::Module {
  VaeAttention() {
    register_module("group_norm", torch::nn::GroupNorm(2, 4));
    register_module("to_q", torch::nn::Linear(4, 4));
    register_module("to_k", torch::nn::Linear(4, 4));
    register_module("to_v", torch::nn::Linear(4, 4));
    register_module("to_out", torch::nn::ModuleList(torch::nn::Linear(4, 4)));
  }
};

struct VaeMid : torch::nn::Module {
  VaeMid() {
    auto mid = std::make_shared<torch::nn::Module>();
    mid->register_module("attentions", torch::nn::ModuleList(std::make_shared<VaeAttention>()));
    register_module("mid_block", mid);
  }
};

TEST(LoadStateDict, LegacyVaeCheckpointLoadsThroughTheRename) {
  VaeMid vae;
  std::map<std::string, at::Tensor> legacy;
  const std::string prefix = "mid_block.attentions.0.";
  for (const char* name : {"query", "key", "value", "proj_attn"}) {
    legacy[prefix + name + ".weight"] = torch::randn({4, 4});
    legacy[prefix + name + ".bias"] = torch::randn({4});
  }
  legacy[prefix + "group_norm.weight"] = torch::randn({4});
  legacy[prefix + "group_norm.bias"] = torch::randn({4});

  absl::Status plain = LoadStateDict(vae, MapTensorSource(legacy));
  EXPECT_THAT(plain.message(), HasSubstr("mid_block.attentions.0.proj_attn.weight"));

  LoadOptions options;
  options.rename = LegacyVaeAttentionRename;
  LoadReport report;
  absl::Status status = LoadStateDict(vae, MapTensorSource(legacy), options, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.loaded, 10);
  const auto state = StateOf(vae);
  EXPECT_TRUE(
      at::equal(state.at(prefix + "to_out.0.weight"), legacy.at(prefix + "proj_attn.weight")));
  EXPECT_TRUE(at::equal(state.at(prefix + "to_q.bias"), legacy.at(prefix + "query.bias")));
}

TEST(ExpectedKeys, ListsParametersThenBuffersWithShapesAndDtypes) {
  TinyNet net;
  std::vector<KeyEntry> keys = ExpectedKeys(net);
  std::vector<std::string> names;
  for (const KeyEntry& entry : keys) names.push_back(entry.key);
  EXPECT_THAT(names,
              ElementsAre("conv_in.weight", "conv_in.bias", "layers.0.weight", "layers.0.bias",
                          "layers.1.weight", "layers.1.bias", "position_ids"));
  EXPECT_THAT(keys[0].shape, ElementsAre(4, 2, 3, 3));
  EXPECT_EQ(keys[0].dtype, "float32");
  EXPECT_EQ(keys[0].Numel(), 72);
  EXPECT_EQ(keys.back().dtype, "int64");
}

TEST(ReadKeyTable, ParsesShapesIncludingScalars) {
  TempDir dir;
  WriteBytes(
      dir.File("keys.tsv"),
      "key\tshape\tdtype\tnumel\nlogit_scale\t\tfloat32\t1\nconv.weight\t8,4,3,3\tfloat16\t288\n");
  absl::StatusOr<std::vector<KeyEntry>> table = ReadKeyTable(dir.File("keys.tsv"));
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->size(), 2u);
  EXPECT_EQ((*table)[0].key, "logit_scale");
  EXPECT_TRUE((*table)[0].shape.empty());
  EXPECT_THAT((*table)[1].shape, ElementsAre(8, 4, 3, 3));
  EXPECT_EQ((*table)[1].dtype, "float16");
}

TEST(ReadKeyTable, RejectsRowsWhoseNumelDoesNotMatchTheShape) {
  TempDir dir;
  WriteBytes(dir.File("keys.tsv"), "key\tshape\tdtype\tnumel\nw\t2,3\tfloat32\t5\n");
  absl::StatusOr<std::vector<KeyEntry>> table = ReadKeyTable(dir.File("keys.tsv"));
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), AllOf(HasSubstr("line 2"), HasSubstr("'w'")));
}

TEST(ReadKeyTable, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_EQ(ReadKeyTable(dir.File("none.tsv")).status().code(), absl::StatusCode::kNotFound);
}

TEST(CompareKeys, ReportsMissingExtraAndShapeDifferences) {
  const std::vector<KeyEntry> expected = {
      {"a", {2, 3}, "float32"}, {"b", {4}, "float32"}, {"c", {}, "float32"}};
  EXPECT_TRUE(
      CompareKeys(expected, {{"c", {}, "float32"}, {"b", {4}, "float16"}, {"a", {2, 3}, "float32"}})
          .ok());
  absl::Status status =
      CompareKeys(expected, {{"a", {3, 2}, "float32"}, {"b", {4}, "float32"}, {"d", {1}, ""}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("1 key(s) missing: c"), HasSubstr("1 unexpected key(s): d"),
                    HasSubstr("'a': expected [2, 3], actual [3, 2]")));
}

}  // namespace
}  // namespace imginterp::models
