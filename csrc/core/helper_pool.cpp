#include "core/helper_pool.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <type_traits>

namespace edgemoe {

namespace {
int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// How long an idle helper keeps looking for the next job before it sleeps: a forward pass issues
// its splits microseconds apart, and waking a sleeping thread costs about as much as a small task.
constexpr auto kHelperSpin = std::chrono::microseconds(500);
}  // namespace

HelperPool& HelperPool::shared() {
  // Never destroyed: in a forked child (multiprocessing, Dask) its threads do not exist, and joining
  // them at exit would hang. A child's runs take the inline path before touching any lock.
  static HelperPool* pool = new HelperPool(usable_cpus() - 1);
  return *pool;
}

HelperPool::HelperPool(int helpers) : owner_pid_(static_cast<long>(getpid())) {
  for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { helper_loop(); });
}

HelperPool::~HelperPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void HelperPool::work(Job& job) {
  for (;;) {
    const int64_t i = job.next.fetch_add(1);
    if (i >= job.tasks) return;
    try {
      job.task(job.ctx, i);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(job.failure_mutex);
        if (!job.failure) job.failure = std::current_exception();
      }
      // No task starts after a failure: the unclaimed ones count as done, so nobody waits for them.
      const int64_t claimed = std::min(job.next.exchange(job.tasks), job.tasks);
      job.done.fetch_add(job.tasks - claimed, std::memory_order_acq_rel);
    }
    job.done.fetch_add(1, std::memory_order_acq_rel);
  }
}

void HelperPool::run(int64_t tasks, int max_helpers, void (*task)(void*, int64_t), void* ctx) {
  bool idle = false;
  if (tasks <= 1 || max_helpers <= 0 || threads_.empty() || static_cast<long>(getpid()) != owner_pid_ ||
      !busy_.compare_exchange_strong(idle, true)) {
    for (int64_t i = 0; i < tasks; ++i) task(ctx, i);
    return;
  }
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{busy_};
  auto job = std::make_shared<Job>();
  job->task = task;
  job->ctx = ctx;
  job->tasks = tasks;
  const int seats = std::min<int>(max_helpers, static_cast<int>(std::min<int64_t>(helpers(), tasks - 1)));
  job->seats = seats;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = job;
    generation_.fetch_add(1);
  }
  for (int i = 0; i < seats; ++i) wake_.notify_one();  // only as many helpers as may join
  work(*job);
  // Only tasks a helper has claimed are left: a running helper finishes them shortly.
  if (job->done.load(std::memory_order_acquire) != tasks) {
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return job->done.load(std::memory_order_acquire) == tasks; });
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_.reset();  // helpers that wake late find no job; ctx may die once this returns
  }
  if (job->failure) std::rethrow_exception(job->failure);
}

void HelperPool::helper_loop() {
  uint64_t seen = 0;
  bool worked = false;
  for (;;) {
    // After a job it took part in, a helper looks for the next one for a while (yielding the CPU to
    // anyone who wants it) before it sleeps; a helper that found no seat sleeps at once.
    const auto until = std::chrono::steady_clock::now() + kHelperSpin;
    while (worked && generation_.load() == seen && !stop_.load() && std::chrono::steady_clock::now() < until)
      sched_yield();
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
      if (stop_.load()) return;
      seen = generation_.load();
      job = job_;
    }
    worked = job && job->seats.fetch_sub(1) > 0;
    if (!worked) continue;
    work(*job);
    // The caller sleeps (finished_) only when a helper's task was still running as it finished its own.
    if (job->done.load(std::memory_order_acquire) == job->tasks) {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_.notify_all();
    }
  }
}

}  // namespace edgemoe
