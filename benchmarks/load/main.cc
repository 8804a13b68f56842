// imginterp-load: a gRPC load generator for any unary method of the project's protos (a family's
// typed API, KServe v2 ModelInfer, the gateway's RunPipeline) and for the gateway's async path
// (SubmitJob + WatchJob). Closed loop at a concurrency or open loop at a Poisson rate, with a
// warm-up; writes one CSV row per request and a JSON summary with its own latency percentiles
// and the server-side phase split from the service's /metrics. See benchmarks/load/README.md.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "benchmarks/load/grpc_callers.h"
#include "benchmarks/load/loadgen/load_runner.h"
#include "benchmarks/load/loadgen/load_summary.h"
#include "benchmarks/load/loadgen/machine_description.h"
#include "benchmarks/load/loadgen/prometheus_text.h"
#include "benchmarks/load/request_builder.h"
#include "services/core/common/flags.h"
#include "services/core/common/http_get.h"
#include "services/core/common/logging.h"
#include "services/core/common/read_file.h"
#include "services/core/common/status_macros.h"

namespace imginterp::load {
namespace {

constexpr auto kScrapeTimeout = std::chrono::milliseconds(5000);
constexpr char kKServeMethod[] = "inference.GRPCInferenceService/ModelInfer";

constexpr char kDescription[] =
    R"(Sends gRPC requests to an image-interpreter service or gateway under load and measures them.

What is sent (one of):
  --method=imginterp.v1.EdgesService/Detect   any unary method of the linked protos; the request
                                              comes from --request_json/--request_file (protobuf
                                              JSON), then --model sets model.name, --pipeline
                                              sets job.pipeline, --image sets images by field path
  --kserve                                    KServe v2 ModelInfer: --model is model_name, each
                                              --image is a BYTES input (named "image" by default),
                                              the JSON is an inference.ModelInferRequest
  --gateway_async --pipeline=NAME             gateway SubmitJob then WatchJob until the job ends;
                                              latency is submit to terminal state
  (the gateway's sync path is --method=imginterp.v1.GatewayService/RunPipeline --pipeline=NAME;
  a job that does not succeed counts as an error)

How: closed loop at --concurrency N (each of N workers sends its next request when the previous
one is answered), or open loop at --rate R requests/s (Poisson arrivals from --seed; up to
--max_in_flight requests outstanding, later arrivals start late and are counted). A warm-up of
--warmup_seconds runs first and is not recorded; requests due in the next --duration_seconds
are.

Output: a one-line summary on stdout; --json FILE: the summary (counts, errors by code,
throughput, latency min/mean/p50/p90/p95/p99/max in seconds from this tool's own timings of
successful requests, and with --metrics_url the server's mean seconds per request in each
phase, queue/preprocess/inference/postprocess, over the measured window); --csv FILE: one row
per recorded request (due_s,start_s,latency_s,code).

Examples:
  imginterp-load --target=127.0.0.1:18001 --method=imginterp.v1.EdgesService/Detect \
      --model=canny --image=photo.jpg --concurrency=4 --metrics_url=http://127.0.0.1:18101/metrics
  imginterp-load --target=127.0.0.1:18002 --kserve --model=squeezenet --image=photo.jpg \
      --request_json='{"parameters": {"top_k": {"int64_param": 3}}}' --rate=20
  imginterp-load --target=127.0.0.1:18000 --gateway_async --pipeline=edges --image=photo.jpg)";

struct Flags {
  std::string target;
  std::string method;
  bool kserve = false;
  bool gateway_async = false;
  std::string pipeline;
  std::string model;
  std::string request_json;
  std::string request_file;
  std::string image;
  int concurrency = 1;
  double rate = 0;
  int64_t seed = 1;
  int max_in_flight = 256;
  double warmup_seconds = 2;
  double duration_seconds = 10;
  int64_t deadline_ms = 60000;
  std::string metrics_url;
  std::string metrics_labels;
  std::string labels;
  std::string json;
  std::string csv;
};

absl::StatusOr<std::string> RequestJson(const Flags& flags) {
  if (!flags.request_json.empty() && !flags.request_file.empty()) {
    return absl::InvalidArgumentError("give --request_json or --request_file, not both");
  }
  if (flags.request_file.empty()) return flags.request_json;
  return common::ReadFile(flags.request_file, "--request_file");
}

absl::Status CheckFlags(const Flags& flags) {
  if (flags.target.empty()) {
    return absl::InvalidArgumentError("--target is required (host:port of a service or gateway)");
  }
  const int modes = int{flags.kserve} + int{flags.gateway_async} + int{!flags.method.empty()};
  if (modes != 1) {
    return absl::InvalidArgumentError(
        "say what to send with exactly one of --method=package.Service/Method, --kserve or "
        "--gateway_async");
  }
  if (flags.gateway_async && flags.pipeline.empty()) {
    return absl::InvalidArgumentError("--gateway_async needs --pipeline=NAME");
  }
  if (flags.rate < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate must be >= 0 requests/s (0: closed loop); got ", flags.rate));
  }
  if (flags.deadline_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deadline_ms must be >= 0 (0: none); got ", flags.deadline_ms));
  }
  return absl::OkStatus();
}

// Builds what each worker calls, and fills in what the summary says was sent.
absl::StatusOr<std::unique_ptr<Caller>> MakeCaller(const Flags& flags,
                                                   std::shared_ptr<grpc::Channel> channel,
                                                   loadgen::RunDescription& description) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string json, RequestJson(flags));
  RequestOptions options{json, flags.model, flags.pipeline, {}};
  const std::chrono::milliseconds deadline(flags.deadline_ms);
  description.model = flags.model;
  description.pipeline = flags.pipeline;

  if (flags.kserve) {
    if (!flags.pipeline.empty()) {
      return absl::InvalidArgumentError("--pipeline is for gateway requests, not --kserve");
    }
    IMGINTERP_ASSIGN_OR_RETURN(options.images, ParseImageArguments(flags.image, "image"));
    IMGINTERP_ASSIGN_OR_RETURN(inference::ModelInferRequest request, BuildKServeRequest(options));
    IMGINTERP_ASSIGN_OR_RETURN(const google::protobuf::MethodDescriptor* method,
                               FindUnaryMethod(kKServeMethod));
    description.kind = "kserve";
    description.method = MethodPath(*method);
    return std::make_unique<UnaryCaller>(std::move(channel), description.method,
                                         request.SerializeAsString(), deadline, false);
  }
  if (flags.gateway_async) {
    const google::protobuf::Descriptor& type = *v1::SubmitJobRequest::descriptor();
    IMGINTERP_ASSIGN_OR_RETURN(options.images,
                               ParseImageArguments(flags.image, DefaultImagePath(type)));
    IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<google::protobuf::Message> request,
                               BuildTypedRequest(type, options));
    description.kind = "gateway_async";
    description.method = "/imginterp.v1.GatewayService/SubmitJob+WatchJob";
    return std::make_unique<GatewayJobCaller>(
        std::move(channel), static_cast<const v1::SubmitJobRequest&>(*request), deadline);
  }
  IMGINTERP_ASSIGN_OR_RETURN(const google::protobuf::MethodDescriptor* method,
                             FindUnaryMethod(flags.method));
  const google::protobuf::Descriptor& type = *method->input_type();
  IMGINTERP_ASSIGN_OR_RETURN(options.images,
                             ParseImageArguments(flags.image, DefaultImagePath(type)));
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<google::protobuf::Message> request,
                             BuildTypedRequest(type, options));
  description.kind = "unary";
  description.method = MethodPath(*method);
  const bool check_job_state = method->output_type() == v1::RunPipelineResponse::descriptor();
  return std::make_unique<UnaryCaller>(std::move(channel), description.method,
                                       request->SerializeAsString(), deadline, check_job_state);
}

