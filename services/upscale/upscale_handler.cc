#include "services/upscale/upscale_handler.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference/grpc_service.pb.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_runner.h"
#include "services/upscale/tiling.h"

namespace imginterp::upscale {
namespace {

constexpr int kMaxScale = 16;
// Smallest tile side accepted from a request; smaller tiles are all overlap.
constexpr int kMinTileSize = 16;

std::string Mpx(int64_t pixels) { return absl::StrFormat("%.1f Mpx", pixels / 1e6); }

// Reads an integer parameter; `fallback` when absent.
absl::StatusOr<int> IntParameter(const v1::ModelConfig& config, const std::string& key,
                                 int fallback, int low, int high) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < low || value > high) {
    return absl::InvalidArgumentError(absl::StrCat("config.pbtxt of '", config.name(),
                                                   "': parameter ", key, " must be an integer in ",
                                                   low, "..", high, "; got \"", it->second, "\""));
  }
  return value;
}

class EsrganModel final : public service::ExecuteModel {
 public:
  EsrganModel(std::unique_ptr<model::ModelRunner> runner, std::string name, EsrganConfig config,
              UpscaleOptions options)
      : runner_(std::move(runner)),
        name_(std::move(name)),
        config_(config),
        options_(options),
        max_tile_(MaxTileSize(config.scale, options.max_tile_activation_bytes)) {}

 protected:
  absl::Status Execute(service::WorkItem& item) override {
    const auto& request = static_cast<const v1::UpscaleRequest&>(*item.request);
    auto& response = static_cast<v1::UpscaleResponse&>(*item.response);
    const int scale = config_.scale;
    IMGINTERP_ASSIGN_OR_RETURN(TilingOptions tiling, TilingFor(request));
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), options_.limits));
    const int64_t out_width = int64_t{image.rgb.cols} * scale;
    const int64_t out_height = int64_t{image.rgb.rows} * scale;
    if (out_width * out_height > options_.max_output_pixels ||
        std::max(out_width, out_height) > options_.max_output_side) {
      const std::string limit =
          std::max(out_width, out_height) > options_.max_output_side
              ? absl::StrCat("the largest output side is ", options_.max_output_side)
              : absl::StrCat("the output limit is ", Mpx(options_.max_output_pixels));
      return absl::ResourceExhaustedError(absl::StrCat(
          "upscaling ", image.rgb.cols, "x", image.rgb.rows, " by ", scale, " would give ",
          out_width, "x", out_height, " (", Mpx(out_width * out_height), "); ", limit,
          ": send a smaller image or use a smaller scale"));
    }
    tiling.cancelled = item.cancelled;
    tiling.progress = item.progress;
    IMGINTERP_ASSIGN_OR_RETURN(
        TiledResult result,
        UpscaleTiled(image.rgb, tiling, [this](const at::Tensor& tile) { return RunTile(tile); }));
    IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(result.rgb));
    auto* out = response.mutable_image();
    out->set_data(std::move(png));
    out->set_media_type("image/png");
    out->set_width(result.rgb.cols);
    out->set_height(result.rgb.rows);
    response.set_scale(scale);
    response.set_tiles(result.tiles);
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<TilingOptions> TilingFor(const v1::UpscaleRequest& request) const {
    TilingOptions tiling;
    tiling.scale = config_.scale;
    tiling.tile_size = request.tile_size() != 0 ? request.tile_size() : config_.tiles.tile_size;
    tiling.overlap =
        request.tile_overlap() != 0 ? request.tile_overlap() : config_.tiles.tile_overlap;
    if (tiling.tile_size < kMinTileSize || tiling.tile_size > max_tile_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tile_size must be in ", kMinTileSize, "..", max_tile_, " for ", name_,
          " (the upper bound keeps one tile's memory bounded); got ", tiling.tile_size));
    }
    if (tiling.overlap < 0 || 2 * tiling.overlap >= tiling.tile_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("tile_overlap must be >= 0 and less than half the tile size (",
                       tiling.tile_size, "); got ", tiling.overlap));
    }
    return tiling;
  }

  absl::StatusOr<at::Tensor> RunTile(const at::Tensor& tile) {
    IMGINTERP_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, runner_->Forward({tile}));
    if (outputs.size() != 1) {
      return absl::InternalError(
          absl::StrCat("model '", name_, "' should return one tensor; got ", outputs.size()));
    }
    return std::move(outputs[0]);
  }

  std::unique_ptr<model::ModelRunner> runner_;
  const std::string name_;
  const EsrganConfig config_;
  const UpscaleOptions options_;
  const int max_tile_;
};

}  // namespace

