#include "grpcpp/grpcpp.h"
#include "imginterp/v1/pose.grpc.pb.h"
#include "services/core/rpc/grpc_status.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/pose/pose_handler.h"

namespace imginterp::pose {
namespace {

class PoseGrpcService final : public v1::PoseService::CallbackService {
 public:
  explicit PoseGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Estimate(grpc::CallbackServerContext* context,
                                     const v1::PoseRequest* request,
                                     v1::PoseResponse* response) override {
    return core_.Serve(context, request, response);
  }
  // No model: drawing a map takes milliseconds, so it is done in the reactor (sizes are capped
  // by RenderOpenPose).
  grpc::ServerUnaryReactor* RenderPose(grpc::CallbackServerContext* context,
                                       const v1::RenderPoseRequest* request,
                                       v1::RenderPoseResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::StatusOr<v1::RenderPoseResponse> result = pose::RenderPose(*request);
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(rpc::ToGrpcStatus(result.status()));
    return reactor;
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
}  // namespace imginterp::pose

int main(int argc, char** argv) {
  using namespace imginterp;
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<pose::PoseHandler>();
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<pose::PoseGrpcService>(core);
  };
  definition.default_grpc_port = 8103;
  definition.default_metrics_port = 9103;
  return service::ServiceMain(argc, argv, std::move(definition));
}
