// The calls imginterp-load measures, each behind one interface so the load runner does not care
// what is sent: a unary call of any method with pre-serialized bytes (typed APIs, KServe
// ModelInfer, the gateway's RunPipeline), and the gateway's async path (SubmitJob, then WatchJob
// until the job is terminal).
//
// Callers are thread-safe: every worker of a run calls the same one. They borrow nothing; the
// channel is shared.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "benchmarks/load/loadgen/load_runner.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/gateway.grpc.pb.h"

namespace imginterp::load {

class Caller {
 public:
  virtual ~Caller() = default;
  // Sends one request and waits for the outcome.
  virtual loadgen::CallResult Call() const = 0;
};

// A channel for load: large messages (images both ways) allowed.
std::shared_ptr<grpc::Channel> LoadChannel(const std::string& target);

// One unary call of `method_path` ("/imginterp.v1.EdgesService/Detect") with `request_bytes`,
// each call with `deadline` (0: none). With `check_job_state` the answer is read as an
// imginterp.v1.RunPipelineResponse and a job that did not succeed counts as "JOB_FAILED" or
// "JOB_CANCELLED" (RunPipeline answers OK for a failed job).
class UnaryCaller final : public Caller {
 public:
  UnaryCaller(std::shared_ptr<grpc::Channel> channel, std::string method_path,
              const std::string& request_bytes, std::chrono::milliseconds deadline,
              bool check_job_state);
  loadgen::CallResult Call() const override;

 private:
  mutable grpc::GenericStub stub_;  // UnaryCall is not const; the stub is thread-safe
  const std::string method_path_;
  grpc::ByteBuffer request_;  // copied per call (a reference count, not the bytes)
  const std::chrono::milliseconds deadline_;
  const bool check_job_state_;
};

// SubmitJob, then WatchJob until the job is terminal; `deadline` (0: none) covers both. A job
// that ends FAILED or CANCELLED counts as "JOB_FAILED" / "JOB_CANCELLED", a watch that ends
// before the job does as "JOB_UNFINISHED".
class GatewayJobCaller final : public Caller {
 public:
  GatewayJobCaller(std::shared_ptr<grpc::Channel> channel, v1::SubmitJobRequest submit,
                   std::chrono::milliseconds deadline);
  loadgen::CallResult Call() const override;

 private:
  std::unique_ptr<v1::GatewayService::Stub> stub_;
  const v1::SubmitJobRequest submit_;
  const std::chrono::milliseconds deadline_;
};

}  // namespace imginterp::load
