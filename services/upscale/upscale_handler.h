// The `upscale` family: ESRGAN-slim super-resolution (×2, ×3, ×4, ×8; TF.js layers models of
// @upscalerjs/esrgan-slim imported to TorchScript, NHWC float RGB 0..255 in and out, any size),
// run in overlapping tiles that are stitched without seams (see tiling.h), so memory is bounded
// by the tile size rather than the image. Models: upscale/esrgan-slim-x{2,3,4,8}, config
// parameters `kind: "esrgan"`, `scale`, `tile_size`, `tile_overlap`.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "imginterp/v1/upscale.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::upscale {

struct UpscaleOptions {
  // Limits on the decoded input image.
  codec::ImageLimits limits;
  // Largest output (input pixels × scale²) accepted; larger requests get RESOURCE_EXHAUSTED.
  int64_t max_output_pixels = 64'000'000;
  // Largest output width or height: beyond it few decoders (including ours) read the PNG.
  int max_output_side = 32768;
  // Bound on one tile's largest activation, estimated as ESRGAN-slim's 3·scale² channels
  // upsampled to the tile's output size (float32). Sets the largest tile side per scale (256 MiB:
  // 1182 at ×2, 295 at ×4, 73 at ×8). Configured tile sizes above it are lowered; requested ones
  // are refused with INVALID_ARGUMENT.
  int64_t max_tile_activation_bytes = int64_t{256} << 20;
};

// Tile size and overlap a model uses when a request does not set them.
struct TileDefaults {
  int tile_size = 128;
  int tile_overlap = 16;
};

// The largest tile side (input pixels) whose activation estimate fits `max_bytes` at `scale`.
int MaxTileSize(int scale, int64_t max_bytes);

// Scale and tile defaults from a model's config.pbtxt parameters (`scale`, `tile_size`,
// `tile_overlap`; scale falls back to the name's "-x<N>" suffix). INVALID_ARGUMENT naming the
// key for values that are not integers in range or `kind` other than "esrgan".
struct EsrganConfig {
  int scale = 4;
  TileDefaults tiles;
};
absl::StatusOr<EsrganConfig> ParseEsrganConfig(const std::string& model_name,
                                               const v1::ModelConfig& config);

// Thread-safe.
class UpscaleHandler final : public service::FamilyHandler {
 public:
  explicit UpscaleHandler(UpscaleOptions options = {}) : options_(options) {}
  std::string family() const override { return "upscale"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::UpscaleRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::UpscaleResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  std::string default_model() const override { return "esrgan-slim-x4"; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  // One output "image": the RGB PNG as BYTES [1]; parameters "scale" and "tiles".
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  UpscaleOptions options_;
};

}  // namespace imginterp::upscale
