#include "grpcpp/grpcpp.h"
#include "imginterp/v1/edges.grpc.pb.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"
#include "services/edges/edges_handler.h"

namespace imginterp::edges {
namespace {

class EdgesGrpcService final : public service::TypedService<v1::EdgesService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Detect, v1::EdgesRequest, v1::EdgesResponse)
};

}  // namespace
}  // namespace imginterp::edges

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<edges::EdgesGrpcService>(
      argc, argv, std::make_unique<edges::EdgesHandler>(), 8101, 9101);
}
