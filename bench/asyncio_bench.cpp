// asyncio_bench: asyncio-cpp's column in the shared anchor benchmarks
// (../shared/bench/README.md, "The system contract"). One thread runs the loop.
//
//   asyncio_bench spawn N BATCH    N tasks returning i, awaited BATCH at a time
//   asyncio_bench sleepers N MS    N concurrent tasks each sleeping MS ms, then returning 1
//   asyncio_bench chain N          N sequential awaits of a coroutine returning 1
//   asyncio_bench echo-server PORT / http-server PORT: exit 3 until streams land
//
// Prints one JSON line: {"wall_s": ..., "check": ...}; the time covers the workload only.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <asyncio.hpp>

namespace {

using Clock = std::chrono::steady_clock;

asyncio::Coro<long> identity(long i) {
  co_return i;
}
asyncio::Coro<long> one() {
  co_return 1;
}
asyncio::Coro<long> sleeper(double seconds) {
  co_await asyncio::sleep(seconds);
  co_return 1;
}

asyncio::Coro<long> spawn(long n, long batch) {
  long sum = 0;
  std::vector<asyncio::Task<long>> tasks;
  tasks.reserve(static_cast<std::size_t>(batch));
  for (long base = 0; base < n; base += batch) {
    const long end = std::min(n, base + batch);
    for (long i = base; i < end; ++i) tasks.push_back(asyncio::create_task(identity(i)));
    for (auto& t : tasks) sum += co_await t;
    tasks.clear();
  }
  co_return sum;
}

asyncio::Coro<long> sleepers(long n, double seconds) {
  std::vector<asyncio::Task<long>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(sleeper(seconds)));
  long sum = 0;
  for (auto& t : tasks) sum += co_await t;
  co_return sum;
}

asyncio::Coro<long> chain(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await one();
  co_return sum;
}

/// Times `work` inside the loop (start-up excluded) and prints the contract's JSON line.
int measure(asyncio::Coro<long> (*make)(long, long), long a, long b) {
  struct Result {
    double wall;
    long check;
  };
  auto timed = [](asyncio::Coro<long> (*mk)(long, long), long x, long y) -> asyncio::Coro<Result> {
    const auto t0 = Clock::now();
    const long check = co_await mk(x, y);
    co_return Result{std::chrono::duration<double>(Clock::now() - t0).count(), check};
  };
  const Result r = asyncio::run(timed(make, a, b));
  std::printf("{\"wall_s\": %.6f, \"check\": %ld}\n", r.wall, r.check);
  return 0;
}

long arg(int argc, char** argv, int i, long fallback) {
  return i < argc ? std::strtol(argv[i], nullptr, 10) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string workload = argc > 1 ? argv[1] : "";
  if (workload == "spawn") {
    return measure([](long n, long batch) { return spawn(n, batch); }, arg(argc, argv, 2, 1000000),
                   arg(argc, argv, 3, 1000));
  }
  if (workload == "sleepers") {
    return measure([](long n, long ms) { return sleepers(n, static_cast<double>(ms) / 1000.0); },
                   arg(argc, argv, 2, 100000), arg(argc, argv, 3, 100));
  }
  if (workload == "chain") {
    return measure([](long n, long /*unused*/) { return chain(n); }, arg(argc, argv, 2, 10000000),
                   0);
  }
  std::fprintf(stderr, "asyncio_bench: workload '%s' is not implemented\n", workload.c_str());
  return 3;
}
