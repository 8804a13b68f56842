#include "benchmarks/load/loadgen/load_summary.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

using ::testing::HasSubstr;

RunResult FourRequests() {
  RunResult result;
  result.records = {{0.0, 0.0, 0.010, "OK"},
                    {0.5, 0.5, 0.030, "OK"},
                    {1.0, 1.2, 0.020, "OK"},
                    {1.5, 1.5, 0.001, "RESOURCE_EXHAUSTED"}};
  result.window_seconds = 2.0;
  result.first_error = "RESOURCE_EXHAUSTED: queue full";
  return result;
}

RunDescription Closed(int concurrency) {
  RunDescription description;
  description.target = "127.0.0.1:1";
  description.kind = "unary";
  description.method = "/imginterp.v1.EdgesService/Detect";
  description.labels = {{"service", "edges"}};
  description.options.concurrency = concurrency;
  description.options.duration_seconds = 2;
  return description;
}

TEST(SummarizeRun, CountsErrorsByCodeAndTimesOnlySuccesses) {
  const RunStats stats = SummarizeRun(FourRequests());
  EXPECT_EQ(stats.count, 4);
  EXPECT_EQ(stats.ok, 3);
  EXPECT_EQ(stats.error_count(), 1);
  EXPECT_EQ(stats.errors.at("RESOURCE_EXHAUSTED"), 1);
  EXPECT_DOUBLE_EQ(stats.window_seconds, 2.0);
  EXPECT_DOUBLE_EQ(stats.throughput_rps, 1.5);  // 3 ok / 2 s
  EXPECT_EQ(stats.latency.count, 3);
  EXPECT_DOUBLE_EQ(stats.latency.p50, 0.020);
  EXPECT_DOUBLE_EQ(stats.latency_from_due.max, 0.22);  // started 0.2 s late, took 0.020 s
  EXPECT_EQ(stats.first_error, "RESOURCE_EXHAUSTED: queue full");
}

TEST(SummarizeRun, AnEmptyWindowHasNoThroughput) {
  const RunStats stats = SummarizeRun(RunResult{});
  EXPECT_EQ(stats.count, 0);
  EXPECT_EQ(stats.throughput_rps, 0);
  EXPECT_EQ(stats.latency.count, 0);
}

TEST(SummaryJson, CarriesTheMachineDescription) {
  RunDescription description = Closed(1);
  description.machine = {"2026-11-25T16:46:00Z", "AMD EPYC", 2, "Linux 6.1"};
  const nlohmann::json summary = SummaryJson(description, FourRequests(), nullptr);
  EXPECT_EQ(summary["date"], "2026-11-25T16:46:00Z");
  EXPECT_EQ(summary["machine"]["cpu"], "AMD EPYC");
  EXPECT_EQ(summary["machine"]["cores"], 2);
  EXPECT_EQ(summary["machine"]["kernel"], "Linux 6.1");
}

TEST(SummaryJson, CountsErrorsByCodeAndTimesOnlySuccesses) {
  const nlohmann::json summary = SummaryJson(Closed(2), FourRequests(), nullptr);
  EXPECT_EQ(summary["mode"], "closed");
  EXPECT_EQ(summary["concurrency"], 2);
  EXPECT_EQ(summary["count"], 4);
  EXPECT_EQ(summary["ok"], 3);
  EXPECT_EQ(summary["error_count"], 1);
  EXPECT_EQ(summary["errors"]["RESOURCE_EXHAUSTED"], 1);
  EXPECT_DOUBLE_EQ(summary["throughput_rps"].get<double>(), 1.5);  // 3 ok / 2 s
  EXPECT_DOUBLE_EQ(summary["latency_seconds"]["min"].get<double>(), 0.010);
  EXPECT_DOUBLE_EQ(summary["latency_seconds"]["p50"].get<double>(), 0.020);
  EXPECT_DOUBLE_EQ(summary["latency_seconds"]["max"].get<double>(), 0.030);
  EXPECT_EQ(summary["labels"]["service"], "edges");
  EXPECT_FALSE(summary.contains("server"));
  EXPECT_FALSE(summary.contains("open_loop"));
}

