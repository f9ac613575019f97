// primes_ticker: coroutines wait, threads compute (seed article 004: "coroutines suit I/O-bound
// work, threads suit CPU-bound work").
//
//   primes_ticker [--limit N]
//
// A CPU-bound job - counting the primes below N (default 4,000,000; about 0.9 s on our 2-core
// VM, with or without sanitizers) by trial division - runs on the default thread pool through
// asyncio::to_thread, while a ticker task on the loop prints a tick every 0.2 s. The ticks keep
// coming while the job runs, because the loop's thread only waits for it. Called directly inside a
// coroutine, the same job would hold the loop's only thread and no tick could come until it
// returned (the tutorial's first chapter shows that with a blocking sleep). The program prints the
// prime count, how long it took, and how many ticks the loop printed meanwhile. A tick is due every
// 0.2 s, so a job of `took` seconds owes floor(took / 0.2) of them: the check (exit status 1 when
// it fails) asks for at least one tick and for no more than one missing - the last may race with
// the job's end. It depends on the time the job took, not on a fixed count: a faster CPU counts
// sooner, and a fixed "at least 2 ticks" would fail on any CPU that finished the job in under 0.4
// s.
//
// Python:
//     async def ticker():
//         while True:
//             await asyncio.sleep(0.2)
//             print("tick")
//     async def main():
//         t = asyncio.create_task(ticker())
//         count = await asyncio.to_thread(count_primes, 4_000_000)
//         t.cancel()
// (In CPython the GIL lets one thread at a time run Python code; the ticks still come, as the
// loop needs it only briefly every 0.2 s. Here the worker and the loop simply run in parallel.)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <asyncio.hpp>

namespace {

/// The primes below `limit`, by trial division: deliberately naive, CPU-bound work.
std::uint64_t count_primes(std::uint32_t limit) {
  std::uint64_t count = 0;
  for (std::uint32_t n = 2; n < limit; ++n) {
    bool prime = true;
    for (std::uint32_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime) ++count;
  }
  return count;
}

/// Prints a line stamped with the loop time since `t0`.
void say(double t0, const std::string& line) {
  std::printf("[+%4.2fs] %s\n", asyncio::get_running_loop().time() - t0, line.c_str());
  std::fflush(stdout);
}

/// Prints "tick N" every 0.2 s until cancelled; counts the ticks in `*ticks`.
asyncio::Coro<void> ticker(double t0, int* ticks) {
  for (;;) {
    co_await asyncio::sleep(0.2);
    ++*ticks;
    say(t0, "tick " + std::to_string(*ticks));
  }
}

asyncio::Coro<int> amain(std::uint32_t limit) {
  const double t0 = asyncio::get_running_loop().time();
  int ticks = 0;
  asyncio::Task<void> tick = asyncio::create_task(ticker(t0, &ticks));
  say(t0, "counting the primes below " + std::to_string(limit) +
              " on a worker thread (asyncio::to_thread)");
  const std::uint64_t primes = co_await asyncio::to_thread(count_primes, limit);
  const int during = ticks;
  const double took = asyncio::get_running_loop().time() - t0;
  tick.cancel();
  try {
    co_await tick;
  } catch (const asyncio::CancelledError&) {  // the ticker ends cancelled, as asked
  }
  say(t0, std::to_string(primes) + " primes below " + std::to_string(limit));
  char summary[128];
  std::snprintf(summary, sizeof summary, "%d ticks while the worker thread counted for %.2f s",
                during, took);
  say(t0, summary);
  const int owed = static_cast<int>(took / 0.2);
  if (owed < 1) {
    say(t0, "FAILED: the job took under 0.2 s, too short for a tick; give a larger --limit");
    co_return 1;
  }
  if (during < 1 || during + 1 < owed) {
    say(t0, "FAILED: the loop should have ticked every 0.2 s meanwhile (" + std::to_string(owed) +
                " ticks were due)");
    co_return 1;
  }
  say(t0, "ok: the loop kept ticking while a thread did the CPU-bound work");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t limit = 4000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
      const long n = std::strtol(argv[++i], nullptr, 10);
      if (n < 2 || n > 100000000) {
        std::fprintf(stderr, "%s: --limit must be between 2 and 100000000\n", argv[0]);
        return 2;
      }
      limit = static_cast<std::uint32_t>(n);
    } else {
      const bool help = std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0;
      std::fprintf(help ? stdout : stderr, "usage: %s [--limit N]   (default N = 4000000)\n",
                   argv[0]);
      return help ? 0 : 2;
    }
  }
  try {
    return asyncio::run(amain(limit));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "primes_ticker: %s\n", e.what());
    return 1;
  }
}
