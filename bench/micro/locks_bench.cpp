// Micro-benchmarks for asyncio/locks.hpp. Targets (issue 4):
//   * uncontended Lock acquire + release               <= 10 ns       (BM_Lock_AcquireRelease)
//   * 10,000 tasks contending on one Semaphore(10)     <= 100 ns/pair (BM_Semaphore_Contended10k)
// Each benchmark also reports allocs/iter (the global operator new is counted): waiting on a
// primitive allocates nothing, the awaiter lives in the waiting frame.
//
// Build and run (Release):
//     cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
//     cmake --build build/release --target micro_locks_bench
//     build/release/bench/micro_locks_bench
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include <benchmark/benchmark.h>

#include <asyncio.hpp>

#include "alloc_counter.hpp"

using bench::g_allocs;

namespace {

using asyncio::Coro;

template <class Body>
void run_bench(benchmark::State& state, Body body) {
  asyncio::run(body(state));
}

void report_allocs(benchmark::State& state, long before, double per_iteration = 1) {
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(g_allocs.load() - before) /
                         (static_cast<double>(state.iterations()) * per_iteration));
}

/// Reports `name` = nanoseconds per operation, when each iteration does `ops` of them.
void report_ns_per(benchmark::State& state, const char* name, double ops) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(state.iterations()) * ops * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The headline: an uncontended acquire + release (no suspension, no loop involved).
void BM_Lock_AcquireRelease(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    asyncio::Lock lock;
    const long before = g_allocs.load();
    for (auto _ : s) {
      co_await lock.acquire();
      lock.release();
    }
    report_allocs(s, before);
    benchmark::DoNotOptimize(lock.locked());
  });
}
BENCHMARK(BM_Lock_AcquireRelease);

// The same through the RAII guard (`async with lock:`).
void BM_Lock_Scoped(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    asyncio::Lock lock;
    const long before = g_allocs.load();
    for (auto _ : s) {
      auto held = co_await lock.scoped();
      benchmark::DoNotOptimize(held.owns());
    }
    report_allocs(s, before);
  });
}
BENCHMARK(BM_Lock_Scoped);

void BM_Semaphore_AcquireRelease(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    asyncio::Semaphore sem(10);
    const long before = g_allocs.load();
    for (auto _ : s) {
      co_await sem.acquire();
      sem.release();
    }
    report_allocs(s, before);
  });
}
BENCHMARK(BM_Semaphore_AcquireRelease);

// A lock handed between two tasks that each hold it across a loop iteration: every acquire
// waits, every release wakes the other (the contended path, one loop iteration per hand-off).
Coro<void> lock_user(asyncio::Lock* lock, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto held = co_await lock->scoped();
    co_await asyncio::sleep(0);
  }
}
void BM_Lock_ContendedHandoff(benchmark::State& state) {
  constexpr int kRounds = 10000;
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    asyncio::Lock lock;
    const long before = g_allocs.load();
    for (auto _ : s) {
      auto a = asyncio::create_task(lock_user(&lock, kRounds));
      auto b = asyncio::create_task(lock_user(&lock, kRounds));
      co_await a;
      co_await b;
    }
    report_allocs(s, before, 2 * kRounds);
    report_ns_per(s, "ns/acquire", 2 * kRounds);
  });
}
BENCHMARK(BM_Lock_ContendedHandoff)->Unit(benchmark::kMillisecond);

// The target: 10,000 tasks on one Semaphore(10), each acquiring, holding the permit across one
// loop iteration (so that 9,990 of them wait), and releasing - `kRounds` times. Reported per
// acquire/release pair; the time includes creating and finishing the 10,000 tasks.
Coro<void> sem_user(asyncio::Semaphore* sem, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto held = co_await sem->scoped();
    co_await asyncio::sleep(0);
  }
}
void BM_Semaphore_Contended10k(benchmark::State& state) {
  constexpr int kTasks = 10000;
  const int rounds = static_cast<int>(state.range(0));
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    const int rounds = static_cast<int>(s.range(0));
    asyncio::Semaphore sem(10);
    std::vector<asyncio::Task<void>> tasks;
    tasks.reserve(kTasks);
    const long before = g_allocs.load();
    for (auto _ : s) {
      for (int i = 0; i < kTasks; ++i)
        tasks.push_back(asyncio::create_task(sem_user(&sem, rounds)));
      for (auto& t : tasks) co_await t;
      tasks.clear();
    }
    report_allocs(s, before, static_cast<double>(kTasks) * rounds);
  });
  report_ns_per(state, "ns/pair", static_cast<double>(kTasks) * rounds);
}
BENCHMARK(BM_Semaphore_Contended10k)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);

// The same 10,000 tasks without the semaphore (just the sleep(0)): the loop's share of the above.
Coro<void> yielder(int rounds) {
  for (int i = 0; i < rounds; ++i) co_await asyncio::sleep(0);
}
void BM_Semaphore_Contended10k_Baseline(benchmark::State& state) {
  constexpr int kTasks = 10000;
  const int rounds = static_cast<int>(state.range(0));
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    const int rounds = static_cast<int>(s.range(0));
    std::vector<asyncio::Task<void>> tasks;
    tasks.reserve(kTasks);
    for (auto _ : s) {
      for (int i = 0; i < kTasks; ++i) tasks.push_back(asyncio::create_task(yielder(rounds)));
      for (auto& t : tasks) co_await t;
      tasks.clear();
    }
  });
  report_ns_per(state, "ns/task-round", static_cast<double>(kTasks) * rounds);
}
BENCHMARK(BM_Semaphore_Contended10k_Baseline)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);

// Event.set() waking 1,000 waiters, and each of them returning.
Coro<void> event_waiter(asyncio::Event* ev) {
  co_await ev->wait();
}
void BM_Event_SetWakes1000(benchmark::State& state) {
  constexpr int kWaiters = 1000;
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    std::vector<asyncio::Task<void>> tasks;
    tasks.reserve(kWaiters);
    for (auto _ : s) {
      asyncio::Event ev;
      for (int i = 0; i < kWaiters; ++i) tasks.push_back(asyncio::create_task(event_waiter(&ev)));
      co_await asyncio::sleep(0);
      ev.set();
      for (auto& t : tasks) co_await t;
      tasks.clear();
    }
  });
  report_ns_per(state, "ns/waiter", kWaiters);
}
BENCHMARK(BM_Event_SetWakes1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
