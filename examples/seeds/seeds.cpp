// The seeds registry, the print hook and the seed clock (see seeds.hpp).
#include "seeds.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <tuple>
#include <utility>

namespace seeds {
namespace {

Sink& sink() {
  static Sink current = [](double, std::string_view line) {
    std::cout << line << '\n' << std::flush;
  };
  return current;
}

/// The seed clock: loop time at the seed's start. A coroutine seed sets it when its main task
/// starts; a program seed (which makes its own loop) at its first line printed inside a loop.
struct Clock {
  bool started = false;
  double origin = 0.0;
};
Clock& clock() {
  static Clock state;
  return state;
}

/// The running loop's time, or NaN when no loop runs in this thread.
double loop_time() {
  try {
    return asyncio::get_running_loop().time();
  } catch (const asyncio::RuntimeError&) {
    return no_loop;
  }
}

/// Python's `async def main()` wrapped so that the seed clock starts with the main task.
asyncio::Coro<void> started(asyncio::Coro<void> (*main)()) {
  clock().started = true;
  clock().origin = asyncio::get_running_loop().time();
  co_await main();
}

}  // namespace

std::vector<Seed>& registry() {
  static std::vector<Seed> seeds;
  return seeds;
}

const Seed* find(std::string_view name) {
  for (const Seed& seed : registry()) {
    if (name == seed.name) {
      return &seed;
    }
  }
  return nullptr;
}

Register::Register(Seed seed) {
  auto& seeds = registry();
  auto key = [](const Seed& s) { return std::tuple{s.order, std::string_view{s.name}}; };
  auto at = std::upper_bound(seeds.begin(), seeds.end(), seed,
                             [&](const Seed& a, const Seed& b) { return key(a) < key(b); });
  seeds.insert(at, seed);
}

Sink set_sink(Sink next) {
  return std::exchange(sink(), std::move(next));
}

double elapsed() {
  double t = loop_time();
  if (std::isnan(t)) {
    return no_loop;
  }
  if (!clock().started) {
    clock() = {.started = true, .origin = t};
  }
  return t - clock().origin;
}

void print(std::string_view line) {
  sink()(elapsed(), line);
}

std::string format_time(double t) {
  if (std::isnan(t)) {
    return "no loop";
  }
  char text[32];
  std::snprintf(text, sizeof text, "+%.2fs", t);
  return text;
}

std::string now() {
  return format_time(elapsed());
}

void run(const Seed& seed, const asyncio::RunOptions& options) {
  clock() = {};
  if (seed.main != nullptr) {
    asyncio::run(started(seed.main), options);
  } else {
    seed.program(options);
  }
}

}  // namespace seeds
