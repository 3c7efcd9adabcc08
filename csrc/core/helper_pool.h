// Threads that help the calling thread when they can, and never make it wait for one that cannot.
//
// An OpenMP region waits at its end for every thread of its team; on a busy machine a team member
// the scheduler has switched out stalls the region for a time slice (milliseconds), and a forward
// pass has hundreds of regions. Here the caller takes tasks itself from a shared counter; a helper
// that is running takes others; at the end the caller waits only for tasks a helper has already
// started. A helper that never got the CPU costs nothing: the caller ran its share.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace edgemoe {

class HelperPool {
 public:
  // The process's pool: one helper per usable CPU beyond the first.
  static HelperPool& shared();

  explicit HelperPool(int helpers);
  ~HelperPool();
  HelperPool(const HelperPool&) = delete;
  HelperPool& operator=(const HelperPool&) = delete;

  int helpers() const { return static_cast<int>(threads_.size()); }

  // task(ctx, i) for every i in [0, tasks), by the caller and at most `max_helpers` helpers.
  // Returns when all have run. A second caller while one runs gets no helpers (its tasks run inline),
  // and so does a forked child (its copy of the pool has no threads). If a task throws, no further
  // task starts, the started ones finish, and the first exception is rethrown here.
  void run(int64_t tasks, int max_helpers, void (*task)(void* ctx, int64_t i), void* ctx);

  template <class F>
  void run(int64_t tasks, int max_helpers, F&& fn) {
    run(tasks, max_helpers, [](void* c, int64_t i) { (*static_cast<std::remove_reference_t<F>*>(c))(i); }, &fn);
  }

 private:
  struct Job {
    void (*task)(void*, int64_t);
    void* ctx;
    int64_t tasks;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> seats;  // helpers that may still join
    std::mutex failure_mutex;
    std::exception_ptr failure;  // the first exception a task threw
  };
  void helper_loop();
  static void work(Job& job);

  std::mutex mutex_;  // guards job_ and the waits; generation_ and stop_ change under it
  std::condition_variable wake_, finished_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};  // one caller at a time gets the helpers (nested calls run inline)
  std::vector<std::thread> threads_;
  long owner_pid_;  // the process whose threads these are
};

}  // namespace edgemoe
