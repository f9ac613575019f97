// Micro-benchmarks for asyncio/queues.hpp. Target (issue 4): a Queue<int> ping-pong between
// two tasks <= 60 ns per item (BM_Queue_PingPong, counter ns/item: one item = one put by one
// task and the get by the other, including the task switch). allocs/item counts global
// operator new calls (a get() that has to wait runs a pooled coroutine frame, not malloc).
//
// Build and run (Release):
//     cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
//     cmake --build build/release --target micro_queues_bench
//     build/release/bench/micro_queues_bench
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>

#include <benchmark/benchmark.h>

#include <asyncio.hpp>

#include "alloc_counter.hpp"

using bench::g_allocs;

namespace {

using asyncio::Coro;
using asyncio::Queue;

template <class Body>
void run_bench(benchmark::State& state, Body body) {
  asyncio::run(body(state));
}

/// Reports `name` = nanoseconds per operation, when each iteration does `ops` of them.
void report_ns_per(benchmark::State& state, const char* name, double ops) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(state.iterations()) * ops * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void report_allocs(benchmark::State& state, long before, double per_iteration) {
  state.counters["allocs/item"] =
      benchmark::Counter(static_cast<double>(g_allocs.load() - before) /
                         (static_cast<double>(state.iterations()) * per_iteration));
}

// put_nowait + get_nowait in one task: the queue's own cost.
void BM_Queue_PutGetNowait(benchmark::State& state) {
  Queue<int> q;
  long sum = 0;
  for (auto _ : state) {
    q.put_nowait(1);
    sum += q.get_nowait();
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_Queue_PutGetNowait);

// co_await put + co_await get when neither has to wait (the awaiters' fast paths).
void BM_Queue_PutGetNoWait(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    Queue<int> q(8);
    long sum = 0;
    const long before = g_allocs.load();
    for (auto _ : s) {
      co_await q.put(1);
      sum += co_await q.get();
    }
    report_allocs(s, before, 1);
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_Queue_PutGetNoWait);

// The target. Two tasks and two queues; the ball goes back and forth:
//     ping: put(i) on q1, get() from q2          pong: get() from q1, put() on q2
// Every get waits for the other task, so each item costs one put, one wake-up, one task
// switch through the loop and one get. ns/item = time / items handed over (2 per round trip).
Coro<void> pong(Queue<int>* in, Queue<int>* out, long n) {
  for (long i = 0; i < n; ++i) co_await out->put(co_await in->get());
}
Coro<long> ping(Queue<int>* out, Queue<int>* in, long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    co_await out->put(static_cast<int>(i));
    sum += co_await in->get();
  }
  co_return sum;
}
void BM_Queue_PingPong(benchmark::State& state) {
  constexpr long kRounds = 100000;
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    Queue<int> q1;
    Queue<int> q2;
    const long before = g_allocs.load();
    long sum = 0;
    for (auto _ : s) {
      auto b = asyncio::create_task(pong(&q1, &q2, kRounds));
      sum += co_await asyncio::create_task(ping(&q1, &q2, kRounds));
      co_await b;
    }
    report_allocs(s, before, 2.0 * kRounds);
    benchmark::DoNotOptimize(sum);
  });
  report_ns_per(state, "ns/item", 2.0 * kRounds);
}
BENCHMARK(BM_Queue_PingPong)->Unit(benchmark::kMillisecond);

// A producer and a consumer through a bounded queue (maxsize 64): items flow in batches, the
// consumer waking once per batch rather than once per item.
Coro<void> producer(Queue<int>* q, long n) {
  for (long i = 0; i < n; ++i) co_await q->put(static_cast<int>(i));
}
Coro<long> consumer(Queue<int>* q, long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await q->get();
  co_return sum;
}
void BM_Queue_ProducerConsumer(benchmark::State& state) {
  constexpr long kItems = 1000000;
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    Queue<int> q(static_cast<std::size_t>(s.range(0)));
    long sum = 0;
    const long before = g_allocs.load();
    for (auto _ : s) {
      auto p = asyncio::create_task(producer(&q, kItems));
      sum += co_await asyncio::create_task(consumer(&q, kItems));
      co_await p;
    }
    report_allocs(s, before, kItems);
    benchmark::DoNotOptimize(sum);
  });
  report_ns_per(state, "ns/item", kItems);
}
BENCHMARK(BM_Queue_ProducerConsumer)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);

// Move-only items: std::unique_ptr through a bounded queue.
void BM_Queue_MoveOnly(benchmark::State& state) {
  run_bench(state, [](benchmark::State& s) -> Coro<void> {
    Queue<std::unique_ptr<int>> q(8);
    auto item = std::make_unique<int>(1);
    for (auto _ : s) {
      co_await q.put(std::move(item));
      item = co_await q.get();
    }
    benchmark::DoNotOptimize(*item);
  });
}
BENCHMARK(BM_Queue_MoveOnly);

}  // namespace

BENCHMARK_MAIN();
