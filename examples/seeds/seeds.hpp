// seeds: the example programs that follow the five seed articles (docs/tutorial/).
//
// Each examples/seeds/<name>.cpp is one Python snippet from an article, translated line for line.
// It registers itself with a static `seeds::Register`, and prints only through `seeds::print`,
// which stamps every line with the loop time at which it appeared (relative to the seed's
// start). That one hook lets the same code run three ways:
//   - seed_<name>       a stand-alone program: plain lines on stdout, like the Python script;
//   - asyncio-tour      every seed in order, in real time: "[+1.00s] hello";
//   - seeds_test        every seed under virtual time (RunOptions{.virtual_time = true}):
//                       the exact lines, their order and their loop times are asserted.
#pragma once

#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <asyncio.hpp>

namespace seeds {

/// One example. Exactly one of `main` / `program` is set.
struct Seed {
  const char* name;     ///< "say_after_sequential": the program is seed_<name>.
  const char* title;    ///< One line: what the example shows.
  const char* article;  ///< The seed article (and section) it follows.
  int order;            ///< Tour order: 100 * chapter of docs/tutorial/ + 10 * position in it.
  /// Python's `async def main()`: run by the runner as `asyncio::run(main(), options)`.
  asyncio::Coro<void> (*main)() = nullptr;
  /// A whole program that runs its own loop(s) (`asyncio.run(...)` or `loop.run_until_complete`
  /// at top level); it passes `options` on, so that the test can run it under virtual time.
  void (*program)(const asyncio::RunOptions& options) = nullptr;
};

/// Every seed linked into this program, sorted by (order, name).
std::vector<Seed>& registry();
/// The seed called `name`, or nullptr when it is not linked into this program.
const Seed* find(std::string_view name);

/// Static registrar: `const seeds::Register reg{{.name = "...", ..., .main = &async_main}};`
struct Register {
  explicit Register(Seed seed);
};

/// Receives every printed line with its time in seconds since the seed started, measured on the
/// running loop's clock. Lines printed while no loop runs (after `asyncio::run` returned) have
/// no loop time: they get `seeds::no_loop` (a NaN).
using Sink = std::function<void(double t, std::string_view line)>;
inline const double no_loop = std::numeric_limits<double>::quiet_NaN();

/// Replace the sink (the default writes each line to stdout, as Python's print() would).
/// Returns the previous one.
Sink set_sink(Sink next);

/// Python's print() for the examples: hands (time, line) to the sink.
void print(std::string_view line);

/// Concatenate like an f-string: `cat("sleeping for ", 3, " second(s)")`. bool prints as
/// Python's True/False.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  auto put = [&out](const auto& part) {
    if constexpr (std::is_same_v<std::decay_t<decltype(part)>, bool>) {
      out << (part ? "True" : "False");
    } else {
      out << part;
    }
  };
  (put(parts), ...);
  return std::move(out).str();
}

/// `print(f"...{x}...")` in one call: `seeds::print("sleeping for ", 3, " second(s)")`.
template <typename First, typename... Rest>
requires(sizeof...(Rest) > 0 || !std::is_convertible_v<const First&, std::string_view>)
void print(const First& first, const Rest&... rest) {
  print(std::string_view{cat(first, rest...)});
}

/// The examples' stand-in for Python's `time.strftime('%X')`: the seed's loop time, "+3.00s".
std::string now();

/// A seed time as "+3.00s" ("no loop" for `no_loop`).
std::string format_time(double t);

/// Seconds since the seed started on the running loop's clock (`no_loop` outside a loop).
double elapsed();

/// Run one seed: resets the seed clock, then `asyncio::run(seed.main(), options)` or
/// `seed.program(options)`. Exceptions from the seed propagate.
void run(const Seed& seed, const asyncio::RunOptions& options = {});

}  // namespace seeds
