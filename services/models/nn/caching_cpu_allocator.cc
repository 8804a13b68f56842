#include "services/models/nn/caching_cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace imginterp::nn {
namespace {

constexpr size_t kMinCachedBytes = size_t{1} << 20;
constexpr size_t kAlignment = 64;  // as LibTorch's own allocator aligns

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(c10::Allocator* fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(size_t bytes) const override {
    if (bytes < kMinCachedBytes) return fallback_->allocate(bytes);
    void* data = Take(bytes);
    return {data, data, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_allocate()/raw_deallocate() callers free through this; like LibTorch's own allocator the
  // context of every DataPtr is its data pointer, which is what makes it valid.
  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void SetBudget(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    budget_ = static_cast<size_t>(bytes);
    EvictOver(budget_);
  }

  CachingCpuAllocatorStats Stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {hits_, misses_, static_cast<int64_t>(cached_bytes_)};
  }

 private:
  struct FreeBlock {
    void* data;
    size_t bytes;
  };

  // A DataPtr's deleter gets its context, which is the block itself, as for LibTorch's own.
  static void Delete(void* data);

  void* Take(size_t bytes) const {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_by_size_.lower_bound(bytes);
      if (it != free_by_size_.end() && it->first <= bytes + bytes / 8) {
        const uint64_t stamp = it->second;
        const FreeBlock block = free_.at(stamp);
        free_.erase(stamp);
        free_by_size_.erase(it);
        cached_bytes_ -= block.bytes;
        live_.emplace(block.data, block.bytes);
        ++hits_;
        return block.data;
      }
      ++misses_;
    }
    void* data = nullptr;
    if (posix_memalign(&data, kAlignment, bytes) != 0) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        EvictOver(0);  // the cache's blocks may be what stands in the way
      }
      // The same error as LibTorch's own allocator, so callers see the usual c10::Error.
      TORCH_CHECK(posix_memalign(&data, kAlignment, bytes) == 0,
                  "caching CPU allocator: not enough memory: you tried to allocate ", bytes,
                  " bytes.");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    live_.emplace(data, bytes);
    return data;
  }

  void Release(void* data) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = live_.find(data);
    if (it == live_.end()) {
      // A small block from the fallback, freed through raw_deleter() (raw_allocate callers).
      const c10::DeleterFnPtr fallback_delete = fallback_->raw_deleter();
      if (fallback_delete != nullptr) {
        fallback_delete(data);
      } else {
        std::free(data);
      }
      return;
    }
    const size_t bytes = it->second;
    live_.erase(it);
    if (bytes > budget_) {
      std::free(data);
      return;
    }
    EvictOver(budget_ - bytes);
    const uint64_t stamp = next_stamp_++;
    free_.emplace(stamp, FreeBlock{data, bytes});
    free_by_size_.emplace(bytes, stamp);
    cached_bytes_ += bytes;
  }

  // Frees the blocks released longest ago until at most `limit` bytes stay cached.
  void EvictOver(size_t limit) const {
    while (cached_bytes_ > limit && !free_.empty()) {
      const auto oldest = free_.begin();
      const FreeBlock block = oldest->second;
      auto range = free_by_size_.equal_range(block.bytes);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == oldest->first) {
          free_by_size_.erase(it);
          break;
        }
      }
      free_.erase(oldest);
      cached_bytes_ -= block.bytes;
      std::free(block.data);
    }
  }

  c10::Allocator* const fallback_;
  mutable std::mutex mutex_;
  size_t budget_ = 0;
  mutable std::map<uint64_t, FreeBlock> free_;            // by release order
  mutable std::multimap<size_t, uint64_t> free_by_size_;  // size -> release stamp
  mutable std::unordered_map<void*, size_t> live_;
  mutable size_t cached_bytes_ = 0;
  mutable uint64_t next_stamp_ = 0;
  mutable int64_t hits_ = 0;
  mutable int64_t misses_ = 0;
};

std::mutex install_mutex;
CachingCpuAllocator* installed = nullptr;  // handed to LibTorch, which never frees it

void CachingCpuAllocator::Delete(void* data) { installed->Release(data); }

}  // namespace

void InstallCachingCpuAllocator(int64_t max_cached_bytes) {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (installed == nullptr) {
    installed = new CachingCpuAllocator(c10::GetDefaultCPUAllocator());
    installed->SetBudget(max_cached_bytes);
    c10::SetCPUAllocator(installed, /*priority=*/1);
    return;
  }
  installed->SetBudget(max_cached_bytes);
}

void InstallCachingCpuAllocatorFromEnvironment() {
  int64_t mib = 1024;
  if (const char* value = std::getenv("IMGINTERP_CPU_CACHE_MB"); value != nullptr) {
    char* end = nullptr;
    const long long parsed = std::strtoll(value, &end, 10);
    if (end == value || *end != '\0' || parsed < 0) {
      std::fprintf(
          stderr, "IMGINTERP_CPU_CACHE_MB=\"%s\" is not a number of MiB >= 0; using 1024\n", value);
    } else {
      mib = parsed;
    }
  }
  if (mib > 0) InstallCachingCpuAllocator(mib << 20);
}

CachingCpuAllocatorStats GetCachingCpuAllocatorStats() {
  std::lock_guard<std::mutex> lock(install_mutex);
  return installed != nullptr ? installed->Stats() : CachingCpuAllocatorStats{};
}

}  // namespace imginterp::nn