absl::Status WriteFile(const std::string& path, const std::string& what,
                       const std::function<void(std::ostream&)>& write) {
  const std::filesystem::path file(path);
  std::error_code error;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), error);
  std::ofstream out(path);
  write(out);
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", what, " '", path, "'"));
  return absl::OkStatus();
}

absl::Status Run(const Flags& flags) {
  IMGINTERP_RETURN_IF_ERROR(CheckFlags(flags));
  loadgen::RunDescription description;
  description.target = flags.target;
  description.open_loop = flags.rate > 0;
  description.deadline_seconds = flags.deadline_ms / 1e3;
  description.machine = loadgen::DescribeMachine();
  IMGINTERP_ASSIGN_OR_RETURN(description.labels, loadgen::ParseLabelList(flags.labels));
  loadgen::RunOptions& options = description.options;
  options.warmup_seconds = flags.warmup_seconds;
  options.duration_seconds = flags.duration_seconds;
  options.concurrency = flags.concurrency;
  options.rate = flags.rate;
  options.seed = static_cast<uint64_t>(flags.seed);
  options.max_in_flight = flags.max_in_flight;

  std::shared_ptr<grpc::Channel> channel = LoadChannel(flags.target);
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<Caller> caller,
                             MakeCaller(flags, channel, description));

  // Server side: check the page before spending any time on load.
  std::optional<common::HttpUrl> metrics_url;
  loadgen::ServerReport server;
  if (!flags.metrics_url.empty()) {
    IMGINTERP_ASSIGN_OR_RETURN(metrics_url, common::ParseHttpUrl(flags.metrics_url));
    IMGINTERP_ASSIGN_OR_RETURN(server.filter, loadgen::ParseLabelList(flags.metrics_labels));
    if (flags.metrics_labels.empty() && !flags.model.empty() && !flags.gateway_async &&
        flags.pipeline.empty()) {
      server.filter["model"] = flags.model;
    }
    server.metrics_url = flags.metrics_url;
    absl::StatusOr<loadgen::MetricsPage> page =
        loadgen::ScrapeMetricsPage(*metrics_url, kScrapeTimeout);
    if (!page.ok()) {
      return absl::Status(page.status().code(),
                          absl::StrCat("--metrics_url: ", page.status().message()));
    }
  }

  // One request first: an unreachable target, a wrong method, model or request fails here with
  // the server's message instead of as a run of identical errors.
  if (loadgen::CallResult probe = caller->Call(); !probe.ok()) {
    const std::string hint =
        probe.code == "UNAVAILABLE"
            ? "; is the service running there, and is --target its gRPC host:port?"
            : "";
    return absl::FailedPreconditionError(absl::StrCat("the first request to ", flags.target,
                                                      " failed (", probe.code, "): ", probe.message,
                                                      hint));
  }

  std::mutex scrape_mu;
  std::optional<absl::StatusOr<loadgen::MetricsPage>> before;  // guarded by scrape_mu
  if (metrics_url.has_value()) {
    options.on_window_start = [&] {
      absl::StatusOr<loadgen::MetricsPage> page =
          loadgen::ScrapeMetricsPage(*metrics_url, kScrapeTimeout);
      std::lock_guard<std::mutex> lock(scrape_mu);
      before = std::move(page);
    };
  }
  IMGINTERP_LOG(Info) << (description.open_loop
                              ? absl::StrCat("open loop at ", flags.rate, " req/s")
                              : absl::StrCat("closed loop at concurrency ", flags.concurrency))
                      << ": " << flags.warmup_seconds << " s warm-up, " << flags.duration_seconds
                      << " s measured, " << description.method << " on " << flags.target;
  const loadgen::RequestFn request = [&caller](int) { return caller->Call(); };
  IMGINTERP_ASSIGN_OR_RETURN(loadgen::RunResult result,
                             description.open_loop ? loadgen::RunOpenLoop(options, request)
                                                   : loadgen::RunClosedLoop(options, request));

  if (metrics_url.has_value()) {
    absl::StatusOr<loadgen::MetricsPage> after =
        loadgen::ScrapeMetricsPage(*metrics_url, kScrapeTimeout);
    std::lock_guard<std::mutex> lock(scrape_mu);
    absl::StatusOr<loadgen::ServerSplit> split =
        !before.has_value() ? absl::InternalError("the window-start scrape did not run")
        : !before->ok()     ? before->status()
        : !after.ok()       ? after.status()
                            : loadgen::SplitBetween(**before, *after, server.filter);
    if (split.ok()) {
      server.split = *std::move(split);
    } else {
      server.error = std::string(split.status().message());
      IMGINTERP_LOG(Warning) << "no server-side split: " << split.status();
    }
  }

  const nlohmann::json summary =
      loadgen::SummaryJson(description, result, metrics_url.has_value() ? &server : nullptr);
  if (summary.contains("server") && summary["server"].contains("phases")) {
    const int64_t during_scrape = summary["server"]["requests_sent_during_scrape"];
    if (during_scrape > std::max<int64_t>(2, summary["count"].get<int64_t>() / 50)) {
      IMGINTERP_LOG(Warning) << "the window-start scrape took "
                             << summary["server"]["window_start_scrape_seconds"].get<double>()
                             << " s; the server's counts may miss up to the " << during_scrape
                             << " requests sent meanwhile";
    }
  }
  std::cout << loadgen::OneLineSummary(summary) << std::endl;
  if (!flags.json.empty()) {
    IMGINTERP_RETURN_IF_ERROR(WriteFile(
        flags.json, "--json", [&](std::ostream& out) { out << summary.dump(2) << "\n"; }));
  }
  if (!flags.csv.empty()) {
    IMGINTERP_RETURN_IF_ERROR(
        WriteFile(flags.csv, "--csv", [&](std::ostream& out) { loadgen::WriteCsv(result, out); }));
  }
  if (summary.value("ok", int64_t{0}) == 0) {
    return absl::UnavailableError(absl::StrCat(
        "no request in the measured window succeeded; first error: ", result.first_error));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace imginterp::load

int main(int argc, char** argv) {
  imginterp::load::Flags flags;
  imginterp::common::FlagSet flag_set("imginterp-load", imginterp::load::kDescription);
  flag_set.Add("target", &flags.target, "host:port of the service or gateway");
  flag_set.Add("method", &flags.method,
               "Unary method to call, package.Service/Method (e.g. "
               "imginterp.v1.ClassifyService/Classify, imginterp.v1.GatewayService/RunPipeline)");
  flag_set.Add("kserve", &flags.kserve, "Send KServe v2 ModelInfer requests");
  flag_set.Add("gateway_async", &flags.gateway_async,
               "Run gateway jobs: SubmitJob, then WatchJob until the job is terminal");
  flag_set.Add("pipeline", &flags.pipeline, "Pipeline of gateway requests (job.pipeline)");
  flag_set.Add("model", &flags.model,
               "Model to ask for (model.name; KServe model_name); empty: the service's default. "
               "Also the default --metrics_labels filter (model=NAME)");
  flag_set.Add("request_json", &flags.request_json,
               "The request in protobuf JSON, e.g. '{\"top_k\": 3}' (empty: an empty message)");
  flag_set.Add("request_file", &flags.request_file, "A file holding the request JSON");
  flag_set.Add("image", &flags.image,
               "Comma-separated image files, each FILE or field.path=FILE (default path: image; "
               "job.image for gateway requests; for --kserve the path is the input name)");
  flag_set.Add("concurrency", &flags.concurrency, "Closed loop: requests outstanding at all times");
  flag_set.Add("rate", &flags.rate,
               "Open loop: mean requests per second, Poisson arrivals (0: closed loop)");
  flag_set.Add("seed", &flags.seed, "Open loop: seed of the arrival schedule");
  flag_set.Add("max_in_flight", &flags.max_in_flight,
               "Open loop: most requests outstanding; later arrivals wait and start late");
  flag_set.Add("warmup_seconds", &flags.warmup_seconds, "Seconds of unrecorded load first");
  flag_set.Add("duration_seconds", &flags.duration_seconds, "Seconds of the measured window");
  flag_set.Add("deadline_ms", &flags.deadline_ms,
               "Deadline of each request (gateway async: submit to terminal); 0: none");
  flag_set.Add("metrics_url", &flags.metrics_url,
               "The service's Prometheus page, http://host:port/metrics, scraped when the "
               "measured window opens and after it, for the server-side phase split");
  flag_set.Add("metrics_labels", &flags.metrics_labels,
               "Which series of the page count, label=value,... (e.g. service=edges,model=canny)");
  flag_set.Add("labels", &flags.labels,
               "label=value,... copied into the JSON summary for the report (e.g. "
               "service=edges,backend=opencv)");
  flag_set.Add("json", &flags.json, "Write the JSON summary here");
  flag_set.Add("csv", &flags.csv, "Write one CSV row per recorded request here");
  if (absl::Status status = flag_set.Parse(argc, argv); !status.ok()) {
    std::cerr << "imginterp-load: " << status.message() << "\n";
    return 2;
  }
  if (flag_set.help_requested()) {
    std::cout << flag_set.Usage();
    return 0;
  }
  if (!flag_set.positional().empty()) {
    std::cerr << "imginterp-load: unexpected argument '" << flag_set.positional()[0]
              << "'; run imginterp-load --help\n";
    return 2;
  }
  if (absl::Status status = imginterp::load::Run(flags); !status.ok()) {
    std::cerr << "imginterp-load: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
