#include "grpcpp/grpcpp.h"
#include "imginterp/v1/detect.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/detect/detect_handler.h"

namespace imginterp::detect {
namespace {

class DetectGrpcService final : public v1::DetectService::CallbackService {
 public:
  explicit DetectGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override {
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

}  // namespace
}  // namespace imginterp::detect

int main(int argc, char** argv) {
  using namespace imginterp;
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<detect::DetectHandler>();
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<detect::DetectGrpcService>(core);
  };
  definition.default_grpc_port = 8105;
  definition.default_metrics_port = 9105;
  return service::ServiceMain(argc, argv, std::move(definition));
}
