// rate_limiter: two limits built on asyncio::Semaphore.
//
//   rate_limiter [--virtual] [--requests N]
//
// Twelve fake requests (each takes 0.2-0.6 s) are fired at once, under two limits:
//   * at most 3 in flight at a time   - a Semaphore(3) held while a request runs
//                                       (`co_await in_flight.scoped()`, Python: async with sem)
//   * at most 4 starts per second     - RateLimiter below: a Semaphore(4) whose permit comes
//                                       back one second after it was taken (loop.call_later)
// The output shows when each request starts and ends: the starts never exceed 4 in any
// one-second window, nor 3 running at once, and they come in the order the requests asked
// (Semaphore serves its waiters first come, first served).
// With --virtual the sleeps cost no real time and the output is the same on every run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <asyncio.hpp>

namespace {

/// At most `rate` acquisitions per `per` seconds (a sliding window): each acquisition takes a
/// permit of a Semaphore(rate) and schedules its return `per` seconds later.
class RateLimiter {
 public:
  RateLimiter(int rate, double per) : rate_(rate), per_(per), permits_(rate) {}

  /// Waits until a start is allowed. Cancellation: safe (no permit is taken).
  asyncio::Coro<void> acquire() {
    co_await permits_.acquire();
    asyncio::get_running_loop().call_later(per_, [this] { permits_.release(); });
  }
  /// Waits until every permit has come back, so that no call_later refers to a dead limiter.
  asyncio::Coro<void> close() {
    for (int i = 0; i < rate_; ++i) co_await permits_.acquire();
  }

 private:
  int rate_;
  double per_;
  asyncio::Semaphore permits_;
};

struct Limits {
  asyncio::Semaphore* in_flight;
  RateLimiter* rate;
  double t0;
};

void say(double t0, const std::string& line) {
  std::printf("[+%4.2fs] %s\n", asyncio::get_running_loop().time() - t0, line.c_str());
  std::fflush(stdout);
}

asyncio::Coro<void> request(int id, double duration, Limits limits) {
  auto running = co_await limits.in_flight->scoped();  // <= 3 at a time; released at the end
  co_await limits.rate->acquire();                     // <= 4 starts per second
  say(limits.t0, "request " + std::to_string(id) + " starts");
  co_await asyncio::sleep(duration);
  say(limits.t0, "request " + std::to_string(id) + " done");
}

asyncio::Coro<int> amain(int n) {
  asyncio::Semaphore in_flight(3);
  RateLimiter rate(4, 1.0);
  const Limits limits{&in_flight, &rate, asyncio::get_running_loop().time()};

  std::vector<asyncio::Task<void>> requests;
  for (int i = 1; i <= n; ++i) {
    const double duration = 0.2 + 0.1 * (i * 7 % 5);  // 0.2 .. 0.6 s, varied
    requests.push_back(asyncio::create_task(request(i, duration, limits)));
  }
  for (auto& r : requests) co_await r;
  co_await rate.close();
  say(limits.t0, "all " + std::to_string(n) + " requests done");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool virtual_time = false;
  int n = 12;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--virtual") == 0) {
      virtual_time = true;
    } else if (std::strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--virtual] [--requests N]\n", argv[0]);
      return 2;
    }
  }
  try {
    return asyncio::run(amain(n), {.virtual_time = virtual_time});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rate_limiter: %s\n", e.what());
    return 1;
  }
}
