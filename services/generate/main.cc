#include <algorithm>
#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "imginterp/v1/generate.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/generate/generation_handler.h"

namespace imginterp::generate {
namespace {

class GenerationGrpcService final
    : public service::TypedService<v1::GenerationService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Generate, v1::GenerateRequest, v1::GenerateResponse)
  IMGINTERP_SERVE_UNARY(Interpolate, v1::InterpolateRequest, v1::InterpolateResponse)
  grpc::ServerWriteReactor<v1::GenerateUpdate>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override {
    service::StreamFormat<v1::GenerateUpdate> format;
    // Every image runs the same number of steps, so step s (1-based) of total belongs to image
    // (s - 1) * images / total.
    const int64_t images = std::max(1, request->num_images());
    format.progress = [images](int step, int total, v1::GenerateUpdate* update) {
      auto* progress = update->mutable_progress();
      progress->set_step(step);
      progress->set_total(total);
      progress->set_image_index(total > 0 ? static_cast<int>((int64_t{step} - 1) * images / total)
                                          : 0);
    };
    format.result = [](const google::protobuf::Message& response, v1::GenerateUpdate* update) {
      update->mutable_result()->CopyFrom(response);
    };
    return core_.ServeStreaming(context, request, std::make_unique<v1::GenerateResponse>(),
                                std::move(format));
  }
};

}  // namespace
}  // namespace imginterp::generate

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<generate::GenerationGrpcService>(
      argc, argv, std::make_unique<generate::GenerationHandler>(), 8107, 9107);
}
