#include "benchmarks/load/loadgen/prometheus_text.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two scrapes of an edges service the way prometheus-cpp writes them: two models, canny busy.
std::string Page(double canny_queue_sum, double canny_count, double sobel_count) {
  std::string page = R"(# HELP imginterp_request_phase_seconds Time a request spends in each phase
# TYPE imginterp_request_phase_seconds histogram
)";
  auto phase = [&](const std::string& model, const std::string& name, double sum, double count) {
    const std::string labels =
        "model=\"" + model + "\",phase=\"" + name + "\",service=\"edges\",version=\"1\"";
    page += "imginterp_request_phase_seconds_bucket{" + labels + ",le=\"0.01\"} " +
            std::to_string(count) + "\n";
    page += "imginterp_request_phase_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
            std::to_string(count) + "\n";
    page += "imginterp_request_phase_seconds_sum{" + labels + "} " + std::to_string(sum) + "\n";
    page += "imginterp_request_phase_seconds_count{" + labels + "} " + std::to_string(count) + "\n";
  };
  phase("canny", "queue", canny_queue_sum, canny_count);
  phase("canny", "preprocess", 0.002 * canny_count, canny_count);
  phase("canny", "inference", 0.005 * canny_count, canny_count);
  phase("canny", "postprocess", 0.001 * canny_count, canny_count);
  phase("sobel", "queue", 0.5 * sobel_count, sobel_count);
  page +=
      "imginterp_request_duration_seconds_sum{model=\"canny\",service=\"edges\",version=\"1\"} " +
      std::to_string(0.02 * canny_count) + "\n";
  page +=
      "imginterp_request_duration_seconds_count{model=\"canny\",service=\"edges\",version=\"1\"} " +
      std::to_string(canny_count) + "\n";
  page += "imginterp_batch_size_sum{model=\"canny\",service=\"edges\",version=\"1\"} " +
          std::to_string(canny_count) + "\n";
  page += "imginterp_batch_size_count{model=\"canny\",service=\"edges\",version=\"1\"} " +
          std::to_string(canny_count / 2) + "\n";
  page += "process_cpu_seconds_total{service=\"edges\"} 12.5\n";
  return page;
}

TEST(MetricsPage, ParsesNamesLabelsAndValues) {
  absl::StatusOr<MetricsPage> page = MetricsPage::Parse(
      "# TYPE x counter\n"
      "\n"
      "up 1\n"
      "x_total{a=\"1\", b=\"say \\\"hi\\\"\\\\n\",} 2.5e3 1700000000000\n"
      "h_bucket{le=\"+Inf\"} +Inf\n"
      "g NaN\n");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->samples().size(), 4u);
  EXPECT_EQ(page->samples()[0].name, "up");
  EXPECT_TRUE(page->samples()[0].labels.empty());
  EXPECT_EQ(page->samples()[1].value, 2500);
  EXPECT_EQ(page->samples()[1].labels.at("a"), "1");
  EXPECT_EQ(page->samples()[1].labels.at("b"), "say \"hi\"\\n");
  EXPECT_TRUE(std::isinf(page->samples()[2].value));
  EXPECT_TRUE(std::isnan(page->samples()[3].value));
}