int MaxTileSize(int scale, int64_t max_bytes) {
  // 3·s² channels × (t·s)² pixels × 4 bytes <= max_bytes.
  const double s2 = static_cast<double>(scale) * scale;
  return std::max(1, static_cast<int>(std::floor(std::sqrt(max_bytes / (12.0 * s2 * s2)))));
}

absl::StatusOr<EsrganConfig> ParseEsrganConfig(const std::string& model_name,
                                               const v1::ModelConfig& config) {
  auto kind = config.parameters().find("kind");
  if (kind != config.parameters().end() && kind->second != "esrgan") {
    return absl::InvalidArgumentError(absl::StrCat("config.pbtxt of '", model_name,
                                                   "': the upscale service runs kind \"esrgan\"; "
                                                   "got \"",
                                                   kind->second, "\""));
  }
  int name_scale = 0;
  const size_t x = model_name.rfind("-x");
  if (x != std::string::npos) {
    if (!absl::SimpleAtoi(model_name.substr(x + 2), &name_scale)) name_scale = 0;
  }
  EsrganConfig out;
  IMGINTERP_ASSIGN_OR_RETURN(out.scale, IntParameter(config, "scale", name_scale, 1, kMaxScale));
  if (out.scale < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.pbtxt of '", model_name,
                     "' needs parameters { key: \"scale\" value: \"<2..8>\" } (or a name ending "
                     "in -x<scale>)"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(out.tiles.tile_size,
                             IntParameter(config, "tile_size", out.tiles.tile_size, 16, 4096));
  IMGINTERP_ASSIGN_OR_RETURN(
      out.tiles.tile_overlap,
      IntParameter(config, "tile_overlap", out.tiles.tile_overlap, 0, out.tiles.tile_size / 2 - 1));
  return out;
}

std::string UpscaleHandler::description() const {
  return "Super-resolution with ESRGAN-slim (x2, x3, x4, x8) from the model repository, run in "
         "overlapping tiles stitched without seams, so memory is bounded by the tile size "
         "(request fields tile_size and tile_overlap; defaults from config.pbtxt). Returns an "
         "RGB PNG of scale times the input size.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> UpscaleHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upscale model '", info.name, "' needs backend \"torchscript\" in config.pbtxt"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(EsrganConfig config, ParseEsrganConfig(info.name, info.config));
  const int max_tile = MaxTileSize(config.scale, options_.max_tile_activation_bytes);
  if (config.tiles.tile_size > max_tile) {
    IMGINTERP_LOG(Warning) << "model '" << info.name << "': configured tile_size "
                           << config.tiles.tile_size << " needs more than "
                           << (options_.max_tile_activation_bytes >> 20) << " MiB per tile at x"
                           << config.scale << "; using " << max_tile;
    config.tiles.tile_size = max_tile;
    config.tiles.tile_overlap = std::min(config.tiles.tile_overlap, (max_tile - 1) / 2);
  }
  return std::make_unique<EsrganModel>(std::move(runner), info.name, config, options_);
}

absl::Status UpscaleHandler::ToKServe(const google::protobuf::Message& message,
                                      inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::UpscaleResponse&>(message);
  auto* image = out->add_outputs();
  image->set_name("image");
  image->set_datatype("BYTES");
  image->add_shape(1);
  image->mutable_contents()->add_bytes_contents(response.image().data());
  (*out->mutable_parameters())["scale"].set_int64_param(response.scale());
  (*out->mutable_parameters())["tiles"].set_int64_param(response.tiles());
  return absl::OkStatus();
}

void UpscaleHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  auto* image = metadata->add_outputs();
  image->set_name("image");
  image->set_datatype("BYTES");
  image->add_shape(1);
}

}  // namespace imginterp::upscale
