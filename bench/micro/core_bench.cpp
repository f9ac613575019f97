// Micro-benchmarks of the core hot paths: scheduling, task spawn, coroutine await chains,
// futures, timers. Each reports allocs/iter: the global operator new is counted, so "0" proves
// that a warm step allocates nothing.
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

/// Runs `body(state)` as the main task of a fresh loop, timing only what body times.
template <class Body>
void run_bench(benchmark::State& state, Body body) {
  asyncio::run(body(state));
}

void report_allocs(benchmark::State& state, long before) {
  state.counters["allocs/iter"] = benchmark::Counter(static_cast<double>(g_allocs.load() - before) /
                                                     static_cast<double>(state.iterations()));
}

Coro<int> one() {
  co_return 1;
}

// co_await of a coroutine that returns at once (the anchors' "chain").
void BM_AwaitCoroutine(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    long sum = 0;
    for (int i = 0; i < 1000; ++i) sum += co_await one();  // warm the frame pool
    const long before = g_allocs.load();
    for (auto _ : s) sum += co_await one();
    report_allocs(s, before);
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_AwaitCoroutine);

// create_task + await of a trivial coroutine (the anchors' "spawn"), batches of 1000.
void BM_SpawnAwait(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks;
    tasks.reserve(1000);
    long sum = 0;
    auto batch = [&]() -> Coro<void> {
      for (int i = 0; i < 1000; ++i) tasks.push_back(asyncio::create_task(one()));
      for (auto& t : tasks) sum += co_await t;
      tasks.clear();
    };
    co_await batch();  // warm
    const long before = g_allocs.load();
    for (auto _ : s) co_await batch();
    report_allocs(s, before);
    s.SetItemsProcessed(s.iterations() * 1000);
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_SpawnAwait);

// One loop iteration round trip of a task: sleep(0) yields and is resumed.
void BM_Sleep0(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    for (int i = 0; i < 1000; ++i) co_await asyncio::sleep(0);
    const long before = g_allocs.load();
    for (auto _ : s) co_await asyncio::sleep(0);
    report_allocs(s, before);
  });
}
BENCHMARK(BM_Sleep0);

// call_soon + running the handle (one allocation per handle, by design: a Handle is returned).
void BM_CallSoon(benchmark::State& state) {
  auto loop = asyncio::new_event_loop();
  long n = 0;
  for (auto _ : state) {
    (void)loop->call_soon([&n] { ++n; });
    asyncio::detail::run_once(*loop);
  }
  benchmark::DoNotOptimize(n);
  loop->close();
}
BENCHMARK(BM_CallSoon);

// A future set by one task and awaited by another (two tasks, one wake-up each way).
Coro<void> setter(asyncio::Future<int> f) {
  f.set_result(1);
  co_return;
}
void BM_FutureHandoff(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    long sum = 0;
    for (auto _ : s) {
      asyncio::Future<int> f;
      (void)asyncio::create_task(setter(f));
      sum += co_await f;
    }
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_FutureHandoff);

// Timers: 10,000 tasks sleeping (virtual time), per sleeping task.
Coro<int> sleeper(double d) {
  co_await asyncio::sleep(d);
  co_return 1;
}
void BM_Sleepers10k(benchmark::State& state) {
  for (auto _ : state) {
    asyncio::run(
        []() -> Coro<void> {
          std::vector<asyncio::Task<int>> tasks;
          tasks.reserve(10000);
          for (int i = 0; i < 10000; ++i) tasks.push_back(asyncio::create_task(sleeper(0.1)));
          for (auto& t : tasks) co_await t;
        }(),
        {.virtual_time = true});
  }
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_Sleepers10k);

}  // namespace

BENCHMARK_MAIN();
