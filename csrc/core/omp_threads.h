// The calling thread's OpenMP team, for backends that run OpenMP code (oneDNN, the emulated kernels).
#pragma once

#include <omp.h>

namespace edgemoe {

// After a split, the team's helper threads leave instead of spinning: GNU OpenMP's idle threads
// busy-wait for the next region by default (a setting it reads once, from the environment, before
// edgemoe loads), and here a spinning helper slowed the next split region 4-8x and the serial work
// between regions too. Splits are rare and long (threading.h's thresholds), so re-creating the
// helper (tens of microseconds) is the cheaper side.
inline void release_helper_threads() { omp_pause_resource_all(omp_pause_soft); }

// Sets the calling thread's OpenMP team size (what oneDNN reads when it plans and runs a primitive)
// for one scope, and restores it after.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int threads) : before_(omp_get_max_threads()), split_(threads > 1) {
    omp_set_num_threads(threads);
  }
  ~OmpThreadsScope() {
    omp_set_num_threads(before_);
    if (split_) release_helper_threads();
  }
  OmpThreadsScope(const OmpThreadsScope&) = delete;
  OmpThreadsScope& operator=(const OmpThreadsScope&) = delete;

 private:
  int before_;
  bool split_;
};

}  // namespace edgemoe
