#include "services/core/rpc/grpc_status.h"

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  const auto code = static_cast<grpc::StatusCode>(static_cast<int>(status.code()));
  v1::ErrorDetail detail;
  detail.set_code(absl::StatusCodeToString(status.code()));
  detail.set_message(std::string(status.message()));
  // The rich error model clients expect in grpc-status-details-bin.
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(status.code()));
  rich.set_message(std::string(status.message()));
  rich.add_details()->PackFrom(detail);
  return grpc::Status(code, std::string(status.message()), rich.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(static_cast<int>(status.error_code())),
                      status.error_message());
}

}  // namespace imginterp::rpc
