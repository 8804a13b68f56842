#include "grpcpp/grpcpp.h"
#include "imginterp/v1/clip.grpc.pb.h"
#include "services/clip/clip_handler.h"
#include "services/core/service/service_core.h"
#include "services/core/service/service_main.h"

namespace imginterp::clip_service {
namespace {

// Every typed method goes to the core, which runs it on the model the request names; the
// model instance tells the three request types apart.
class ClipGrpcService final : public service::TypedService<v1::ClipService::CallbackService> {
 public:
  using TypedService::TypedService;
  IMGINTERP_SERVE_UNARY(Score, v1::ScoreRequest, v1::ScoreResponse)
  IMGINTERP_SERVE_UNARY(Rank, v1::RankRequest, v1::RankResponse)
  IMGINTERP_SERVE_UNARY(Embed, v1::EmbedRequest, v1::EmbedResponse)
};

}  // namespace
}  // namespace imginterp::clip_service

int main(int argc, char** argv) {
  using namespace imginterp;
  return service::RunFamilyService<clip_service::ClipGrpcService>(
      argc, argv, std::make_unique<clip_service::ClipHandler>(), 8108, 9108);
}
