#include "grpcpp/grpcpp.h"
#include "imginterp/v1/segment.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/segment/segment_handler.h"

namespace imginterp::segment {
namespace {

class SegmentGrpcService final : public service::TypedService<v1::SegmentService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Segment, v1::SegmentRequest, v1::SegmentResponse)
};

}  // namespace
}  // namespace imginterp::segment

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<segment::SegmentGrpcService>(
      argc, argv, std::make_unique<segment::SegmentHandler>(), 8104, 9104);
}
