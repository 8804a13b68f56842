// serving_bench: what serving costs on top of the model. Starts the real stack
// (nats-server, imginterp-classify on the SqueezeNet test model, the gateway)
// through the integration-test harness and measures, for one image:
//   - the in-process decode + preprocess and TorchScript forward (batch 1 and
//   batch 8);
//   - the typed gRPC Classify at concurrency 1 and 8 (closed loop);
//   - the async path (gateway SubmitJob + WatchJob until SUCCEEDED) at
//   concurrency 1;
//   - the service's own phase split and batch sizes from its /metrics, per run.
// Prints a table and writes every number as JSON. See benchmarks/README.md.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmarks/load/loadgen/load_runner.h"
#include "benchmarks/load/loadgen/load_summary.h"
#include "benchmarks/load/loadgen/machine_description.h"
#include "benchmarks/load/loadgen/prometheus_text.h"
#include "benchmarks/serving/in_process_forward.h"
#include "benchmarks/serving/report.h"
#include "imginterp/v1/classify.grpc.pb.h"
#include "imginterp/v1/gateway.grpc.pb.h"
#include "services/core/common/flags.h"
#include "services/core/common/http_get.h"
#include "services/core/common/logging.h"
#include "services/core/common/read_file.h"
#include "services/core/common/status_macros.h"
#include "tests/integration/stack.h"

namespace imginterp::bench {
namespace {

using integration::Process;
using integration::Stack;

constexpr int kTopK = 3;                       // as the `classify` pipeline asks
constexpr char kAsyncPipeline[] = "classify";  // tests/integration/data/pipelines.pbtxt
constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr auto kScrapeTimeout = std::chrono::seconds(5);

struct Flags {
  double warmup_seconds = 2;
  double duration_seconds = 10;
  std::string concurrency = "1,8";
  std::string json = IMGINTERP_BENCH_RESULTS_DIR "/serving.json";
  std::string image;
  int image_width = 640;
  int image_height = 480;
  std::string model = "squeezenet";
  int large_batch = 8;
  bool in_process = true;
  bool async = true;
};

// The services run with OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 (the
// harness sets them); OpenBLAS reads its variable when the library loads,
// before main, so this process re-executes itself once with the same settings
// for the in-process numbers to be comparable.
void ReexecWithSingleThreadedBlas(char** argv) {
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) return;
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  if (std::getenv("OMP_NUM_THREADS") == nullptr) setenv("OMP_NUM_THREADS", "1", 1);
  execv("/proc/self/exe", argv);
  IMGINTERP_LOG(Warning) << "could not re-execute with OPENBLAS_NUM_THREADS=1; the in-process "
                            "numbers use the library's default thread count";
}

absl::StatusOr<std::vector<int>> ParseConcurrency(const std::string& text) {
  std::vector<int> levels;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int level = 0;
    if (!absl::SimpleAtoi(part, &level) || level < 1 || level > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("--concurrency must be a comma-separated list of "
                       "integers in 1..256; got '",
                       text, "'"));
    }
    levels.push_back(level);
  }
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  return levels;
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

std::chrono::system_clock::time_point CallDeadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

// Typed Classify on the service. Thread-safe (gRPC stubs are).
class DirectClient {
 public:
  DirectClient(const std::string& address, std::string model, std::string image)
      : stub_(v1::ClassifyService::NewStub(Stack::Channel(address))) {
    request_.mutable_model()->set_name(std::move(model));
    request_.mutable_image()->set_data(std::move(image));
    request_.set_top_k(kTopK);
  }

