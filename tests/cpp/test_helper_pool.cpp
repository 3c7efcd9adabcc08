// The helper pool (csrc/core/helper_pool.h): every task runs exactly once whoever runs it; the caller
// never waits for a helper that has not started a task; concurrent and nested callers run inline.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/helper_pool.h"
#include "expect.h"

using edgemoe::HelperPool;
using Clock = std::chrono::steady_clock;

namespace {
using edgemoe_test::expect;
void test_every_task_once(HelperPool& pool) {
  for (int64_t tasks : {0, 1, 2, 3, 17, 1000}) {
    for (int helpers : {0, 1, 3}) {
      for (int round = 0; round < 50; ++round) {
        std::vector<std::atomic<int>> runs(static_cast<size_t>(tasks));
        pool.run(tasks, helpers, [&](int64_t i) { runs[size_t(i)].fetch_add(1); });
        bool once = true;
        for (auto& r : runs) once = once && r.load() == 1;
        if (!once) {
          expect(false, "every task exactly once: " + std::to_string(tasks) + " tasks, " + std::to_string(helpers) + " helpers");
          return;
        }
      }
    }
  }
  expect(true, "every task exactly once");
}

// Helpers that are busy elsewhere (here: blocked inside another caller's task) leave the second
// caller to run all of its tasks itself, at once, rather than wait for them.
void test_busy_helpers_never_block_the_caller(HelperPool& pool) {
  std::atomic<bool> release{false}, blocked{false};
  std::thread first([&] {
    pool.run(2, 3, [&](int64_t) {
      blocked = true;
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  });
  while (!blocked.load()) std::this_thread::yield();
  const auto t0 = Clock::now();
  std::atomic<int> ran{0};
  pool.run(64, 3, [&](int64_t) { ran.fetch_add(1); });
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  release = true;
  first.join();
  expect(ran.load() == 64, "a second caller's tasks all run");
  std::printf("second caller while helpers are busy: %.2f ms\n", ms);
  // 64 empty tasks take microseconds inline; a wait for the blocked helper would last until release.
  expect(ms < 100, "a second caller does not wait for busy helpers");
}

void test_nested_run_is_inline(HelperPool& pool) {
  std::atomic<int> inner{0};
  pool.run(4, 3, [&](int64_t) { pool.run(8, 3, [&](int64_t) { inner.fetch_add(1); }); });
  expect(inner.load() == 32, "nested runs complete inline");
}

// A task that throws: the caller gets the exception after every started task finished, and no task
// starts after the failure (ctx may be gone once run() returns).
void test_throwing_task(HelperPool& pool) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> started{0}, running{0};
    bool caught = false;
    try {
      pool.run(1000, 3, [&](int64_t i) {
        started.fetch_add(1);
        running.fetch_add(1);
        if (i == 5) {
          running.fetch_sub(1);
          throw std::runtime_error("task 5");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        running.fetch_sub(1);
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "task 5";
    }
    if (!caught || running.load() != 0 || started.load() >= 1000) {
      expect(false, "a throwing task: rethrown, nothing left running, the rest not started (round " +
                        std::to_string(round) + ", started " + std::to_string(started.load()) + ")");
      return;
    }
  }
  expect(true, "a throwing task is rethrown to the caller and stops the job");
}

// A pool whose helpers never get to run (none exist) still completes: the caller runs everything.
void test_no_helpers() {
  HelperPool none(0);
  int64_t sum = 0;
  none.run(100, 4, [&](int64_t i) { sum += i; });
  expect(sum == 99 * 100 / 2, "a pool without helpers runs every task on the caller");
}
}  // namespace

int main() {
  HelperPool pool(3);
  test_every_task_once(pool);
  test_busy_helpers_never_block_the_caller(pool);
  test_nested_run_is_inline(pool);
  test_throwing_task(pool);
  test_no_helpers();
  test_every_task_once(HelperPool::shared());
  return edgemoe_test::report();
}
