#include "grpcpp/grpcpp.h"
#include "imginterp/v1/detect.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/detect/detect_handler.h"

namespace imginterp::detect {
namespace {

class DetectGrpcService final : public service::TypedService<v1::DetectService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Detect, v1::DetectRequest, v1::DetectResponse)
};

}  // namespace
}  // namespace imginterp::detect

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<detect::DetectGrpcService>(
      argc, argv, std::make_unique<detect::DetectHandler>(), 8105, 9105);
}
