// How the CPU backend splits work over its threads. A parallel region costs little on an idle
// machine but, on a busy one, each region waits for every thread of its team: a partner the
// scheduler has switched out stalls the region for a whole time slice (milliseconds). So only
// work that takes a thread long enough to be worth that risk is split, into one contiguous range
// per thread; everything smaller runs on the calling thread (issue 19: a model of 5 ms per task
// went 7x slower with three CPU-bound neighbours when every small loop was split).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/omp_threads.h"

namespace edgemoe::cpu {

using edgemoe::OmpThreadsScope;
using edgemoe::release_helper_threads;

// Work a thread must get before a split pays: ~2 ms of one core, FLOPs for compute, bytes moved for
// memory-bound loops (a core streams ~10-20 GB/s). Measured on the 2-vCPU machines this project
// runs on, whose two CPUs share much of one core (a 1024^3 GEMM: 158 GFLOP/s on one thread, 154 on
// two): a split of ~0.1 GFLOP (the built-in model's largest head convolution) ran slower than one
// thread, while the ViT-S heads' GFLOP convolutions still gain.
constexpr int64_t kMinFlopsPerThread = int64_t(128) << 20;
constexpr int64_t kMinBytesPerThread = int64_t(32) << 20;

// Threads for `work` units of which each thread needs at least `per_thread`, at most `max_threads`.
inline int threads_for(int64_t work, int64_t per_thread, int max_threads) {
  return static_cast<int>(std::clamp<int64_t>(work / per_thread, 1, std::max(1, max_threads)));
}

// fn(first, last) over [0, n) as `threads` contiguous ranges, one per OpenMP thread.
template <class F>
void parallel_ranges(int64_t n, int threads, F&& fn) {
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  if (threads <= 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
    const int64_t first = n * t / count, last = n * (t + 1) / count;
    if (first < last) fn(first, last);
  }
  release_helper_threads();
}

}  // namespace edgemoe::cpu
