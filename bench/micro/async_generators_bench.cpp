// Micro-benchmarks for asyncio::AsyncGenerator (asyncio/generators.hpp).
//
// The target (issue 5): an AsyncGenerator<int> that yields without suspending costs <= 10 ns
// per element: `co_await gen.next()` is two symmetric transfers (consumer -> generator ->
// consumer) inside one task, no trip through the loop, no allocation. Each benchmark reports
// `per_element` (time / elements). Build and run (Release, from the project's CMake):
//     cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DASYNCIO_BUILD_BENCH=ON
//     cmake --build build/release --target micro_async_generators_bench
//     build/release/bench/micro_async_generators_bench --benchmark_repetitions=5
// Figures, and the machine they were measured on: docs/howto/generators.md ("Performance").
#include <cstdint>
#include <optional>

#include <benchmark/benchmark.h>

#include <asyncio.hpp>

namespace {

constexpr std::int64_t kElements = 1'000'000;

asyncio::AsyncGenerator<std::int64_t> counter() {
  for (std::int64_t i = 0;; ++i) co_yield i;
}

// The baseline: one Coro awaited per element (a frame from the pool, two transfers).
asyncio::Coro<std::int64_t> identity(std::int64_t i) {
  co_return i;
}

void keep(std::int64_t result) {
  benchmark::DoNotOptimize(result);
}

void report(benchmark::State& state, std::int64_t per_iteration) {
  const auto elements = per_iteration * static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(elements);
  state.counters["per_element"] = benchmark::Counter(
      static_cast<double>(elements), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// `state` by pointer: the coroutine outlives no one (asyncio::run awaits it), but coroutine
// parameters are values by habit.
asyncio::Coro<void> next_loop(benchmark::State* state) {
  for (auto _ : *state) {
    auto gen = counter();
    std::int64_t sum = 0;
    for (std::int64_t k = 0; k < kElements; ++k) sum += *co_await gen.next();
    keep(sum);
  }
  report(*state, kElements);
}

void BM_AsyncGeneratorNext(benchmark::State& state) {
  asyncio::run(next_loop(&state));
}
BENCHMARK(BM_AsyncGeneratorNext)->Unit(benchmark::kMillisecond);

asyncio::Coro<void> async_for_loop(benchmark::State* state) {
  for (auto _ : *state) {
    std::int64_t sum = 0;
    co_await asyncio::async_for(counter(), [&sum](std::int64_t i) {
      sum += i;
      return i + 1 < kElements;
    });
    keep(sum);
  }
  report(*state, kElements);
}

void BM_AsyncFor(benchmark::State& state) {
  asyncio::run(async_for_loop(&state));
}
BENCHMARK(BM_AsyncFor)->Unit(benchmark::kMillisecond);

asyncio::Coro<void> coro_loop(benchmark::State* state) {
  for (auto _ : *state) {
    std::int64_t sum = 0;
    for (std::int64_t k = 0; k < kElements; ++k) sum += co_await identity(k);
    keep(sum);
  }
  report(*state, kElements);
}

void BM_AwaitCoroPerElement(benchmark::State& state) {
  asyncio::run(coro_loop(&state));
}
BENCHMARK(BM_AwaitCoroPerElement)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
