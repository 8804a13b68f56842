// Shared helpers of diffusion_models_test: opening the tiny reference files and comparing outputs
// with a printed max error.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <string>

#include "services/models/io/safetensors_file.h"
#include "services/models/io/state_dict.h"

namespace imginterp::diffusion::testing {

inline const std::string& TinyDir() {
  static const std::string dir = std::string(IMGINTERP_REFERENCE_DIR) + "/diffusion/tiny/";
  return dir;
}
inline const std::string& ReferenceDiffusionDir() {
  static const std::string dir = std::string(IMGINTERP_REFERENCE_DIR) + "/diffusion/";
  return dir;
}

// Builds modules on the meta device: shapes and keys without allocating weights.
inline const torch::TensorOptions kMeta = torch::TensorOptions().device(torch::kMeta);

// The reference's own fp32/fp64 gap is below 5e-6; a faithful port stays far below this.
constexpr double kTolerance = 1e-4;

inline std::unique_ptr<models::SafetensorsFile> OpenOrFail(const std::string& path) {
  auto file = models::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? std::move(file).value() : nullptr;
}

inline torch::Tensor Get(const models::SafetensorsFile& file, const std::string& name) {
  auto tensor = file.Tensor(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? *tensor : torch::Tensor();
}

// Max absolute difference, printed as "[ max error ] <what>: <err>".
inline double MaxError(const std::string& what, const torch::Tensor& actual,
                       const torch::Tensor& expected) {
  EXPECT_TRUE(actual.defined()) << what;
  if (!actual.defined()) return 1e30;
  EXPECT_EQ(actual.sizes(), expected.sizes()) << what;
  if (actual.sizes() != expected.sizes()) return 1e30;
  const double err =
      (actual.to(torch::kDouble) - expected.to(torch::kDouble)).abs().max().item<double>();
  std::cout << "[ max error ] " << what << ": " << err << std::endl;
  return err;
}

inline void ExpectClose(const std::string& what, const torch::Tensor& actual,
                        const torch::Tensor& expected, double tolerance = kTolerance) {
  EXPECT_LT(MaxError(what, actual, expected), tolerance) << what;
}

// Runs each parity test in float64 (against out64.*) and float32 (against out.*).
class DtypeParity : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  torch::TensorOptions Options() const { return torch::TensorOptions().dtype(GetParam()); }
  // "out64." in float64, "out." in float32.
  std::string OutPrefix() const { return GetParam() == torch::kDouble ? "out64." : "out."; }
  std::string Label(const std::string& what) const {
    return what + " (" + c10::toString(GetParam()) + ")";
  }
  torch::NoGradGuard no_grad_;
};

// The module's parameter keys and shapes equal keys/<tsv> of the reference; with a count and a
// parameter total, those too. Every parameter must be on the meta device if `meta` is set.
inline void ExpectKeysMatchTable(const torch::nn::Module& module, const std::string& tsv,
                                 size_t expected_count = 0, int64_t expected_numel = 0,
                                 bool meta = true) {
  if (meta) {
    for (const auto& p : module.parameters()) {
      ASSERT_TRUE(p.device().is_meta());
    }
  }
  auto expected = models::ReadKeyTable(ReferenceDiffusionDir() + "keys/" + tsv);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const auto actual = models::ExpectedKeys(module);
  if (expected_count > 0) {
    EXPECT_EQ(actual.size(), expected_count);
  }
  if (expected_numel > 0) {
    int64_t numel = 0;
    for (const auto& entry : actual) numel += entry.Numel();
    EXPECT_EQ(numel, expected_numel);
  }
  const absl::Status compared = models::CompareKeys(*expected, actual);
  EXPECT_TRUE(compared.ok()) << compared;
}

}  // namespace imginterp::diffusion::testing
