#include "grpcpp/grpcpp.h"
#include "imginterp/v1/classify.grpc.pb.h"
#include "services/classify/classify_handler.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"

namespace imginterp::classify {
namespace {

class ClassifyGrpcService final
    : public service::TypedService<v1::ClassifyService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Classify, v1::ClassifyRequest, v1::ClassifyResponse)
};

}  // namespace
}  // namespace imginterp::classify

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<classify::ClassifyGrpcService>(
      argc, argv, std::make_unique<classify::ClassifyHandler>(), 8102, 9102);
}
