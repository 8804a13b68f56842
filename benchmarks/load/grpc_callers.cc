#include "benchmarks/load/grpc_callers.h"

#include <future>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace imginterp::load {
namespace {

using loadgen::CallResult;

constexpr int kMaxMessageBytes = 256 << 20;

CallResult FromGrpc(const grpc::Status& status, const char* what) {
  if (status.ok()) return CallResult{};
  return CallResult{absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                    absl::StrCat(what, ": ", status.error_message())};
}

void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds deadline) {
  if (deadline.count() > 0) context.set_deadline(std::chrono::system_clock::now() + deadline);
}

// "JOB_FAILED" from JOB_STATE_FAILED.
std::string JobCode(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return absl::StrCat("JOB_", name.substr(std::string("JOB_STATE_").size()));
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

}  // namespace

std::shared_ptr<grpc::Channel> LoadChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

UnaryCaller::UnaryCaller(std::shared_ptr<grpc::Channel> channel, std::string method_path,
                         const std::string& request_bytes, std::chrono::milliseconds deadline,
                         bool check_job_state)
    : stub_(std::move(channel)),
      method_path_(std::move(method_path)),
      deadline_(deadline),
      check_job_state_(check_job_state) {
  grpc::Slice slice(request_bytes);
  request_ = grpc::ByteBuffer(&slice, 1);
}

CallResult UnaryCaller::Call() const {
  grpc::ClientContext context;
  SetDeadline(context, deadline_);
  grpc::ByteBuffer request(request_);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub_.UnaryCall(&context, method_path_, grpc::StubOptions(), &request, &response,
                  [&done](grpc::Status status) { done.set_value(std::move(status)); });
  CallResult result = FromGrpc(done.get_future().get(), method_path_.c_str());
  if (!result.ok() || !check_job_state_) return result;

  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return CallResult{"INTERNAL", "unreadable response"};
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  v1::RunPipelineResponse answer;
  if (!answer.ParseFromString(bytes)) {
    return CallResult{"INTERNAL", "the answer is not an imginterp.v1.RunPipelineResponse"};
  }
  if (answer.state() != v1::JOB_STATE_SUCCEEDED) {
    return CallResult{JobCode(answer.state()),
                      absl::StrCat("job ", answer.job_id(), ": ", answer.error().message())};
  }
  return result;
}

GatewayJobCaller::GatewayJobCaller(std::shared_ptr<grpc::Channel> channel,
                                   v1::SubmitJobRequest submit, std::chrono::milliseconds deadline)
    : stub_(v1::GatewayService::NewStub(std::move(channel))),
      submit_(std::move(submit)),
      deadline_(deadline) {}

CallResult GatewayJobCaller::Call() const {
  const auto deadline = std::chrono::system_clock::now() + deadline_;
  v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext context;
    if (deadline_.count() > 0) context.set_deadline(deadline);
    CallResult result = FromGrpc(stub_->SubmitJob(&context, submit_, &submitted), "SubmitJob");
    if (!result.ok()) return result;
  }
  grpc::ClientContext context;
  if (deadline_.count() > 0) context.set_deadline(deadline);
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job_id());
  std::unique_ptr<grpc::ClientReader<v1::Job>> reader = stub_->WatchJob(&context, watch);
  v1::Job job;
  while (reader->Read(&job)) {
    if (IsTerminal(job.record().state())) break;
  }
  const v1::JobState state = job.record().state();
  if (IsTerminal(state)) {
    // Stop at the terminal revision instead of waiting for the server to close the stream.
    context.TryCancel();
    reader->Finish();
    if (state == v1::JOB_STATE_SUCCEEDED) return CallResult{};
    return CallResult{JobCode(state), absl::StrCat("job ", submitted.job_id(), ": ",
                                                   job.record().error().message())};
  }
  CallResult result = FromGrpc(reader->Finish(), "WatchJob");
  if (!result.ok()) return result;
  return CallResult{"JOB_UNFINISHED", absl::StrCat("WatchJob ended while job ", submitted.job_id(),
                                                   " was ", v1::JobState_Name(state))};
}

}  // namespace imginterp::load
