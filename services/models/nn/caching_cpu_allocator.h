// A LibTorch CPU allocator that keeps freed large blocks and hands them out again.
//
// Why: a guided 512x512 UNet step allocates ~1 GB of large temporaries (activations, the 84 MB
// GEGLU projections), and glibc maps every block above its mmap threshold (at most 32 MiB) fresh
// from the kernel and unmaps it on free: 238K page faults per step were measured, each one
// zeroing a page. Models on the CPU allocate the same sizes step after step, so a freed block is
// kept (up to a byte budget) and given to the next request of its size, already faulted in.
//
// Blocks of at least 1 MiB are cached; a request takes a cached block of its size or up to 1/8
// larger; when the budget would be exceeded the blocks freed longest ago are released first.
// Smaller requests go to LibTorch's default allocator. Peak RSS rises by at most the budget.
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <cstdint>

namespace imginterp::nn {

struct CachingCpuAllocatorStats {
  int64_t hits = 0;          // large requests served from the cache
  int64_t misses = 0;        // large requests that allocated a new block
  int64_t cached_bytes = 0;  // freed blocks held now
};

// Makes LibTorch allocate CPU tensors through the caching allocator, keeping at most
// `max_cached_bytes` of freed blocks; 0 keeps no blocks. The first call installs it for the life
// of the process (tensors allocated before keep their own allocator); later calls change the
// budget, releasing blocks over it.
void InstallCachingCpuAllocator(int64_t max_cached_bytes);

// As above with the budget from IMGINTERP_CPU_CACHE_MB (MiB; unset: 1024). 0 leaves LibTorch's
// allocator alone. A value that is not a non-negative number is ignored with a warning on stderr.
void InstallCachingCpuAllocatorFromEnvironment();

// Zeros while the allocator is not installed.
CachingCpuAllocatorStats GetCachingCpuAllocatorStats();

}  // namespace imginterp::nn
