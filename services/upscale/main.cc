#include <cstdlib>

#include "absl/strings/numbers.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/upscale.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/upscale/upscale_handler.h"

namespace imginterp::upscale {
namespace {

class UpscaleGrpcService final : public v1::UpscaleService::CallbackService {
 public:
  explicit UpscaleGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Upscale(grpc::CallbackServerContext* context,
                                    const v1::UpscaleRequest* request,
                                    v1::UpscaleResponse* response) override {
    return core_.Serve(context, request, response);
  }
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest*,
                                       v1::ListModelsResponse* response) override {
    return core_.ListModels(context, response);
  }

 private:
  service::ServiceCore& core_;
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
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<upscale::UpscaleHandler>(upscale::OptionsFromEnvironment());
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<upscale::UpscaleGrpcService>(core);
  };
  definition.default_grpc_port = 8106;
  definition.default_metrics_port = 9106;
  return service::ServiceMain(argc, argv, std::move(definition));
}
