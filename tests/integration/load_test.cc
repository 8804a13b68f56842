// imginterp-load against the real stack (nats-server, imginterp-edges, the gateway): closed
// loop, open loop, KServe, the gateway's sync and async paths, and its errors. Each run is short
// (about a second); the checks are on the JSON and CSV the harness writes.
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmarks/load/loadgen/poisson_arrivals.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

using ::testing::HasSubstr;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct LoadRun {
  int exit_status = -1;
  std::string output;  // stdout and stderr
  nlohmann::json summary;
  std::string csv;
};

class LoadHarnessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stack_ = new Stack();
    ASSERT_TRUE(stack_->StartNats().ok());
    absl::StatusOr<Process*> edges = stack_->StartService("edges");
    ASSERT_TRUE(edges.ok()) << edges.status();
    edges_ = *edges;
    absl::StatusOr<Process*> gateway = stack_->StartGateway();
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    image_ = stack_->work_dir() + "/photo.png";
    std::ofstream(image_, std::ios::binary) << MakePng(320, 240, 5);
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }

  // Runs imginterp-load with `flags` (plus --json/--csv into the stack's work dir).
  static LoadRun Load(std::vector<std::string> flags) {
    static int runs = 0;
    const std::string base = absl::StrCat(stack_->work_dir(), "/load-", runs++);
    std::vector<std::string> argv = {IMGINTERP_LOAD_BIN, "--json=" + base + ".json",
                                     "--csv=" + base + ".csv"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    LoadRun run;
    auto child = test_support::ChildProcess::Start(argv, {}, base + ".log");
    if (!child.ok()) {
      run.output = child.status().ToString();
      return run;
    }
    run.exit_status = (*child)->WaitExit(std::chrono::seconds(60)).value_or(-1);
    run.output = ReadText(base + ".log");
    const std::string json = ReadText(base + ".json");
    if (!json.empty()) run.summary = nlohmann::json::parse(json);
    run.csv = ReadText(base + ".csv");
    return run;
  }

  static std::string MetricsUrl() {
    return absl::StrCat("--metrics_url=http://127.0.0.1:", edges_->metrics_port, "/metrics");
  }

  static void ExpectOrderedPercentiles(const nlohmann::json& latency) {
    const std::vector<double> ordered = {latency["min"], latency["p50"], latency["p90"],
                                         latency["p95"], latency["p99"], latency["max"]};
    EXPECT_GT(ordered.front(), 0);
    for (size_t i = 1; i < ordered.size(); ++i) EXPECT_LE(ordered[i - 1], ordered[i]) << latency;
    EXPECT_GE(latency["mean"].get<double>(), ordered.front());
    EXPECT_LE(latency["mean"].get<double>(), ordered.back());
  }

  static Stack* stack_;
  static Process* edges_;
  static std::string image_;
};

Stack* LoadHarnessTest::stack_ = nullptr;
Process* LoadHarnessTest::edges_ = nullptr;
std::string LoadHarnessTest::image_;

