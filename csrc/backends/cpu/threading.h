// How the CPU backend splits work over its threads. An OpenMP region costs little on an idle
// machine but, on a busy one, waits at its end for every thread of its team: a partner the
// scheduler has switched out stalls it for a whole time slice (milliseconds), and spinning
// partners slow everything else (issue 19: a 5 ms forward went 7x slower next to three CPU-bound
// processes). So only work long enough to be worth a split is split at all; edgemoe's own loops
// split over the helper pool (core/helper_pool.h), which never waits for a thread that is not
// running, and oneDNN's primitives (OpenMP inside) get a team only when they are that large.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/helper_pool.h"
#include "core/omp_threads.h"

namespace edgemoe::cpu {

using edgemoe::HelperPool;
using edgemoe::OmpThreadsScope;

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

// fn(first, last) over [0, n) in contiguous ranges, on the calling thread and up to threads - 1
// helpers of the shared pool (core/helper_pool.h): a few ranges per thread, so that a thread the
// scheduler switched out leaves its share to the others.
template <class F>
void parallel_ranges(int64_t n, int threads, F&& fn) {
  if (n <= 0) return;
  const int64_t ranges = std::min<int64_t>(n, threads <= 1 ? 1 : 4 * int64_t(threads));
  if (ranges == 1) {
    fn(int64_t{0}, n);
    return;
  }
  HelperPool::shared().run(ranges, threads - 1, [&](int64_t r) { fn(n * r / ranges, n * (r + 1) / ranges); });
}

}  // namespace edgemoe::cpu
