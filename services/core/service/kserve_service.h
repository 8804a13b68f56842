// KServe v2 / Open Inference Protocol (inference.GRPCInferenceService) for any family, beside
// its typed API, so Triton and KServe clients work unchanged. Inputs: one BYTES tensor holding
// the encoded image (named "image", or the only input), and request parameters named after
// typed request fields ("top_k", "canny.low_threshold"). A BYTES input named after a top-level
// string/bytes field or `Image` field of the typed request fills that field ("prompt",
// "init_image"), so families whose requests carry text or several images need nothing more.
// Outputs come from the family's FamilyHandler::ToKServe.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "inference/grpc_service.grpc.pb.h"

namespace imginterp::service {

class FamilyHandler;
class ModelHost;

// The typed request a KServe request stands for (model, image, parameters). Exposed for tests.
absl::Status KServeToTypedRequest(const inference::ModelInferRequest& in,
                                  google::protobuf::Message* typed);

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `handler` and `host` outlive the service.
  KServeService(const FamilyHandler& handler, ModelHost& host, std::string server_version);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  const FamilyHandler& handler_;
  ModelHost& host_;
  const std::string server_version_;
};

}  // namespace imginterp::service
