// Micro-benchmarks for composing awaitables (asyncio/composition.hpp, asyncio/taskgroups.hpp).
//
// Targets (issue 3), at -O2 on one core:
//   gather of 1,000 trivial coroutines        <= 100 ns per child   (BM_Gather_TrivialCoroutines)
//   wait_for on an already-ready awaitable    <= 150 ns             (BM_WaitFor_ReadyFuture)
//   task_group with 1,000 children            <= 120 ns per child   (BM_TaskGroup_TrivialChildren)
// A child's cost includes making its coroutine frame and its task, one step on the loop, and
// the bookkeeping that collects its result. The benchmark loop itself runs inside one task on
// one loop, so loop creation is not measured. Build and run (Release):
//     cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DASYNCIO_BUILD_TESTS=OFF
//     cmake --build build/release --target micro_composition_bench
//     build/release/bench/micro_composition_bench
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "asyncio.hpp"

namespace {

using asyncio::Coro;
using namespace std::chrono_literals;

Coro<int> trivial(int i) {
  co_return i;
}

/// Reports time / n as "ns_per_child".
void per_child(benchmark::State& state, std::int64_t children_per_iteration) {
  const auto n = static_cast<double>(children_per_iteration * state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["ns_per_child"] =
      benchmark::Counter(n * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

/// Runs `body(state)` as the main task of a fresh loop.
template <class F>
void on_loop(benchmark::State& state, F body) {
  auto loop = asyncio::new_event_loop();
  loop->run_until_complete(body(&state));
}

// co_await gather(std::vector<Coro<int>>{1000 trivial coroutines})
void BM_Gather_TrivialCoroutines(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  on_loop(state, [n](benchmark::State* st) -> Coro<void> {
    std::vector<Coro<int>> coros;
    for (auto _ : *st) {
      coros.clear();
      coros.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) coros.push_back(trivial(i));
      std::vector<int> r = co_await asyncio::gather(std::move(coros));
      benchmark::DoNotOptimize(r.data());
    }
  });
  per_child(state, n);
}
BENCHMARK(BM_Gather_TrivialCoroutines)->Arg(1000)->Arg(10)->Unit(benchmark::kMicrosecond);

// co_await gather(trivial(1), trivial(2)): the variadic form, two children.
void BM_Gather_TwoCoroutines(benchmark::State& state) {
  on_loop(state, [](benchmark::State* st) -> Coro<void> {
    for (auto _ : *st) {
      auto [a, b] = co_await asyncio::gather(trivial(1), trivial(2));
      benchmark::DoNotOptimize(a + b);
    }
  });
  per_child(state, 2);
}
BENCHMARK(BM_Gather_TwoCoroutines);

// co_await wait_for(done_future, 1s): the ready path.
void BM_WaitFor_ReadyFuture(benchmark::State& state) {
  on_loop(state, [](benchmark::State* st) -> Coro<void> {
    asyncio::Future<int> f;
    f.set_result(7);
    for (auto _ : *st) {
      int v = co_await asyncio::wait_for(f, 1s);
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(BM_WaitFor_ReadyFuture);

// co_await wait_for(trivial(), 1s): a coroutine that returns at once runs inline under a
// timeout() (a timer armed and removed, no task, no loop iteration). For comparison with the
// ready path.
void BM_WaitFor_CoroutineThatReturnsAtOnce(benchmark::State& state) {
  on_loop(state, [](benchmark::State* st) -> Coro<void> {
    for (auto _ : *st) {
      int v = co_await asyncio::wait_for(trivial(1), 1s);
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(BM_WaitFor_CoroutineThatReturnsAtOnce);

// co_await timeout(1s, trivial()): the inline form (no task), for comparison.
void BM_Timeout_CoroutineThatReturnsAtOnce(benchmark::State& state) {
  on_loop(state, [](benchmark::State* st) -> Coro<void> {
    for (auto _ : *st) {
      int v = co_await asyncio::timeout(1s, trivial(1));
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(BM_Timeout_CoroutineThatReturnsAtOnce);

// co_await task_group(body creating 1000 trivial children)
void BM_TaskGroup_TrivialChildren(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  on_loop(state, [n](benchmark::State* st) -> Coro<void> {
    for (auto _ : *st) {
      co_await asyncio::task_group([n](asyncio::TaskGroup& tg) -> Coro<void> {
        for (int i = 0; i < n; ++i) tg.create_task(trivial(i));
        co_return;
      });
    }
  });
  per_child(state, n);
}
BENCHMARK(BM_TaskGroup_TrivialChildren)->Arg(1000)->Arg(10)->Unit(benchmark::kMicrosecond);

// co_await shield(done_future): the ready path.
void BM_Shield_ReadyFuture(benchmark::State& state) {
  on_loop(state, [](benchmark::State* st) -> Coro<void> {
    asyncio::Future<int> f;
    f.set_result(7);
    for (auto _ : *st) {
      int v = co_await asyncio::shield(f);
      benchmark::DoNotOptimize(v);
    }
  });
}
BENCHMARK(BM_Shield_ReadyFuture);

}  // namespace

BENCHMARK_MAIN();
