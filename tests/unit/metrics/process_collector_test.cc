#include "services/core/metrics/process_collector.h"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "services/core/common/http_get.h"
#include "services/core/metrics/metrics_server.h"

namespace imginterp::metrics {
namespace {

// The value of the family's only sample; fails the test when the family is missing.
double Value(const ProcessCollector& collector, const std::string& name) {
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    if (family.name != name) continue;
    EXPECT_EQ(family.metric.size(), 1u) << name;
    if (family.metric.empty()) return -1;
    return family.type == prometheus::MetricType::Counter ? family.metric[0].counter.value
                                                          : family.metric[0].gauge.value;
  }
  ADD_FAILURE() << name << " is not collected";
  return -1;
}

TEST(ProcessCollectorTest, CpuTimeGrowsWithWork) {
  ProcessCollector collector("s");
  const double before = Value(collector, "process_cpu_seconds_total");
  const std::clock_t start = std::clock();
  volatile double sink = 0;
  while (std::clock() - start < CLOCKS_PER_SEC / 2) sink = sink + 1.0;  // ~0.5 s of CPU
  const double after = Value(collector, "process_cpu_seconds_total");
  EXPECT_GE(after - before, 0.35);
  EXPECT_LE(after - before, 5.0);
}

TEST(ProcessCollectorTest, ResidentMemoryFollowsTouchedPages) {
  ProcessCollector collector("s");
  const double before = Value(collector, "process_resident_memory_bytes");
  constexpr size_t kBytes = 96u << 20;
  std::vector<char> block(kBytes);
  std::memset(block.data(), 1, block.size());  // make every page resident
  const double after = Value(collector, "process_resident_memory_bytes");
  EXPECT_GE(after - before, 0.8 * kBytes);
  EXPECT_GE(Value(collector, "process_virtual_memory_bytes"), after);
  EXPECT_EQ(block[kBytes / 2], 1);
}

TEST(ProcessCollectorTest, ThreadsAndDescriptorsAreCountedExactly) {
  ProcessCollector collector("s");
  const double threads_before = Value(collector, "process_threads");
  const double fds_before = Value(collector, "process_open_fds");

  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([released] { released.wait(); });
  int pipes[2][2];
  ASSERT_EQ(pipe(pipes[0]), 0);
  ASSERT_EQ(pipe(pipes[1]), 0);

  EXPECT_EQ(Value(collector, "process_threads") - threads_before, 3);
  EXPECT_EQ(Value(collector, "process_open_fds") - fds_before, 4);
  release.set_value();
  for (auto& thread : threads) thread.join();
  for (auto& ends : pipes) {
    close(ends[0]);
    close(ends[1]);
  }
  EXPECT_EQ(Value(collector, "process_open_fds"), fds_before);
}

TEST(ProcessCollectorTest, StartTimeIsRecentEpochSeconds) {
  ProcessCollector collector("s");
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = Value(collector, "process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GE(start, now - 3600) << "the test process started within the hour";
}

TEST(ProcessCollectorTest, SamplesCarryTheServiceLabelOnlyWhenNamed) {
  for (const auto& family : ProcessCollector("pose").Collect()) {
    ASSERT_FALSE(family.metric.empty()) << family.name;
    ASSERT_FALSE(family.metric[0].label.empty()) << family.name;
    EXPECT_EQ(family.metric[0].label[0].name, "service");
    EXPECT_EQ(family.metric[0].label[0].value, "pose");
  }
  for (const auto& family : ProcessCollector("").Collect()) {
    if (absl::StartsWith(family.name, "process_")) {
      EXPECT_TRUE(family.metric[0].label.empty()) << family.name;
    }
  }
}

TEST(ProcessCollectorTest, GpuFamiliesOnlyWhereNvmlLoads) {
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  bool has_gpu_family = false;
  for (const auto& family : ProcessCollector("s").Collect()) {
    has_gpu_family |= absl::StartsWith(family.name, "imginterp_gpu_");
  }
  if (nvml == nullptr) {
    EXPECT_FALSE(has_gpu_family) << "no NVML here, so no GPU figures can be true";
  } else {
    dlclose(nvml);
    GTEST_SKIP() << "NVML present: GPU families depend on the devices it sees";
  }
}

TEST(ProcessCollectorTest, TheMetricsEndpointServesProcessFamilies) {
  auto server = MetricsServer::Create("127.0.0.1:0", "classify");
  ASSERT_TRUE(server.ok()) << server.status();
  auto body =
      common::HttpGet({"127.0.0.1", (*server)->port(), "/metrics"}, std::chrono::seconds(5));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(absl::StrContains(*body, "# TYPE process_cpu_seconds_total counter")) << *body;
  EXPECT_TRUE(absl::StrContains(*body, "process_resident_memory_bytes{service=\"classify\"} "))
      << *body;
  EXPECT_TRUE(absl::StrContains(*body, "process_threads{service=\"classify\"} ")) << *body;
}

}  // namespace
}  // namespace imginterp::metrics
