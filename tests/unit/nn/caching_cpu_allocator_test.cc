#include "services/models/nn/caching_cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace imginterp::nn {
namespace {

// ctest runs every test in its own process, so each installs the allocator afresh; the suite
// also passes when run in one process, since each test sets its budget and counts differences.
constexpr int64_t kMiB = int64_t{1} << 20;

torch::Tensor Floats(int64_t bytes) { return torch::empty({bytes / 4}, torch::kFloat); }

class CachingCpuAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InstallCachingCpuAllocator(0);  // empties the cache
    InstallCachingCpuAllocator(64 * kMiB);
  }
  void TearDown() override { InstallCachingCpuAllocator(0); }
};

TEST_F(CachingCpuAllocatorTest, AFreedLargeBlockServesTheNextRequestOfItsSize) {
  const auto before = GetCachingCpuAllocatorStats();
  void* first = nullptr;
  {
    torch::Tensor t = Floats(4 * kMiB);
    first = t.data_ptr();
  }
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 4 * kMiB);
  torch::Tensor again = Floats(4 * kMiB);
  EXPECT_EQ(again.data_ptr(), first);
  const auto after = GetCachingCpuAllocatorStats();
  EXPECT_EQ(after.hits - before.hits, 1);
  EXPECT_EQ(after.misses - before.misses, 1);
  EXPECT_EQ(after.cached_bytes, 0);
  // The reused block is an ordinary tensor: written and read back whole.
  again.copy_(torch::arange(again.numel(), torch::kFloat));
  EXPECT_EQ(again[again.numel() - 1].item<float>(), static_cast<float>(again.numel() - 1));
}

TEST_F(CachingCpuAllocatorTest, ABlockUpToAnEighthLargerIsReusedButNotAMuchLargerOne) {
  void* block = nullptr;
  {
    torch::Tensor t = Floats(9 * kMiB);
    block = t.data_ptr();
  }
  {
    torch::Tensor smaller = Floats(4 * kMiB);  // 9 MiB is more than 1/8 above 4 MiB
    EXPECT_NE(smaller.data_ptr(), block);
  }
  torch::Tensor close = Floats(8 * kMiB);  // 9 MiB is within 1/8 above 8 MiB
  EXPECT_EQ(close.data_ptr(), block);
}

TEST_F(CachingCpuAllocatorTest, SmallTensorsBypassTheCache) {
  const auto before = GetCachingCpuAllocatorStats();
  { torch::Tensor small = Floats(kMiB / 2); }
  const auto after = GetCachingCpuAllocatorStats();
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses);
  EXPECT_EQ(after.cached_bytes, 0);
}

TEST_F(CachingCpuAllocatorTest, TheBudgetReleasesTheBlocksFreedLongestAgo) {
  InstallCachingCpuAllocator(10 * kMiB);
  torch::Tensor a = Floats(4 * kMiB);
  torch::Tensor b = Floats(4 * kMiB);
  torch::Tensor c = Floats(4 * kMiB);
  void* a_block = a.data_ptr();
  a = torch::Tensor();
  b = torch::Tensor();
  c = torch::Tensor();  // 12 MiB freed: a's block, the oldest, goes back to the system
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 8 * kMiB);
  std::vector<torch::Tensor> reused = {Floats(4 * kMiB), Floats(4 * kMiB)};
  for (const auto& t : reused) EXPECT_NE(t.data_ptr(), a_block);
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 0);
  // A block larger than the whole budget is never kept.
  { torch::Tensor huge = Floats(16 * kMiB); }
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 0);
  // Lowering the budget releases what is over it.
  reused.clear();
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 8 * kMiB);
  InstallCachingCpuAllocator(5 * kMiB);
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 4 * kMiB);
}

// Callers of raw_allocate/raw_deallocate (LibTorch's own, and code that hands buffers to C APIs)
// get small blocks from LibTorch's allocator and large ones from the cache, and free both.
TEST_F(CachingCpuAllocatorTest, RawAllocateAndDeallocateOfSmallAndLargeBlocks) {
  c10::Allocator* allocator = c10::GetCPUAllocator();
  const auto before = GetCachingCpuAllocatorStats();
  for (size_t bytes : {size_t{4096}, static_cast<size_t>(2 * kMiB)}) {
    SCOPED_TRACE(bytes);
    void* data = allocator->raw_allocate(bytes);
    ASSERT_NE(data, nullptr);
    std::memset(data, 1, bytes);
    allocator->raw_deallocate(data);
  }
  const auto after = GetCachingCpuAllocatorStats();
  EXPECT_EQ((after.hits + after.misses) - (before.hits + before.misses), 1);
  EXPECT_EQ(after.cached_bytes, 2 * kMiB);
}

// Two threads allocating and freeing blocks of a few sizes: every request is counted once, and
// what is cached at the end stays within the budget.
TEST_F(CachingCpuAllocatorTest, ConcurrentUseKeepsTheBooks) {
  const auto before = GetCachingCpuAllocatorStats();
  constexpr int kRounds = 200;
  auto work = [](int seed) {
    for (int i = 0; i < kRounds; ++i) {
      torch::Tensor t = Floats((1 + (i + seed) % 3) * kMiB);
      t.fill_(static_cast<float>(i));
      ASSERT_EQ(t[0].item<float>(), static_cast<float>(i));
    }
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  const auto after = GetCachingCpuAllocatorStats();
  EXPECT_EQ((after.hits + after.misses) - (before.hits + before.misses), 2 * kRounds);
  EXPECT_GT(after.hits - before.hits, kRounds);  // most requests reuse a block
  EXPECT_LE(after.cached_bytes, 64 * kMiB);
}

// Installing is for the life of the process; under ctest each test has its own process.
bool InstalledEarlierInThisProcess() {
  return c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator();
}

TEST(CachingCpuAllocatorEnvironment, ZeroLeavesLibTorchsAllocatorAlone) {
  if (InstalledEarlierInThisProcess()) GTEST_SKIP() << "needs a process of its own (ctest)";
  setenv("IMGINTERP_CPU_CACHE_MB", "0", 1);
  InstallCachingCpuAllocatorFromEnvironment();
  unsetenv("IMGINTERP_CPU_CACHE_MB");
  EXPECT_EQ(c10::GetCPUAllocator(), c10::GetDefaultCPUAllocator());
  { torch::Tensor t = Floats(4 * kMiB); }
  const auto stats = GetCachingCpuAllocatorStats();
  EXPECT_EQ(stats.hits + stats.misses, 0);
}

TEST(CachingCpuAllocatorEnvironment, AnUnparsableValueFallsBackToTheDefaultBudget) {
  if (InstalledEarlierInThisProcess()) GTEST_SKIP() << "needs a process of its own (ctest)";
  setenv("IMGINTERP_CPU_CACHE_MB", "lots", 1);
  InstallCachingCpuAllocatorFromEnvironment();
  unsetenv("IMGINTERP_CPU_CACHE_MB");
  EXPECT_NE(c10::GetCPUAllocator(), c10::GetDefaultCPUAllocator());
  { torch::Tensor t = Floats(100 * kMiB); }  // kept: within the default 1024 MiB
  EXPECT_EQ(GetCachingCpuAllocatorStats().cached_bytes, 100 * kMiB);
  InstallCachingCpuAllocator(0);
}

}  // namespace
}  // namespace imginterp::nn
