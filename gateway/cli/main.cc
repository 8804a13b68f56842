// imginterp: the command-line client of the gateway.
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gateway/cli/result_writer.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/gateway.grpc.pb.h"
#include "services/core/common/flags.h"
#include "services/core/common/media_type.h"
#include "services/core/common/read_file.h"

namespace imginterp::cli {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kUsage[] = R"(Commands:
  run IMAGE             submit IMAGE to --pipeline, show progress, write one image per prior
                        and result.json into --out (default ./out/<job id>)
  pipelines             list the gateway's pipelines and their stages
  jobs                  list jobs (newest first; --state=running,failed,... filters)
  get JOB               print a job record as JSON
  watch JOB             follow a job until it ends
  cancel JOB            cancel a job
  delete JOB            delete a job and its results
  download JOB          write a finished job's results into --out
  models                list the models of a service: --service=HOST:PORT --family=edges
  health ADDRESS        exit 0 once ADDRESS answers SERVING (waits up to --wait_seconds)
)";

struct Options {
  std::string gateway = "127.0.0.1:8000";
  std::string pipeline = "priors";
  std::string out;
  std::string state;
  std::string service;
  std::string family;
  std::string idempotency_key;
  // JSON object of job parameters, e.g. {"prompt": "a dancer", "seed": 7}.
  std::string params;
  bool sync = false;
  bool quiet = false;
  int64_t timeout_seconds = 600;
  int64_t wait_seconds = 0;
};

int Fail(const std::string& what, const grpc::Status& status) {
  std::cerr << "imginterp: " << what << ": " << status.error_message() << " ("
            << absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))
            << ")\n";
  return 1;
}

std::unique_ptr<v1::GatewayService::Stub> GatewayStub(const Options& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  return v1::GatewayService::NewStub(
      grpc::CreateCustomChannel(options.gateway, grpc::InsecureChannelCredentials(), args));
}

std::string StateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("JOB_STATE_").size()));
}

std::string StageStateName(v1::StageState state) {
  std::string name = v1::StageState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("STAGE_STATE_").size()));
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

// One line of progress: a bar on a terminal, a plain line per change otherwise.
void ShowProgress(const v1::Job& job, bool tty) {
  const int width = 30;
  const int filled = static_cast<int>(job.progress() * width + 0.5f);
  std::ostringstream line;
  line << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
       << static_cast<int>(job.progress() * 100 + 0.5f) << "% " << StateName(job.record().state());
  for (const auto& stage : job.record().stages()) {
    line << "  " << stage.name() << ":" << StageStateName(stage.state());
  }
  if (tty) {
    std::cerr << "\r" << line.str() << "\033[K" << std::flush;
  } else {
    std::cerr << line.str() << "\n";
  }
}

// Follows a job until it ends; returns the final job.
absl::StatusOr<v1::Job> Follow(v1::GatewayService::Stub& stub, const std::string& job_id,
                               bool quiet) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  v1::Job last;
  // A watch ends when the job does; if the stream breaks (gateway restart) watch again.
  for (int attempt = 0; attempt < 30; ++attempt) {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = stub.WatchJob(&context, request);
    v1::Job job;
    while (reader->Read(&job)) {
      last = job;
      if (!quiet) ShowProgress(job, tty);
      if (IsTerminal(job.record().state())) break;
    }
    if (IsTerminal(last.record().state())) {
      context.TryCancel();
      if (!quiet && tty) std::cerr << "\n";
      return last;
    }
    grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return absl::UnavailableError("lost the gateway while watching job " + job_id);
}