TEST(MetricsPage, NamesTheLineThatIsNotASample) {
  absl::StatusOr<MetricsPage> page = MetricsPage::Parse("up 1\nbroken{a=\"1\" 2\n");
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(page.status().message(), HasSubstr("line 2"));
  EXPECT_EQ(MetricsPage::Parse("up one\n").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsPage, SumsTheSeriesMatchingTheFilter) {
  const MetricsPage page = *MetricsPage::Parse(Page(1.0, 100, 10));
  EXPECT_DOUBLE_EQ(page.Sum("imginterp_request_phase_seconds_count", {{"phase", "queue"}}), 110);
  EXPECT_DOUBLE_EQ(
      page.Sum("imginterp_request_phase_seconds_count", {{"phase", "queue"}, {"model", "sobel"}}),
      10);
  EXPECT_EQ(page.Sum("imginterp_request_phase_seconds_count", {{"model", "nope"}}), 0);
  EXPECT_TRUE(page.Has("process_cpu_seconds_total", {}));
  EXPECT_FALSE(page.Has("process_cpu_seconds_total", {{"service", "gateway"}}));
}

TEST(SplitBetween, MeansArePerRequestDeltasOfSumOverCount) {
  const MetricsPage before = *MetricsPage::Parse(Page(1.0, 100, 10));
  const MetricsPage after = *MetricsPage::Parse(Page(4.0, 400, 10));
  absl::StatusOr<ServerSplit> split = SplitBetween(before, after, {{"model", "canny"}});
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->phases.size(), 4u);
  EXPECT_DOUBLE_EQ(split->phases.at("queue").count, 300);
  EXPECT_DOUBLE_EQ(split->phases.at("queue").mean(), 0.01);  // (4 - 1) / 300
  EXPECT_NEAR(split->phases.at("inference").mean(), 0.005, 1e-9);
  EXPECT_NEAR(split->requests.mean(), 0.02, 1e-9);
  EXPECT_DOUBLE_EQ(split->batch_size.count, 150);
  EXPECT_DOUBLE_EQ(split->batch_size.mean(), 2);
  EXPECT_THAT(split->label_values.at("service"), ElementsAre("edges"));
  EXPECT_THAT(split->label_values.at("model"), ElementsAre("canny"));
}

TEST(SplitBetween, AnEmptyFilterAddsUpEveryModel) {
  const MetricsPage before = *MetricsPage::Parse(Page(1.0, 100, 10));
  const MetricsPage after = *MetricsPage::Parse(Page(4.0, 400, 20));
  absl::StatusOr<ServerSplit> split = SplitBetween(before, after, {});
  ASSERT_TRUE(split.ok()) << split.status();
  // 300 canny requests at 10 ms and 10 sobel requests at 500 ms in the queue.
  EXPECT_DOUBLE_EQ(split->phases.at("queue").count, 310);
  EXPECT_NEAR(split->phases.at("queue").mean(), (3.0 + 5.0) / 310, 1e-12);
  EXPECT_THAT(split->label_values.at("model"), ElementsAre("canny", "sobel"));
}

TEST(SplitBetween, NoMatchingSeriesListsWhatThePageHas) {
  const MetricsPage page = *MetricsPage::Parse(Page(1.0, 100, 10));
  absl::StatusOr<ServerSplit> split = SplitBetween(page, page, {{"model", "squeezenet"}});
  EXPECT_EQ(split.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(split.status().message(), HasSubstr("model=\"squeezenet\""));
  EXPECT_THAT(split.status().message(), HasSubstr("model=\"canny\""));
}

TEST(SplitBetween, ACountThatWentDownMeansARestart) {
  const MetricsPage before = *MetricsPage::Parse(Page(4.0, 400, 10));
  const MetricsPage after = *MetricsPage::Parse(Page(1.0, 100, 10));
  EXPECT_EQ(SplitBetween(before, after, {}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ScrapeMetricsPage, AServiceThatIsNotListeningIsUnavailable) {
  // A loopback port that was just free: bound by the kernel's choice, then closed.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  absl::StatusOr<MetricsPage> page = ScrapeMetricsPage(
      {"127.0.0.1", ntohs(address.sin_port), "/metrics"}, std::chrono::milliseconds(2000));
  EXPECT_EQ(page.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(page.status().message(), HasSubstr("/metrics"));
}

TEST(ParseLabelList, ReadsNameValuePairs) {
  absl::StatusOr<LabelFilter> filter = ParseLabelList(" service=edges, model = canny ");
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_EQ(*filter, (LabelFilter{{"service", "edges"}, {"model", "canny"}}));
  EXPECT_TRUE(ParseLabelList("")->empty());
}

TEST(ParseLabelList, RejectsEntriesWithoutANameOrTwice) {
  EXPECT_EQ(ParseLabelList("edges").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLabelList("=edges").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLabelList("a=1,a=2").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::loadgen
