#include "grpcpp/grpcpp.h"
#include "imginterp/v1/segment.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/segment/segment_handler.h"

namespace imginterp::segment {
namespace {

class SegmentGrpcService final : public v1::SegmentService::CallbackService {
 public:
  explicit SegmentGrpcService(service::ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override {
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
}  // namespace imginterp::segment

int main(int argc, char** argv) {
  using namespace imginterp;
  service::ServiceDefinition definition;
  definition.handler = std::make_unique<segment::SegmentHandler>();
  definition.make_typed_service = [](service::ServiceCore& core) {
    return std::make_unique<segment::SegmentGrpcService>(core);
  };
  definition.default_grpc_port = 8104;
  definition.default_metrics_port = 9104;
  return service::ServiceMain(argc, argv, std::move(definition));
}
