#include "grpcpp/grpcpp.h"
#include "imginterp/v1/pose.grpc.pb.h"
#include "services/core/rpc/grpc_status.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/pose/pose_handler.h"

namespace imginterp::pose {
namespace {

class PoseGrpcService final : public service::TypedService<v1::PoseService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Estimate, v1::PoseRequest, v1::PoseResponse)
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
};

}  // namespace
}  // namespace imginterp::pose

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<pose::PoseGrpcService>(
      argc, argv, std::make_unique<pose::PoseHandler>(), 8103, 9103);
}