TEST(SummaryJson, OpenLoopAddsOfferedRateAndLatencyFromTheDueTime) {
  RunDescription description = Closed(1);
  description.open_loop = true;
  description.options.rate = 2;
  RunResult result = FourRequests();
  result.late_starts = 1;
  result.max_start_delay = 0.2;
  const nlohmann::json summary = SummaryJson(description, result, nullptr);
  EXPECT_EQ(summary["mode"], "open");
  EXPECT_FALSE(summary.contains("concurrency"));
  EXPECT_DOUBLE_EQ(summary["offered_rps"].get<double>(), 2.0);  // 4 due in 2 s
  EXPECT_EQ(summary["open_loop"]["late_starts"], 1);
  // The late request waited 0.2 s before its 0.020 s.
  EXPECT_DOUBLE_EQ(summary["open_loop"]["latency_from_due_seconds"]["max"].get<double>(), 0.22);
}

TEST(SummaryJson, CarriesTheServerSplitOrWhyThereIsNone) {
  ServerReport server;
  server.metrics_url = "http://127.0.0.1:2/metrics";
  server.filter = {{"model", "canny"}};
  ServerSplit split;
  split.phases["queue"] = {10, 0.5};
  split.phases["inference"] = {10, 0.1};
  split.batch_size = {5, 10};
  split.label_values["backend"] = {"opencv"};
  server.split = split;
  nlohmann::json summary = SummaryJson(Closed(1), FourRequests(), &server);
  EXPECT_DOUBLE_EQ(summary["server"]["phases"]["queue"]["mean_seconds"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(summary["server"]["mean_batch_size"].get<double>(), 2);
  EXPECT_EQ(summary["server"]["labels"]["backend"][0], "opencv");
  EXPECT_EQ(summary["server"]["filter"]["model"], "canny");
  EXPECT_THAT(OneLineSummary(summary), HasSubstr("queue 50.00 ms"));
  EXPECT_EQ(summary["server"]["window_start_scrape_seconds"], 0);
  EXPECT_EQ(summary["server"]["requests_sent_during_scrape"], 0);

  // Requests sent at 0 and 0.5 s went out while a 0.6 s window-start scrape ran.
  RunResult slow_scrape = FourRequests();
  slow_scrape.window_start_hook_seconds = 0.6;
  summary = SummaryJson(Closed(1), slow_scrape, &server);
  EXPECT_DOUBLE_EQ(summary["server"]["window_start_scrape_seconds"].get<double>(), 0.6);
  EXPECT_EQ(summary["server"]["requests_sent_during_scrape"], 2);

  server.split.reset();
  server.error = "cannot connect";
  summary = SummaryJson(Closed(1), FourRequests(), &server);
  EXPECT_EQ(summary["server"]["error"], "cannot connect");
  EXPECT_FALSE(summary["server"].contains("phases"));
  EXPECT_THAT(OneLineSummary(summary), HasSubstr("cannot connect"));
}

TEST(OneLineSummary, NamesTheRunAndItsNumbers) {
  const std::string line = OneLineSummary(SummaryJson(Closed(4), FourRequests(), nullptr));
  EXPECT_THAT(line, HasSubstr("closed c=4"));
  EXPECT_THAT(line, HasSubstr("3 ok, 1 errors, 1.5 req/s"));
  EXPECT_THAT(line, HasSubstr("p50 20.00 ms"));
}

TEST(WriteCsv, OneRowPerRequestAfterTheHeader) {
  std::ostringstream out;
  WriteCsv(FourRequests(), out);
  EXPECT_EQ(out.str(),
            "due_s,start_s,latency_s,code\n"
            "0.000000,0.000000,0.010000,OK\n"
            "0.500000,0.500000,0.030000,OK\n"
            "1.000000,1.200000,0.020000,OK\n"
            "1.500000,1.500000,0.001000,RESOURCE_EXHAUSTED\n");
}

}  // namespace
}  // namespace imginterp::loadgen
