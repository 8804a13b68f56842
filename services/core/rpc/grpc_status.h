// The one place where absl::Status becomes grpc::Status and back. The message is kept as is
// (it is written for the user), and a google.rpc.Status holding an imginterp.v1.ErrorDetail
// rides along in the status details (grpc-status-details-bin), so clients in any language can
// read the code and message as data.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace imginterp::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace imginterp::rpc
