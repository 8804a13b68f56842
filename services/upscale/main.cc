#include <cstdlib>

#include "absl/strings/numbers.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/upscale.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/upscale/upscale_handler.h"

namespace imginterp::upscale {
namespace {

class UpscaleGrpcService final : public service::TypedService<v1::UpscaleService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Upscale, v1::UpscaleRequest, v1::UpscaleResponse)
};

// Family limits from the environment (ServiceMain owns the command line):
// IMGINTERP_UPSCALE_MAX_OUTPUT_PIXELS and IMGINTERP_UPSCALE_MAX_TILE_MIB.
UpscaleOptions OptionsFromEnvironment() {
  UpscaleOptions options;
  int64_t value = 0;
  if (const char* env = std::getenv("IMGINTERP_UPSCALE_MAX_OUTPUT_PIXELS");
      env != nullptr && absl::SimpleAtoi(env, &value) && value > 0) {
    options.max_output_pixels = value;
  }
  if (const char* env = std::getenv("IMGINTERP_UPSCALE_MAX_TILE_MIB");
      env != nullptr && absl::SimpleAtoi(env, &value) && value > 0) {
    options.max_tile_activation_bytes = value << 20;
  }
  return options;
}

}  // namespace
}  // namespace imginterp::upscale

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<upscale::UpscaleGrpcService>(
      argc, argv, std::make_unique<upscale::UpscaleHandler>(upscale::OptionsFromEnvironment()),
      8106, 9106);
}