// Writes every finished stage's result and result.json into `out_dir`.
int WriteResults(v1::GatewayService::Stub& stub, const v1::Job& job, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  const v1::JobRecord& record = job.record();
  nlohmann::json result;
  result["job_id"] = record.job_id();
  result["pipeline"] = record.pipeline();
  result["state"] = StateName(record.state());
  result["trace_id"] = record.trace_id();
  if (record.has_error()) result["error"] = MessageToJson(record.error());
  result["stages"] = nlohmann::json::array();
  int files = 0;
  for (const v1::StageRecord& stage : record.stages()) {
    nlohmann::json entry;
    entry["name"] = stage.name();
    entry["family"] = stage.family();
    entry["state"] = StageStateName(stage.state());
    entry["attempts"] = stage.attempts();
    entry["worker"] = stage.worker();
    if (stage.has_started_at() && stage.has_finished_at()) {
      entry["seconds"] =
          TimeUtil::DurationToNanoseconds(stage.finished_at() - stage.started_at()) / 1e9;
    }
    if (stage.has_error()) entry["error"] = MessageToJson(stage.error());
    if (stage.state() == v1::STAGE_STATE_SUCCEEDED) {
      grpc::ClientContext context;
      v1::DownloadResultRequest request;
      request.set_job_id(record.job_id());
      request.set_stage(stage.name());
      auto reader = stub.DownloadResult(&context, request);
      v1::ResultChunk chunk;
      std::string bytes;
      std::string content_type;
      while (reader->Read(&chunk)) {
        if (!chunk.content_type().empty()) content_type = chunk.content_type();
        bytes += chunk.data();
      }
      grpc::Status status = reader->Finish();
      if (!status.ok()) return Fail("downloading stage " + stage.name(), status);
      const std::string type_name = content_type.substr(content_type.rfind('/') + 1);
      const auto* descriptor =
          google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
      if (descriptor == nullptr) {
        std::cerr << "imginterp: stage " << stage.name() << " returned unknown type "
                  << content_type << "; writing raw bytes\n";
        std::ofstream(out_dir + "/" + stage.name() + ".pb", std::ios::binary) << bytes;
        continue;
      }
      std::unique_ptr<google::protobuf::Message> response(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
      if (!response->ParseFromString(bytes)) {
        std::cerr << "imginterp: stage " << stage.name() << ": result does not parse as "
                  << type_name << "\n";
        return 1;
      }
      auto written = ExtractImages(*response, stage.name(), out_dir);
      if (!written.ok()) {
        std::cerr << "imginterp: " << written.status().message() << "\n";
        return 1;
      }
      entry["files"] = nlohmann::json::array();
      for (const auto& image : *written) {
        entry["files"].push_back({{"field", image.field_path}, {"file", image.file}});
        ++files;
      }
      entry["response"] = MessageToJson(*response);
    }
    result["stages"].push_back(std::move(entry));
  }
  std::ofstream(out_dir + "/result.json") << result.dump(2) << "\n";
  std::cout << "wrote " << files << " image(s) and result.json to " << out_dir << "\n";
  return record.state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
}

int Run(const Options& options, const std::string& image_path) {
  absl::StatusOr<std::string> bytes = common::ReadFile(image_path, "image");
  if (!bytes.ok()) {
    std::cerr << "imginterp: " << bytes.status().message() << "\n";
    return 2;
  }
  auto stub = GatewayStub(options);
  v1::JobRequest job_request;
  job_request.set_pipeline(options.pipeline);
  job_request.mutable_image()->set_data(*std::move(bytes));
  job_request.mutable_image()->set_media_type(common::ImageMediaTypeOf(image_path));
  if (!options.params.empty()) {
    const nlohmann::json params = nlohmann::json::parse(options.params, nullptr, false);
    if (!params.is_object()) {
      std::cerr << "imginterp: --params must be a JSON object, e.g. '{\"prompt\": \"a cat\"}'\n";
      return 2;
    }
    for (const auto& [key, value] : params.items()) {
      // Parameters are text on the wire; the gateway converts them to each field's type.
      (*job_request.mutable_parameters())[key] =
          value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  std::string job_id;
  if (options.sync) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(options.timeout_seconds));
    v1::RunPipelineRequest request;
    *request.mutable_job() = job_request;
    v1::RunPipelineResponse response;
    grpc::Status status = stub->RunPipeline(&context, request, &response);
    if (!status.ok()) return Fail("RunPipeline", status);
    job_id = response.job_id();
  } else {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_job() = job_request;
    request.set_idempotency_key(options.idempotency_key);
    v1::SubmitJobResponse response;
    grpc::Status status = stub->SubmitJob(&context, request, &response);
    if (!status.ok()) return Fail("SubmitJob", status);
    job_id = response.job_id();
    if (!options.quiet) {
      std::cerr << "job " << job_id << (response.created() ? " submitted" : " (existing)")
                << " to pipeline " << options.pipeline << "\n";
    }
  }
  auto job = Follow(*stub, job_id, options.quiet || options.sync);
  if (!job.ok()) {
    std::cerr << "imginterp: " << job.status().message() << "\n";
    return 1;
  }
  if (job->record().has_error()) {
    std::cerr << "imginterp: job " << job_id << " " << StateName(job->record().state()) << ": "
              << job->record().error().message() << "\n";
  }
  const std::string out = options.out.empty() ? "out/" + job_id : options.out;
  return WriteResults(*stub, *job, out);
}

int Health(const Options& options, const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(options.wait_seconds);
  std::string last = "no answer";
  do {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(options.service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      std::cout << address << ": SERVING\n";
      return 0;
    }
    last = status.ok()
               ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
               : status.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < deadline);
  std::cerr << address << ": " << last << "\n";
  return 1;
}

int Models(const Options& options) {
  if (options.service.empty() || options.family.empty()) {
    std::cerr << "imginterp models: give --service=HOST:PORT and --family=NAME (e.g. edges)\n";
    return 2;
  }
  // Every family's service is imginterp.v1.<Family>Service with the same ListModels method.
  std::string service_name = options.family;
  service_name[0] = absl::ascii_toupper(service_name[0]);
  grpc::GenericStub stub(grpc::CreateChannel(options.service, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::ListModelsRequest request;
  std::string serialized = request.SerializeAsString();
  grpc::Slice slice(serialized);
  grpc::ByteBuffer send(&slice, 1), receive;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, absl::StrCat("/imginterp.v1.", service_name, "Service/ListModels"),
                 grpc::StubOptions(), &send, &receive, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = std::move(s);
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return Fail("ListModels", status);
  std::vector<grpc::Slice> slices;
  receive.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  v1::ListModelsResponse response;
  response.ParseFromString(bytes);
  std::cout << MessageToJson(response).dump(2) << "\n";
  return 0;
}

int Main(int argc, char** argv) {
  Options options;
  common::FlagSet flags("imginterp",
                        std::string("Client of the image-interpreter gateway.\n\n") + kUsage);
  flags.Add("gateway", &options.gateway, "gateway address HOST:PORT");
  flags.Add("pipeline", &options.pipeline, "pipeline for `run`");
  flags.Add("out", &options.out, "output folder for `run` and `download`");
  flags.Add("sync", &options.sync,
            "`run` through RunPipeline (waits in one call) instead of SubmitJob");
  flags.Add("quiet", &options.quiet, "no progress output");
  flags.Add("timeout_seconds", &options.timeout_seconds, "deadline of a synchronous run");
  flags.Add("idempotency_key", &options.idempotency_key, "`run`: same key, same job");
  flags.Add("params", &options.params,
            "`run`: job parameters as a JSON object, e.g. '{\"prompt\": \"a cat\", \"seed\": 7}' "
            "(`pipelines` lists each pipeline's parameters)");
  flags.Add("state", &options.state, "`jobs`: comma-separated states to list");
  flags.Add("service", &options.service, "`models`: service address; `health`: service name");
  flags.Add("family", &options.family, "`models`: family of the service (edges, classify, ...)");
  flags.Add("wait_seconds", &options.wait_seconds, "`health`: keep asking this long");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::cerr << "imginterp: " << s.message() << "\n";
    return 2;
  }
  const auto& args = flags.positional();
  if (flags.help_requested() || args.empty()) {
    std::cout << flags.Usage();
    return args.empty() && !flags.help_requested() ? 2 : 0;
  }
  const std::string& command = args[0];
  auto need_arg = [&](const char* what) {
    if (args.size() < 2) {
      std::cerr << "imginterp " << command << ": missing " << what << "\n";
      return false;
    }
    return true;
  };
  if (command == "run") return need_arg("IMAGE") ? Run(options, args[1]) : 2;
  if (command == "health") {
    if (!need_arg("ADDRESS")) return 2;
    Options health = options;
    health.service = "";
    return Health(health, args[1]);
  }
  if (command == "models") return Models(options);
  auto stub = GatewayStub(options);
  if (command == "pipelines") {
    grpc::ClientContext context;
    v1::ListPipelinesResponse response;
    grpc::Status status = stub->ListPipelines(&context, v1::ListPipelinesRequest(), &response);
    if (!status.ok()) return Fail("ListPipelines", status);
    for (const auto& pipeline : response.pipelines()) {
      std::vector<std::string> stages;
      for (const auto& stage : pipeline.stages()) {
        stages.push_back(absl::StrCat(stage.name(), " (", stage.family(), ")"));
      }
      std::cout << pipeline.name() << ": " << absl::StrJoin(stages, ", ") << "\n    "
                << pipeline.description() << "\n";
      if (!pipeline.parameters().empty()) {
        std::vector<std::string> names;
        for (const auto& parameter : pipeline.parameters()) {
          names.push_back(parameter.required() ? parameter.name() + " (required)"
                                               : parameter.name());
        }
        std::cout << "    parameters: " << absl::StrJoin(names, ", ") << "\n";
      }
    }
    return 0;
  }
  if (command == "jobs") {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    for (const auto& part : absl::StrSplit(options.state, ',', absl::SkipEmpty())) {
      v1::JobState state;
      if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(part), &state)) {
        std::cerr << "imginterp jobs: unknown state '" << part << "'\n";
        return 2;
      }
      request.add_states(state);
    }
    v1::ListJobsResponse response;
    grpc::Status status = stub->ListJobs(&context, request, &response);
    if (!status.ok()) return Fail("ListJobs", status);
    for (const auto& job : response.jobs()) {
      std::cout << job.record().job_id() << "  " << job.record().pipeline() << "  "
                << StateName(job.record().state()) << "  "
                << TimeUtil::ToString(job.record().created_at()) << "\n";
    }
    return 0;
  }
  if (!need_arg("JOB")) return 2;
  const std::string& job_id = args[1];
  if (command == "get") {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::Status status = stub->GetJob(&context, request, &job);
    if (!status.ok()) return Fail("GetJob", status);
    std::cout << MessageToJson(job).dump(2) << "\n";
    return 0;
  }
  if (command == "watch") {
    auto job = Follow(*stub, job_id, options.quiet);
    if (!job.ok()) {
      std::cerr << "imginterp: " << job.status().message() << "\n";
      return 1;
    }
    std::cout << job_id << " " << StateName(job->record().state()) << "\n";
    return job->record().state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
  }
  if (command == "cancel") {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    v1::CancelJobResponse response;
    grpc::Status status = stub->CancelJob(&context, request, &response);
    if (!status.ok()) return Fail("CancelJob", status);
    std::cout << job_id << " " << StateName(response.job().record().state()) << "\n";
    return 0;
  }
  if (command == "delete") {
    grpc::ClientContext context;
    v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    v1::DeleteJobResponse response;
    grpc::Status status = stub->DeleteJob(&context, request, &response);
    if (!status.ok()) return Fail("DeleteJob", status);
    std::cout << job_id << " deleted\n";
    return 0;
  }
  if (command == "download") {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::Status status = stub->GetJob(&context, request, &job);
    if (!status.ok()) return Fail("GetJob", status);
    return WriteResults(*stub, job, options.out.empty() ? "out/" + job_id : options.out);
  }
  std::cerr << "imginterp: unknown command '" << command << "'\n" << kUsage;
  return 2;
}

}  // namespace
}  // namespace imginterp::cli

int main(int argc, char** argv) { return imginterp::cli::Main(argc, argv); }