  absl::Status Call() const {
    grpc::ClientContext context;
    context.set_deadline(CallDeadline());
    v1::ClassifyResponse response;
    IMGINTERP_RETURN_IF_ERROR(FromGrpc(stub_->Classify(&context, request_, &response), "Classify"));
    if (response.classes_size() != kTopK) {
      return absl::InternalError(
          absl::StrCat("Classify returned ", response.classes_size(), " classes, asked ", kTopK));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<v1::ClassifyService::Stub> stub_;
  v1::ClassifyRequest request_;
};

// SubmitJob, then WatchJob until the job is terminal. Thread-safe.
class AsyncClient {
 public:
  AsyncClient(std::unique_ptr<v1::GatewayService::Stub> stub, std::string image)
      : stub_(std::move(stub)) {
    submit_.mutable_job()->set_pipeline(kAsyncPipeline);
    submit_.mutable_job()->mutable_image()->set_data(std::move(image));
  }

  absl::Status Call() const {
    v1::SubmitJobResponse submitted;
    {
      grpc::ClientContext context;
      context.set_deadline(CallDeadline());
      IMGINTERP_RETURN_IF_ERROR(
          FromGrpc(stub_->SubmitJob(&context, submit_, &submitted), "SubmitJob"));
    }
    grpc::ClientContext context;
    context.set_deadline(CallDeadline());
    v1::WatchJobRequest watch;
    watch.set_job_id(submitted.job_id());
    auto reader = stub_->WatchJob(&context, watch);
    v1::Job job;
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    std::string error;
    // The stream ends after the terminal revision.
    while (reader->Read(&job)) {
      state = job.record().state();
      error = job.record().error().message();
    }
    IMGINTERP_RETURN_IF_ERROR(FromGrpc(reader->Finish(), "WatchJob"));
    if (state != v1::JOB_STATE_SUCCEEDED) {
      return absl::InternalError(absl::StrCat("job ", submitted.job_id(), " ended ",
                                              v1::JobState_Name(state), ": ", error));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<v1::GatewayService::Stub> stub_;
  v1::SubmitJobRequest submit_;
};

absl::StatusOr<loadgen::MetricsPage> Scrape(const Process& service) {
  return loadgen::ScrapeMetricsPage({"127.0.0.1", service.metrics_port, "/metrics"},
                                    kScrapeTimeout);
}

// Warm-up run, scrape, measured run, scrape. The warm-up is a run of its own so that
// no request is in flight while the service is scraped.
absl::StatusOr<Scenario> RunScenario(const std::string& name, int concurrency, const Flags& flags,
                                     const Process& service, const std::string& model,
                                     const std::function<absl::Status()>& request) {
  IMGINTERP_LOG(Info) << name << ": " << flags.warmup_seconds << " s warm-up, "
                      << flags.duration_seconds << " s measured, concurrency " << concurrency;
  const loadgen::RequestFn call = [&](int) { return loadgen::CallResultOf(request()); };
  loadgen::RunOptions options;
  options.concurrency = concurrency;
  options.warmup_seconds = 0;
  if (flags.warmup_seconds > 0) {
    options.duration_seconds = flags.warmup_seconds;
    IMGINTERP_RETURN_IF_ERROR(loadgen::RunClosedLoop(options, call).status());
  }
  const absl::StatusOr<loadgen::MetricsPage> before = Scrape(service);
  options.duration_seconds = flags.duration_seconds;
  IMGINTERP_ASSIGN_OR_RETURN(const loadgen::RunResult measured,
                             loadgen::RunClosedLoop(options, call));
  const absl::StatusOr<loadgen::MetricsPage> after = Scrape(service);

  Scenario scenario;
  scenario.name = name;
  scenario.concurrency = concurrency;
  scenario.load = loadgen::SummarizeRun(measured);
  const absl::StatusOr<loadgen::ServerSplit> split =
      !before.ok()  ? before.status()
      : !after.ok() ? after.status()
                    : loadgen::SplitBetween(*before, *after, {{"model", model}});
  if (split.ok()) {
    scenario.server = *split;
  } else {
    IMGINTERP_LOG(Warning) << name << ": no server-side split: " << split.status();
  }
  if (scenario.load.error_count() > 0) {
    IMGINTERP_LOG(Warning) << name << ": " << scenario.load.error_count()
                           << " failed requests; first: " << scenario.load.first_error;
  }
  return scenario;
}

absl::Status Run(const Flags& flags) {
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<int> levels, ParseConcurrency(flags.concurrency));
  if (flags.warmup_seconds < 0 || flags.duration_seconds <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--warmup_seconds must be >= 0 and --duration_seconds > 0; got ",
                     flags.warmup_seconds, " and ", flags.duration_seconds));
  }

  BenchReport report;
  report.machine = loadgen::DescribeMachine();
  report.warmup_seconds = flags.warmup_seconds;
  report.duration_seconds = flags.duration_seconds;
  report.model = flags.model;

  std::string image;
  if (flags.image.empty()) {
    image = integration::MakePng(flags.image_width, flags.image_height, 7);
    report.image = absl::StrCat(flags.image_width, "x", flags.image_height, " PNG (synthetic)");
  } else {
    IMGINTERP_ASSIGN_OR_RETURN(image, common::ReadFile(flags.image, "--image"));
    report.image = std::filesystem::path(flags.image).filename().string();
  }
  report.image_bytes = static_cast<int64_t>(image.size());

  // In process first, while nothing else runs on the machine.
  if (flags.in_process) {
    IMGINTERP_LOG(Info) << "in process: decode + preprocess, forward batch 1 and "
                        << flags.large_batch;
    InProcessOptions options;
    options.model_repository = integration::TestModelsDir();
    options.model = flags.model;
    options.timing.warmup_seconds = flags.warmup_seconds;
    options.timing.duration_seconds = flags.duration_seconds;
    options.large_batch = flags.large_batch;
    IMGINTERP_ASSIGN_OR_RETURN(report.in_process, MeasureInProcess(options, image));
  }

  // The whole stack is up for every run, so the direct and async runs share the same
  // background (nats-server and the gateway idle, or busy only with the async path).
  Stack stack;
  std::vector<std::string> service_flags;
  if (flags.async) {
    IMGINTERP_RETURN_IF_ERROR(stack.StartNats());
  } else {
    service_flags.push_back("--nats_url=");
  }
  IMGINTERP_ASSIGN_OR_RETURN(Process * service,
                             stack.StartService("classify", std::move(service_flags)));
  std::unique_ptr<AsyncClient> async;
  if (flags.async) {
    IMGINTERP_RETURN_IF_ERROR(stack.StartGateway().status());
    async = std::make_unique<AsyncClient>(stack.GatewayStub(), image);
    IMGINTERP_RETURN_IF_ERROR(async->Call());
    // The async comparison needs the direct path at concurrency 1.
    if (std::find(levels.begin(), levels.end(), 1) == levels.end()) {
      levels.insert(levels.begin(), 1);
    }
  }
  const DirectClient direct(service->address(), flags.model, image);
  IMGINTERP_RETURN_IF_ERROR(direct.Call());

  for (int level : levels) {
    IMGINTERP_ASSIGN_OR_RETURN(Scenario scenario,
                               RunScenario(absl::StrCat("direct_c", level), level, flags, *service,
                                           flags.model, [&] { return direct.Call(); }));
    report.direct.push_back(std::move(scenario));
  }
  if (async != nullptr) {
    IMGINTERP_ASSIGN_OR_RETURN(
        report.async,
        RunScenario("async_c1", 1, flags, *service, flags.model, [&] { return async->Call(); }));
  }

  report.PrintTable(std::cout);
  std::cout.flush();
  std::error_code error;
  const std::filesystem::path json_path(flags.json);
  if (json_path.has_parent_path()) {
    std::filesystem::create_directories(json_path.parent_path(), error);
  }
  std::ofstream out(flags.json);
  out << report.ToJson() << "\n";
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write --json ", flags.json));
  std::cout << "\nJSON: " << flags.json << "\n";

  for (const Scenario& s : report.direct) {
    if (s.load.latency.count == 0) {
      return absl::InternalError(
          absl::StrCat(s.name, " completed no request: ", s.load.first_error));
    }
  }
  if (report.async.has_value() && report.async->load.latency.count == 0) {
    return absl::InternalError(
        absl::StrCat("async_c1 completed no request: ", report.async->load.first_error));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace imginterp::bench

int main(int argc, char** argv) {
  using imginterp::bench::Flags;
  imginterp::bench::ReexecWithSingleThreadedBlas(argv);
  Flags flags;
  imginterp::common::FlagSet flag_set("serving_bench",
                                      "Measures the classify service (SqueezeNet test model) "
                                      "through gRPC and through the "
                                      "gateway against the in-process forward pass; prints a "
                                      "table and writes JSON.");
  flag_set.Add("warmup_seconds", &flags.warmup_seconds,
               "Seconds of unrecorded requests before each measured run");
  flag_set.Add("duration_seconds", &flags.duration_seconds, "Seconds of each measured run");
  flag_set.Add("concurrency", &flags.concurrency,
               "Comma-separated client thread counts for the direct gRPC runs "
               "(closed loop)");
  flag_set.Add("json", &flags.json, "Where to write the results as JSON");
  flag_set.Add("image", &flags.image,
               "Image file to classify; empty: a synthetic PNG of "
               "--image_width x --image_height");
  flag_set.Add("image_width", &flags.image_width, "Width of the synthetic image");
  flag_set.Add("image_height", &flags.image_height, "Height of the synthetic image");
  flag_set.Add("model", &flags.model,
               "Model in the test model repository for the direct and in-process runs (the async "
               "run uses the model of the `classify` pipeline)");
  flag_set.Add("large_batch", &flags.large_batch, "Batch size of the in-process comparison");
  flag_set.Add("in_process", &flags.in_process, "Measure the in-process forward pass");
  flag_set.Add("async", &flags.async, "Measure the async path through the gateway");
  if (absl::Status status = flag_set.Parse(argc, argv); !status.ok()) {
    std::cerr << status.message() << "\n" << flag_set.Usage();
    return 2;
  }
  if (flag_set.help_requested()) {
    std::cout << flag_set.Usage();
    return 0;
  }
  IMGINTERP_LOG(Info) << flag_set.Describe();
  if (absl::Status status = imginterp::bench::Run(flags); !status.ok()) {
    IMGINTERP_LOG(Error) << status;
    return 1;
  }
  return 0;
}
