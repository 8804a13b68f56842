#include "grpcpp/grpcpp.h"
#include "imginterp/v1/edges.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/edges/edges_handler.h"

namespace imginterp::edges {
namespace {

class EdgesGrpcService final : public v1::EdgesService::CallbackService {
 public:
  explicit EdgesGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const v1::EdgesRequest* request,
                                   v1::EdgesResponse* response) override {
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
}  // namespace imginterp::edges

int main(int argc, char** argv) {
  using namespace imginterp;
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<edges::EdgesHandler>();
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<edges::EdgesGrpcService>(core);
  };
  definition.default_grpc_port = 8101;
  definition.default_metrics_port = 9101;
  return service::ServiceMain(argc, argv, std::move(definition));
}
