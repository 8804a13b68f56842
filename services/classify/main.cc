#include "grpcpp/grpcpp.h"
#include "imginterp/v1/classify.grpc.pb.h"
#include "services/classify/classify_handler.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"

namespace imginterp::classify {
namespace {

class ClassifyGrpcService final : public v1::ClassifyService::CallbackService {
 public:
  explicit ClassifyGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override {
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
}  // namespace imginterp::classify

int main(int argc, char** argv) {
  using namespace imginterp;
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<classify::ClassifyHandler>();
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<classify::ClassifyGrpcService>(core);
  };
  definition.default_grpc_port = 8102;
  definition.default_metrics_port = 9102;
  return service::ServiceMain(argc, argv, std::move(definition));
}
