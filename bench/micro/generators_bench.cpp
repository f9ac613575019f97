// Micro-benchmarks for asyncio::Generator (asyncio/generators.hpp).
//
// The target (issue 5): iterating a Generator<int> of 10 million values costs <= 2 ns per
// element at -O2; the loop should be little more than one resume. Each benchmark reports
// `per_element` (time / elements). Build and run (Release, from the project's CMake):
//     cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
//     cmake --build build/release --target micro_generators_bench
//     build/release/bench/micro_generators_bench --benchmark_repetitions=10
// or by hand (src/frame_alloc.cpp holds the frame pool's slow path):
//     g++ -std=c++20 -O2 -DNDEBUG -Iinclude bench/micro/generators_bench.cpp src/frame_alloc.cpp
//         -lbenchmark -pthread -o /tmp/generators_bench
// Figures, and the machine they were measured on: docs/howto/generators.md ("Performance").
#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <asyncio/generators.hpp>

namespace {

constexpr int kElements = 10'000'000;

asyncio::Generator<int> iota(int n) {
  for (int i = 0; i < n; ++i) co_yield i;
}

asyncio::Generator<int> delegate(asyncio::Generator<int> inner) {
  co_yield asyncio::elements_of(std::move(inner));
}

asyncio::Generator<int, int> running_sum(int n) {
  int total = 0;
  for (int i = 0; i < n; ++i) total += co_yield total;
}

// Hands the loop's result to the optimiser barrier only after the loop: DoNotOptimize on the
// accumulator itself lets clang keep it in memory for the whole loop (a store and a load per
// element that are not the generator's).
void keep(std::int64_t result) {
  benchmark::DoNotOptimize(result);
}

// Reports `per_element`: the time per element, printed with its unit ("2.5ns").
void report(benchmark::State& state, std::int64_t per_iteration) {
  const auto elements = per_iteration * static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(elements);
  state.counters["per_element"] = benchmark::Counter(
      static_cast<double>(elements), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// With --benchmark_repetitions=N, also report the fastest run: on a shared machine the
// minimum is the most reproducible figure.
double fastest(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

// The floor: a hand-written generator with nothing but a value pointer (no exceptions, send,
// throw_, delegation or misuse checks), its ramp kept out of line so that the loop really
// resumes a coroutine per element, as Generator's does.
struct MinimalGenerator {
  struct promise_type {
    const int* value = nullptr;
    MinimalGenerator get_return_object() {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    static std::suspend_always initial_suspend() noexcept { return {}; }
    static std::suspend_always final_suspend() noexcept { return {}; }
    std::suspend_always yield_value(const int& v) noexcept {
      value = &v;
      return {};
    }
    static void return_void() noexcept {}
    [[noreturn]] static void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

[[gnu::noinline]] MinimalGenerator minimal_iota(int n) {
  for (int i = 0; i < n; ++i) co_yield i;
}

void BM_Baseline_MinimalCoroutine(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t sum = 0;
    auto h = minimal_iota(kElements).handle;
    for (h.resume(); !h.done(); h.resume()) sum += *h.promise().value;
    h.destroy();
    keep(sum);
  }
  report(state, kElements);
}
BENCHMARK(BM_Baseline_MinimalCoroutine)
    ->Unit(benchmark::kMillisecond)
    ->ComputeStatistics("min", fastest);

// for (int v : gen) sum += v;  -- the headline figure.
void BM_Generator_RangeFor(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (int v : iota(kElements)) sum += v;
    keep(sum);
  }
  report(state, kElements);
}
BENCHMARK(BM_Generator_RangeFor)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", fastest);

// while (auto v = gen.next()) sum += *v;
void BM_Generator_Next(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t sum = 0;
    auto gen = iota(kElements);
    while (auto v = gen.next()) sum += *v;
    keep(sum);
  }
  report(state, kElements);
}
BENCHMARK(BM_Generator_Next)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", fastest);

// The same values through three levels of `yield from`: the consumer resumes the innermost
// frame directly, so the cost per element should not change with the depth.
void BM_Generator_RangeForThroughThreeDelegations(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (int v : delegate(delegate(delegate(iota(kElements))))) sum += v;
    keep(sum);
  }
  report(state, kElements);
}
BENCHMARK(BM_Generator_RangeForThroughThreeDelegations)
    ->Unit(benchmark::kMillisecond)
    ->ComputeStatistics("min", fastest);

// gen.send(i) round trips: Python's generator-based coroutine.
void BM_Generator_Send(benchmark::State& state) {
  for (auto _ : state) {
    auto gen = running_sum(kElements);
    std::int64_t last = *gen.next();
    for (int i = 1; i < kElements; ++i) last = *gen.send(i);
    keep(last);
  }
  report(state, kElements);
}
BENCHMARK(BM_Generator_Send)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", fastest);

// Creating, running to its only value and destroying a generator: the per-generator overhead
// (frame allocation) that a short generator pays.
void BM_Generator_CreateAndDrainOneValue(benchmark::State& state) {
  for (auto _ : state) {
    for (int v : iota(1)) benchmark::DoNotOptimize(v);
  }
  report(state, 1);
}
BENCHMARK(BM_Generator_CreateAndDrainOneValue)->ComputeStatistics("min", fastest);

}  // namespace

BENCHMARK_MAIN();