TEST_F(LoadHarnessTest, ClosedLoopMeasuresEveryRequestAndTheServerSplit) {
  const LoadRun run =
      Load({"--target=" + edges_->address(), "--method=imginterp.v1.EdgesService/Detect",
            "--model=canny", "--image=" + image_, "--concurrency=2", "--warmup_seconds=0.3",
            "--duration_seconds=1.5", MetricsUrl(), "--labels=service=edges"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const nlohmann::json& s = run.summary;
  EXPECT_EQ(s["mode"], "closed");
  EXPECT_EQ(s["concurrency"], 2);
  EXPECT_EQ(s["method"], "/imginterp.v1.EdgesService/Detect");
  EXPECT_EQ(s["labels"]["service"], "edges");
  const int64_t count = s["count"];
  EXPECT_GT(count, 10);
  EXPECT_EQ(s["error_count"], 0) << s["errors"];
  EXPECT_EQ(s["ok"], count);
  EXPECT_GT(s["warmup_requests"].get<int64_t>(), 0);
  ExpectOrderedPercentiles(s["latency_seconds"]);

  // Throughput is the successes over the window, which runs from the end of the warm-up to the
  // last answer: at least the duration, at most the duration plus the slowest request.
  const double window = s["window_seconds"];
  EXPECT_GE(window, 1.5 * 0.98);
  EXPECT_LE(window, 1.5 + s["latency_seconds"]["max"].get<double>() + 0.05);
  EXPECT_NEAR(s["throughput_rps"].get<double>(), count / window, 1e-6);
  // Two requests outstanding: each worker does duration / mean latency requests.
  EXPECT_NEAR(count, 2 * 1.5 / s["latency_seconds"]["mean"].get<double>(), 0.25 * count);

  // The service saw the measured requests, in every phase: at most the two warm-up requests
  // still in flight when the window opened more, and at most the requests sent while the
  // window-start scrape ran (which it may have counted already) fewer.
  const nlohmann::json& server = s["server"];
  ASSERT_TRUE(server.contains("phases")) << server;
  const int64_t during_scrape = server["requests_sent_during_scrape"];
  EXPECT_GE(during_scrape, 0);
  EXPECT_LE(during_scrape, count);
  EXPECT_EQ(server["filter"]["model"], "canny");
  EXPECT_EQ(server["labels"]["service"][0], "edges");
  for (const char* phase : {"queue", "preprocess", "inference", "postprocess"}) {
    ASSERT_TRUE(server["phases"].contains(phase)) << phase << " " << server;
    const double phase_count = server["phases"][phase]["count"];
    EXPECT_GE(phase_count, count - during_scrape - 2) << phase << " " << server;
    EXPECT_LE(phase_count, count + 2) << phase;
    EXPECT_GE(server["phases"][phase]["mean_seconds"].get<double>(), 0) << phase;
  }
  EXPECT_GT(server["phases"]["inference"]["mean_seconds"].get<double>(), 0);
  EXPECT_LT(server["phases"]["inference"]["mean_seconds"].get<double>(),
            s["latency_seconds"]["max"].get<double>());

  // The CSV has one row per recorded request.
  std::vector<std::string> rows = absl::StrSplit(run.csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(static_cast<int64_t>(rows.size()), count + 1);
  EXPECT_EQ(rows[0], "due_s,start_s,latency_s,code");
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_THAT(rows[i], ::testing::EndsWith(",OK"));
  EXPECT_THAT(run.output, HasSubstr("closed c=2"));
}

TEST_F(LoadHarnessTest, OpenLoopSendsThePoissonScheduleOfItsSeed) {
  const double rate = 15, warmup = 0.3, duration = 1.5;
  const LoadRun run =
      Load({"--target=" + edges_->address(), "--method=imginterp.v1.EdgesService/Detect",
            "--model=canny", "--image=" + image_, absl::StrCat("--rate=", rate), "--seed=9",
            absl::StrCat("--warmup_seconds=", warmup),
            absl::StrCat("--duration_seconds=", duration), MetricsUrl()});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  loadgen::PoissonArrivals arrivals = *loadgen::PoissonArrivals::Create(rate, 9);
  int64_t due = 0;
  for (double t = arrivals.Next(); t < warmup + duration; t = arrivals.Next()) due += t >= warmup;
  const nlohmann::json& s = run.summary;
  EXPECT_EQ(s["mode"], "open");
  EXPECT_EQ(s["count"], due);
  EXPECT_GT(due, 0);
  EXPECT_EQ(s["error_count"], 0) << s["errors"];
  EXPECT_DOUBLE_EQ(s["offered_rps"].get<double>(), due / duration);
  ExpectOrderedPercentiles(s["latency_seconds"]);
  // At 15/s nothing queues on the client: every request is sent on time by some worker.
  EXPECT_LE(s["open_loop"]["late_starts"].get<int64_t>(), due);
  EXPECT_GE(s["open_loop"]["max_in_flight_seen"].get<int>(), 1);
  EXPECT_GE(s["open_loop"]["latency_from_due_seconds"]["p50"].get<double>(),
            s["latency_seconds"]["p50"].get<double>());
  ASSERT_TRUE(s["server"].contains("phases")) << s["server"];
  EXPECT_GE(s["server"]["phases"]["queue"]["count"].get<double>(),
            due - s["server"]["requests_sent_during_scrape"].get<double>() - 2);
}

TEST_F(LoadHarnessTest, KServeModeSendsTheImageAsABytesInput) {
  const LoadRun run =
      Load({"--target=" + edges_->address(), "--kserve", "--model=sobel", "--image=" + image_,
            "--concurrency=1", "--warmup_seconds=0.2", "--duration_seconds=0.8", MetricsUrl()});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_EQ(run.summary["kind"], "kserve");
  EXPECT_EQ(run.summary["method"], "/inference.GRPCInferenceService/ModelInfer");
  EXPECT_GT(run.summary["count"].get<int64_t>(), 0);
  EXPECT_EQ(run.summary["error_count"], 0) << run.summary["errors"];
  EXPECT_EQ(run.summary["server"]["labels"]["model"][0], "sobel");
}

TEST_F(LoadHarnessTest, GatewayAsyncAndSyncRunWholePipelines) {
  const std::string gateway = "--target=" + stack_->gateway()->address();
  const LoadRun async = Load({gateway, "--gateway_async", "--pipeline=priors", "--image=" + image_,
                              "--concurrency=2", "--warmup_seconds=0.3", "--duration_seconds=1",
                              MetricsUrl(), "--metrics_labels=service=edges"});
  ASSERT_EQ(async.exit_status, 0) << async.output;
  EXPECT_EQ(async.summary["kind"], "gateway_async");
  EXPECT_GT(async.summary["count"].get<int64_t>(), 0);
  EXPECT_EQ(async.summary["error_count"], 0) << async.summary["errors"];
  // Each job runs two edges stages (canny and sobel).
  EXPECT_GE(async.summary["server"]["phases"]["inference"]["count"].get<double>(),
            2 * (async.summary["count"].get<double>() -
                 async.summary["server"]["requests_sent_during_scrape"].get<double>()) -
                4);

  const LoadRun sync =
      Load({gateway, "--method=imginterp.v1.GatewayService/RunPipeline", "--pipeline=priors",
            "--image=" + image_, "--warmup_seconds=0.2", "--duration_seconds=0.8"});
  ASSERT_EQ(sync.exit_status, 0) << sync.output;
  EXPECT_GT(sync.summary["count"].get<int64_t>(), 0);
  EXPECT_EQ(sync.summary["error_count"], 0) << sync.summary["errors"];

  // A job that fails is an error although RunPipeline answers OK ("bad-feed" feeds a stage a
  // field that is not an image).
  const LoadRun failing =
      Load({gateway, "--method=imginterp.v1.GatewayService/RunPipeline", "--pipeline=bad-feed",
            "--image=" + image_, "--duration_seconds=0.5"});
  EXPECT_EQ(failing.exit_status, 1);
  EXPECT_THAT(failing.output, HasSubstr("failed (JOB_FAILED)"));
}

TEST_F(LoadHarnessTest, MistakesFailBeforeTheRunWithWhatToFix) {
  const std::string target = "--target=" + edges_->address();
  LoadRun run = Load({target, "--method=imginterp.v1.EdgesService/Nope"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("has no method 'Nope'; its methods: Detect, ListModels"));

  run = Load({target, "--method=imginterp.v1.EdgeService/Detect"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("imginterp.v1.EdgesService"));

  run =
      Load({target, "--method=imginterp.v1.EdgesService/Detect", "--request_json={\"bogus\": 1}"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("not a valid imginterp.v1.EdgesRequest"));

  run = Load({target, "--method=imginterp.v1.EdgesService/Detect", "--image=/nonexistent.png"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("cannot read '/nonexistent.png'"));

  // The service answers, but refuses the request: no image.
  run = Load({target, "--method=imginterp.v1.EdgesService/Detect", "--duration_seconds=0.5"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("the first request to"));
  EXPECT_THAT(run.output, HasSubstr("INVALID_ARGUMENT"));

  const int closed_port = test_support::FreeLoopbackPort();
  run = Load({absl::StrCat("--target=127.0.0.1:", closed_port),
              "--method=imginterp.v1.EdgesService/Detect", "--image=" + image_});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_THAT(run.output, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(run.output, HasSubstr("is the service running there"));
  EXPECT_TRUE(run.summary.is_null());  // nothing measured, nothing written
}

}  // namespace
}  // namespace imginterp::integration
